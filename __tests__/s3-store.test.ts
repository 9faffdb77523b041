/**
 * The store's primitives (src/store/) against a real Ceph RGW (__tests__/s3-helpers.ts). Each test
 * deletes what it writes: the gateway keeps objects in RAM.
 */
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import {
  AbortMultipartUploadCommand, CreateBucketCommand, DeleteBucketCommand, ListMultipartUploadsCommand, PutObjectCommand, S3Client,
} from '@aws-sdk/client-s3';
import { openStore } from '../src/store/open.js';
import type { S3Store } from '../src/store/s3-store.js';
import { bucketName, s3TestEnv, type S3Env } from './s3-helpers.js';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';
const gw = await s3TestEnv();
if ('skip' in gw) process.stderr.write(`s3-store.test.ts skipped: ${gw.skip}\n`);
const d = 'env' in gw ? describe : describe.skip;
const MiB = 1024 * 1024;

/** `size` bytes of a repeating pattern, in chunks of `chunk` bytes, generated (never held whole). */
async function* pattern(size: number, chunk = 64 * 1024, onChunk?: (sent: number) => void): AsyncGenerator<Uint8Array> {
  const block = Buffer.alloc(chunk);
  for (let i = 0; i < chunk; i++) block[i] = i % 251;
  let sent = 0;
  while (sent < size) {
    const n = Math.min(chunk, size - sent);
    sent += n;
    onChunk?.(sent);
    yield n === chunk ? Buffer.from(block) : block.subarray(0, n);
  }
}
const bytes = (s: string | Buffer): AsyncIterable<Uint8Array> => Readable.from([Buffer.from(s)]);
async function collect(it: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const parts: Uint8Array[] = [];
  for await (const c of it) parts.push(c);
  return Buffer.concat(parts);
}
async function readAll(body: Readable | null): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of body!) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

