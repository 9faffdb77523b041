/**
 * Saving into a bucket without the AWS SDK (issue 12 point 3: src/store/lean-write.ts).
 * - The built package in child processes (ESM and CJS), the SDK made unresolvable and every attempt
 *   to resolve it logged: `saveUpload` and `saveMultipart` with `UPLOAD_SYNC_STORE` save, refuse and
 *   abort as they should; `createUploadsRoute` serves what they saved from the bucket (proxy GET,
 *   Range, 304, 416, HEAD; redirect to a presigned URL that works); nothing asks for `@aws-sdk/*`.
 * - `LeanStore` against the real Ceph RGW (__tests__/s3-helpers.ts): parts byte-exact, `maxBytes`,
 *   abort, never overwriting, hostile keys; no pending multipart upload after any of them.
 * - Against a plain HTTP server of the test's: a CompleteMultipartUpload answered 200 with an error
 *   inside (as S3 may) fails and aborts; each part's Content-Length is its exact size; an abort
 *   while CreateMultipartUpload is on its way still aborts the upload the server made.
 */
import { createServer, type IncomingMessage } from 'node:http';
import { readFile, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, test } from '@jest/globals';
import {
  AbortMultipartUploadCommand, CreateBucketCommand, DeleteBucketCommand, DeleteObjectsCommand, GetObjectCommand, ListMultipartUploadsCommand,
  ListObjectsV2Command, PutObjectCommand, S3Client,
} from '@aws-sdk/client-s3';
import { resolveStore } from '../src/config/store.js';
import { LeanStore } from '../src/store/lean-write.js';
import { UploadSyncError } from '../src/shared/errors.js';
import { ROOT, cleanEnv, run, tempProject, waitFor } from './helpers.js';
import { bucketName, s3TestEnv, type S3Env } from './s3-helpers.js';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';
const gw = await s3TestEnv();
if ('skip' in gw) process.stderr.write(`save-lean.test.ts skipped: ${gw.skip}\n`);
const d = 'env' in gw ? describe : describe.skip;
const MiB = 1024 * 1024;
const TUNING = { partSize: 5 * MiB, queueSize: 1 };

/** `size` bytes of a pattern in fresh 64 KiB chunks; `onChunk(sent)` before each, and it may wait. */
async function* pattern(size: number, onChunk?: (sent: number) => void | Promise<void>): AsyncGenerator<Uint8Array> {
  let sent = 0;
  while (sent < size) {
    const n = Math.min(64 * 1024, size - sent);
    const chunk = new Uint8Array(n);
    for (let i = 0; i < n; i++) chunk[i] = (sent + i) % 251;
    sent += n;
    await onChunk?.(sent);
    yield chunk;
  }
}
const expected = (size: number) => Buffer.from(Uint8Array.from({ length: size }, (_, i) => i % 251));
const failure = async (promise: Promise<unknown>): Promise<UploadSyncError> => {
  const err = await promise.then(() => null, (e: unknown) => e);
  expect(err).toBeInstanceOf(UploadSyncError);
  return err as UploadSyncError;
};

