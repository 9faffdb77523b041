// End to end with a real PM2 (from node_modules): the packed library installed in a temp project
// with examples/pm2 (its ecosystem file, watcher script and deploy.sh), then faults:
// - the `upload-watcher` app: files dropped into public/uploads, a graceful `pm2 stop`, disabled
//   by the environment (exit 78, a deliberate stop), `kill -9` (PM2 restarts it);
// - the `web` app: `pm2 reload web` under load (slow uploads and GETs) with zero failed requests;
// - deploy.sh: build, sync, cleanup (a dead upload's temp file in the source goes), reload.
// `web` runs a STAND-IN for the standalone server.js (__tests__/fixtures/standalone-server.cjs):
// a real `next build` takes minutes on top of the two the Next tests already make. The stand-in
// has what a reload depends on, copied from next 16.4.6's start-server.js: a node:http server,
// and on SIGINT/SIGTERM `server.close()` (requests in flight finish), then exit 130/143. Its
// keep-alive connections are drained by the example's graceful-http.cjs, preloaded as for Next.
// The ecosystem file is used as shipped, but for web's PORT (a free one here).
// Needs `npm run build` first (npm test does it).
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { copyFile, mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import { Agent, request } from 'node:http';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { ROOT, cleanEnv, exists, readTree, run, tempProject, waitFor, writeTree } from './helpers.js';
import { published, readMirror } from './watch-helpers.js';

const PM2 = join(ROOT, 'node_modules', '.bin', 'pm2');
const EXAMPLE = join(ROOT, 'examples', 'pm2');
const FIXTURES = join(ROOT, '__tests__', 'fixtures');
/** `upload-sync watch`'s exit code when the environment disables sync (src/cli/watch.ts). */
const DISABLED_BY_ENV = 78;
let port = 0;

let p: ReturnType<typeof tempProject>;
let pm2Home: ReturnType<typeof tempProject>;

const pm2Env = (extra: Record<string, string> = {}) =>
  cleanEnv({ PM2_HOME: pm2Home.root, UPLOAD_SYNC_STABLE_MS: '200', UPLOAD_SYNC_DEBOUNCE_MS: '50', UPLOAD_SYNC_LOCK_DIR: join(p.root, 'locks'), ...extra });

async function pm2(args: string[], extra: Record<string, string> = {}) {
  const r = await run(PM2, args, { cwd: p.root, env: pm2Env(extra), timeoutMs: 60_000 });
  if (r.code !== 0) throw new Error(`pm2 ${args.join(' ')} exited ${r.code}: ${r.stdout}\n${r.stderr}`);
  return r;
}

interface App {
  name: string;
  pid: number;
  pm2_env: { status: string; restart_time: number; exit_code?: number };
}

async function apps(): Promise<App[]> {
  const { stdout } = await pm2(['jlist']);
  // PM2 may print lines of its own ("[PM2] …") before the JSON: the JSON is the last line.
  return JSON.parse(stdout.trimEnd().split('\n').pop()!) as App[];
}

async function watcherApp(): Promise<App | undefined> {
  return (await apps()).find((a) => a.name === 'upload-watcher');
}

/** Removes an app from PM2, if it is there (each test can run alone: `-t`). */
async function deleteApp(name: string): Promise<void> {
  if ((await apps()).some((a) => a.name === name)) await pm2(['delete', name]);
}

async function webApps(): Promise<App[]> {
  return (await apps()).filter((a) => a.name === 'web');
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port: free } = s.address() as { port: number };
      s.close(() => resolve(free));
    });
  });
}

/** A pid that was alive a moment ago and is gone now. */
async function deadPid(): Promise<number> {
  const child = spawn(process.execPath, ['-e', ''], { stdio: 'ignore' });
  await once(child, 'exit');
  return child.pid!;
}

const tempName = (pid: number, n: number) => `.upload-sync-${pid.toString(36)}-${n.toString(16).padStart(12, '0')}.tmp`;

interface Answer {
  status: number;
  body: { pid?: number; closing?: boolean; name?: string };
}

/** Keep-alive, as browsers and proxies: a reload must not reset a connection a client reuses. */
const agent = new Agent({ keepAlive: true, maxSockets: 64 });

