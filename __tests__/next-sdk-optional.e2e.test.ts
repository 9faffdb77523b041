/**
 * The AWS SDK is an optional peer dependency, also in a Next.js app that bundles `upload-sync/next`
 * (which reaches the store code): examples/next-app built without `@aws-sdk/client-s3` must build
 * (Turbopack fails a build on an import it cannot resolve, unless it is optional: src/store/sdk.ts),
 * save uploads to disk as before, and answer a store it cannot use with ERR_CONFIG saying what to
 * install. A store from the environment with its keys needs no SDK: against the real Ceph gateway
 * (s3-helpers.ts), the app saves into the bucket and its uploads route serves the object (GET,
 * Range, 304, HEAD). (With the SDK, the example's own e2e tests run it.) `SKIP_NEXT_E2E=1` skips it.
 */
import { mkdtempSync, realpathSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { CreateBucketCommand, DeleteBucketCommand, DeleteObjectsCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { cleanEnv, exists } from './helpers.js';
import { MINUTES, buildExample, commands, get, servers, startServer, stopServer } from './next-helpers.js';
import { bucketName, s3TestEnv } from './s3-helpers.js';

let work = '';
let standalone = '';
const appEnv = (extra: Record<string, string> = {}) => cleanEnv({ NEXT_TELEMETRY_DISABLED: '1', UPLOAD_SYNC_LOCK_DIR: join(work, 'locks'), ...extra });
const { must } = commands(appEnv);
const skip = process.env.SKIP_NEXT_E2E === '1';
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';
const gw = skip ? { skip: 'SKIP_NEXT_E2E=1' } : await s3TestEnv();

beforeAll(async () => {
  if (skip) return;
  work = realpathSync(mkdtempSync(join(tmpdir(), 'upload-sync-nosdk-')));
  ({ standalone } = await buildExample(work, must, {}, ['@aws-sdk/client-s3']));
}, 15 * MINUTES);

afterAll(async () => {
  for (const child of servers) await stopServer({ child });
  if (work !== '') await rm(work, { recursive: true, force: true });
}, 2 * MINUTES);

const upload = async (base: string) => {
  const form = new FormData();
  form.append('file', new File([new Uint8Array(1000)], 'a.mp3', { type: 'audio/mpeg' }));
  const r = await fetch(`${base}/api/upload`, { method: 'POST', body: form });
  return { status: r.status, json: (await r.json()) as Record<string, unknown> };
};

(skip ? describe.skip : describe)('examples/next-app without @aws-sdk/client-s3', () => {
  test('builds, with no SDK in the standalone output; saves to disk; a store is ERR_CONFIG saying what to install', async () => {
    expect(await exists(join(standalone, 'node_modules', '@aws-sdk'))).toBe(false);
    const plain = await startServer(standalone, appEnv());
    const saved = await upload(plain.base);
    expect(saved).toMatchObject({ status: 201, json: { sync: 'ok' } });
    await stopServer(plain);

    const withStore = await startServer(standalone, appEnv({ UPLOAD_SYNC_STORE: 's3://some-bucket/uploads', AWS_REGION: 'us-east-1' }));
    const refused = await upload(withStore.base);
    expect(refused).toMatchObject({ status: 500, json: { code: 'ERR_CONFIG' } });
    expect(withStore.output()).toContain('npm install @aws-sdk/client-s3');
    await stopServer(withStore);
  }, 2 * MINUTES);

  (('env' in gw) ? test : test.skip)('a store from the environment with its keys: saves into the bucket and serves from it, without the SDK', async () => {
    const env = (gw as { env: Record<string, string> }).env;
    const bucket = bucketName('nosdk');
    const admin = new S3Client({
      endpoint: env.AWS_ENDPOINT_URL, region: 'us-east-1', forcePathStyle: true,
      credentials: { accessKeyId: env.AWS_ACCESS_KEY_ID!, secretAccessKey: env.AWS_SECRET_ACCESS_KEY! },
    });
    await admin.send(new CreateBucketCommand({ Bucket: bucket }));
    const server = await startServer(standalone, appEnv({ ...env, UPLOAD_SYNC_STORE: `s3://${bucket}/up` }));
    try {
      const saved = await upload(server.base);
      expect(saved).toMatchObject({ status: 201, json: { sync: null, size: 1000 } });
      const url = `${server.base}${saved.json.url as string}`;
      const whole = await get(url);
      expect([whole.status, whole.body.length]).toEqual([200, 1000]);
      const etag = String(whole.headers.etag);
      expect(etag).toMatch(/^"[0-9a-f]{32}"$/); // the object's own ETag: it came from the bucket
      const part = await get(url, { range: 'bytes=10-19' });
      expect([part.status, part.headers['content-range'], part.body.length]).toEqual([206, 'bytes 10-19/1000', 10]);
      expect((await get(url, { 'if-none-match': etag })).status).toBe(304);
      const head = await get(url, {}, 'HEAD');
      expect([head.status, head.headers.etag, head.body.length]).toEqual([200, etag, 0]);
      expect(server.output()).not.toMatch(/ERR_CONFIG|@aws-sdk/);
    } finally {
      await stopServer(server);
      const keys = ((await admin.send(new ListObjectsV2Command({ Bucket: bucket }))).Contents ?? []).map((o) => ({ Key: o.Key! }));
      if (keys.length > 0) await admin.send(new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: keys } }));
      await admin.send(new DeleteBucketCommand({ Bucket: bucket }));
      admin.destroy();
    }
  }, 2 * MINUTES);
});
