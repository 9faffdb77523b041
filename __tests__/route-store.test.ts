/**
 * createUploadsRoute serving from the store (issue 12 point 4) against a real Ceph RGW
 * (__tests__/s3-helpers.ts), both ways a store reads: `sdk` (the user's own `client`: the AWS SDK)
 * and `lean` (a store from the environment with its keys: signed requests, no SDK; lean-read.ts).
 * Requests are counted by a logging proxy in front of the gateway (s3-proxy.ts). The oracle is the same route serving the same files from disk (itself
 * checked against `send` in route-send-oracle.test.ts): for a generated set of requests, the
 * bucket route must give the same status, bytes and headers; only the ETag differs (the object's,
 * not `"size-mtime"`), and a 304 the bucket answered carries no Last-Modified (serve-store.ts).
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { stat } from 'node:fs/promises';
import { createServer, request as httpRequest, type Server } from 'node:http';
import { createServer as createNetServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { CreateBucketCommand, DeleteBucketCommand, S3Client, type S3ClientConfig } from '@aws-sdk/client-s3';
import { createUploadsRoute, saveUpload } from '../src/next.js';
import { writeResponse } from '../src/next/preload.js';
import { openStore } from '../src/store/open.js';
import type { S3Store } from '../src/store/s3-store.js';
import { ROOT, tempProject, waitFor, writeTree } from './helpers.js';
import { bucketName, s3TestEnv, type S3Env } from './s3-helpers.js';
import { loggingProxy, type LoggingProxy } from './s3-proxy.js';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';
const gw = await s3TestEnv();
if ('skip' in gw) process.stderr.write(`route-store.test.ts skipped: ${gw.skip}\n`);
const d = 'env' in gw ? describe : describe.skip;
const MiB = 1024 * 1024;
const PREFIX = 'up/loads';

/** Seeded, so a failure replays. */
function prng(seed: number) {
  let s = seed >>> 0;
  return () => (s = (s * 1664525 + 1013904223) >>> 0) / 2 ** 32;
}
const rand = prng(0x51ce);
function bytesOf(size: number, salt: number): Buffer {
  const b = Buffer.allocUnsafe(size);
  for (let i = 0; i < size; i++) b[i] = (i * 31 + salt + (i >> 9)) & 0xff;
  return b;
}

/** Hostile names (spaces, `+`, `%`, unicode, NFD), every inline/attachment kind, empty, > 64 KiB, multipart (two 5 MiB parts). */
const FILES: Record<string, Buffer> = {
  'song.mp3': bytesOf(1000, 1),
  'sp ace & co.mp3': bytesOf(777, 2),
  'plus+sign.flac': bytesOf(300, 3),
  '100%25 sure.ogg': bytesOf(64, 4), // the name holds `%25` literally
  'ünï 曲/Cafe\u0301 ñ.m4a': bytesOf(5000, 5),
  'empty.mp3': Buffer.alloc(0),
  'one.mp3': Buffer.from('x'),
  'page.html': Buffer.from('<script>alert(1)</script>'),
  'notes.txt': Buffer.from('hello notes'),
  'cover.png': bytesOf(2048, 6),
  'sub/dir/long.wav': bytesOf(200_000, 7),
  'big.mp3': bytesOf(6 * MiB + 123, 8),
};
const urlOf = (path: string) => `/uploads/${path.split('/').map(encodeURIComponent).join('/')}`;

interface Answer {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
}
async function answer(res: Response): Promise<Answer> {
  return { status: res.status, headers: Object.fromEntries(res.headers), body: Buffer.from(await res.arrayBuffer()) };
}
type Route = ReturnType<typeof createUploadsRoute>;
const call = async (route: Route, path: string, headers: Record<string, string> = {}, method: 'GET' | 'HEAD' = 'GET') =>
  answer(await route[method](new Request(`http://localhost${path}`, { headers, method })));

/** What must be equal between the disk route and the bucket route (the ETag is each one's own). */
const COMPARED = ['content-range', 'content-length', 'content-type', 'content-disposition', 'content-security-policy', 'accept-ranges', 'cache-control', 'x-content-type-options'];
function comparable(a: Answer) {
  const h: Record<string, string | undefined> = {};
  for (const name of COMPARED) h[name] = a.headers[name];
  // A 304 passed through from the bucket has no Last-Modified (Ceph's 304 has no metadata); every other answer has the disk's.
  if (a.status !== 304) h['last-modified'] = a.headers['last-modified'];
  return { status: a.status, headers: h, sha: createHash('sha1').update(a.body).digest('hex'), length: a.body.length };
}