/** One request to web; `body` is sent as `chunks` pieces, one every `everyMs` (an upload on a slow connection). */
function ask(method: 'GET' | 'POST', chunks = 0, everyMs = 0): Promise<Answer> {
  const CHUNK = 16 * 1024;
  return new Promise((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port, method, path: method === 'POST' ? '/api/upload' : '/', agent, headers: method === 'POST' ? { 'content-length': String(chunks * CHUNK) } : {} },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (text += d));
        res.on('end', () => resolve({ status: res.statusCode!, body: JSON.parse(text || '{}') as Answer['body'] }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    let sent = 0;
    const next = () => {
      if (sent === chunks) return void req.end();
      req.write(Buffer.alloc(CHUNK, sent++));
      setTimeout(next, everyMs);
    };
    next();
  });
}

beforeAll(async () => {
  p = tempProject('upload-sync-pm2-');
  pm2Home = tempProject('upload-sync-pm2home-');
  const packDir = join(p.root, 'pack');
  await mkdir(packDir);
  const pack = await run('npm', ['pack', '--pack-destination', packDir], { cwd: ROOT, env: cleanEnv() });
  expect(pack.code).toBe(0);
  const tarball = join(packDir, (await readdir(packDir)).find((n) => n.endsWith('.tgz'))!);
  // `npm run build` (deploy.sh's first step): what next build does to the mirror, with the stand-in server.
  const scripts = { build: 'node fake-next-build.cjs' };
  await writeFile(join(p.root, 'package.json'), JSON.stringify({ name: 'pm2-e2e-app', private: true, version: '1.0.0', scripts }));
  const install = await run('npm', ['install', tarball, '--prefer-offline', '--no-audit', '--no-fund'], { cwd: p.root, env: cleanEnv(), timeoutMs: 120_000 });
  if (install.code !== 0) throw new Error(`npm install failed: ${install.stderr}`);
  for (const name of await readdir(EXAMPLE)) await copyFile(join(EXAMPLE, name), join(p.root, name));
  port = await freePort();
  const ecosystem = join(p.root, 'ecosystem.config.cjs');
  await writeFile(ecosystem, (await readFile(ecosystem, 'utf8')).replace("PORT: '3000'", `PORT: '${port}'`));
  for (const name of ['standalone-server.cjs', 'fake-next-build.cjs']) await copyFile(join(FIXTURES, name), join(p.root, name));
  await mkdir(p.source, { recursive: true });
  await mkdir(join(p.root, '.next', 'standalone'), { recursive: true });
  await copyFile(join(FIXTURES, 'standalone-server.cjs'), join(p.root, '.next', 'standalone', 'server.js'));
}, 180_000);

afterAll(async () => {
  agent.destroy();
  // Always: the daemon and its apps go, whatever happened above.
  await run(PM2, ['kill'], { cwd: p.root, env: pm2Env(), timeoutMs: 30_000 }).catch(() => undefined);
  await pm2Home.cleanup();
  await p.cleanup();
}, 60_000);

