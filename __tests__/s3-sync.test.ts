/**
 * Sync with a bucket (issue 12 point 2) against a real Ceph RGW (__tests__/s3-helpers.ts): push
 * (`dest: 's3://…'`), pull (`source: 's3://…'`), targeted, delete through the guards, filters,
 * hostile names, the metadata round trip checked against `rsync -a` (the oracle), and a client
 * with the SDK's default checksums. Seeded trees (the seed is printed; RELIABILITY_SEED replays).
 * Every test works under its own prefix of one bucket, deleted at the end.
 */
import { mkdirSync, readdirSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { CreateBucketCommand, DeleteBucketCommand, DeleteObjectsCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { syncUploads } from '../src/engine/sync.js';
import { createWatcher } from '../src/watch/watcher.js';
import { BucketGuard } from '../src/bucket/guard.js';
import { openStore } from '../src/store/open.js';
import { S3Store } from '../src/store/s3-store.js';
import { leanRequests } from '../src/store/lean.js';
import { resolveStore } from '../src/config/store.js';
import type { SyncOptions, SyncResult } from '../src/shared/options.js';
import { diffSnapshots, runTool, snapshot } from './oracle-helpers.js';
import { prng, randomTools, seedFor } from './reliability-helpers.js';
import { bucketName, s3TestEnv, type S3Env } from './s3-helpers.js';
import { waitFor } from './helpers.js';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';
const gw = await s3TestEnv();
if ('skip' in gw) process.stderr.write(`s3-sync.test.ts skipped: ${gw.skip}\n`);
const d = 'env' in gw ? describe : describe.skip;
const SEED = seedFor('__tests__/s3-sync.test.ts');

/** Names a bucket key and a URL must carry exactly: spaces, `+`, `%`, `#`, `?`, NFC and NFD, non-Latin. */
const STEMS = ['plain', 'a b', "it's (live)!", 'star*', 'plus+sign', '100%', 'hash#tag', 'why?', 'caf\u00e9', 'cafe\u0301', '日本', 'ü ß'];
const EXTS = ['.mp3', '.flac', '.jpg', '.txt'];

/**
 * A seeded tree: `files` files in folders up to 8 deep, sizes 0–20 KB, mtimes with microseconds
 * (some before 1970). Returns the relative paths.
 */
function makeTree(root: string, seed: number, files = 40): string[] {
  const g = randomTools(prng(seed));
  const rels: string[] = [];
  for (let i = 0; i < files; i++) {
    const depth = g.int(0, i % 7 === 0 ? 8 : 2);
    const dirs = Array.from({ length: depth }, (_, k) => `${g.pick(STEMS)} ${k}`);
    const rel = [...dirs, `${g.pick(STEMS)} ${i}${g.pick(EXTS)}`].join('/');
    mkdirSync(join(root, ...dirs), { recursive: true });
    const size = g.chance(0.1) ? 0 : g.int(1, 20_000);
    const bytes = Buffer.alloc(size);
    for (let b = 0; b < size; b++) bytes[b] = (g.rand() * 256) >>> 0;
    writeFileSync(join(root, rel), bytes);
    const seconds = g.chance(0.1) ? -g.int(1, 300_000_000) : 1_700_000_000 + g.int(0, 50_000_000);
    const t = `${seconds}.${String(g.int(0, 999_999)).padStart(6, '0')}`;
    utimesSync(join(root, rel), t, t);
    rels.push(rel);
  }
  return [...new Set(rels)].sort();
}

const sorted = (xs: Iterable<string>) => [...xs].sort();

d('sync with a bucket (push, pull) against a real Ceph RGW', () => {
  let env: S3Env;
  let raw: S3Store; // the whole bucket, no prefix
  let tmp: string;
  const bucket = bucketName('sync');
  const saved: Record<string, string | undefined> = {};
  let n = 0;
  /** A fresh prefix and local folders for one test. */
  const fresh = () => {
    const id = `t${++n}`;
    const root = join(tmp, id);
    mkdirSync(join(root, 'src'), { recursive: true });
    return { url: `s3://${bucket}/${id}/up loads`, prefix: `${id}/up loads`, src: join(root, 'src'), root };
  };
  const sync = (options: SyncOptions): Promise<SyncResult> => syncUploads({ force: true, lockDir: join(tmp, 'locks'), ...options });
  const keys = async (prefix = ''): Promise<string[]> => {
    const out: string[] = [];
    for await (const page of raw.list(prefix)) out.push(...page.map((e) => e.key));
    return out.sort();
  };
  const ok = (r: SyncResult) => {
    expect(r.errors).toEqual([]);
    expect(r.status).toBe('ok');
    return r;
  };

  beforeAll(async () => {
    env = (gw as { env: S3Env }).env;
    // syncUploads reads the AWS variables of the process, as an app's would.
    for (const [k, v] of Object.entries(env)) {
      saved[k] = process.env[k];
      process.env[k] = v;
    }
    tmp = await mkdtemp(join(tmpdir(), 'upload-sync-s3-sync-'));
    raw = await openStore(`s3://${bucket}`, { env });
    await raw.client.send(new CreateBucketCommand({ Bucket: bucket }));
  });
  afterAll(async () => {
    if (raw !== undefined) {
      // By key (some are no file path, such as the folder marker `prefix/`, which deleteMany refuses).
      const all = await keys();
      for (let i = 0; i < all.length; i += 1000) {
        await raw.client.send(new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: all.slice(i, i + 1000).map((Key) => ({ Key })) } }));
      }
      await raw.client.send(new DeleteBucketCommand({ Bucket: bucket }));
      raw.destroy();
    }
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
    rmSync(tmp, { recursive: true, force: true });
  });

  test('push then pull into an empty folder gives the tree rsync -a gives (bytes, sizes, mtimes to the µs); a second push and pull do nothing', async () => {
    const t = fresh();
    const rels = makeTree(t.src, SEED);
    const pushed = ok(await sync({ source: t.src, dest: t.url }));
    expect(pushed.copied).toEqual(rels);
    expect(pushed.bytes).toBe(rels.reduce((sum, rel) => sum + statSync(join(t.src, rel)).size, 0));
    expect(await keys(`${t.prefix}/`)).toEqual(rels.map((rel) => `${t.prefix}/${rel}`));
    // Metadata: the source's mtime to the µs, and a content type from the extension.
    const mp3 = rels.find((rel) => rel.endsWith('.mp3'))!;
    const head = (await raw.head(`${t.prefix}/${mp3}`))!;
    expect(Math.abs(head.mtimeMs! - statSync(join(t.src, mp3)).mtimeMs)).toBeLessThanOrEqual(0.001);
    expect(head.contentType).toBe('audio/mpeg');

    const again = ok(await sync({ source: t.src, dest: t.url }));
    expect([again.copied, again.updated, again.deleted, again.unchanged]).toEqual([[], [], [], rels.length]);

    const pulled = join(t.root, 'pulled');
    const fetched = ok(await sync({ source: t.url, dest: pulled }));
    expect(fetched.copied).toEqual(rels);
    const oracle = join(t.root, 'rsync');
    await runTool('rsync', ['-a', `${t.src}/`, `${oracle}/`]);
    // rsync's own comparison (checksums, sizes, times, modes, names)…
    const itemized = await itemize(pulled, oracle);
    expect(itemized).toEqual('');
    // …and ours, to the microsecond (folder times are not part of the contract).
    expect(diffSnapshots(snapshot(oracle), snapshot(pulled), { want: 'rsync -a', got: 'pulled' })).toEqual([]);

    const pullAgain = ok(await sync({ source: t.url, dest: pulled }));
    expect([pullAgain.copied, pullAgain.updated, pullAgain.unchanged]).toEqual([[], [], rels.length]);
  });

  test('a same-size edit with a new mtime is pushed, and pulled; an edit of the size alone too', async () => {
    const t = fresh();
    const rels = makeTree(t.src, SEED + 1, 12).filter((rel) => statSync(join(t.src, rel)).size > 8);
    ok(await sync({ source: t.src, dest: t.url }));
    const pulled = join(t.root, 'pulled');
    ok(await sync({ source: t.url, dest: pulled }));
    const [same, grown] = rels;
    const before = readFileSync(join(t.src, same!));
    const after = Buffer.from(before.map((b) => b ^ 0xff));
    writeFileSync(join(t.src, same!), after);
    utimesSync(join(t.src, same!), 1_800_000_000.5, 1_800_000_000.5);
    writeFileSync(join(t.src, grown!), 'longer or shorter than before, surely not the same size as it was');
    const pushed = ok(await sync({ source: t.src, dest: t.url }));
    expect(pushed.updated).toEqual(sorted([same!, grown!]));
    expect(pushed.copied).toEqual([]);
    const fetched = ok(await sync({ source: t.url, dest: pulled }));
    expect(fetched.updated).toEqual(sorted([same!, grown!]));
    expect(readFileSync(join(pulled, same!))).toEqual(after);
    expect(statSync(join(pulled, same!)).mtimeMs).toBe(1_800_000_000_500);
  });

  test('a file that changes between the plan and its read is read again: never pushed torn, nor with a stale mtime', async () => {
    const t = fresh();
    const file = join(t.src, 'growing.mp3');
    writeFileSync(file, 'first version');
    const final = 'second version, longer than the first one';
    let changed = false;
    const r = ok(await sync({
      source: t.src,
      dest: t.url,
      // Called once the copies are planned, before the first byte is read: the upload is rewritten then.
      onProgress: () => {
        if (changed) return;
        changed = true;
        writeFileSync(file, final);
        utimesSync(file, 1_750_000_000.25, 1_750_000_000.25);
      },
    }));
    expect(changed).toBe(true);
    expect(r.copied).toEqual(['growing.mp3']);
    const got = await raw.get(`${t.prefix}/growing.mp3`);
    const chunks: Buffer[] = [];
    for await (const c of got.body!) chunks.push(c as Buffer);
    expect(Buffer.concat(chunks).toString()).toBe(final);
    expect((await raw.head(`${t.prefix}/growing.mp3`))!.mtimeMs).toBe(1_750_000_000_250);
  });

  test('targeted push (`files`): only those paths; a path outside the source is ERR_OUTSIDE; a folder pushes its subtree', async () => {
    const t = fresh();
    mkdirSync(join(t.src, 'album one'), { recursive: true });
    writeFileSync(join(t.src, 'a.mp3'), 'a');
    writeFileSync(join(t.src, 'b.mp3'), 'b');
    writeFileSync(join(t.src, 'album one', 'c.mp3'), 'c');
    writeFileSync(join(t.src, 'album one', 'd #1.mp3'), 'd');
    const r = await sync({ source: t.src, dest: t.url, files: ['a.mp3', join(t.src, 'album one'), '../elsewhere.mp3', 'missing.mp3'] });
    expect(r.copied).toEqual(['a.mp3', 'album one/c.mp3', 'album one/d #1.mp3']);
    expect(r.errors.map((e) => [e.path, e.code])).toEqual([['../elsewhere.mp3', 'ERR_OUTSIDE']]);
    expect(r.status).toBe('partial');
    expect(await keys(`${t.prefix}/`)).toEqual([`${t.prefix}/a.mp3`, `${t.prefix}/album one/c.mp3`, `${t.prefix}/album one/d #1.mp3`]);
    const again = ok(await sync({ source: t.src, dest: t.url, files: ['a.mp3', 'b.mp3'] }));
    expect([again.copied, again.unchanged]).toEqual([['b.mp3'], 1]);
  });

  test('targeted pull (`files`, relative to the prefix): only those objects, a folder as a subtree; an absolute or climbing path is ERR_OUTSIDE; with delete, a file whose object is gone goes', async () => {
    const t = fresh();
    mkdirSync(join(t.src, 'album'));
    for (const rel of ['a.mp3', 'b.mp3', 'album/c.mp3', 'album/d.mp3']) writeFileSync(join(t.src, rel), rel);
    ok(await sync({ source: t.src, dest: t.url }));
    const pulled = join(t.root, 'pulled');
    const r = await sync({ source: t.url, dest: pulled, files: ['a.mp3', 'album', '/etc/passwd', '../t1/x.mp3', 'nothing.mp3'] });
    expect(r.copied).toEqual(['a.mp3', 'album/c.mp3', 'album/d.mp3']);
    expect(r.errors.map((e) => [e.path, e.code])).toEqual([['../t1/x.mp3', 'ERR_OUTSIDE'], ['/etc/passwd', 'ERR_OUTSIDE']]);
    expect(sorted(snapshot(pulled, { bytes: false }).keys())).toEqual(['', 'a.mp3', 'album', 'album/c.mp3', 'album/d.mp3']);
    await raw.deleteMany([`${t.prefix}/a.mp3`]);
    const kept = ok(await sync({ source: t.url, dest: pulled, files: ['a.mp3'] }));
    expect([kept.deleted, kept.copied]).toEqual([[], []]);
    const gone = ok(await sync({ source: t.url, dest: pulled, files: ['a.mp3', 'b.mp3'], delete: true }));
    expect([gone.deleted, gone.copied]).toEqual([['a.mp3'], ['b.mp3']]);
  });

  test('a pull stopped in the middle of an object leaves neither a partial file nor a temp file', async () => {
    const t = fresh();
    const big = Buffer.alloc(48 * 1024 * 1024, 5);
    writeFileSync(join(t.src, 'big.flac'), big);
    ok(await sync({ source: t.src, dest: t.url }));
    const pulled = join(t.root, 'pulled');
    mkdirSync(pulled);
    const abort = new AbortController();
    const temps = () => readdirSync(pulled).filter((name) => name.startsWith('.upload-sync-'));
    const watching = waitFor(() => temps().length > 0, { intervalMs: 2, message: 'a temp file of the pull' }).then(() => abort.abort());
    const r = await sync({ source: t.url, dest: pulled, signal: abort.signal });
    await watching;
    expect(r.status).not.toBe('ok');
    expect(r.errors.map((e) => e.code)).toContain('ERR_ABORTED');
    expect(readdirSync(pulled)).toEqual([]);
    await raw.deleteMany([`${t.prefix}/big.flac`]);
  });

  test('push with delete: orphans go in batches; never the prefix itself, a key outside the prefix, or a name the sync never writes; dry run deletes nothing', async () => {
    const t = fresh();
    writeFileSync(join(t.src, 'kept.mp3'), 'kept');
    ok(await sync({ source: t.src, dest: t.url }));
    const put = (key: string) => raw.client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: 'x' }));
    const orphans = ['gone.mp3', 'deep/er/gone 2.mp3', ...Array.from({ length: 1005 }, (_, i) => `many/${i}.mp3`)];
    const untouchable = [t.prefix, `${t.prefix}/`, `${t.prefix}x/sibling.mp3`, `${t.prefix}/.hidden.mp3`, `${t.prefix}/song.mp3.part`, `outside/${t.prefix}/kept.mp3`];
    await Promise.all(untouchable.map(put));
    for (let i = 0; i < orphans.length; i += 50) await Promise.all(orphans.slice(i, i + 50).map((rel) => put(`${t.prefix}/${rel}`)));
    const all = await keys();

    const dry = ok(await sync({ source: t.src, dest: t.url, delete: true, dryRun: true }));
    expect(dry.deleted).toEqual(sorted(orphans));
    expect(await keys()).toEqual(all);

    const real = ok(await sync({ source: t.src, dest: t.url, delete: true }));
    expect(real.deleted).toEqual(sorted(orphans));
    expect(await keys()).toEqual(all.filter((k) => !orphans.some((rel) => k === `${t.prefix}/${rel}`)));
    for (const key of untouchable) expect(await keys()).toContain(key);
    expect(await keys()).toContain(`${t.prefix}/kept.mp3`);
  });

  test('the bucket guard refuses the prefix itself and paths that leave it, whatever the caller asks', () => {
    const guard = new BucketGuard({
      store: { deleteMany: () => Promise.reject(new Error('never called')) },
      url: 's3://b/p', source: tmp, sourceReal: tmp, extensions: null, dryRun: false, maxDelete: 1,
    });
    for (const rel of ['', '.', '..', '../x.mp3', 'a/../../x.mp3', 'a//b.mp3', '/abs.mp3']) {
      expect(codeOf(() => guard.admit(rel))).toBe('ERR_OUTSIDE');
    }
    expect(guard.admit('.dot.mp3')).toBe('kept');
    expect(guard.admit('a.mp3')).toBe('removed');
    expect(guard.admit('b.mp3')).toBe('capped');
  });

  test('pull with delete removes what the bucket lacks (and folders left empty), not dest itself nor files the filter keeps out; dry run deletes nothing', async () => {
    const t = fresh();
    writeFileSync(join(t.src, 'one.mp3'), 'one');
    ok(await sync({ source: t.src, dest: t.url }));
    const pulled = join(t.root, 'pulled');
    mkdirSync(join(pulled, 'old album', 'disc 1'), { recursive: true });
    writeFileSync(join(pulled, 'old album', 'disc 1', 'stale.mp3'), 'stale');
    writeFileSync(join(pulled, 'stale.mp3'), 'stale');
    writeFileSync(join(pulled, 'notes.txt'), 'not an mp3: the filter keeps it out of reach');

    const dry = ok(await sync({ source: t.url, dest: pulled, delete: true, dryRun: true, extensions: 'mp3' }));
    expect(dry.deleted).toEqual(['old album/disc 1/stale.mp3', 'stale.mp3']);
    expect(dry.copied).toEqual(['one.mp3']);
    expect(statSync(join(pulled, 'stale.mp3')).isFile()).toBe(true);

    const real = ok(await sync({ source: t.url, dest: pulled, delete: true, extensions: 'mp3' }));
    expect(real.deleted).toEqual(['old album/disc 1/stale.mp3', 'stale.mp3']);
    expect(sorted(snapshot(pulled, { bytes: false }).keys())).toEqual(['', 'notes.txt', 'one.mp3']);

    // Everything gone from the bucket: dest stays, empty of what the sync manages.
    await raw.deleteMany([`${t.prefix}/one.mp3`]);
    const emptied = ok(await sync({ source: t.url, dest: pulled, delete: true, extensions: 'mp3' }));
    expect(emptied.deleted).toEqual(['one.mp3']);
    expect(sorted(snapshot(pulled, { bytes: false }).keys())).toEqual(['', 'notes.txt']);
  });

  test('filters: only the extensions asked for are pushed, pulled or deleted; dotfiles and partial uploads never', async () => {
    const t = fresh();
    for (const name of ['a.mp3', 'b.FLAC', 'c.jpg', '.hidden.mp3', 'up.mp3.part', 'x.crdownload']) writeFileSync(join(t.src, name), name);
    const pushed = ok(await sync({ source: t.src, dest: t.url, extensions: 'audio' }));
    expect(pushed.copied).toEqual(['a.mp3', 'b.FLAC']);
    ok(await sync({ source: t.src, dest: t.url, extensions: 'jpg' }));
    rmSync(join(t.src, 'a.mp3'));
    const del = ok(await sync({ source: t.src, dest: t.url, extensions: 'jpg', delete: true }));
    expect(del.deleted).toEqual([]); // a.mp3 is out of the filter's reach
    const pulled = join(t.root, 'pulled');
    const fetched = ok(await sync({ source: t.url, dest: pulled, extensions: ['flac'] }));
    expect(fetched.copied).toEqual(['b.FLAC']);
  });

  test("a { bucket, prefix, client } store whose S3Client keeps the SDK's default checksums pushes and pulls, multipart included", async () => {
    const t = fresh();
    const client = new S3Client({
      endpoint: env.AWS_ENDPOINT_URL, region: env.AWS_REGION ?? 'us-east-1', forcePathStyle: true,
      credentials: { accessKeyId: env.AWS_ACCESS_KEY_ID!, secretAccessKey: env.AWS_SECRET_ACCESS_KEY! },
    });
    // The process's own keys are wrong meanwhile: only the user's client can reach the bucket.
    const keyId = process.env.AWS_ACCESS_KEY_ID;
    process.env.AWS_ACCESS_KEY_ID = 'not-a-key';
    try {
      const big = Buffer.alloc(9 * 1024 * 1024 + 17);
      for (let i = 0; i < big.length; i += 4096) big.writeUInt32LE(i, i);
      writeFileSync(join(t.src, 'big.flac'), big);
      writeFileSync(join(t.src, 'small.mp3'), 'small');
      const store = { bucket, prefix: t.prefix, client };
      expect(ok(await sync({ source: t.src, dest: store })).copied).toEqual(['big.flac', 'small.mp3']);
      expect(ok(await sync({ source: t.src, dest: store })).unchanged).toBe(2);
      const pulled = join(t.root, 'pulled');
      expect(ok(await sync({ source: store, dest: pulled })).copied).toEqual(['big.flac', 'small.mp3']);
      expect(readFileSync(join(pulled, 'big.flac')).equals(big)).toBe(true);
      expect(Math.abs(statSync(join(pulled, 'big.flac')).mtimeMs - statSync(join(t.src, 'big.flac')).mtimeMs)).toBeLessThanOrEqual(0.001);
    } finally {
      process.env.AWS_ACCESS_KEY_ID = keyId;
      client.destroy();
    }
  });

  test('createWatcher({ dest: s3://… }) pushes each file once it is stable (its first reconcile too)', async () => {
    const t = fresh();
    writeFileSync(join(t.src, 'before.mp3'), 'there before the watcher');
    utimesSync(join(t.src, 'before.mp3'), 1_700_000_000, 1_700_000_000); // settled: the first reconcile takes it
    const watcher = createWatcher({ source: t.src, dest: t.url, force: true, stableMs: 150, debounceMs: 20, reconcileMs: 0, lockDir: join(tmp, 'locks') });
    try {
      await watcher.ready;
      expect(await raw.head(`${t.prefix}/before.mp3`)).not.toBeNull();
      mkdirSync(join(t.src, 'new album'));
      writeFileSync(join(t.src, 'new album', 'fresh #1.mp3'), 'uploaded while watched');
      await waitFor(async () => (await raw.head(`${t.prefix}/new album/fresh #1.mp3`)) !== null, { message: 'the watcher pushed the new file' });
      const head = (await raw.head(`${t.prefix}/new album/fresh #1.mp3`))!;
      expect(Math.abs(head.mtimeMs! - statSync(join(t.src, 'new album', 'fresh #1.mp3')).mtimeMs)).toBeLessThanOrEqual(0.001);
      expect(watcher.stats().errors).toBe(0);
    } finally {
      await watcher.close();
    }
  });

  test("put's size hint: a body longer than said is still put whole (a part after all)", async () => {
    const store = await openStore(`s3://${bucket}/hint`, { env });
    try {
      const body = Buffer.alloc(6 * 1024 * 1024, 3);
      await store.put('long.bin', (async function* () { yield body.subarray(0, 100); yield body.subarray(100); })(), { size: 10 });
      expect((await store.head('long.bin'))!.size).toBe(body.length);
      await store.put('short.bin', (async function* () { yield Buffer.from('abc'); })(), { size: 3 });
      expect((await store.head('short.bin'))!.size).toBe(3);
      await store.deleteMany(['long.bin', 'short.bin']);
    } finally {
      store.destroy();
    }
  });

  test('errors name the problem: a missing bucket fails the run; a bucket at both ends, or a watcher pulling, is ERR_CONFIG', async () => {
    const t = fresh();
    writeFileSync(join(t.src, 'a.mp3'), 'a');
    const r = await sync({ source: t.src, dest: `s3://${bucket}-missing/x` });
    expect(r.status).toBe('failed');
    expect(r.errors[0]).toMatchObject({ path: '', code: 'ERR_STORE' });
    expect(r.errors[0]!.message).toMatch(/NoSuchBucket/);
    const both = await sync({ source: t.url, dest: t.url });
    expect(both.errors[0]!.code).toBe('ERR_CONFIG');
    expect(both.errors[0]!.message).toMatch(/both be buckets/);
    const { resolveWatchConfig, resolveServeConfig } = await import('../src/config/config.js');
    expect(() => resolveWatchConfig({ source: t.url })).toThrow(/watcher pushes/);
    expect(() => resolveServeConfig({ dest: t.url })).toThrow(/option `dest`.*store/);
  });
});

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
    return undefined;
  } catch (err) {
    return (err as { code?: string }).code;
  }
}

