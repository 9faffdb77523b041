// End to end with a real PM2: the packed library installed in a temp project with examples/pm2,
// the `upload-watcher` app started from the example ecosystem file, files dropped into
// public/uploads, and a graceful `pm2 stop`. Needs `npm run build` first (npm test does it).
import { copyFile, mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { ROOT, cleanEnv, exists, run, tempProject, waitFor, writeTree } from './helpers.js';
import { published, readMirror } from './watch-helpers.js';

const PM2 = join(ROOT, 'node_modules', '.bin', 'pm2');
const EXAMPLE = join(ROOT, 'examples', 'pm2');

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
  return JSON.parse(stdout.slice(stdout.indexOf('['))) as App[];
}

async function watcherApp(): Promise<App | undefined> {
  return (await apps()).find((a) => a.name === 'upload-watcher');
}

beforeAll(async () => {
  p = tempProject('upload-sync-pm2-');
  pm2Home = tempProject('upload-sync-pm2home-');
  const packDir = join(p.root, 'pack');
  await mkdir(packDir);
  const pack = await run('npm', ['pack', '--pack-destination', packDir], { cwd: ROOT, env: cleanEnv() });
  expect(pack.code).toBe(0);
  const tarball = join(packDir, (await readdir(packDir)).find((n) => n.endsWith('.tgz'))!);
  await writeFile(join(p.root, 'package.json'), JSON.stringify({ name: 'pm2-e2e-app', private: true, version: '1.0.0' }));
  const install = await run('npm', ['install', tarball, '--prefer-offline', '--no-audit', '--no-fund'], { cwd: p.root, env: cleanEnv(), timeoutMs: 120_000 });
  if (install.code !== 0) throw new Error(`npm install failed: ${install.stderr}`);
  for (const name of await readdir(EXAMPLE)) await copyFile(join(EXAMPLE, name), join(p.root, name));
  await mkdir(p.source, { recursive: true });
  await mkdir(join(p.root, '.next', 'standalone'), { recursive: true });
}, 180_000);

afterAll(async () => {
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
    expect(await readFile(join(p.root, 'logs', 'upload-watcher.err.log'), 'utf8')).toBe('');
  });

  test('disabled by the environment: says so, exits 0, and PM2 does not restart it', async () => {
    await pm2(['delete', 'upload-watcher']);
    await writeTree(p.source, { 'late.mp3': 'written while the watcher is disabled' });
    await pm2(['start', 'ecosystem.config.cjs', '--only', 'upload-watcher'], { DISABLE_UPLOAD_SYNC: 'true' });
    await waitFor(async () => (await readFile(join(p.root, 'logs', 'upload-watcher.out.log'), 'utf8')).includes('disabled by the environment'), { message: 'the disabled message' });
    // Proving a restart did not happen takes time: it stays stopped, with no restart, for over a second.
    const until = Date.now() + 1500;
    while (Date.now() < until) {
      const app = await watcherApp();
      expect(app?.pm2_env).toMatchObject({ status: 'stopped', restart_time: 0 });
    }
    expect((await watcherApp())?.pm2_env.exit_code).toBe(0);
    expect(await exists(join(p.dest, 'late.mp3'))).toBe(false); // nothing was synced
  });
});
