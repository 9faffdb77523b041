/**
 * `upload-sync assets` (the built CLI, a real process): after `next build`, public/ but the uploads
 * and .next/static go into .next/standalone. The oracle is what Next's docs say to run,
 * `cp -r public .next/standalone/ && cp -r .next/static .next/standalone/.next/`, minus the uploads.
 */
import { afterEach, expect, test } from '@jest/globals';
import { mkdir, readlink, symlink } from 'node:fs/promises';
import { join } from 'node:path';
import { cleanEnv, readTree, run, runCli, tempProject, writeTree } from './helpers.js';

const projects: Array<ReturnType<typeof tempProject>> = [];
/** A built app as `next build` leaves it: public/ with uploads, .next/static, .next/standalone with its mirror. */
async function builtApp() {
  const p = tempProject('upload-sync-assets-');
  projects.push(p);
  await writeTree(p.root, {
    'public/favicon.ico': 'ico',
    'public/img/logo.png': 'png',
    'public/media/intro.mp4': 'mp4',
    'public/uploads/song.mp3': 'upload',
    'public/uploads/albums/b.mp3': 'upload b',
    '.next/static/chunks/app.js': 'js',
    '.next/static/css/app.css': 'css',
    '.next/standalone/server.js': 'server',
    '.next/standalone/public/uploads/old.mp3': 'mirrored before',
  });
  await symlink('img/logo.png', join(p.root, 'public', 'logo-link.png'));
  return p;
}
afterEach(async () => {
  await Promise.all(projects.splice(0).map((p) => p.cleanup()));
});

/** What Next's docs' `cp -r` gives, without the uploads folder and with the mirror as it was. */
async function oracle(root: string, leaveOut: string): Promise<Record<string, string>> {
  const copy = join(root, 'oracle');
  await mkdir(join(copy, '.next'), { recursive: true });
  for (const [from, to] of [['public', copy], [join('.next', 'static'), join(copy, '.next')]] as const) {
    const r = await run('cp', ['-r', join(root, from), to]);
    expect(r.code).toBe(0);
  }
  await run('rm', ['-rf', join(copy, 'public', leaveOut)]);
  await writeTree(copy, { 'server.js': 'server', 'public/uploads/old.mp3': 'mirrored before' });
  return readTree(copy);
}

test('copies public/ but the uploads, and .next/static, as cp -r would; the mirror is left alone', async () => {
  const p = await builtApp();
  const r = await runCli(['assets'], { cwd: p.root, env: cleanEnv() });
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  expect(r.stdout).toBe('Copied public/ (4 files, without public/uploads) and .next/static (2 files) into .next/standalone\n');
  const got = await readTree(join(p.root, '.next', 'standalone'));
  expect(got).toEqual(await oracle(p.root, 'uploads'));
  expect(got['public/uploads/song.mp3']).toBeUndefined();
  expect(await readlink(join(p.root, '.next', 'standalone', 'public', 'logo-link.png'))).toBe('img/logo.png');
});

test('from .next/standalone (where PM2 runs) it means the app around it; UPLOAD_SYNC_SOURCE names the folder left out', async () => {
  const p = await builtApp();
  const r = await runCli(['assets'], { cwd: join(p.root, '.next', 'standalone'), env: cleanEnv({ UPLOAD_SYNC_SOURCE: 'public/media' }) });
  expect(r.code).toBe(0);
  expect(r.stdout).toMatch(/without public\/media\)/);
  const got = await readTree(join(p.root, '.next', 'standalone'));
  expect(got).toEqual(await oracle(p.root, 'media'));
  expect(got['public/uploads/song.mp3']).toBe('upload'); // not the uploads folder here: an ordinary public file
});

test('no next build with output: standalone: exit 2, saying what to do', async () => {
  const p = tempProject('upload-sync-assets-');
  projects.push(p);
  await writeTree(p.root, { 'public/favicon.ico': 'ico', '.next/static/chunks/app.js': 'js' });
  const r = await runCli(['assets'], { cwd: p.root, env: cleanEnv() });
  expect(r.code).toBe(2);
  expect(r.stdout).toBe('');
  expect(r.stderr).toMatch(/No \.next\/standalone in .*: set output: 'standalone' in next\.config and run `next build` first/);
});

test('--help says where it goes in the build', async () => {
  const r = await runCli(['assets', '--help'], { env: cleanEnv() });
  expect(r.code).toBe(0);
  expect(r.stdout).toContain('"build": "next build && upload-sync assets && upload-sync sync"');
});
