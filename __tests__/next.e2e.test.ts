/**
 * End to end: the packed library in a real Next.js standalone build of examples/next-app.
 * `npm pack` → temp copy of the example → `npm install` (next, react, the tarball) → its `build`
 * script → `node .next/standalone/server.js` from `.next/standalone` on 127.0.0.1, then uploads,
 * plays, seeks, restarts and rebuilds. Needs the npm registry (or a warm npm cache) and dist/.
 * `SKIP_NEXT_E2E=1` skips it (offline work); CI never sets it.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, realpathSync } from 'node:fs';
import { readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { cleanEnv, exists, run } from './helpers.js';
import { MINUTES, buildExample, commands, get, servers, startServer as startIn, stopServer, type Started } from './next-helpers.js';

let work = '';
let app = '';
let standalone = '';
let server: Started | undefined;
const suiteStarted = Date.now();

/** The environment of every process of the app: no machine settings of ours, no Next telemetry. */
const appEnv = (extra: Record<string, string> = {}) =>
  cleanEnv({ NEXT_TELEMETRY_DISABLED: '1', UPLOAD_SYNC_LOCK_DIR: join(work, 'locks'), ...extra });
const { timings, timed, must } = commands(appEnv);
const startServer = () => startIn(standalone, appEnv());

const skip = process.env.SKIP_NEXT_E2E === '1';
const SONG = randomBytes(300_000);
let uploaded: { url: string; name: string } | undefined;
let etag = '';

beforeAll(async () => {
  if (skip) return;
  work = realpathSync(mkdtempSync(join(tmpdir(), 'upload-sync-e2e-')));
  // The example as a user would copy it (without anything a local run left behind), from the packed package.
  ({ app, standalone } = await buildExample(work, must));
  // Things a traversal would love to reach.
  await writeFile(join(app, 'secret.mp3'), 'SECRET in the project root');
  await writeFile(join(standalone, 'secret.mp3'), 'SECRET in the standalone folder');
  server = await timed('first server start', startServer);
}, 15 * MINUTES);

afterAll(async () => {
  for (const child of servers) await stopServer({ child });
  if (work !== '') await rm(work, { recursive: true, force: true });
  const total = Date.now() - suiteStarted;
  if (!skip) console.log(`next e2e timings (ms): ${JSON.stringify({ ...timings, total })}`);
}, 2 * MINUTES);

