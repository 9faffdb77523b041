/**
 * The AWS SDK is an optional peer dependency, also in a Next.js app that bundles `upload-sync/next`
 * (which reaches the store code): examples/next-app built without `@aws-sdk/client-s3` must build
 * (Turbopack fails a build on an import it cannot resolve, unless it is optional: src/store/sdk.ts),
 * save uploads to disk as before, and answer a store it cannot use with ERR_CONFIG saying what to
 * install. (With the SDK, the example's own e2e tests run it.) `SKIP_NEXT_E2E=1` skips it.
 */
import { mkdtempSync, realpathSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { cleanEnv, exists } from './helpers.js';
import { MINUTES, buildExample, commands, servers, startServer, stopServer } from './next-helpers.js';

let work = '';
let standalone = '';
const appEnv = (extra: Record<string, string> = {}) => cleanEnv({ NEXT_TELEMETRY_DISABLED: '1', UPLOAD_SYNC_LOCK_DIR: join(work, 'locks'), ...extra });
const { must } = commands(appEnv);
const skip = process.env.SKIP_NEXT_E2E === '1';

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
});