describe('PM2: the upload-watcher app of examples/pm2', () => {
  test('starts (wait_ready), mirrors dropped files, and stops gracefully', async () => {
    await writeTree(p.source, { 'before-start.mp3': 'there before the start' });
    await pm2(['start', 'ecosystem.config.cjs', '--only', 'upload-watcher']);
    // wait_ready: `pm2 start` returned once the app sent 'ready', after its first sync.
    expect((await watcherApp())?.pm2_env.status).toBe('online');
    expect(await apps()).toHaveLength(1); // --only: the web app was not started

    await writeTree(p.source, { 'albums/Night Drive/01 Intro.wav': 'intro', 'single.mp3': 'single', 'upload.mp3.part': 'partial' });
    await waitFor(async () => published(await readMirror(p.dest)).length === 3, { timeoutMs: 20_000, message: 'the files in .next/standalone/public/uploads' });
    expect(await readMirror(p.dest)).toEqual({ 'albums/Night Drive/01 Intro.wav': 'intro', 'before-start.mp3': 'there before the start', 'single.mp3': 'single' });

    await pm2(['stop', 'upload-watcher']);
    const app = await watcherApp();
    // (PM2 counts any exit within min_uptime of the start in unstable_restarts, a stop too: not checked.)
    expect(app?.pm2_env).toMatchObject({ status: 'stopped', restart_time: 0 });
    const out = await readFile(join(p.root, 'logs', 'upload-watcher.out.log'), 'utf8');
    expect(out).toContain('ready: watching with native events');
    expect(out).toContain('SIGINT: finishing the copy in flight');
    expect(out).toContain('stopped'); // the SIGINT handler ran to its end: no SIGKILL
    // Each line stamped once, by the script (ISO 8601, UTC; PM2's `time` is off); no line for a sync that found nothing to do.
    const outLines = out.trimEnd().split('\n');
    for (const line of outLines) expect(line).toMatch(/^\[\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\] (INFO|WARN|ERROR): \S/);
    expect(outLines.filter((l) => l.includes('nothing to copy'))).toEqual([]);
    expect(await readFile(join(p.root, 'logs', 'upload-watcher.err.log'), 'utf8')).toBe('');
  });

  test(`disabled by the environment: says so, exits ${DISABLED_BY_ENV}, and PM2 does not restart it`, async () => {
    await deleteApp('upload-watcher');
    await writeTree(p.source, { 'late.mp3': 'written while the watcher is disabled' });
    await pm2(['start', 'ecosystem.config.cjs', '--only', 'upload-watcher'], { DISABLE_UPLOAD_SYNC: 'true' });
    await waitFor(async () => (await readFile(join(p.root, 'logs', 'upload-watcher.out.log'), 'utf8')).includes('disabled by the environment'), { message: 'the disabled message' });
    // Proving a restart did not happen takes time: it stays stopped, with no restart, for over a second.
    const until = Date.now() + 1500;
    while (Date.now() < until) {
      const app = await watcherApp();
      expect(app?.pm2_env).toMatchObject({ status: 'stopped', restart_time: 0 });
    }
    expect((await watcherApp())?.pm2_env.exit_code).toBe(DISABLED_BY_ENV);
    expect(await exists(join(p.dest, 'late.mp3'))).toBe(false); // nothing was synced
  });

  test('kill -9 of the watcher (as the OOM killer does it): PM2 restarts it, and it mirrors again', async () => {
    await deleteApp('upload-watcher');
    await pm2(['start', 'ecosystem.config.cjs', '--only', 'upload-watcher']);
    const before = (await watcherApp())!;
    expect(before.pm2_env.status).toBe('online');
    process.kill(before.pid, 'SIGKILL');
    await waitFor(
      async () => {
        const app = await watcherApp();
        return app !== undefined && app.pid > 0 && app.pid !== before.pid && app.pm2_env.status === 'online';
      },
      { timeoutMs: 30_000, intervalMs: 100, message: 'a new watcher process, online' },
    );
    // What PM2 7 records for a death by signal: 0. Hence stop_exit_codes names 78, never 0.
    expect((await watcherApp())?.pm2_env).toMatchObject({ restart_time: 1, exit_code: 0 });
    await writeTree(p.source, { 'after-kill.mp3': 'dropped after the kill' });
    await waitFor(async () => (await exists(join(p.dest, 'after-kill.mp3'))), { timeoutMs: 20_000, message: 'after-kill.mp3 in the mirror' });
  });
});

