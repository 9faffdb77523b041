/** The built CLI (`dist/cli.js`), run as a real process with a clean environment. */
import { afterEach, describe, expect, test } from '@jest/globals';
import { mkdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { SyncResult } from '../src/index.js';
import { ROOT, cleanEnv, exists, readTree, runCli, tempFiles, tempProject, writeTree } from './helpers.js';

const pkg = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as { version: string };

const projects: Array<ReturnType<typeof tempProject>> = [];
/** A project with a few uploads; its lock folder is inside the temp root, so nothing is left in the OS tmpdir. */
async function project(files: Record<string, string> = { 'a.mp3': 'aaa', 'albums/b.mp3': 'bbbb', 'albums/live/c.flac': 'ccccc' }) {
  const p = tempProject('upload-sync-cli-');
  projects.push(p);
  await writeTree(p.source, files);
  return { ...p, env: cleanEnv({ UPLOAD_SYNC_LOCK_DIR: join(p.root, 'locks') }) };
}
afterEach(async () => {
  await Promise.all(projects.splice(0).map((p) => p.cleanup()));
});

const json = (stdout: string) => JSON.parse(stdout) as SyncResult;

describe('usage', () => {
  test('--help: exit 0, lists the commands', async () => {
    const r = await runCli(['--help'], { env: cleanEnv() });
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/Usage: upload-sync <command>/);
    expect(r.stdout).toMatch(/^\s+sync\s+\S/m);
    expect(r.stdout).toMatch(/^\s+check\s+\S/m);
    expect(r.stderr).toBe('');
  });

  test('sync --help: exit 0, lists its options', async () => {
    const r = await runCli(['sync', '--help'], { env: cleanEnv() });
    expect(r.code).toBe(0);
    for (const flag of ['--file', '--delete', '--dry-run', '--json', '--root']) expect(r.stdout).toContain(flag);
  });

  test('--version prints the package version', async () => {
    const r = await runCli(['--version'], { env: cleanEnv() });
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toBe(pkg.version);
  });

  test('an unknown command: exit 2, named on stderr', async () => {
    const r = await runCli(['synk'], { env: cleanEnv() });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('synk');
    expect(r.stdout).toBe('');
  });

  test('an unknown flag: exit 2, named on stderr, nothing synced', async () => {
    const { root, dest, env } = await project();
    const r = await runCli(['sync', '--root', root, '--bogus'], { env });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--bogus');
    expect(await exists(dest)).toBe(false);
  });

  test('no command: exit 2 and the help on stderr (a usage error)', async () => {
    const r = await runCli([], { env: cleanEnv() });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/Usage: upload-sync <command>/);
    expect(r.stdout).toBe('');
  });
});

