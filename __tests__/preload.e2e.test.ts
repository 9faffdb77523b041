/**
 * `upload-sync/preload` in a real Next.js standalone build of examples/next-app (one build): the
 * server started as the README and the PM2 example say (`node --require graceful-http.cjs
 * --require upload-sync/preload server.js` from `.next/standalone`, the package found in the app's
 * node_modules), beside the same build started with `UPLOAD_SYNC_PRELOAD=off`, where the example's
 * App Router route (app/uploads/[...path]/route.ts) answers: the two must give the same answers.
 * `SKIP_NEXT_E2E=1` skips it, as next.e2e.test.ts.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, realpathSync } from 'node:fs';
import { readdir, readlink, rm, writeFile } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { ROOT, cleanEnv, waitFor } from './helpers.js';
import { MINUTES, buildExample, commands, get, servers, startServer, stopServer, type Answer, type Started } from './next-helpers.js';

let work = '';
let app = '';
let preloaded: Started | undefined;
let nextOnly: Started | undefined;

const appEnv = (extra: Record<string, string> = {}) =>
  cleanEnv({ NEXT_TELEMETRY_DISABLED: '1', UPLOAD_SYNC_LOCK_DIR: join(work, 'locks'), ...extra });
const { must } = commands(appEnv);
/** Both preloads of examples/pm2, as its ecosystem file gives them (they must compose). */
const NODE_ARGS = ['--require', join(ROOT, 'examples', 'pm2', 'graceful-http.cjs'), '--require', 'upload-sync/preload'];

const skip = process.env.SKIP_NEXT_E2E === '1';
const SONG = randomBytes(300_000);
let url = '';

beforeAll(async () => {
  if (skip) return;
  work = realpathSync(mkdtempSync(join(tmpdir(), 'upload-sync-preload-')));
  const built = await buildExample(work, must);
  app = built.app;
  await writeFile(join(app, 'public', 'uploads', '.hidden.mp3'), 'a dotfile');
  await writeFile(join(app, 'public', 'uploads', 'half.mp3.part'), 'an upload in progress');
  await writeFile(join(app, 'public', 'uploads', 'page.html'), '<script>alert(1)</script>');
  await writeFile(join(app, 'secret.mp3'), 'SECRET in the project root');
  [preloaded, nextOnly] = await Promise.all([
    startServer(built.standalone, appEnv({ DEBUG: 'upload-sync:preload' }), NODE_ARGS),
    startServer(built.standalone, appEnv({ DEBUG: 'upload-sync:preload', UPLOAD_SYNC_PRELOAD: 'off' }), NODE_ARGS),
  ]);
}, 15 * MINUTES);

afterAll(async () => {
  for (const child of servers) await stopServer({ child });
  if (work !== '') await rm(work, { recursive: true, force: true });
}, 2 * MINUTES);

/**
 * What an answer is, without what differs between two servers or two moments (date, connection;
 * Next's Vary). Where Next drops the route's Content-Length (a body it streams chunked, and the
 * HEAD of one), the preload keeps it: dropped from the comparison, checked against the body `length`.
 */
function comparable(a: Answer, route: Answer, length = a.body.length) {
  const headers = { ...a.headers };
  for (const name of ['date', 'connection', 'keep-alive', 'transfer-encoding', 'vary']) delete headers[name];
  if (route.headers['content-length'] === undefined && headers['content-length'] !== undefined) {
    expect(Number(headers['content-length'])).toBe(length);
    delete headers['content-length'];
  }
  return { status: a.status, headers, bodyLength: a.body.length, body: createHash('sha256').update(a.body).digest('hex') };
}