d('saving into a bucket without the AWS SDK, against a real Ceph RGW', () => {
  let env: S3Env;
  let admin: S3Client;
  let store: LeanStore;
  const bucket = bucketName('lean');
  const PREFIX = 'lean up';

  const pending = async () => ((await admin.send(new ListMultipartUploadsCommand({ Bucket: bucket }))).Uploads ?? []).map((u) => u.Key);
  const keys = async () => ((await admin.send(new ListObjectsV2Command({ Bucket: bucket }))).Contents ?? []).map((o) => o.Key!).sort();
  const read = async (key: string) => Buffer.from(await (await admin.send(new GetObjectCommand({ Bucket: bucket, Key: key }))).Body!.transformToByteArray());

  beforeAll(async () => {
    env = (gw as { env: S3Env }).env;
    admin = new S3Client({
      endpoint: env.AWS_ENDPOINT_URL, region: 'us-east-1', forcePathStyle: true,
      credentials: { accessKeyId: env.AWS_ACCESS_KEY_ID!, secretAccessKey: env.AWS_SECRET_ACCESS_KEY! },
      requestChecksumCalculation: 'WHEN_REQUIRED', responseChecksumValidation: 'WHEN_REQUIRED',
    });
    await admin.send(new CreateBucketCommand({ Bucket: bucket }));
    store = new LeanStore(resolveStore(`s3://${bucket}/${PREFIX}`, env)!, TUNING);
  });
  afterEach(async () => {
    expect(await pending()).toEqual([]);
    const all = await keys();
    if (all.length > 0) await admin.send(new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: all.map((Key) => ({ Key })) } }));
  });
  afterAll(async () => {
    if (admin === undefined) return;
    for (const u of (await admin.send(new ListMultipartUploadsCommand({ Bucket: bucket }))).Uploads ?? []) {
      await admin.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: u.Key, UploadId: u.UploadId }));
    }
    await admin.send(new DeleteBucketCommand({ Bucket: bucket }));
    admin.destroy();
    store?.destroy();
  });

  test('20 MB in 5 MiB parts, byte for byte, with type and mtime; ETag "-4" from a HEAD; a small body is one PUT', async () => {
    const size = 20 * 1000 * 1000;
    const r = await store.put('a/big.mp3', pattern(size), { ifNoneMatch: true, mtimeMs: 1_700_000_000_123.456, contentType: 'audio/mpeg' });
    expect(r).toEqual({ key: `${PREFIX}/a/big.mp3`, size, etag: expect.stringMatching(/^"[0-9a-f]{32}-4"$/), parts: 4 });
    expect(await store.head('a/big.mp3')).toMatchObject({ size, etag: r.etag, contentType: 'audio/mpeg', mtimeMs: 1_700_000_000_123.456 });
    expect((await read(`${PREFIX}/a/big.mp3`)).equals(expected(size))).toBe(true);
    // Exactly two parts long: the end is seen after the second part is full, and no empty third part is sent.
    const exact = await store.put('exact.mp3', pattern(TUNING.partSize * 2));
    expect([exact.size, exact.parts]).toEqual([TUNING.partSize * 2, 2]);
    const small = await store.put('small.mp3', pattern(1000), { ifNoneMatch: true });
    expect([small.parts, small.etag]).toEqual([0, expect.stringMatching(/^"[0-9a-f]{32}"$/)]);
    expect((await read(`${PREFIX}/small.mp3`)).equals(expected(1000))).toBe(true);
  });

  test('maxBytes passed mid-stream: ERR_TOO_LARGE, reading stopped at the limit, no object and no pending upload', async () => {
    let read = 0;
    const err = await failure(store.put('over.mp3', pattern(40 * MiB, (n) => void (read = n)), { maxBytes: 12 * MiB }));
    expect(err.code).toBe('ERR_TOO_LARGE');
    expect(read).toBeLessThanOrEqual(12 * MiB + 64 * 1024);
    expect(await keys()).toEqual([]);
    expect(await pending()).toEqual([]);
  });

  test('aborted mid-stream, or while the body stalls: ERR_ABORTED, no object and no pending upload', async () => {
    const ac = new AbortController();
    const err = await failure(store.put('abort.mp3', pattern(60 * MiB, (n) => void (n >= 17 * MiB && ac.abort())), { signal: ac.signal }));
    expect(err.code).toBe('ERR_ABORTED');
    const stalled = new AbortController();
    const saving = store.put('stall.mp3', pattern(60 * MiB, (n) => (n > 11 * MiB ? new Promise(() => undefined) : undefined)), { signal: stalled.signal });
    setImmediate(() => stalled.abort());
    // Aborted before the body stalls or after: the same end.
    expect((await failure(saving)).code).toBe('ERR_ABORTED');
    expect(await keys()).toEqual([]);
    expect(await pending()).toEqual([]);
  });

  test('never overwrites: a PutObject gets the gateway 412; a multipart upload is refused by the HEAD before Complete (Ceph ignores If-None-Match there)', async () => {
    await admin.send(new PutObjectCommand({ Bucket: bucket, Key: `${PREFIX}/taken.mp3`, Body: 'other' }));
    expect((await failure(store.put('taken.mp3', pattern(1000), { ifNoneMatch: true }))).message).toBe(`The object ${PREFIX}/taken.mp3 already exists`);
    // Another writer between our first part and our Complete.
    let raced = false;
    const body = pattern(12 * MiB, async (n) => {
      if (n >= 6 * MiB && !raced) {
        raced = true;
        await admin.send(new PutObjectCommand({ Bucket: bucket, Key: `${PREFIX}/race.mp3`, Body: 'theirs' }));
      }
    });
    expect((await failure(store.put('race.mp3', body, { ifNoneMatch: true }))).code).toBe('ERR_EXISTS');
    expect((await read(`${PREFIX}/race.mp3`)).toString()).toBe('theirs');
    expect((await read(`${PREFIX}/taken.mp3`)).toString()).toBe('other');
    expect(await pending()).toEqual([]);
    // Without ifNoneMatch: replaced, in parts too.
    expect((await store.put('race.mp3', pattern(6 * MiB))).parts).toBe(2);
    expect((await read(`${PREFIX}/race.mp3`)).equals(expected(6 * MiB))).toBe(true);
  });

  test('hostile keys round-trip exactly (spaces, +, %, #, ?, &, <, quotes, NFC and NFD), in one PUT and in parts; deleteMany removes them', async () => {
    const names = ['a b+c%20#?&x=1.mp3', "<tag> & 'q' \"d\".mp3", 'ü.mp3', 'u\u0308.mp3', 'dir with space/ü+%/[1] (2)!*.mp3'];
    for (const [i, name] of names.entries()) {
      const size = i % 2 === 0 ? 1000 : 6 * MiB;
      await store.put(name, pattern(size), { ifNoneMatch: true });
      expect((await read(`${PREFIX}/${name}`)).equals(expected(size))).toBe(true);
      expect((await store.head(name))?.size).toBe(size);
    }
    expect(await keys()).toEqual(names.map((n) => `${PREFIX}/${n}`).sort());
    const removed = await store.deleteMany([...names, '../outside.mp3']);
    expect(removed.deleted).toEqual(names);
    expect(removed.errors.map((e) => [e.path, e.code])).toEqual([['../outside.mp3', 'ERR_INVALID_NAME']]);
    // A path no file could have: a rejection (not a throw), before any request.
    expect((await failure(store.put('../outside.mp3', pattern(10)))).code).toBe('ERR_INVALID_NAME');
    expect((await failure(store.head('a//b.mp3'))).code).toBe('ERR_INVALID_NAME');
    expect(await keys()).toEqual([]);
  });

  test('a bucket that does not exist: ERR_STORE naming NoSuchBucket, for one PUT and for parts', async () => {
    const missing = new LeanStore(resolveStore(`s3://${bucket}-missing/x`, env)!, TUNING);
    try {
      expect((await failure(missing.put('a.mp3', pattern(1000)))).message).toMatch(/NoSuchBucket \(HTTP 404\) on PUT/);
      expect((await failure(missing.put('a.mp3', pattern(6 * MiB)))).message).toMatch(/NoSuchBucket \(HTTP 404\) on POST/);
    } finally {
      missing.destroy();
    }
  });

  describe('the built package in a child process, @aws-sdk/* unresolvable and every attempt logged', () => {
    let p: ReturnType<typeof tempProject>;
    beforeEach(() => {
      p = tempProject('upload-sync-save-lean-');
    });
    afterEach(async () => {
      await p.cleanup();
    });

    /** A loader hook (`--import`): each resolve of an `@aws-sdk/` specifier is logged and fails as if the SDK were not installed. */
    const hide = async (log: string) => {
      const hooks = `
        import { appendFileSync } from 'node:fs';
        export async function resolve(specifier, context, next) {
          if (specifier.includes('@aws-sdk/')) {
            appendFileSync(${JSON.stringify(log)}, specifier + '\\n');
            const err = new Error("Cannot find package '" + specifier + "'");
            err.code = 'ERR_MODULE_NOT_FOUND';
            throw err;
          }
          return next(specifier, context);
        }`;
      await writeFile(join(p.root, 'hooks.mjs'), hooks);
      await writeFile(log, '');
      const register = join(p.root, 'register.mjs');
      await writeFile(register, `import { register } from 'node:module';\nimport { pathToFileURL } from 'node:url';\nregister(pathToFileURL(${JSON.stringify(join(p.root, 'hooks.mjs'))}));\n`);
      return register;
    };

    // The same script for both builds: saves, refusals and an abort; prints the outcomes as JSON.
    const body = (entry: string) => `
      const { saveUpload, saveMultipart, createUploadsRoute } = LOAD(${JSON.stringify(entry)});
      const big = (size, onChunk) => { let sent = 0; return new ReadableStream({ async pull(c) {
        if (sent >= size) return c.close();
        const n = Math.min(65536, size - sent); const chunk = new Uint8Array(n); for (let i = 0; i < n; i++) chunk[i] = (sent + i) % 251;
        sent += n; await onChunk?.(sent); c.enqueue(chunk);
      } }); };
      const o = { root: process.argv[1], sync: false };
      const code = (p) => p.then((s) => 'ok', (e) => e.code);
      const out = {};
      const buffers = process.memoryUsage().arrayBuffers;
      out.small = await saveUpload(new Uint8Array(1000), { ...o, name: 'small.mp3' });
      // A body of known size is read into a buffer of its size, not a 5 MiB part (not yet collected here).
      out.smallBuffered = process.memoryUsage().arrayBuffers - buffers < 1048576;
      out.parts = await saveUpload(big(12 * 1048576 + 5), { ...o, name: 'parts.mp3' });
      out.exists = await code(saveUpload(big(12 * 1048576), { ...o, name: 'parts.mp3' }));
      out.tooLarge = await code(saveUpload(big(40 * 1048576), { ...o, originalName: 'x.mp3', maxBytes: 12 * 1048576 }));
      const ac = new AbortController();
      out.aborted = await code(saveUpload(big(40 * 1048576, (n) => n >= 11 * 1048576 && ac.abort()), { ...o, originalName: 'y.mp3', signal: ac.signal }));
      const form = new FormData();
      form.append('file', new File([new Uint8Array(7 * 1048576)], 'z.mp3', { type: 'audio/mpeg' }));
      out.multipart = (await saveMultipart(new Request('http://localhost/', { method: 'POST', body: form }), o)).files.map((f) => f.size);
      // The route serves them from the bucket (no disk copy), both deliveries.
      const ask = async (route, method, headers = {}) => {
        const r = await route[method](new Request('http://localhost/uploads/parts.mp3', { method, headers }));
        const b = Buffer.from(await r.arrayBuffer());
        return [r.status, b.length, r.headers.get('content-length'), r.headers.get('content-range'), b[0] ?? null];
      };
      const proxy = createUploadsRoute({ root: process.argv[1] });
      out.whole = await ask(proxy, 'GET');
      out.range = await ask(proxy, 'GET', { range: 'bytes=300-399' });
      out.notModified = (await ask(proxy, 'GET', { 'if-none-match': out.parts.etag }))[0];
      out.beyond = await ask(proxy, 'GET', { range: 'bytes=99999999-' });
      out.head = await ask(proxy, 'HEAD', { range: 'bytes=0-9' });
      const redirect = createUploadsRoute({ root: process.argv[1], delivery: 'redirect' });
      const moved = await redirect.GET(new Request('http://localhost/uploads/parts.mp3'));
      const signed = await fetch(moved.headers.get('location'), { headers: { range: 'bytes=251-260' } });
      out.redirect = [moved.status, signed.status, [...new Uint8Array(await signed.arrayBuffer())]];
      out.redirectHead = await ask(redirect, 'HEAD');
      process.stdout.write(JSON.stringify(out));`;

    test.each([
      ['ESM', 'module', join(ROOT, 'dist', 'next.js'), 'await import'],
      ['CJS', 'commonjs', join(ROOT, 'dist', 'next.cjs'), 'require'],
    ])('%s: saveUpload, saveMultipart and createUploadsRoute with UPLOAD_SYNC_STORE never ask for the SDK', async (_, type, entry, load) => {
      const log = join(p.root, 'sdk.log');
      const register = await hide(log);
      // CJS: require() does not go through the hook on this Node: log its requests of the SDK too.
      const prologue = type === 'commonjs'
        ? `const M = require('node:module'); const l = M._load; M._load = function (r, ...a) { if (r.includes('@aws-sdk/')) require('node:fs').appendFileSync(${JSON.stringify(log)}, r + '\\n'); return l.call(this, r, ...a); };
           (async () => {`
        : '';
      const script = prologue + body(entry).replace('LOAD(', `${load}(`) + (type === 'commonjs' ? '})().catch((e) => { console.error(e); process.exit(1); });' : '');
      const r = await run(process.execPath, ['--import', register, `--input-type=${type}`, '-e', script, p.root], {
        env: cleanEnv({ ...env, UPLOAD_SYNC_STORE: `s3://${bucket}/${PREFIX}/${type}` }),
      });
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      const out = JSON.parse(r.stdout) as Record<string, unknown>;
      expect(out).toEqual({
        small: expect.objectContaining({ size: 1000, etag: expect.stringMatching(/^"[0-9a-f]{32}"$/) }),
        parts: expect.objectContaining({ size: 12 * MiB + 5, etag: expect.stringMatching(/-3"$/) }),
        exists: 'ERR_EXISTS', tooLarge: 'ERR_TOO_LARGE', aborted: 'ERR_ABORTED', multipart: [7 * MiB], smallBuffered: true,
        whole: [200, 12 * MiB + 5, String(12 * MiB + 5), null, 0],
        range: [206, 100, '100', `bytes 300-399/${12 * MiB + 5}`, 300 % 251],
        notModified: 304,
        // The gateway's 416 has no Content-Range: the route's has the size.
        beyond: [416, expect.any(Number), expect.any(String), `bytes */${12 * MiB + 5}`, expect.any(Number)],
        head: [206, 0, '10', `bytes 0-9/${12 * MiB + 5}`, null],
        redirect: [307, 206, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]],
        redirectHead: [200, 0, String(12 * MiB + 5), null, null],
      });
      expect(await readFile(log, 'utf8')).toBe('');
      expect((await read(`${PREFIX}/${type}/parts.mp3`)).equals(expected(12 * MiB + 5))).toBe(true);
      expect(await pending()).toEqual([]);
    }, 60_000);
  });
});