describe('sync', () => {
  test('copies the tree (exit 0); a second run says nothing was copied', async () => {
    const { root, source, dest, env } = await project();
    const first = await runCli(['sync', '--root', root], { env });
    expect(first.code).toBe(0);
    expect(first.stdout).toMatch(/copied 3 files/);
    expect(await readTree(dest)).toEqual(await readTree(source));
    expect(await tempFiles(dest)).toEqual([]);

    const second = await runCli(['sync', '--root', root], { env });
    expect(second.code).toBe(0);
    expect(second.stdout).toMatch(/nothing to copy/);
    expect(second.stdout).toMatch(/3 unchanged/);
  });

  test('--json prints only a JSON result on stdout', async () => {
    const { root, source, dest, env } = await project();
    const r = await runCli(['sync', '--root', root, '--json'], { env });
    expect(r.code).toBe(0);
    expect(r.stdout.trimStart().startsWith('{')).toBe(true);
    const result = json(r.stdout);
    expect(result.status).toBe('ok');
    expect(result.dryRun).toBe(false);
    expect(result.copied).toEqual(['a.mp3', 'albums/b.mp3', 'albums/live/c.flac']);
    expect(result.bytes).toBe(12);
    expect(await readTree(dest)).toEqual(await readTree(source));
  });

  test('check --json reports what a sync would do and writes nothing', async () => {
    const { root, dest, env } = await project();
    const r = await runCli(['check', '--root', root, '--json'], { env });
    expect(r.code).toBe(0);
    const result = json(r.stdout);
    expect(result.status).toBe('ok');
    expect(result.dryRun).toBe(true);
    expect(result.copied).toEqual(['a.mp3', 'albums/b.mp3', 'albums/live/c.flac']);
    expect(await exists(dest)).toBe(false);
  });

  test('--file copies only that file', async () => {
    const { root, dest, env } = await project();
    const r = await runCli(['sync', '--root', root, '--file', 'a.mp3', '--json'], { env });
    expect(r.code).toBe(0);
    expect(json(r.stdout).copied).toEqual(['a.mp3']);
    expect(await readTree(dest)).toEqual({ 'a.mp3': 'aaa' });
  });

  test('--file outside the source: exit 1, ERR_OUTSIDE, nothing written', async () => {
    const { root, dest, env } = await project();
    const r = await runCli(['sync', '--root', root, '--file', '../etc/passwd', '--json'], { env });
    expect(r.code).toBe(1);
    const result = json(r.stdout);
    expect(result.status).toBe('failed');
    expect(result.errors.map((e) => e.code)).toEqual(['ERR_OUTSIDE']);
    expect(result.copied).toEqual([]);
    expect(await readTree(dest)).toEqual({});
  });

  test('a missing source: exit 1, ERR_SOURCE_MISSING', async () => {
    const p = tempProject('upload-sync-cli-');
    projects.push(p);
    const r = await runCli(['sync', '--root', p.root, '--json'], { env: cleanEnv({ UPLOAD_SYNC_LOCK_DIR: join(p.root, 'locks') }) });
    expect(r.code).toBe(1);
    const result = json(r.stdout);
    expect(result.status).toBe('failed');
    expect(result.errors.map((e) => e.code)).toEqual(['ERR_SOURCE_MISSING']);
    expect(await exists(p.dest)).toBe(false);

    const plain = await runCli(['sync', '--root', p.root], { env: cleanEnv({ UPLOAD_SYNC_LOCK_DIR: join(p.root, 'locks') }) });
    expect(plain.code).toBe(1);
    expect(plain.stderr).toContain('ERR_SOURCE_MISSING');
  });

  test('a bad environment value: exit 2, stderr names the variable and the value', async () => {
    const { root, dest, env } = await project();
    const r = await runCli(['sync', '--root', root], { env: { ...env, UPLOAD_SYNC_STRATEGY: 'zip' } });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('UPLOAD_SYNC_STRATEGY');
    expect(r.stderr).toContain('zip');
    expect(await exists(dest)).toBe(false);
  });

  test('DISABLE_UPLOAD_SYNC=true stops a sync (status disabled, exit 0) unless --force (more in cli-env.test.ts)', async () => {
    const { root, source, dest, env } = await project();
    const off = { ...env, DISABLE_UPLOAD_SYNC: 'true', NODE_ENV: 'production' };
    const r = await runCli(['sync', '--root', root, '--json'], { env: off });
    expect(r.code).toBe(0);
    expect(json(r.stdout).status).toBe('disabled');
    expect(await exists(dest)).toBe(false);
    const forced = await runCli(['sync', '--root', root, '--json', '--force'], { env: off });
    expect(json(forced.stdout).status).toBe('ok');
    expect(await readTree(dest)).toEqual(await readTree(source));
  });

  test('run from <root>/.next/standalone without --root: syncs <root>/public/uploads into the standalone output', async () => {
    const { root, source, dest, env } = await project();
    const standalone = join(root, '.next', 'standalone');
    await mkdir(standalone, { recursive: true });
    const r = await runCli(['sync', '--json'], { cwd: standalone, env });
    expect(r.code).toBe(0);
    expect(json(r.stdout).copied).toHaveLength(3);
    expect(await readTree(dest)).toEqual(await readTree(source));
    // The cwd was not taken as the root: no mirror nested under .next/standalone/.next/standalone.
    expect(await exists(join(standalone, '.next'))).toBe(false);
  });

  test('--delete removes from dest a file deleted from source; without it the file stays', async () => {
    const { root, source, dest, env } = await project();
    expect((await runCli(['sync', '--root', root], { env })).code).toBe(0);
    await rm(join(source, 'albums', 'b.mp3'));

    const keep = await runCli(['sync', '--root', root, '--json'], { env });
    expect(keep.code).toBe(0);
    expect(json(keep.stdout).deleted).toEqual([]);
    expect(await exists(join(dest, 'albums', 'b.mp3'))).toBe(true);

    const del = await runCli(['sync', '--root', root, '--delete', '--json'], { env });
    expect(del.code).toBe(0);
    expect(json(del.stdout).deleted).toEqual(['albums/b.mp3']);
    expect(await readTree(dest)).toEqual(await readTree(source));
  });
});
