/**
 * examples/next-app run where it is, as someone who cloned the repository would: `npm install` in
 * the example (its `upload-sync` is `file:../..`), `npm run build`, `npm start`. The repository
 * around it has its own lockfile, which is what used to break it: Next took the repository as the
 * project root, traced all of it into the standalone output and put server.js under
 * .next/standalone/examples/next-app/. The repository is reproduced in a temp folder (its package
 * files, lockfile and dist/) so nothing is written into the working copy.
 * Needs the npm registry (or a warm npm cache) and dist/. `SKIP_NEXT_E2E=1` skips it, as the other
 * Next test; CI never sets it.
 */
import { mkdtempSync, realpathSync } from 'node:fs';
import { cp, lstat, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { ROOT, cleanEnv, exists } from './helpers.js';
import { MINUTES, commands, copyExample, get, servers, startServer, stopServer } from './next-helpers.js';

const skip = process.env.SKIP_NEXT_E2E === '1';
let work = '';
let app = '';
let standalone = '';
let buildOutput = '';
const env = () => cleanEnv({ NEXT_TELEMETRY_DISABLED: '1', UPLOAD_SYNC_LOCK_DIR: join(work, 'locks') });
const { timings, must } = commands(env);

beforeAll(async () => {
  if (skip) return;
  work = realpathSync(mkdtempSync(join(tmpdir(), 'upload-sync-inplace-')));
  const repo = join(work, 'repo');
  const pkg = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as { files: string[] };
  for (const entry of ['package.json', 'package-lock.json', ...pkg.files]) await cp(join(ROOT, entry), join(repo, entry), { recursive: true });
  app = join(repo, 'examples', 'next-app');
  standalone = join(app, '.next', 'standalone');
  await copyExample(app); // with its package.json as committed: upload-sync is file:../..
  await must('npm install', 'npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error'], app, 6 * MINUTES);
  buildOutput = await must('build', 'npm', ['run', 'build'], app, 6 * MINUTES);
}, 15 * MINUTES);

afterAll(async () => {
  for (const child of servers) await stopServer({ child });
  if (work !== '') await rm(work, { recursive: true, force: true });
  if (!skip) console.log(`next in-place timings (ms): ${JSON.stringify(timings)}`);
}, 2 * MINUTES);

(skip ? describe.skip : describe)('examples/next-app built where it is (upload-sync from file:../..)', () => {
  test('upload-sync is installed as a copy of the package, not a link into the repository', async () => {
    const installed = join(app, 'node_modules', 'upload-sync');
    expect((await lstat(installed)).isSymbolicLink()).toBe(false);
    // What the package ships (its `files`, by top-level name) and package.json: no src/, no __tests__/.
    const { files } = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as { files: string[] };
    const shipped = [...new Set([...files.map((f) => f.split('/')[0]!), 'package.json'])].sort();
    expect(shipped).toEqual(expect.arrayContaining(['README.md', 'dist']));
    expect(shipped).not.toContain('src');
    expect((await readdir(installed)).sort()).toEqual(shipped);
  });

  test('the standalone output is the app alone: server.js at its top, nothing of the repository traced in', async () => {
    expect(await exists(join(standalone, 'server.js'))).toBe(true);
    const top = await readdir(standalone);
    expect(top).not.toContain('examples');
    expect(top).not.toContain('src');
    expect(top).not.toContain('__tests__');
    expect(buildOutput).not.toContain('Dynamic filesystem access');
    expect(buildOutput).toMatch(/Done: public\/uploads -> \.next\/standalone\/public\/uploads/); // the build's sync
  });

  test('npm start serves the app, and an upload plays at once', async () => {
    const server = await startServer(standalone, env());
    try {
      const form = new FormData();
      const song = Buffer.alloc(4096, 7);
      form.append('file', new File([song], 'in place.mp3', { type: 'audio/mpeg' }));
      const res = await fetch(`${server.base}/api/upload`, { method: 'POST', body: form });
      expect(res.status).toBe(201);
      const { url } = (await res.json()) as { url: string };
      const got = await get(`${server.base}${url}`);
      expect(got.status).toBe(200);
      expect(got.body.equals(song)).toBe(true);
    } finally {
      await stopServer(server);
    }
  }, 2 * MINUTES);
});
