/**
 * End to end: the packed library in a real Next.js standalone build of examples/next-app.
 * `npm pack` → temp copy of the example → `npm install` (next, react, the tarball) → its `build`
 * script → `node .next/standalone/server.js` from `.next/standalone` on 127.0.0.1, then uploads,
 * plays, seeks, restarts and rebuilds. Needs the npm registry (or a warm npm cache) and dist/.
 * `SKIP_NEXT_E2E=1` skips it (offline work); CI never sets it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, realpathSync } from 'node:fs';
import { cp, mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, relative, sep } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { ROOT, cleanEnv, exists, run, waitFor } from './helpers.js';

const MINUTES = 60_000;
const timings: Record<string, number> = {};
async function timed<T>(label: string, fn: () => Promise<T>): Promise<T> {
  const started = Date.now();
  try {
    return await fn();
  } finally {
    timings[label] = Date.now() - started;
  }
}

let work = '';
let app = '';
let standalone = '';
let server: Started | undefined;
const servers = new Set<ChildProcess>();
const suiteStarted = Date.now();

/** The environment of every process of the app: no machine settings of ours, no Next telemetry. */
const appEnv = (extra: Record<string, string> = {}) =>
  cleanEnv({ NEXT_TELEMETRY_DISABLED: '1', UPLOAD_SYNC_LOCK_DIR: join(work, 'locks'), ...extra });

async function must(label: string, command: string, args: string[], cwd: string, timeoutMs: number): Promise<string> {
  const r = await timed(label, () => run(command, args, { cwd, env: appEnv(), timeoutMs }));
  if (r.code !== 0) throw new Error(`${label} failed (${r.code ?? r.signal}):\n${r.stdout.slice(-4000)}\n${r.stderr.slice(-4000)}`);
  return r.stdout;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

interface Started {
  child: ChildProcess;
  base: string;
  output: () => string;
}

/** Starts the standalone server from its own folder (as PM2 or systemd would) and waits until it answers. */
async function startServer(): Promise<Started> {
  const port = await freePort();
  const child = spawn(process.execPath, ['server.js'], {
    cwd: standalone,
    env: appEnv({ PORT: String(port), HOSTNAME: '127.0.0.1' }),
    detached: true, // its own process group, so stopServer reaches anything it starts
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  servers.add(child);
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const base = `http://127.0.0.1:${port}`;
  await waitFor(
    async () => {
      if (child.exitCode !== null) throw new Error(`server exited with ${child.exitCode}:\n${out}`);
      return get(`${base}/`).then((r) => r.status === 200, () => false);
    },
    { timeoutMs: 60_000, intervalMs: 100, message: `the server on ${base}` },
  );
  return { child, base, output: () => out };
}

async function stopServer(started: Started | undefined): Promise<void> {
  if (!started) return;
  const { child } = started;
  if (child.exitCode === null && child.signalCode === null) {
    const exited = new Promise((r) => child.once('exit', r));
    try {
      process.kill(-child.pid!, 'SIGTERM');
    } catch {
      // already gone
    }
    const timer = setTimeout(() => {
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        // already gone
      }
    }, 10_000);
    await exited;
    clearTimeout(timer);
  }
  servers.delete(child);
}

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

/** A raw HTTP request: the path is sent exactly as given (fetch would normalize `%2e%2e` and `\`). */
function get(url: string, headers: Record<string, string> = {}, method = 'GET'): Promise<Answer> {
  const { host, port, pathname } = new URL(url);
  const rawPath = url.slice(url.indexOf('/', url.indexOf('//') + 2)) || pathname;
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: host.split(':')[0], port, path: rawPath, method, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

const skip = process.env.SKIP_NEXT_E2E === '1';
const SONG = randomBytes(300_000);
let uploaded: { url: string; name: string } | undefined;
let etag = '';

beforeAll(async () => {
  if (skip) return;
  work = realpathSync(mkdtempSync(join(tmpdir(), 'upload-sync-e2e-')));
  app = join(work, 'app');
  standalone = join(app, '.next', 'standalone');
  const pack = join(work, 'pack');
  await mkdir(pack);
  const packed = await must('npm pack', 'npm', ['pack', '--pack-destination', pack, '--silent'], ROOT, 2 * MINUTES);
  const tarball = join(pack, packed.trim().split('\n').pop()!);

  // The example as a user would copy it: without anything a local run left behind.
  const example = join(ROOT, 'examples', 'next-app');
  await cp(example, app, {
    recursive: true,
    filter: (src) => {
      const rel = relative(example, src);
      const top = rel.split(sep)[0];
      if (top === 'node_modules' || top === '.next' || rel === 'next-env.d.ts') return false;
      return !(rel.startsWith(join('public', 'uploads') + sep) && !rel.endsWith('.gitkeep'));
    },
  });
  const pkgPath = join(app, 'package.json');
  const pkg = JSON.parse(await readFile(pkgPath, 'utf8')) as { dependencies: Record<string, string> };
  pkg.dependencies['upload-sync'] = `file:${tarball}`;
  await writeFile(pkgPath, JSON.stringify(pkg, null, 2));
  await must('npm install', 'npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error'], app, 6 * MINUTES);
  await must('first build', 'npm', ['run', 'build'], app, 6 * MINUTES);
  // Things a traversal would love to reach.
  await writeFile(join(app, 'secret.mp3'), 'SECRET in the project root');
  await writeFile(join(standalone, 'secret.mp3'), 'SECRET in the standalone folder');
  server = await timed('first server start', startServer);
}, 15 * MINUTES);

afterAll(async () => {
  for (const child of servers) await stopServer({ child, base: '', output: () => '' });
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

  test('after a server restart it is still 200 with the same bytes', async () => {
    await stopServer(server);
    server = await timed('restart', startServer);
    const got = await get(`${server.base}${uploaded!.url}`);
    expect(got.status).toBe(200);
    expect(got.body.equals(SONG)).toBe(true);
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