d('S3 store against a real Ceph RGW', () => {
  let env: S3Env;
  let admin: S3Client;
  let store: S3Store;
  const bucket = bucketName('store');

  const pendingUploads = async (): Promise<number> =>
    ((await admin.send(new ListMultipartUploadsCommand({ Bucket: bucket }))).Uploads ?? []).length;
  const allKeys = async (s: S3Store = store): Promise<string[]> => {
    const keys: string[] = [];
    for await (const page of s.list()) keys.push(...page.map((e) => e.path));
    return keys;
  };

  beforeAll(async () => {
    env = (gw as { env: S3Env }).env;
    admin = new S3Client({
      endpoint: env.AWS_ENDPOINT_URL, region: 'us-east-1', forcePathStyle: true,
      credentials: { accessKeyId: env.AWS_ACCESS_KEY_ID!, secretAccessKey: env.AWS_SECRET_ACCESS_KEY! },
      requestChecksumCalculation: 'WHEN_REQUIRED', responseChecksumValidation: 'WHEN_REQUIRED',
    });
    await admin.send(new CreateBucketCommand({ Bucket: bucket }));
    store = await openStore(`s3://${bucket}/up loads/ü`, { env });
  });
  afterAll(async () => {
    if (admin === undefined) return;
    for (const u of (await admin.send(new ListMultipartUploadsCommand({ Bucket: bucket }))).Uploads ?? []) {
      await admin.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: u.Key, UploadId: u.UploadId }));
    }
    const raw = await openStore(`s3://${bucket}`, { env });
    await raw.deleteMany(await allKeys(raw));
    await admin.send(new DeleteBucketCommand({ Bucket: bucket }));
    raw.destroy();
    store.destroy();
    admin.destroy();
  });

  test('list pages 1,100 objects as 1,000 + 100; deleteMany removes them in batches', async () => {
    const paths = Array.from({ length: 1100 }, (_, i) => `many/${String(i).padStart(4, '0')}.txt`);
    for (let i = 0; i < paths.length; i += 50) {
      await Promise.all(paths.slice(i, i + 50).map((p) => store.put(p, bytes('x'))));
    }
    const pages: number[] = [];
    const seen: string[] = [];
    for await (const page of store.list('many/')) {
      pages.push(page.length);
      for (const e of page) {
        expect(e.key).toBe(`up loads/ü/${e.path}`);
        expect(e.size).toBe(1);
        expect(e.etag).toMatch(/^"[0-9a-f]{32}"$/);
        expect(e.lastModified).toBeInstanceOf(Date);
        seen.push(e.path);
      }
    }
    expect(pages).toEqual([1000, 100]);
    expect(seen).toEqual(paths);
    const r = await store.deleteMany([...paths, '../escape']);
    expect(r.deleted.length).toBe(1100);
    expect(r.errors).toEqual([expect.objectContaining({ path: '../escape', code: 'ERR_INVALID_NAME' })]);
    expect(await allKeys()).toEqual([]);
  });

  test('metadata: the source mtime round-trips exact to the microsecond, with type, size and ETag', async () => {
    const mtimeMs = 1764385476123.4563; // as fs.stat gives it (float noise below the µs)
    const put = await store.put('meta/a.mp3', bytes('hello'), { mtimeMs, contentType: 'audio/mpeg' });
    const head = await store.head('meta/a.mp3');
    expect(head).toEqual({ size: 5, mtimeMs: 1764385476123.456, etag: put.etag, contentType: 'audio/mpeg', lastModified: expect.any(Date) });
    expect(Math.round(head!.mtimeMs! * 1000)).toBe(Math.round(mtimeMs * 1000));
    expect(await store.head('meta/missing.mp3')).toBeNull();
    await store.deleteMany(['meta/a.mp3']);
  });

  test('hostile names round-trip exactly: spaces, +, %, #, ?, NFC and NFD', async () => {
    const nfc = 'caf\u00e9.mp3';
    const nfd = 'cafe\u0301.mp3';
    const names = ['a b.mp3', 'a+b.mp3', '100%.mp3', '%20x.mp3', 'x#y.mp3', 'q?a=1&b.mp3', nfc, nfd, 'dir with space/ü+%#?.mp3', 'trailing .mp3 '];
    for (const n of names) await store.put(`h/${n}`, bytes(n));
    const listed = (await allKeys()).filter((k) => k.startsWith('h/')).map((k) => k.slice(2));
    expect(listed.sort()).toEqual([...names].sort());
    for (const n of names) {
      const g = await store.get(`h/${n}`);
      expect((await readAll(g.body)).toString()).toBe(n);
      expect((await store.head(`h/${n}`))?.size).toBe(Buffer.byteLength(n));
    }
    expect((await store.deleteMany(names.map((n) => `h/${n}`))).errors).toEqual([]);
    expect(await allKeys()).toEqual([]);
  });

  test('20 MB goes up in parts (8 MiB × 3); the ETag comes from a HEAD (Ceph answers an empty one)', async () => {
    const size = 20 * 1000 * 1000;
    const r = await store.put('big/20mb.bin', Readable.from(pattern(size)), { mtimeMs: 1000.5 });
    expect(r.parts).toBe(3);
    expect(r.size).toBe(size);
    expect(r.etag).toMatch(/^"[0-9a-f]{32}-3"$/);
    const head = await store.head('big/20mb.bin');
    expect(head).toMatchObject({ size, mtimeMs: 1000.5, etag: r.etag });
    const got = await readAll((await store.get('big/20mb.bin')).body);
    const expected = await collect(pattern(size));
    expect(got.equals(expected)).toBe(true);
    await store.deleteMany(['big/20mb.bin']);
  });

  test('unknown length: a small body is one PutObject, a large one multipart; the byte count is exact', async () => {
    const small = await store.put('u/small.bin', pattern(300_000, 1000));
    expect(small).toMatchObject({ parts: 0, size: 300_000 });
    const large = await store.put('u/large.bin', pattern(9 * MiB + 7, 10_000));
    expect(large).toMatchObject({ parts: 2, size: 9 * MiB + 7 });
    expect((await store.head('u/large.bin'))?.size).toBe(9 * MiB + 7);
    await store.deleteMany(['u/small.bin', 'u/large.bin']);
  });

  test('maxBytes passed mid-stream: ERR_TOO_LARGE, the upload aborted, nothing left', async () => {
    let read = 0;
    const err = await store.put('m/over.bin', pattern(40 * MiB, 64 * 1024, (n) => (read = n)), { maxBytes: 17 * MiB }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'ERR_TOO_LARGE' });
    expect(read).toBeLessThanOrEqual(17 * MiB + 64 * 1024); // stopped reading at the limit
    expect(await store.head('m/over.bin')).toBeNull();
    expect(await pendingUploads()).toBe(0);
    // Under the limit in one PutObject: refused before anything is sent.
    await expect(store.put('m/small.bin', bytes('123456'), { maxBytes: 5 })).rejects.toMatchObject({ code: 'ERR_TOO_LARGE' });
    expect(await store.head('m/small.bin')).toBeNull();
  });

  test('the signal aborted mid-upload: ERR_ABORTED, nothing left (no object, no pending upload)', async () => {
    const ac = new AbortController();
    const err = await store
      .put('s/aborted.bin', pattern(60 * MiB, 64 * 1024, (n) => n >= 20 * MiB && ac.abort()), { signal: ac.signal })
      .catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'ERR_ABORTED' });
    expect(await store.head('s/aborted.bin')).toBeNull();
    expect(await pendingUploads()).toBe(0);
    // A body that stalls does not hold the abort.
    const stalled = new AbortController();
    const never = (async function* () {
      yield* pattern(10 * MiB);
      await new Promise(() => undefined);
    })();
    const p = store.put('s/stalled.bin', never, { signal: stalled.signal });
    setTimeout(() => stalled.abort(), 300);
    await expect(p).rejects.toMatchObject({ code: 'ERR_ABORTED' });
    expect(await pendingUploads()).toBe(0);
  });

  test('ifNoneMatch: a PutObject over an existing key is 412 → ERR_EXISTS; a multipart one is refused by the HEAD before Complete', async () => {
    await store.put('e/one.txt', bytes('first'));
    await expect(store.put('e/one.txt', bytes('second'), { ifNoneMatch: true })).rejects.toMatchObject({ code: 'ERR_EXISTS' });
    await expect(store.put('e/one.txt', pattern(12 * MiB), { ifNoneMatch: true })).rejects.toMatchObject({ code: 'ERR_EXISTS' });
    expect((await readAll((await store.get('e/one.txt')).body)).toString()).toBe('first');
    expect(await pendingUploads()).toBe(0);
    // The object appears while the parts go up (another server's upload): the HEAD before
    // Complete sees it. (Between that HEAD and Complete, Ceph would overwrite: it ignores the header there.)
    let raced = false;
    const err = await store
      .put('e/two.bin', pattern(12 * MiB, 64 * 1024, (n) => {
        if (n >= 9 * MiB && !raced) {
          raced = true;
          void admin.send(new PutObjectCommand({ Bucket: bucket, Key: store.key('e/two.bin'), Body: 'other' }));
        }
      }), { ifNoneMatch: true })
      .catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'ERR_EXISTS' });
    expect((await readAll((await store.get('e/two.bin')).body)).toString()).toBe('other');
    expect(await pendingUploads()).toBe(0);
    // Without ifNoneMatch, it overwrites.
    await store.put('e/one.txt', bytes('third'));
    expect((await readAll((await store.get('e/one.txt')).body)).toString()).toBe('third');
    await store.deleteMany(['e/one.txt', 'e/two.bin']);
  });

  test('get: Range, suffix range, past the end (416), If-None-Match (304), If-Match (412), dates', async () => {
    const content = Buffer.from('0123456789abcdefghij');
    const put = await store.put('g/file.txt', bytes(content), { contentType: 'text/plain' });
    const range = await store.get('g/file.txt', { range: 'bytes=2-5' });
    expect(range.status).toBe(206);
    expect(range.headers).toMatchObject({ 'content-range': 'bytes 2-5/20', 'content-length': '4', etag: put.etag, 'content-type': 'text/plain' });
    expect((await readAll(range.body)).toString()).toBe('2345');
    const suffix = await store.get('g/file.txt', { range: 'bytes=-3' });
    expect([suffix.status, suffix.headers['content-range'], (await readAll(suffix.body)).toString()]).toEqual([206, 'bytes 17-19/20', 'hij']);
    const open = await store.get('g/file.txt', { range: 'bytes=15-' });
    expect((await readAll(open.body)).toString()).toBe('fghij');
    expect(await store.get('g/file.txt', { range: 'bytes=20-' })).toMatchObject({ status: 416, body: null });
    expect(await store.get('g/file.txt', { ifNoneMatch: put.etag })).toMatchObject({ status: 304, body: null });
    expect(await store.get('g/file.txt', { ifMatch: '"nope"' })).toMatchObject({ status: 412, body: null });
    const later = new Date(Date.now() + 3600_000);
    const earlier = new Date(Date.now() - 3600_000);
    expect(await store.get('g/file.txt', { ifModifiedSince: later })).toMatchObject({ status: 304, body: null });
    expect(await store.get('g/file.txt', { ifUnmodifiedSince: earlier })).toMatchObject({ status: 412, body: null });
    const full = await store.get('g/file.txt', { ifMatch: put.etag, ifModifiedSince: earlier });
    expect([full.status, (await readAll(full.body)).toString()]).toEqual([200, content.toString()]);
    expect(await store.get('g/missing.txt')).toMatchObject({ status: 404, body: null });
    await store.deleteMany(['g/file.txt']);
  });

  test('presignGet: a URL fetch() can GET (and whose HEAD is 403: the signature covers the method)', async () => {
    await store.put('p/a b+c.txt', bytes('presigned'));
    const url = await store.presignGet('p/a b+c.txt', 60);
    const r = await fetch(url);
    expect([r.status, await r.text()]).toEqual([200, 'presigned']);
    expect((await fetch(url, { method: 'HEAD' })).status).toBe(403);
    await store.deleteMany(['p/a b+c.txt']);
  });

  test("the user's own client with the SDK's default checksums works for put (single and multipart) and get", async () => {
    const client = new S3Client({
      endpoint: env.AWS_ENDPOINT_URL, region: 'us-east-1', forcePathStyle: true,
      credentials: { accessKeyId: env.AWS_ACCESS_KEY_ID!, secretAccessKey: env.AWS_SECRET_ACCESS_KEY! },
    });
    const own = await openStore({ bucket, prefix: 'own', client }, { env: {} });
    expect(own.client).toBe(client);
    await own.put('small.txt', bytes('checksummed'));
    const big = await own.put('big.bin', pattern(10 * MiB));
    expect(big.parts).toBe(2);
    expect((await readAll((await own.get('small.txt')).body)).toString()).toBe('checksummed');
    const got = await readAll((await own.get('big.bin', { range: 'bytes=-10' })).body);
    expect(got.equals((await collect(pattern(10 * MiB))).subarray(-10))).toBe(true);
    expect((await own.deleteMany(['small.txt', 'big.bin'])).errors).toEqual([]);
    own.destroy(); // the user's client is theirs: left open
    expect((await own.head('small.txt'))).toBeNull();
    client.destroy();
  });
});