(skip ? describe.skip : describe)('upload-sync/preload in a standalone build of examples/next-app', () => {
  test('starts with one debug line; the server with UPLOAD_SYNC_PRELOAD=off says it is off', () => {
    expect(preloaded!.output()).toMatch(/upload-sync:preload INFO serving GET\/HEAD \/uploads\/\*/);
    expect(nextOnly!.output()).toMatch(/upload-sync:preload INFO off \(UPLOAD_SYNC_PRELOAD=off\)/);
  });

  test('non-upload requests reach Next: the page, and a POST to /api/upload whose file is served at once', async () => {
    const page = await get(`${preloaded!.base}/`);
    expect(page.status).toBe(200);
    expect(page.headers['content-type']).toMatch(/^text\/html/);
    expect(page.body.toString()).toContain('<html');

    const form = new FormData();
    form.append('file', new File([SONG], 'preload song.mp3', { type: 'audio/mpeg' }));
    const res = await fetch(`${preloaded!.base}/api/upload`, { method: 'POST', body: form });
    expect(res.status).toBe(201);
    url = ((await res.json()) as { url: string }).url;
    expect(url).toMatch(/^\/uploads\/[0-9a-f-]{36}\.mp3$/);

    const got = await get(`${preloaded!.base}${url}`);
    expect(got.status).toBe(200);
    expect(got.body.equals(SONG)).toBe(true);
    expect(got.headers['content-type']).toBe('audio/mpeg');
    // Next's route answers carry Next's Vary; the preload's do not: this one did not go through Next.
    expect(got.headers.vary).toBeUndefined();
    const viaNext = await get(`${nextOnly!.base}${url}`);
    expect(viaNext.headers.vary).toBeDefined();
  });

  test('every answer equals the App Router route of the same app (UPLOAD_SYNC_PRELOAD=off)', async () => {
    expect(url).not.toBe('');
    const { etag } = (await get(`${preloaded!.base}${url}`, {}, 'HEAD')).headers;
    expect(typeof etag).toBe('string');
    const cases: [string, Record<string, string>, string?][] = [
      [url, {}],
      [url, {}, 'HEAD'],
      [url, { Range: 'bytes=0-65535' }],
      [url, { Range: 'bytes=1000-250000' }], // over one chunk: streamed
      [url, { Range: 'bytes=299000-' }],
      [url, { Range: 'bytes=400000-' }], // 416
      [url, { Range: 'bytes=0-65535' }, 'HEAD'],
      [url, { 'If-None-Match': etag as string }],
      [url, { 'If-None-Match': etag as string }, 'HEAD'],
      [url, { Range: 'bytes=0-9', 'If-Range': '"other"' }], // stale If-Range: the whole file
      [url, { 'If-Match': '"other"' }], // 412
      ['/uploads/.hidden.mp3', {}],
      ['/uploads/half.mp3.part', {}],
      ['/uploads/half.mp3.part', {}, 'HEAD'],
      ['/uploads/missing.mp3', {}],
      ['/uploads/page.html', {}], // attachment in a sandbox
      ['/uploads/a%2fb.mp3', {}], // 403
      ['/uploads/%2e%2e/secret.mp3', {}], // resolved to /secret.mp3: Next's 404
    ];
    for (const [path, headers, method = 'GET'] of cases) {
      const [mine, route] = await Promise.all([get(`${preloaded!.base}${path}`, headers, method), get(`${nextOnly!.base}${path}`, headers, method)]);
      const length = method === 'HEAD' ? (await get(`${preloaded!.base}${path}`, headers)).body.length : undefined;
      expect({ path, method, sent: headers, ...comparable(mine, route, length) }).toEqual({ path, method, sent: headers, ...comparable(route, route) });
    }
    const statuses = await Promise.all(cases.map(([path, headers, method]) => get(`${preloaded!.base}${path}`, headers, method).then((a) => a.status)));
    expect(statuses).toEqual([200, 200, 206, 206, 206, 416, 206, 304, 304, 200, 412, 404, 404, 404, 404, 200, 403, 404]);
    // Where Next cannot decode the path into params it answers 500 before calling the route; the
    // preload gives the route the request, which answers 400.
    expect((await get(`${nextOnly!.base}/uploads/%ff.mp3`)).status).toBe(500);
    expect((await get(`${preloaded!.base}/uploads/%ff.mp3`)).status).toBe(400);
  });

  test('a client that goes away mid-body leaves the server healthy, with the file closed', async () => {
    const big = join(app, 'public', 'uploads', 'big.mp3');
    await writeFile(big, randomBytes(32 * 1024 * 1024));
    const pid = preloaded!.child.pid!;
    const openOnBig = async () => {
      let n = 0;
      for (const fd of await readdir(`/proc/${pid}/fd`).catch(() => [])) if ((await readlink(`/proc/${pid}/fd/${fd}`).catch(() => '')) === big) n++;
      return n;
    };
    const { host, port } = new URL(preloaded!.base);
    for (let i = 0; i < 3; i++) {
      await new Promise<void>((resolve, reject) => {
        const req = httpRequest({ host: host.split(':')[0], port, path: '/uploads/big.mp3', agent: false }, (res) => {
          expect(res.statusCode).toBe(200);
          // The first bytes are in: the server is mid-body (32 MiB do not fit in socket buffers).
          res.once('data', () => {
            req.destroy();
            resolve();
          });
        });
        req.on('error', (err) => (req.destroyed ? undefined : reject(err)));
        req.end();
      });
    }
    await waitFor(async () => (await openOnBig()) === 0, { timeoutMs: 10_000, message: 'the server to close big.mp3 after the aborts' });
    expect(preloaded!.child.exitCode).toBeNull();
    const after = await get(`${preloaded!.base}/uploads/big.mp3`, { Range: 'bytes=0-99' });
    expect(after.status).toBe(206);
    expect(after.body.length).toBe(100);
    expect((await get(`${preloaded!.base}/`)).status).toBe(200);
    expect(preloaded!.output()).not.toMatch(/Error|ERR_/);
  });
});