describe('PM2: the web app of examples/pm2 (a stand-in for the standalone server, see the header)', () => {
  test('pm2 reload web under load (slow uploads, GETs, keep-alive): zero failed requests; uploads in flight finish', async () => {
    await pm2(['start', 'ecosystem.config.cjs', '--only', 'web']);
    await waitFor(() => ask('GET').then((a) => a.status === 200, () => false), { timeoutMs: 30_000, intervalMs: 50, message: 'web answering' });
    const oldPids = (await webApps()).map((a) => a.pid);
    expect(oldPids.length).toBeGreaterThan(0);

    const answers: Array<Answer & { method: string; ended: number }> = [];
    const failures: string[] = [];
    let stop = false;
    // Each upload takes ~4 s (20 pieces, 200 ms apart): longer than PM2's default kill_timeout (1.6 s).
    const client = async (method: 'GET' | 'POST') => {
      while (!stop) {
        try {
          const a = await (method === 'POST' ? ask('POST', 20, 200) : ask('GET'));
          answers.push({ ...a, method, ended: Date.now() });
          if (a.status >= 400) failures.push(`${method} ${a.status} ${JSON.stringify(a.body)}`);
        } catch (err) {
          failures.push(`${method} ${(err as NodeJS.ErrnoException).code ?? ''} ${(err as Error).message}`);
        }
        if (method === 'GET') await new Promise((r) => setTimeout(r, 20)); // a steady trickle, not a busy loop
      }
    };
    const clients = [...Array.from({ length: 6 }, () => client('POST')), ...Array.from({ length: 2 }, () => client('GET'))];
    let reloadMs = 0;
    try {
      await waitFor(() => answers.some((a) => a.method === 'POST'), { timeoutMs: 20_000, message: 'uploads under way' });
      const started = Date.now();
      await pm2(['reload', 'web']);
      const reloaded = Date.now();
      reloadMs = reloaded - started;
      // Served by the new workers afterwards, uploads included.
      await waitFor(() => answers.filter((a) => a.ended > reloaded && a.method === 'POST').length >= 3, { timeoutMs: 30_000, message: 'uploads after the reload' });
    } finally {
      stop = true;
      await Promise.all(clients);
    }

    expect(failures).toEqual([]);
    // Each old worker closed once its uploads in flight (≤ ~4 s each) were done, not at kill_timeout (30 s).
    expect(reloadMs).toBeLessThan(25_000);
    const newPids = (await webApps()).map((a) => a.pid);
    expect(newPids.filter((pid) => oldPids.includes(pid))).toEqual([]);
    // An upload in flight when its worker was told to stop finished there: the graceful part.
    expect(answers.some((a) => a.method === 'POST' && a.status === 201 && a.body.closing === true && oldPids.includes(a.body.pid!))).toBe(true);
    const saved = answers.filter((a) => a.method === 'POST').map((a) => a.body.name!);
    for (const name of saved) expect(await exists(join(p.source, name))).toBe(true);
    expect((await readdir(p.source)).filter((n) => n.startsWith('.upload-sync-'))).toEqual([]); // no upload cut mid-write

    // web's second preload, upload-sync/preload (resolved by the ecosystem file from the project's
    // node_modules), answers /uploads/* before the server's own listener, which would answer JSON.
    const served = await fetch(`http://127.0.0.1:${port}/uploads/${saved[0]}`, { headers: { Range: 'bytes=0-9' } });
    expect(served.status).toBe(206);
    expect(served.headers.get('content-type')).toBe('audio/mpeg');
    expect(Buffer.from(await served.arrayBuffer()).equals((await readFile(join(p.source, saved[0]!))).subarray(0, 10))).toBe(true);
  }, 120_000);

  test('deploy.sh: build, sync, cleanup (a dead upload\'s temp file in the source goes, a live one stays), reload', async () => {
    const dead = tempName(await deadPid(), 1);
    const live = tempName(process.pid, 2);
    await writeFile(join(p.source, dead), 'half an upload whose worker died');
    await writeFile(join(p.source, live), 'half an upload still being written');
    const oldPids = (await webApps()).map((a) => a.pid);
    const r = await run('sh', [join(p.root, 'deploy.sh')], { cwd: ROOT, env: pm2Env({ PATH: `${join(ROOT, 'node_modules', '.bin')}:${process.env.PATH}` }), timeoutMs: 120_000 });
    if (r.code !== 0) throw new Error(`deploy.sh exited ${r.code}:\n${r.stdout}\n${r.stderr}`);
    expect(await exists(join(p.source, dead))).toBe(false);
    expect(await exists(join(p.source, live))).toBe(true);
    // The new build's mirror is complete, and both apps run (web reloaded, the watcher started).
    const synced = (rel: string) => !rel.split('/').some((part) => part.startsWith('.')) && !rel.endsWith('.part');
    const sourceFiles = Object.keys(await readTree(p.source)).filter(synced).sort();
    expect(sourceFiles.length).toBeGreaterThan(5);
    expect(published(await readMirror(p.dest)).sort()).toEqual(sourceFiles);
    const web = await webApps();
    expect(web.every((a) => a.pm2_env.status === 'online' && !oldPids.includes(a.pid))).toBe(true);
    expect((await watcherApp())?.pm2_env.status).toBe('online');
    expect((await ask('GET')).status).toBe(200);
  }, 180_000);
});