/** A plain HTTP server answering as a bucket would, logging each request; `delayCreate` holds CreateMultipartUpload's answer until it resolves. */
async function fakeBucket(complete: string, delayCreate: Promise<void> = Promise.resolve()) {
  const seen: { method: string; url: string; length: number; declared: string | undefined }[] = [];
  let creates = 0;
  const server = createServer((req: IncomingMessage, res) => {
    let length = 0;
    req.on('data', (c: Buffer) => (length += c.length));
    req.on('end', async () => {
      seen.push({ method: req.method!, url: req.url!, length, declared: req.headers['content-length'] });
      const url = new URL(req.url!, 'http://x');
      if (req.method === 'POST' && url.searchParams.has('uploads')) {
        creates++;
        await delayCreate;
        return res.end('<InitiateMultipartUploadResult><UploadId>id&amp;1</UploadId></InitiateMultipartUploadResult>');
      }
      if (req.method === 'PUT') return res.writeHead(200, { ETag: `"part-${url.searchParams.get('partNumber')}"` }).end();
      if (req.method === 'HEAD') return res.writeHead(404).end();
      if (req.method === 'POST') return res.end(complete);
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const env = { AWS_ENDPOINT_URL: `http://127.0.0.1:${port}`, AWS_ACCESS_KEY_ID: 'a', AWS_SECRET_ACCESS_KEY: 'b', UPLOAD_SYNC_S3_PATH_STYLE: 'true' };
  const store = new LeanStore(resolveStore('s3://fake-bucket/p', env)!, TUNING);
  return { seen, store, creates: () => creates, close: () => (store.destroy(), server.close()) };
}

describe('against a plain HTTP server of the test', () => {
  test('CompleteMultipartUpload answered 200 with an error inside: ERR_STORE with the S3 code and message; the upload aborted; every part sent with its exact Content-Length', async () => {
    const { seen, store, close } = await fakeBucket('<?xml version="1.0"?>\n<Error><Code>InternalError</Code><Message>We encountered an internal error &amp; stopped</Message></Error>');
    try {
      const size = 11 * MiB + 7;
      const err = await failure(store.put('a b.mp3', pattern(size), { ifNoneMatch: true }));
      expect(err.code).toBe('ERR_STORE');
      expect(err.message).toBe('Bucket fake-bucket, key p/a b.mp3: InternalError (HTTP 200) on POST: We encountered an internal error & stopped');
      const parts = seen.filter((s) => s.method === 'PUT');
      expect(parts.map((s) => [s.length, s.declared])).toEqual([[5 * MiB, String(5 * MiB)], [5 * MiB, String(5 * MiB)], [MiB + 7, String(MiB + 7)]]);
      expect(parts.map((s) => s.url)).toEqual([1, 2, 3].map((n) => `/fake-bucket/p/a%20b.mp3?partNumber=${n}&uploadId=id%261`));
      expect(seen.map((s) => s.method)).toEqual(['POST', 'PUT', 'PUT', 'PUT', 'HEAD', 'POST', 'DELETE']);
      expect(seen.at(-1)!.url).toBe('/fake-bucket/p/a%20b.mp3?uploadId=id%261');
    } finally {
      close();
    }
  });

  test('aborted while CreateMultipartUpload is on its way: its answer is awaited and the upload it made aborted (else it would stay pending, unknown)', async () => {
    let answer!: () => void;
    const ac = new AbortController();
    const { seen, store, creates, close } = await fakeBucket('', new Promise((resolve) => (answer = resolve)));
    try {
      const saving = store.put('a.mp3', pattern(12 * MiB), { signal: ac.signal });
      await waitFor(() => creates() === 1, { message: 'CreateMultipartUpload to arrive' });
      ac.abort();
      answer();
      expect((await failure(saving)).code).toBe('ERR_ABORTED');
      expect(seen.map((s) => `${s.method} ${s.url}`)).toEqual(['POST /fake-bucket/p/a.mp3?uploads=', 'DELETE /fake-bucket/p/a.mp3?uploadId=id%261']);
    } finally {
      close();
    }
  });
});