/** A local HTTP server in place of the gateway: what lean requests send, and how they take a 503, a dropped connection, a 403. */
describe('lean requests (src/store/lean.ts) against a scripted server', () => {
  test('signed for the key, tried again after a 503 and a dropped connection, not after a 403', async () => {
    const seen: Array<{ method: string; url: string; auth: string }> = [];
    const answers: Array<(res: ServerResponse) => void> = [
      (res) => res.writeHead(503).end('<Error><Code>SlowDown</Code></Error>'),
      (res) => res.socket!.destroy(),
      (res) => res.writeHead(200, { 'content-length': '7', 'x-amz-meta-mtime': '1700000000123.456', etag: '"e"' }).end(),
      (res) => res.writeHead(403).end('<Error><Code>AccessDenied</Code></Error>'),
    ];
    const server = createServer((req, res) => {
      seen.push({ method: req.method!, url: req.url!, auth: String(req.headers.authorization) });
      answers.shift()!(res);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    const config = resolveStore('s3://bkt/pre fix', { AWS_ENDPOINT_URL: `http://127.0.0.1:${port}`, AWS_ACCESS_KEY_ID: 'k', AWS_SECRET_ACCESS_KEY: 's', UPLOAD_SYNC_S3_PATH_STYLE: 'true' })!;
    const store = new S3Store({}, { send: () => Promise.reject(new Error('the SDK is not used')) }, 'bkt', 'pre fix');
    const lean = leanRequests(store, config, 4);
    try {
      const head = await lean.head('a b+c.mp3');
      expect(head).toMatchObject({ size: 7, mtimeMs: 1700000000123.456 });
      expect(seen.map((r) => r.url)).toEqual(Array(3).fill('/bkt/pre%20fix/a%20b%2Bc.mp3'));
      expect(seen[0]!.auth).toMatch(/^AWS4-HMAC-SHA256 Credential=k\//);
      await expect(lean.head('x.mp3')).rejects.toMatchObject({ code: 'ERR_STORE', message: expect.stringMatching(/AccessDenied \(HTTP 403\)/) as unknown as string });
      expect(seen).toHaveLength(4);
    } finally {
      lean.close();
      server.close();
    }
  });
});

describe('lean requests, virtual-hosted (no UPLOAD_SYNC_S3_PATH_STYLE)', () => {
  test('the bucket goes in the Host header, the key alone in the path; a session token is signed in', async () => {
    const seen: Array<{ url: string; host: string; token: string }> = [];
    const server = createServer((req, res) => {
      seen.push({ url: req.url!, host: String(req.headers.host), token: String(req.headers['x-amz-security-token']) });
      res.writeHead(404).end();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    const config = resolveStore('s3://bkt/pre', { AWS_ENDPOINT_URL: `http://127.0.0.1:${port}`, AWS_ACCESS_KEY_ID: 'k', AWS_SECRET_ACCESS_KEY: 's', AWS_SESSION_TOKEN: 'tok' })!;
    const store = new S3Store({}, { send: () => Promise.reject(new Error('the SDK is not used')) }, 'bkt', 'pre');
    const lean = leanRequests(store, config, 4);
    try {
      expect(await lean.head('a.mp3')).toBeNull();
      expect(seen).toEqual([{ url: '/pre/a.mp3', host: `bkt.127.0.0.1:${port}`, token: 'tok' }]);
    } finally {
      lean.close();
      server.close();
    }
  });
});

describe('lean listing (src/store/lean.ts) against a scripted server', () => {
  test('pages follow the continuation token; XML entities in keys are undone; keys outside the prefix are left out', async () => {
    const seen: string[] = [];
    const pages = [
      '<ListBucketResult><IsTruncated>true</IsTruncated><Contents><Key>pre/a &amp; b&#x27;s.mp3</Key><LastModified>2026-01-02T03:04:05.678Z</LastModified><ETag>&quot;e1&quot;</ETag><Size>12</Size></Contents>' +
        '<Contents><Key>prefix-sibling.mp3</Key><Size>1</Size></Contents><NextContinuationToken>tok/+=</NextContinuationToken></ListBucketResult>',
      '<ListBucketResult><IsTruncated>false</IsTruncated><Contents><Key>pre/z/&lt;y&gt;.mp3</Key><LastModified>2026-01-02T03:04:05Z</LastModified><ETag>"e2"</ETag><Size>3</Size></Contents></ListBucketResult>',
    ];
    const server = createServer((req, res) => {
      seen.push(req.url!);
      res.writeHead(200, { 'content-type': 'application/xml' }).end(pages.shift());
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    const config = resolveStore('s3://bkt/pre', { AWS_ENDPOINT_URL: `http://127.0.0.1:${port}`, AWS_ACCESS_KEY_ID: 'k', AWS_SECRET_ACCESS_KEY: 's', UPLOAD_SYNC_S3_PATH_STYLE: 'true' })!;
    const store = new S3Store({}, { send: () => Promise.reject(new Error('the SDK is not used')) }, 'bkt', 'pre');
    const lean = leanRequests(store, config, 4);
    try {
      const got = [];
      for await (const page of lean.list('')) got.push(...page);
      expect(got.map((e) => [e.path, e.size, e.etag])).toEqual([["a & b's.mp3", 12, '"e1"'], ['z/<y>.mp3', 3, '"e2"']]);
      expect(got[0]!.lastModified.getTime()).toBe(Date.parse('2026-01-02T03:04:05.678Z'));
      expect(seen).toEqual(['/bkt/?list-type=2&max-keys=1000&prefix=pre%2F', '/bkt/?list-type=2&max-keys=1000&prefix=pre%2F&continuation-token=tok%2F%2B%3D']);
    } finally {
      lean.close();
      server.close();
    }
  });
});

/** `rsync -anci --delete` from `a` to `b` (folder times left out): what rsync would change, one line each; '' when the trees agree. */
async function itemize(a: string, b: string): Promise<string> {
  const { spawnSync } = await import('node:child_process');
  const r = spawnSync('rsync', ['-anci', '--delete', '--omit-dir-times', `${a}/`, `${b}/`], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`rsync: ${r.stderr}`);
  return r.stdout.trim();
}