(skip ? describe.skip : describe)('a Next.js standalone build of examples/next-app', () => {
  test('POST an upload, then GET it at once: 200 with the exact bytes', async () => {
    const form = new FormData();
    form.append('file', new File([SONG], 'e2e song.mp3', { type: 'audio/mpeg' }));
    const res = await fetch(`${server!.base}/api/upload`, { method: 'POST', body: form });
    const answer = (await res.json()) as { url: string; name: string; sync: string };
    expect(res.status).toBe(201);
    expect(answer.url).toMatch(/^\/uploads\/[0-9a-f-]{36}\.mp3$/);
    // The standalone server forces NODE_ENV=production: the targeted sync ran.
    expect(answer.sync).toBe('ok');
    uploaded = answer;

    const got = await get(`${server!.base}${answer.url}`);
    expect(got.status).toBe(200);
    expect(got.body.equals(SONG)).toBe(true);
    expect(got.headers['content-type']).toBe('audio/mpeg');
    expect(got.headers['accept-ranges']).toBe('bytes');
    expect(got.headers['x-content-type-options']).toBe('nosniff');
    etag = String(got.headers.etag);
    expect(etag).toMatch(/^"[0-9a-f]+-[0-9a-f]+"$/);
  });

  test('seeking: Range 100-199 is a 206 of those bytes; past the end is a 416', async () => {
    const url = `${server!.base}${uploaded!.url}`;
    const part = await get(url, { Range: 'bytes=100-199' });
    expect(part.status).toBe(206);
    expect(part.headers['content-range']).toBe(`bytes 100-199/${SONG.length}`);
    expect(part.body.equals(SONG.subarray(100, 200))).toBe(true);
    // Even when the client accepts gzip: a 206 is never re-encoded (no-transform).
    const gz = await get(url, { Range: 'bytes=0-9', 'Accept-Encoding': 'gzip' });
    expect(gz.headers['content-encoding']).toBeUndefined();
    expect(gz.body.equals(SONG.subarray(0, 10))).toBe(true);

    const past = await get(url, { Range: `bytes=${SONG.length}-` });
    expect(past.status).toBe(416);
    expect(past.headers['content-range']).toBe(`bytes */${SONG.length}`);
  });

  test('If-None-Match is a 304; HEAD answers headers only', async () => {
    const url = `${server!.base}${uploaded!.url}`;
    const again = await get(url, { 'If-None-Match': etag });
    expect(again.status).toBe(304);
    expect(again.body.length).toBe(0);
    const head = await get(url, {}, 'HEAD');
    expect(head.status).toBe(200);
    expect(head.headers.etag).toBe(etag);
    expect(head.body.length).toBe(0);
  });

  test.each([
    '/uploads/..%2f..%2fsecret.mp3',
    '/uploads/..%2F..%2F..%2Fsecret.mp3',
    '/uploads/%2e%2e/%2e%2e/secret.mp3',
    '/uploads/%2e%2e%2f%2e%2e%2fsecret.mp3',
    '/uploads/..%252f..%252fsecret.mp3',
    '/uploads/%252e%252e/%252e%252e/secret.mp3',
    '/uploads/..%5c..%5csecret.mp3',
    '/uploads/..\\..\\secret.mp3',
    '/uploads/../../secret.mp3',
    '/uploads/%c0%ae%c0%ae/%c0%ae%c0%ae/secret.mp3',
    '/uploads/..;/..;/secret.mp3',
    '/uploads/.gitkeep',
    '/uploads/%00secret.mp3',
    '/uploads/..%2f..%2fpackage.json',
    '/uploads/..%2f..%2f.next%2fstandalone%2fserver.js',
  ])('%s is never a 2xx', async (path) => {
    const res = await get(`${server!.base}${path}`);
    expect(res.status).toBeGreaterThanOrEqual(300);
    expect(res.body.toString()).not.toContain('SECRET');
  });

  test('the file is in <project>/public/uploads and mirrored into .next/standalone/public/uploads', async () => {
    expect((await readFile(join(app, 'public', 'uploads', uploaded!.name))).equals(SONG)).toBe(true);
    expect((await readFile(join(standalone, 'public', 'uploads', uploaded!.name))).equals(SONG)).toBe(true);
    // Nothing was written under the server's cwd but the mirror, and no temp file is left.
    expect((await readdir(join(app, 'public', 'uploads'))).sort()).toEqual(['.gitkeep', uploaded!.name].sort());
    expect(await readdir(join(standalone, 'public', 'uploads'))).toEqual([uploaded!.name]);
  });

  test('an uploaded page, SVG or script is a sandboxed download; a FIFO answers 404 at once', async () => {
    // Dropped into the source folder by hand (FTP, scp): saveUpload's default would refuse them.
    const source = join(app, 'public', 'uploads');
    await writeFile(join(source, 'evil.html'), '<script>alert(document.cookie)</script>');
    await writeFile(join(source, 'evil.svg'), '<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>');
    for (const name of ['evil.html', 'evil.svg']) {
      const res = await get(`${server!.base}/uploads/${name}`);
      expect(res.status).toBe(200);
      expect(res.headers['content-disposition']).toBe(`attachment; filename=${name}`);
      expect(res.headers['content-security-policy']).toBe('sandbox');
      expect(res.headers['x-content-type-options']).toBe('nosniff');
    }
    const song = await get(`${server!.base}${uploaded!.url}`, {}, 'HEAD');
    expect(song.headers['content-disposition']).toBeUndefined();

    const fifo = join(source, 'pipe.mp3');
    expect((await run('mkfifo', [fifo])).code).toBe(0);
    try {
      // More requests than libuv has threads: a blocking open would hold them all.
      const answers = await Promise.all(Array.from({ length: 6 }, () => get(`${server!.base}/uploads/pipe.mp3`)));
      expect(answers.map((a) => a.status)).toEqual(Array(6).fill(404));
      expect((await get(`${server!.base}${uploaded!.url}`)).status).toBe(200);
    } finally {
      await rm(fifo, { force: true });
      await rm(join(source, 'evil.html'), { force: true });
      await rm(join(source, 'evil.svg'), { force: true });
    }
  }, 30_000);

  test('after a server restart it is still 200 with the same bytes, and the same validators', async () => {
    // An mtime whose sub-millisecond part rounds up, and up into the next second: the route and
    // send must round it the same way (a floor gave another ETag and Last-Modified here).
    for (const dir of [join(app, 'public', 'uploads'), join(standalone, 'public', 'uploads')]) {
      expect((await run('touch', ['-m', '-d', '@1700000000.999700000', join(dir, uploaded!.name)])).code).toBe(0);
    }
    const before = await get(`${server!.base}${uploaded!.url}`, {}, 'HEAD');
    expect(before.headers.etag).toBe(`"${SONG.length.toString(16)}-${(1700000001000).toString(16)}"`);
    await stopServer(server);
    server = await timed('restart', startServer);
    const got = await get(`${server.base}${uploaded!.url}`);
    expect(got.status).toBe(200);
    expect(got.body.equals(SONG)).toBe(true);
    // Now Next's static handler (send) answers, from the mirror it listed at startup: its weak
    // ETag has the route's value, so a browser's cached copy still validates.
    expect(String(got.headers.etag)).toBe(`W/${String(before.headers.etag)}`);
    expect(got.headers['last-modified']).toBe(before.headers['last-modified']);
    const part = await get(`${server.base}${uploaded!.url}`, { Range: 'bytes=100-199' });
    expect(part.status).toBe(206);
    expect(part.body.equals(SONG.subarray(100, 200))).toBe(true);
  }, 2 * MINUTES);

  test('after a rebuild (which wipes the standalone output) the build\'s sync restores it', async () => {
    await stopServer(server);
    server = undefined;
    const marker = join(standalone, 'marker-from-before-the-rebuild');
    await writeFile(marker, 'x');
    const out = await must('rebuild', 'npm', ['run', 'build'], app, 6 * MINUTES);
    expect(await exists(marker)).toBe(false); // next build did wipe .next/standalone
    expect(out).toContain('upload-sync'); // the build script ran the sync
    expect((await readFile(join(standalone, 'public', 'uploads', uploaded!.name))).equals(SONG)).toBe(true);
    server = await timed('start after rebuild', startServer);
    const got = await get(`${server.base}${uploaded!.url}`);
    expect(got.status).toBe(200);
    expect(got.body.equals(SONG)).toBe(true);
  }, 8 * MINUTES);
});