/** The generated requests for a file of `size` bytes, with that route's own validators. */
function requestsFor(size: number, v: { etag: string; lastModified: string }, seed: number): Record<string, string>[] {
  const r = prng(seed);
  const n = (max: number) => Math.floor(r() * Math.max(1, max));
  const before = new Date(Date.parse(v.lastModified) - 1000).toUTCString();
  const after = new Date(Date.parse(v.lastModified) + 1000).toUTCString();
  const ranges = [
    'bytes=0-0', 'bytes=0-9', 'bytes=5-', `bytes=${Math.max(0, size - 1)}-`, `bytes=${size}-`, `bytes=${size + 10}-${size + 20}`,
    'bytes=-1', 'bytes=-100', `bytes=-${size + 5}`, 'bytes=-0', 'bytes=0-1,5-6', 'bytes=0-5,3-10', 'bytes=abc', 'items=0-1', 'bytes=9-2',
    'bytes=0-', ` bytes=1-2`, `bytes=${n(size)}-${n(size) + n(70_000)}`, `bytes=-${n(size)}`, `bytes=${n(size)}-${n(size)},${n(size)}-`,
  ];
  const out: Record<string, string>[] = [{}];
  for (const range of ranges) out.push({ range });
  out.push(
    { 'if-none-match': v.etag }, { 'if-none-match': '"nope"' }, { 'if-none-match': `W/${v.etag}` }, { 'if-none-match': '*' },
    { 'if-none-match': `"x", ${v.etag}` }, { 'if-none-match': v.etag, 'cache-control': 'no-cache' },
    { 'if-modified-since': v.lastModified }, { 'if-modified-since': before }, { 'if-modified-since': after },
    { 'if-none-match': '"nope"', 'if-modified-since': v.lastModified },
    { 'if-unmodified-since': v.lastModified }, { 'if-unmodified-since': before },
    { 'if-match': v.etag }, { 'if-match': '"nope"' }, { 'if-match': '*' }, { 'if-match': `W/${v.etag}` }, { 'if-match': 'garbage' },
    { 'if-match': `"x", ${v.etag}` }, { 'if-none-match': 'garbage' },
    { 'if-match': v.etag, range: 'bytes=0-3' }, { 'if-match': '"nope"', 'if-none-match': v.etag },
    { range: 'bytes=0-3', 'if-range': v.etag }, { range: 'bytes=0-3', 'if-range': '"nope"' }, { range: 'bytes=2-', 'if-range': `W/${v.etag}` },
    { range: 'bytes=0-3', 'if-range': v.lastModified }, { range: 'bytes=0-3', 'if-range': before },
    { range: `bytes=${size}-`, 'if-range': v.etag }, { range: 'bytes=-0', 'if-none-match': '"nope"' },
  );
  return out;
}

for (const mode of ['sdk', 'lean'] as const) d(`the route serves from the store as it serves from disk (real Ceph RGW, ${mode})`, () => {
  let env: S3Env;
  let admin: S3Client;
  let store: S3Store;
  let client: S3Client;
  let proxy: LoggingProxy;
  const savedEnv = { ...process.env };
  const bucket = bucketName(`route-${mode}`);
  const disk = tempProject('upload-sync-route-disk-');
  const empty = tempProject('upload-sync-route-bucket-');
  const clientConfig = (endpoint = env.AWS_ENDPOINT_URL): S3ClientConfig => ({
    endpoint, region: 'us-east-1', forcePathStyle: true,
    credentials: { accessKeyId: env.AWS_ACCESS_KEY_ID!, secretAccessKey: env.AWS_SECRET_ACCESS_KEY! },
    requestChecksumCalculation: 'WHEN_REQUIRED', responseChecksumValidation: 'WHEN_REQUIRED',
  });
  const diskRoute = () => createUploadsRoute({ root: disk.root, source: disk.source, dest: disk.dest });
  /** The store option of this mode: the user's client, or `s3://…` with the AWS variables in process.env (lean). */
  const storeOption = (c = client) => (mode === 'sdk' ? { bucket, prefix: PREFIX, client: c } : `s3://${bucket}/${PREFIX}`);
  const bucketRoute = (extra: Parameters<typeof createUploadsRoute>[0] = {}) =>
    createUploadsRoute({ root: empty.root, source: empty.source, dest: empty.dest, store: storeOption(), ...extra });
  /** A route whose bucket is at `endpoint` (a closed port, a silent server): its own client, or AWS_ENDPOINT_URL for the call's length. */
  const routeAt = async (endpoint: string, extra: Parameters<typeof createUploadsRoute>[0], use: (route: Route) => Promise<void>) => {
    const own = new S3Client({ ...clientConfig(endpoint), maxAttempts: 3 });
    const saved = process.env.AWS_ENDPOINT_URL;
    if (mode === 'lean') process.env.AWS_ENDPOINT_URL = endpoint;
    try {
      await use(createUploadsRoute({ root: empty.root, source: empty.source, dest: empty.dest, store: storeOption(own), ...extra }));
    } finally {
      if (mode === 'lean') process.env.AWS_ENDPOINT_URL = saved;
      own.destroy();
    }
  };

  beforeAll(async () => {
    env = (gw as { env: S3Env }).env;
    admin = new S3Client(clientConfig());
    proxy = await loggingProxy(env.AWS_ENDPOINT_URL!, bucket);
    client = new S3Client(clientConfig(proxy.url));
    if (mode === 'lean') Object.assign(process.env, env, { AWS_ENDPOINT_URL: proxy.url });
    await admin.send(new CreateBucketCommand({ Bucket: bucket }));
    store = await openStore({ bucket, prefix: PREFIX, client: admin }, { partSize: 5 * MiB });
    await writeTree(disk.source, FILES);
    await writeTree(empty.source, {});
    // As a push does: the object keeps the file's mtime (nanosecond times, both roundings of the ms).
    for (const [path, content] of Object.entries(FILES)) {
      const abs = join(disk.source, path);
      const sec = 1_600_000_000 + Math.floor(rand() * 100_000_000);
      const { utimes } = await import('node:fs/promises');
      await utimes(abs, sec, sec + rand());
      await store.put(path, Readable.from([content]), { mtimeMs: (await stat(abs)).mtimeMs });
    }
  }, 60_000);

  afterAll(async () => {
    if (admin !== undefined) {
      const keys: string[] = [];
      for await (const page of store.list()) keys.push(...page.map((e) => e.path));
      await store.deleteMany(keys);
      await admin.send(new DeleteBucketCommand({ Bucket: bucket }));
      admin.destroy();
      client.destroy();
      await proxy.close();
    }
    for (const k of Object.keys(process.env)) if (!(k in savedEnv)) delete process.env[k];
    Object.assign(process.env, savedEnv);
    await disk.cleanup();
    await empty.cleanup();
  });

  test('every generated request: same status, bytes and headers as the disk route (GET and HEAD)', async () => {
    const fromDisk = diskRoute();
    const fromBucket = bucketRoute();
    const mismatches: string[] = [];
    let count = 0;
    // One file after another, the files side by side (the gateway answers in ~10 ms, mostly waiting).
    await Promise.all(Object.entries(FILES).map(async ([path, content], i) => {
      const url = urlOf(path);
      const own = async (route: Route) => {
        const a = await call(route, url, {}, 'HEAD');
        return { etag: a.headers.etag!, lastModified: a.headers['last-modified']! };
      };
      const [vd, vb] = [await own(fromDisk), await own(fromBucket)];
      expect(vb.etag).toMatch(/^"[0-9a-f]{32}(-\d+)?"$/); // the object's own ETag (MD5, or MD5-parts)
      expect(vb.lastModified).toBe(vd.lastModified); // the file's mtime, from x-amz-meta-mtime
      const [rd, rb] = [requestsFor(content.length, vd, i), requestsFor(content.length, vb, i)];
      for (let k = 0; k < rd.length; k++) {
        for (const method of ['GET', 'HEAD'] as const) {
          if (method === 'HEAD' && k % 3 !== 0) continue;
          const a = comparable(await call(fromDisk, url, rd[k], method));
          const b = comparable(await call(fromBucket, url, rb[k], method));
          count++;
          if (JSON.stringify(a) !== JSON.stringify(b)) mismatches.push(`${method} ${path} ${JSON.stringify(rb[k])}:\n  disk   ${JSON.stringify(a)}\n  bucket ${JSON.stringify(b)}`);
        }
      }
      if (path === 'song.mp3') expect((await call(fromBucket, url)).body.equals(content)).toBe(true);
    }));
    expect(mismatches).toEqual([]);
    expect(count).toBeGreaterThan(500);
  }, 120_000);

  test('disk first: the source, then the mirror, then the bucket (no bucket request when a disk has the file)', async () => {
    await store.put('layered.mp3', Readable.from([Buffer.from('from the bucket')]));
    const route = bucketRoute();
    expect((await call(route, '/uploads/layered.mp3')).body.toString()).toBe('from the bucket');
    await writeTree(empty.dest, { 'layered.mp3': 'from the mirror' });
    const before = proxy.sent.length;
    expect((await call(route, '/uploads/layered.mp3')).body.toString()).toBe('from the mirror');
    await writeTree(empty.source, { 'layered.mp3': 'from the source' });
    expect((await call(route, '/uploads/layered.mp3')).body.toString()).toBe('from the source');
    expect((await call(route, '/uploads/layered.mp3', {}, 'HEAD')).headers['content-length']).toBe('15');
    expect(proxy.sent.slice(before)).toEqual([]);
  });

  test('a refused path never reaches the bucket, even when the bucket holds that key', async () => {
    for (const key of ['.hidden.mp3', 'a.mp3.part', 'b.crdownload', 'c.mp3.tmp', 'd.mp3~', '.git/config.mp3', 'x.exe']) {
      await store.put(key, Readable.from([Buffer.from('must not be served')]));
    }
    const route = bucketRoute({ extensions: ['mp3', 'txt'] });
    const refused = [
      '/uploads/.hidden.mp3', '/uploads/a.mp3.part', '/uploads/b.crdownload', '/uploads/c.mp3.tmp', '/uploads/d.mp3~',
      '/uploads/.git/config.mp3', '/uploads/x.exe', '/uploads/%2e%2e/secret.mp3', '/uploads/..%2fsecret.mp3', '/uploads/a%2fb.mp3',
      '/uploads/a%5cb.mp3', '/uploads/bad%zz.mp3', '/uploads/nul%00.mp3', '/uploads/sub//x.mp3', '/uploads/', '/other/song.mp3',
    ];
    const before = proxy.sent.length;
    const statuses: Record<string, number> = {};
    for (const url of refused) {
      for (const method of ['GET', 'HEAD'] as const) {
        const a = await call(route, url, { range: 'bytes=0-1' }, method);
        if (a.status < 400) statuses[`${method} ${url}`] = a.status;
      }
    }
    for (const url of ['/uploads/.hidden.mp3', '/uploads/x.exe']) {
      expect((await call(bucketRoute({ extensions: ['mp3', 'txt'], delivery: 'redirect' }), url)).status).toBe(404);
    }
    expect(statuses).toEqual({});
    expect(proxy.sent.slice(before)).toEqual([]);
    // The same keys are there: an accepted path does reach the bucket.
    expect((await call(route, '/uploads/notes.txt')).status).toBe(200);
    expect(proxy.sent.length).toBeGreaterThan(before);
  });

  test('a plain GET, a seek and a revalidation cost one bucket request each; a date-only conditional a HEAD', async () => {
    const route = bucketRoute();
    const etag = (await call(route, '/uploads/song.mp3', {}, 'HEAD')).headers.etag!;
    const before = proxy.sent.length;
    expect((await call(route, '/uploads/song.mp3')).status).toBe(200);
    expect((await call(route, '/uploads/song.mp3', { range: 'bytes=100-199' })).status).toBe(206);
    const revalidated = await call(route, '/uploads/song.mp3', { 'if-none-match': etag });
    expect(revalidated.status).toBe(304);
    expect(revalidated.headers.etag).toBe(etag);
    expect((await call(route, '/uploads/song.mp3', { 'if-modified-since': new Date().toUTCString() })).status).toBe(304);
    expect(proxy.sent.slice(before).map((c) => c.split(' ')[0])).toEqual(['GET', 'GET', 'GET', 'HEAD']);
    // Through the SDK for a user's client; by lean-read.ts's signed requests for a store from the environment.
    if (mode === 'sdk') expect(proxy.bySdk).toBeGreaterThan(0);
    else expect(proxy.bySdk).toBe(0);
  });

  test('an object replaced between the HEAD and the GET: the GET, pinned to the ETag, fails and the route starts over (never old headers on new bytes)', async () => {
    await store.put('replaced.mp3', Readable.from([Buffer.from('old bytes')]), { mtimeMs: 1_700_000_000_000 });
    let replaced = 0;
    proxy.after = async (method) => {
      if (method === 'HEAD' && replaced++ === 0) await store.put('replaced.mp3', Readable.from([Buffer.from('the new, longer bytes')]), { mtimeMs: 1_800_000_000_000 });
    };
    try {
      const before = proxy.sent.length;
      // If-Modified-Since alone: decided from a HEAD, then a pinned GET.
      const a = await call(bucketRoute(), '/uploads/replaced.mp3', { 'if-modified-since': new Date(1_600_000_000_000).toUTCString() });
      expect(a.status).toBe(200);
      expect(a.body.toString()).toBe('the new, longer bytes');
      expect(a.headers['content-length']).toBe('21');
      expect(a.headers['last-modified']).toBe(new Date(1_800_000_000_000).toUTCString());
      expect(proxy.sent.slice(before).map((c) => c.split(' ')[0])).toEqual(['HEAD', 'GET', 'HEAD', 'GET']);
    } finally {
      proxy.after = null;
    }
  });

  test('a missing object is the route\'s own 404', async () => {
    for (const method of ['GET', 'HEAD'] as const) {
      const a = await call(bucketRoute(), '/uploads/missing.mp3', { range: 'bytes=0-1', 'if-none-match': '"x"' }, method);
      expect(a.status).toBe(404);
      expect(a.headers['content-type']).toBe('text/plain; charset=utf-8');
      expect(a.body.toString()).toBe(method === 'GET' ? 'Not Found\n' : '');
    }
  });

  test('redirect: 307 to a presigned GET that serves the bytes with the route\'s type and disposition; HEAD answered by the route', async () => {
    const route = bucketRoute({ delivery: 'redirect', presignExpiresIn: 60 });
    const proxied = bucketRoute();
    const before = proxy.sent.length;
    for (const [path, content] of Object.entries(FILES)) {
      if (content.length > MiB) continue;
      const res = await route.GET(new Request(`http://localhost${urlOf(path)}`));
      expect(res.status).toBe(307);
      expect(res.headers.get('cache-control')).toBe('private, no-store');
      const location = res.headers.get('location')!;
      expect(location.startsWith(proxy.url)).toBe(true);
      expect(location).toContain('X-Amz-Expires=60');
      const whole = await fetch(location);
      expect(whole.status).toBe(200);
      expect(Buffer.from(await whole.arrayBuffer()).equals(content)).toBe(true);
      const own = await call(proxied, urlOf(path));
      expect(whole.headers.get('content-type')).toBe(own.headers['content-type']);
      expect(whole.headers.get('content-disposition')).toBe(own.headers['content-disposition'] ?? null);
      expect(whole.headers.get('cache-control')).toBe(own.headers['cache-control']);
      if (content.length > 10) {
        const part = await fetch(location, { headers: { range: 'bytes=2-9' } });
        expect(part.status).toBe(206);
        expect(part.headers.get('content-range')).toBe(`bytes 2-9/${content.length}`);
        expect(Buffer.from(await part.arrayBuffer()).equals(content.subarray(2, 10))).toBe(true);
      }
      // A presigned GET answers HEAD with 403: the route answers HEAD itself, as the proxy does.
      expect((await fetch(location, { method: 'HEAD' })).status).toBe(403);
      for (const headers of [{}, { range: 'bytes=0-3' }, { range: `bytes=${content.length}-` }] as Record<string, string>[]) {
        const h = await call(route, urlOf(path), headers, 'HEAD');
        const p = await call(proxied, urlOf(path), headers, 'HEAD');
        expect(comparable(h)).toEqual(comparable(p));
        expect(h.headers.etag).toBe(p.headers.etag);
      }
    }
    // The route's GETs cost no bucket request (presigning is local); only the HEADs (through HEAD) did.
    const asked = proxy.sent.slice(before).filter((c) => !c.endsWith(' presigned'));
    expect(asked.every((c) => c.startsWith('HEAD ') || c.startsWith('GET '))).toBe(true);
    const redirectGets = asked.filter((c) => c.startsWith('GET ')).length;
    const proxyGets = Object.values(FILES).filter((c) => c.length <= MiB).length; // one per proxied whole GET above
    expect(redirectGets).toBe(proxyGets);
  });

  test('redirect: the presigned URL expires after presignExpiresIn (403), and a key with spaces, +, % and unicode signs right', async () => {
    const path = 'ünï 曲/Cafe\u0301 ñ.m4a';
    const route = bucketRoute({ delivery: 'redirect', presignExpiresIn: 1 });
    const location = (await route.GET(new Request(`http://localhost${urlOf(path)}`))).headers.get('location')!;
    expect(location).toContain('X-Amz-Expires=1&');
    for (const name of ['sp ace & co.mp3', 'plus+sign.flac', '100%25 sure.ogg']) {
      const other = (await bucketRoute({ delivery: 'redirect' }).GET(new Request(`http://localhost${urlOf(name)}`))).headers.get('location')!;
      expect(Buffer.from(await (await fetch(other)).arrayBuffer()).equals(FILES[name]!)).toBe(true);
    }
    // Signed a moment ago: valid, unless this machine stalled past the second (then the 403 below is what counts).
    const first = await fetch(location);
    if (first.status === 200) expect(Buffer.from(await first.arrayBuffer()).equals(FILES[path]!)).toBe(true);
    else expect(first.status).toBe(403);
    const statusOf = async () => {
      const r = await fetch(location);
      await r.arrayBuffer();
      return r.status;
    };
    await waitFor(async () => (await statusOf()) === 403, { timeoutMs: 10_000, intervalMs: 200, message: 'the presigned URL to expire' });
  }, 20_000);

  if (mode === 'lean') test('the store of UPLOAD_SYNC_STORE (and the AWS variables) applies to a route without the option', async () => {
    const saved = { ...process.env };
    Object.assign(process.env, env, { UPLOAD_SYNC_STORE: `s3://${bucket}/${PREFIX}` });
    try {
      const route = createUploadsRoute({ root: empty.root, source: empty.source, dest: empty.dest });
      const a = await call(route, urlOf('ünï 曲/Cafe\u0301 ñ.m4a'), { range: 'bytes=10-19' });
      expect(a.status).toBe(206);
      expect(a.body.equals(FILES['ünï 曲/Cafe\u0301 ñ.m4a']!.subarray(10, 20))).toBe(true);
    } finally {
      for (const k of Object.keys(process.env)) if (!(k in saved)) delete process.env[k];
      Object.assign(process.env, saved);
    }
  });

  test('bucket down (a closed port): 502 with a short text, at once, logged in one line; never a 500', async () => {
    const probe = createServer();
    probe.listen(0, '127.0.0.1');
    await once(probe, 'listening');
    const port = (probe.address() as AddressInfo).port;
    await new Promise((r) => probe.close(r));
    const lines: string[] = [];
    const logger = { info: () => undefined, warn: () => undefined, error: (m: string) => lines.push(m) };
    await routeAt(`http://127.0.0.1:${port}`, { logger }, async (route) => {
      const started = Date.now();
      for (const [method, headers] of [['GET', {}], ['GET', { range: 'bytes=0-1' }], ['GET', { 'if-modified-since': new Date().toUTCString() }], ['HEAD', {}]] as const) {
        const a = await call(route, '/uploads/song.mp3', headers, method);
        expect(a.status).toBe(502);
        expect(a.body.toString()).toBe(method === 'GET' ? 'Bad Gateway\n' : '');
      }
      const elapsed = Date.now() - started;
      expect(elapsed).toBeLessThan(10_000); // the SDK's 3 attempts with backoff, not a hang
      expect(lines).toHaveLength(4);
      expect(lines[0]).toMatch(/song\.mp3 from the bucket .*ECONNREFUSED/);
      expect(lines.join('\n')).not.toMatch(/\n\s+at /);
    });
  });

  test('a bucket answering 503 (after its retries): the route answers 503, logged; other errors 502', async () => {
    const answers = [503, 403];
    const fake = createServer((req, res) => {
      req.resume();
      const status = answers[0]!;
      res.writeHead(status, { 'content-type': 'application/xml' });
      res.end(req.method === 'HEAD' ? undefined : `<Error><Code>${status === 503 ? 'SlowDown' : 'AccessDenied'}</Code><Message>no</Message></Error>`);
    });
    fake.listen(0, '127.0.0.1');
    await once(fake, 'listening');
    const lines: string[] = [];
    const logger = { info: () => undefined, warn: () => undefined, error: (m: string) => lines.push(m) };
    try {
      await routeAt(`http://127.0.0.1:${(fake.address() as AddressInfo).port}`, { logger }, async (route) => {
        for (const method of ['GET', 'HEAD'] as const) expect((await call(route, '/uploads/song.mp3', {}, method)).status).toBe(503);
        answers.shift();
        expect((await call(route, '/uploads/song.mp3')).status).toBe(502);
      });
      expect(lines).toHaveLength(3);
      expect(lines[0]).toMatch(/song\.mp3 from the bucket .*(SlowDown|503)/);
    } finally {
      fake.close();
    }
  }, 20_000);

  if (mode === 'lean') test('the route and saveUpload share one store: a save and then a GET of it go over one kept-alive connection', async () => {
    const before = proxy.sent.length;
    const saved = await saveUpload(new Uint8Array(2000), { root: empty.root, store: storeOption(), originalName: 'shared.mp3', sync: false });
    const a = await call(bucketRoute(), `/uploads/${saved.name}`, { range: 'bytes=0-9' });
    expect([a.status, a.body.length]).toEqual([206, 10]);
    expect(proxy.sent.slice(before)).toEqual([`PUT ${PREFIX}/${saved.name}`, `GET ${PREFIX}/${saved.name}`]);
    expect(new Set(proxy.ports.slice(before)).size).toBe(1);
  });

  test('a bucket that accepts connections and never answers: 504 after storeTimeoutMs, logged; never a hung request', async () => {
    const sockets: import('node:net').Socket[] = [];
    const silent = createNetServer((socket) => sockets.push(socket));
    silent.listen(0, '127.0.0.1');
    await once(silent, 'listening');
    const lines: string[] = [];
    const logger = { info: () => undefined, warn: () => undefined, error: (m: string) => lines.push(m) };
    try {
      await routeAt(`http://127.0.0.1:${(silent.address() as AddressInfo).port}`, { logger, storeTimeoutMs: 300 }, async (route) => {
        for (const [method, headers] of [['GET', {}], ['GET', { 'if-unmodified-since': new Date().toUTCString() }], ['HEAD', {}]] as const) {
          const a = await call(route, '/uploads/song.mp3', headers, method);
          expect(a.status).toBe(504);
          expect(a.body.toString()).toBe(method === 'GET' ? 'Gateway Timeout\n' : '');
        }
        expect(sockets.length).toBeGreaterThan(0); // it did reach the silent server
        expect(lines).toHaveLength(3);
        expect(lines[0]).toMatch(/song\.mp3 from the bucket .*no answer within 300 ms \(storeTimeoutMs\)/);
      });
    } finally {
      for (const socket of sockets) socket.destroy();
      silent.close();
    }
  }, 20_000);

  if (mode === 'lean') test('memory stays flat proxying a 300 MB object (built package, a child process, a client that pauses)', async () => {
    const SIZE = 300 * MiB;
    async function* pattern(): AsyncGenerator<Uint8Array> {
      const block = bytesOf(MiB, 9);
      for (let sent = 0; sent < SIZE; sent += MiB) yield Buffer.from(block);
    }
    await store.put('huge.mp3', pattern());
    const script = join(empty.root, 'serve.mjs');
    await writeTree(empty.root, {
      'serve.mjs': `
        import http from 'node:http';
        import { readFileSync } from 'node:fs';
        import { Readable } from 'node:stream';
        import { pipeline } from 'node:stream/promises';
        const { createUploadsRoute } = await import(${JSON.stringify(join(ROOT, 'dist', 'next.js'))});
        const route = createUploadsRoute({ urlPrefix: '/uploads' });
        const kb = (name) => Number(new RegExp(name + ':\\\\s+(\\\\d+)').exec(readFileSync('/proc/self/status', 'utf8'))[1]);
        http.createServer(async (req, res) => {
          if (req.url === '/status') return res.end(JSON.stringify({ hwm: kb('VmHWM') * 1024, rss: kb('VmRSS') * 1024 }));
          const r = await route.GET(new Request('http://localhost' + req.url, { headers: req.headers }));
          res.writeHead(r.status, Object.fromEntries(r.headers));
          if (r.body === null) return res.end();
          await pipeline(Readable.fromWeb(r.body), res).catch(() => res.destroy());
        }).listen(0, '127.0.0.1', function () { process.stdout.write(this.address().port + '\\n'); });
      `,
    });
    const child = spawn(process.execPath, [script], {
      env: { PATH: process.env.PATH, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true', ...env, UPLOAD_SYNC_STORE: `s3://${bucket}/${PREFIX}`, UPLOAD_SYNC_SOURCE: empty.source, UPLOAD_SYNC_DEST: empty.dest },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    try {
      const [line] = (await once(child.stdout!, 'data')) as [Buffer];
      const base = `http://127.0.0.1:${line.toString().trim()}`;
      const status = async () => (await (await fetch(`${base}/status`)).json()) as { hwm: number; rss: number };
      expect((await fetch(`${base}/uploads/song.mp3`)).status).toBe(200); // the SDK loaded, a socket open
      const before = await status();
      const received = await new Promise<number>((resolve, reject) => {
        httpRequest(`${base}/uploads/huge.mp3`, { agent: false }, (res) => {
          let n = 0;
          let paused = false;
          res.on('data', (c: Buffer) => {
            n += c.length;
            if (!paused && n > 50 * MiB) {
              // A slow client: nothing is read for a while. "Memory did not grow" cannot be awaited as
              // a condition; this is the window in which a route without backpressure would buffer the rest.
              paused = true;
              res.pause();
              setTimeout(() => res.resume(), 1500);
            }
          });
          res.on('end', () => resolve(n));
          res.on('error', reject);
        }).on('error', reject).end();
      });
      const after = await status();
      expect(received).toBe(SIZE);
      const grew = (after.hwm - before.hwm) / MiB;
      process.stderr.write(`route-store: proxying ${SIZE / MiB} MB raised the child's peak RSS by ${grew.toFixed(1)} MB (from ${(before.hwm / MiB).toFixed(1)} MB)\n`);
      // The disk route in the same harness grows by ~45 MB (garbage of 300 MB of chunks before the GC runs); buffering would add the size.
      expect(grew).toBeLessThan(100);
    } finally {
      child.kill();
      await store.deleteMany(['huge.mp3']);
    }
  }, 120_000);

  test('a client that goes away mid-body: the object stream is destroyed (its socket closed)', async () => {
    // Larger than every buffer between the gateway and the route can hold (loopback sockets
    // autotune to 32 MiB here): a 6 MiB object could be read whole into them before the client
    // left, and the proxy would see a finished answer even when the route does cut its stream.
    const SIZE = 96 * MiB;
    async function* pattern(): AsyncGenerator<Uint8Array> {
      const block = bytesOf(MiB, 10);
      for (let sent = 0; sent < SIZE; sent += MiB) yield Buffer.from(block);
    }
    await store.put('cut.mp3', pattern());
    const route = bucketRoute();
    const server: Server = createServer((req, res) => {
      void route.GET(new Request(`http://localhost${req.url}`, { headers: req.headers as Record<string, string> })).then((r) => writeResponse(r, res, false));
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    try {
      const cut = proxy.cut.length;
      const received = await new Promise<number>((resolve) => {
        const req = httpRequest(`http://127.0.0.1:${(server.address() as AddressInfo).port}/uploads/cut.mp3`, { agent: false }, (res) => {
          res.once('data', (chunk: Buffer) => {
            req.destroy();
            resolve(chunk.length);
          });
        });
        req.on('error', () => undefined);
        req.on('close', () => resolve(-1));
        req.end();
      });
      expect(received).toBeGreaterThan(0);
      // The route's request to the bucket closed before the object's body was all sent.
      await waitFor(() => proxy.cut.length > cut, { message: 'the object stream destroyed after the client left' });
      expect(proxy.cut.slice(cut)).toEqual([`GET ${PREFIX}/cut.mp3`]);
    } finally {
      server.close();
      await store.deleteMany(['cut.mp3']);
    }
  }, 30_000);
});

describe('route options of the store (no gateway needed)', () => {
  test.each([
    [{ delivery: 'cdn' }, /`delivery` of createUploadsRoute: expected "proxy" or "redirect", got "cdn"/],
    [{ presignExpiresIn: 0 }, /`presignExpiresIn` .* got 0/],
    [{ presignExpiresIn: 1.5 }, /`presignExpiresIn` .* got 1.5/],
    [{ presignExpiresIn: 8 * 24 * 3600 }, /`presignExpiresIn` .*7 days.* got 691200/],
    [{ storeTimeoutMs: 0 }, /`storeTimeoutMs` .* got 0/],
  ])('%j is ERR_CONFIG at once', (options, message) => {
    expect(() => createUploadsRoute(options as Parameters<typeof createUploadsRoute>[0])).toThrow(expect.objectContaining({ code: 'ERR_CONFIG', message: expect.stringMatching(message) }));
  });

  test('a bad store is ERR_CONFIG at the first request (as the paths are): a 500, logged', async () => {
    const lines: string[] = [];
    const route = createUploadsRoute({ store: 's3://No_Such', logger: { info: () => undefined, warn: () => undefined, error: (m: string) => lines.push(m) } });
    expect((await route.GET(new Request('http://localhost/uploads/a.mp3'))).status).toBe(500);
    expect(lines.join('\n')).toMatch(/ERR_CONFIG.*store/);
  });
});
