/**
 * Issue 13, points 3 and 5: what the environment means to the CLI (DISABLE_UPLOAD_SYNC, the
 * extension filter, --file typos, --strict) and the CLI's small defects. The built CLI
 * (dist/cli.js) runs as a real process with a clean environment; `watch` on a terminal runs under
 * `script` (util-linux), which gives it a pseudo-terminal.
 */
import { afterEach, describe, expect, test } from '@jest/globals';
import { spawn } from 'node:child_process';
import { mkdir, readFile, rm, utimes } from 'node:fs/promises';
import { join } from 'node:path';
import type { CleanupResult, SyncResult } from '../src/index.js';
import { syncUploads } from '../src/index.js';
import { CLI, ROOT, cleanEnv, exists, readTree, runCli, tempProject, waitFor, writeTree } from './helpers.js';

const projects: Array<ReturnType<typeof tempProject>> = [];
async function project(files: Record<string, string> = { 'a.mp3': 'aaa', 'albums/b.mp3': 'bbbb', 'notes.txt': 'ccccc' }) {
  const p = tempProject('upload-sync-cli-env-');
  projects.push(p);
  await writeTree(p.source, files);
  return { ...p, env: cleanEnv({ UPLOAD_SYNC_LOCK_DIR: join(p.root, 'locks') }) };
}
afterEach(async () => {
  await Promise.all(projects.splice(0).map((p) => p.cleanup()));
});

const lines = (text: string) => text.split('\n').filter((l) => l !== '');

describe('DISABLE_UPLOAD_SYNC=true stops the CLI\'s sync and cleanup (the build\'s and cron\'s), --force runs them', () => {
  test('sync: exit 0, one stderr line saying why, nothing copied; --json: status disabled; --force syncs', async () => {
    const { root, source, dest, env } = await project();
    const off = { ...env, DISABLE_UPLOAD_SYNC: 'true', NODE_ENV: 'production' };
    const plain = await runCli(['sync', '--root', root], { env: off });
    expect(plain.code).toBe(0);
    expect(plain.stdout).toBe('');
    expect(lines(plain.stderr)).toEqual(['upload-sync: sync not run: DISABLE_UPLOAD_SYNC=true turns it off (pass --force to run it anyway)']);
    expect(await exists(dest)).toBe(false);

    const json = await runCli(['sync', '--root', root, '--json', '--cleanup'], { env: off });
    expect(json.code).toBe(0);
    const both = JSON.parse(json.stdout) as { sync: SyncResult; cleanup: null };
    expect(both).toMatchObject({ sync: { status: 'disabled', copied: [] }, cleanup: null });
    expect(await exists(dest)).toBe(false);

    const forced = await runCli(['sync', '--root', root, '--force'], { env: off });
    expect(forced.code).toBe(0);
    expect(forced.stderr).toBe('');
    expect(await readTree(dest)).toEqual(await readTree(source));
  });

  test('NODE_ENV and ENABLE_UPLOAD_SYNC keep their meaning for the CLI: a command is explicit, it runs without them', async () => {
    const { root, source, dest, env } = await project();
    const r = await runCli(['sync', '--root', root], { env: { ...env, ENABLE_UPLOAD_SYNC: 'false', NODE_ENV: 'development' } });
    expect(r.code).toBe(0);
    expect(r.stderr).toBe('');
    expect(await readTree(dest)).toEqual(await readTree(source));
  });

  test('cleanup: exit 0, one stderr line, nothing removed; --force removes; check runs anyway (it writes nothing)', async () => {
    const { root, dest, env } = await project({ 'keep.mp3': 'k' });
    await writeTree(dest, { 'keep.mp3': 'k', 'orphan.mp3': 'o' });
    const old = new Date(Date.now() - 90 * 24 * 3600 * 1000);
    await utimes(join(dest, 'orphan.mp3'), old, old);
    const off = { ...env, DISABLE_UPLOAD_SYNC: '1' };
    const r = await runCli(['cleanup', '--root', root, '--json'], { env: off });
    expect(r.code).toBe(0);
    expect((JSON.parse(r.stdout) as CleanupResult).status).toBe('disabled');
    expect(lines(r.stderr)).toEqual(['upload-sync: cleanup not run: DISABLE_UPLOAD_SYNC=true turns it off (pass --force to run it anyway)']);
    expect(await exists(join(dest, 'orphan.mp3'))).toBe(true);

    const check = await runCli(['check', '--root', root, '--json'], { env: off });
    expect(check.code).toBe(0);
    expect((JSON.parse(check.stdout) as SyncResult).status).toBe('ok');

    const forced = await runCli(['cleanup', '--root', root, '--force', '--json'], { env: off });
    expect(forced.code).toBe(0);
    expect((JSON.parse(forced.stdout) as CleanupResult).removed).toEqual(['orphan.mp3']);
  });

  test('a value that is not a boolean is a configuration error (exit 2), as everywhere', async () => {
    const { root, dest, env } = await project();
    const r = await runCli(['sync', '--root', root], { env: { ...env, DISABLE_UPLOAD_SYNC: 'maybe' } });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('DISABLE_UPLOAD_SYNC');
    expect(await exists(dest)).toBe(false);
  });

  test('--help of sync and cleanup, and the README\'s environment table, say so', async () => {
    for (const command of ['sync', 'cleanup']) {
      const help = await runCli([command, '--help'], { env: cleanEnv() });
      expect(help.stdout).toContain('--force');
      expect(help.stdout).toMatch(/DISABLE_UPLOAD_SYNC=true \("off everywhere"\) stops it too/);
    }
    const readme = await readFile(join(ROOT, 'README.md'), 'utf8');
    expect(readme).toMatch(/\| `DISABLE_UPLOAD_SYNC` \| `true`: off everywhere: .* and the CLI's `sync` and `cleanup` .*`--force`/);
  });
});

describe('silent no-ops are warnings; --strict makes them exit 1', () => {
  test('a --file that does not exist: a warning naming it, exit 0; --strict: exit 1', async () => {
    const { root, dest, env } = await project();
    const r = await runCli(['sync', '--root', root, '--file', 'nope.mp3'], { env });
    expect(r.code).toBe(0);
    expect(lines(r.stderr)).toEqual([expect.stringMatching(/^upload-sync: warning: --file nope\.mp3: no such file in .*public\/uploads/)]);
    const strict = await runCli(['sync', '--root', root, '--file', 'nope.mp3', '--file', 'a.mp3', '--strict'], { env });
    expect(strict.code).toBe(1);
    expect(strict.stderr).toContain('--file nope.mp3');
    expect(await readTree(dest)).toEqual({ 'a.mp3': 'aaa' }); // the good one is synced all the same
    const check = await runCli(['check', '--root', root, '--file', 'nope.mp3', '--strict'], { env });
    expect(check.code).toBe(1);
    // A run that failed as a whole says why itself: no warning on top of ERR_SOURCE_MISSING.
    const missing = await runCli(['sync', '--source', join(root, 'nowhere'), '--dest', dest, '--file', 'nope.mp3'], { env });
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('ERR_SOURCE_MISSING');
    expect(missing.stderr).not.toContain('warning');
  });

  test('no warning for a --file that exists, nor for one whose deletion the run mirrors (--delete)', async () => {
    const { root, source, env } = await project();
    expect((await runCli(['sync', '--root', root], { env })).code).toBe(0);
    const again = await runCli(['sync', '--root', root, '--file', 'a.mp3', '--strict'], { env });
    expect({ code: again.code, stderr: again.stderr }).toEqual({ code: 0, stderr: '' });
    await rm(join(source, 'a.mp3'));
    const gone = await runCli(['sync', '--root', root, '--file', 'a.mp3', '--delete', '--strict', '--json'], { env });
    expect({ code: gone.code, stderr: gone.stderr }).toEqual({ code: 0, stderr: '' });
    expect((JSON.parse(gone.stdout) as SyncResult).deleted).toEqual(['a.mp3']);
  });

  test('a filter that leaves out every file (UPLOAD_SYNC_EXTENSIONS=audoi): a warning, the count in the summary and the JSON; --strict: exit 1', async () => {
    const { root, dest, env } = await project();
    const typo = { ...env, UPLOAD_SYNC_EXTENSIONS: 'audoi' };
    const r = await runCli(['sync', '--root', root], { env: typo });
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/nothing to copy, 0 unchanged, 3 files left out by the extension filter in /);
    expect(lines(r.stderr)).toEqual([expect.stringMatching(/^upload-sync: warning: the extension filter left out every file \(3 files\).*UPLOAD_SYNC_EXTENSIONS allows only audoi/)]);
    const json = await runCli(['check', '--root', root, '--json'], { env: typo });
    expect(JSON.parse(json.stdout) as SyncResult).toMatchObject({ status: 'ok', filtered: 3, unchanged: 0, copied: [] });
    const strict = await runCli(['sync', '--root', root, '--strict'], { env: typo });
    expect(strict.code).toBe(1);
    expect(await exists(join(dest, 'a.mp3'))).toBe(false);
  });

  test('a filter that leaves out some files: counted in the summary and in DEBUG, no warning', async () => {
    const { root, env } = await project();
    const r = await runCli(['sync', '--root', root, '--strict'], { env: { ...env, UPLOAD_SYNC_EXTENSIONS: 'mp3', DEBUG: 'upload-sync:*' } });
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/copied 2 files \(7 B\), 0 unchanged, 1 file left out by the extension filter in /);
    expect(r.stderr).toMatch(/upload-sync:sync INFO Sync ok: 2 copied, .* 1 left out by the extension filter, 0 errors/);
    expect(r.stderr).not.toContain('warning');
  });

  test('SyncResult.filtered: counted by full and targeted runs, in every folder, not for dotfiles and partial uploads', async () => {
    const p = await project({ 'a.mp3': 'a', 'b.txt': 'b', 'deep/er/c.txt': 'c', 'deep/d.jpg': 'd', '.hidden.txt': 'h', 'e.txt.part': 'e' });
    const base = { source: p.source, dest: p.dest, lockDir: join(p.root, 'locks'), force: true, extensions: ['mp3'] };
    expect(await syncUploads(base)).toMatchObject({ status: 'ok', copied: ['a.mp3'], filtered: 3 });
    expect(await syncUploads({ ...base, files: ['b.txt', 'a.mp3', 'deep'] })).toMatchObject({ status: 'ok', copied: [], unchanged: 1, filtered: 3 });
    expect(await syncUploads({ ...base, extensions: '*' })).toMatchObject({ filtered: 0 });
  });
});

describe('the CLI\'s small defects (issue 13, point 5)', () => {
  test('no command: the help on stderr, nothing on stdout, exit 2 (a usage error); --help: stdout, exit 0', async () => {
    const r = await runCli([], { env: cleanEnv() });
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/Usage: upload-sync <command>/);
    const help = await runCli(['--help'], { env: cleanEnv() });
    expect({ code: help.code, stderr: help.stderr }).toEqual({ code: 0, stderr: '' });
    expect(help.stdout).toMatch(/Usage: upload-sync <command>/);
  });

  test.each([
    [['cleanup', '--older-than', '-1'], /^upload-sync: --older-than: expected a number of days >= 0, got "-1": an age cannot be negative$/m],
    [['sync', '--cleanup', '--older-than', '-7'], /^upload-sync: --older-than: expected a number of days >= 0, got "-7": an age cannot be negative$/m],
    [['cleanup', '--max-delete', '-5'], /^upload-sync: --max-delete: expected a whole number >= 1, got "-5"$/m],
    [['watch', '--force', '--stable-ms', '-5'], /--stable-ms.*>= 0, got "-5"/],
  ])('%j: a negative value is named, not parseArgs\' "ambiguous"', async (args, message) => {
    const { root, env } = await project();
    const r = await runCli([...args, '--root', root], { env });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(message);
    expect(r.stderr).not.toContain('ambiguous');
  });

  test('sync --cleanup takes --all, --older-than and --max-delete; without --cleanup they are refused by name', async () => {
    const { root, source, dest, env } = await project({ 'keep.mp3': 'k' });
    await writeTree(dest, { 'keep.mp3': 'k', 'orphan.mp3': 'o', 'young.mp3': 'y' });
    const old = new Date(Date.now() - 10 * 24 * 3600 * 1000);
    for (const f of ['keep.mp3', 'orphan.mp3']) await utimes(join(dest, f), old, old);
    await utimes(join(source, 'keep.mp3'), old, old);
    const r = await runCli(['sync', '--root', root, '--cleanup', '--all', '--older-than', '5', '--max-delete', '10', '--json'], { env });
    expect(r.code).toBe(0);
    const { cleanup } = JSON.parse(r.stdout) as { cleanup: CleanupResult };
    // --all: by age alone, keep.mp3 too (the old find -mtime +5 -delete); young.mp3 is too recent.
    expect(cleanup.removed).toEqual(['keep.mp3', 'orphan.mp3']);
    expect(await exists(join(dest, 'young.mp3'))).toBe(true);

    const stray = await runCli(['sync', '--root', root, '--all'], { env });
    expect(stray.code).toBe(2);
    expect(stray.stderr).toContain('--all is a flag of the cleanup: add --cleanup');
  });

  test.each([
    ['sync', ['sync', '--json'], { UPLOAD_SYNC_STRATEGY: 'zip' }, 'UPLOAD_SYNC_STRATEGY'],
    ['cleanup', ['cleanup', '--json', '--older-than', 'abc'], {}, '--older-than'],
    ['sync --cleanup', ['sync', '--cleanup', '--json', '--older-than', '-1'], {}, '--older-than'],
    ['watch', ['watch', '--json', '--force'], { UPLOAD_SYNC_STABLE_MS: 'soon' }, 'UPLOAD_SYNC_STABLE_MS'],
    ['an unknown flag', ['check', '--json', '--everything'], {}, '--everything'],
  ])('--json and a configuration error (%s): a JSON failure on stdout, the message on stderr, exit 2', async (_, args, extra, named) => {
    const { root, dest, env } = await project();
    const r = await runCli([...args, '--root', root], { env: { ...env, ...extra } });
    expect(r.code).toBe(2);
    const out = JSON.parse(r.stdout) as { status: string; errors: Array<{ path: string; code: string; message: string }> };
    expect(out).toEqual({ status: 'failed', errors: [{ path: '', code: 'ERR_CONFIG', message: expect.stringContaining(named) }] });
    expect(r.stderr).toContain(named);
    expect(await exists(dest)).toBe(false);
  });

  test('run from .next/standalone: the summary shows source and dest the same way (both absolute)', async () => {
    const { root, source, dest, env } = await project();
    const standalone = join(root, '.next', 'standalone');
    await mkdir(standalone, { recursive: true });
    const r = await runCli(['sync'], { cwd: standalone, env });
    expect(r.code).toBe(0);
    expect(r.stdout.startsWith(`Done: ${source} -> ${dest}: copied 3 files`)).toBe(true);
    // From the root both are under the cwd: both relative.
    const fromRoot = await runCli(['sync'], { cwd: root, env });
    expect(fromRoot.stdout).toMatch(/^Done: public\/uploads -> \.next\/standalone\/public\/uploads: /);
  });

  test('every error code of the union is in the README\'s table, and nothing else is (ERR_LOCK_COMPROMISED was never raised)', async () => {
    const union = await readFile(join(ROOT, 'src', 'shared', 'errors.ts'), 'utf8');
    const declared = [.../export type UploadSyncErrorCode =([^;]*);/.exec(union)![1]!.matchAll(/'([A-Z_]+)'/g)].map((m) => m[1]).sort();
    const readme = await readFile(join(ROOT, 'README.md'), 'utf8');
    const section = readme.slice(readme.indexOf('#### Error codes'), readme.indexOf('\n## ', readme.indexOf('#### Error codes')));
    const documented = [...section.matchAll(/^\| `([A-Z_]+)` \|/gm)].map((m) => m[1]).sort();
    expect(documented).toEqual(declared);
    expect(declared).not.toContain('ERR_LOCK_COMPROMISED');
  });
});

test('CHANGELOG.md: a versioning note, then one section per version, Unreleased first, the package\'s version named', async () => {
  const changelog = await readFile(join(ROOT, 'CHANGELOG.md'), 'utf8');
  const { version } = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as { version: string };
  const headings = [...changelog.matchAll(/^## (.*)$/gm)].map((m) => m[1]!);
  expect(headings[0]).toBe('Versioning');
  expect(headings[1]).toMatch(/^Unreleased\b/);
  for (const h of headings.slice(2)) expect(h).toMatch(/^\d+\.\d+\.\d+ \(\d{4}-\d\d-\d\d\)$/);
  expect(headings.some((h) => h.includes(version))).toBe(true);
  for (const breaking of ['exit codes', 'error codes', 'results', 'environment variables']) expect(changelog).toContain(breaking);
});

describe('watch on a terminal', () => {
  test('a long first sync shows its progress line (stderr), erased before the first message', async () => {
    // Enough files that the first sync outlasts the progress line's half-second delay (about 3 s
    // here; 12,000 took 1.2 s, too close on a faster machine).
    const files: Record<string, string> = {};
    for (let i = 0; i < 30_000; i++) files[`d${i % 60}/f${i}.mp3`] = 'x'.repeat(64);
    const { root, env } = await project(files);
    const command = `${JSON.stringify(process.execPath)} ${JSON.stringify(CLI)} watch --force --root ${JSON.stringify(root)} --reconcile-ms 0 --stable-ms 0`;
    // script(1) runs the command on a pseudo-terminal and copies what it prints to our stdout.
    const child = spawn('script', ['-q', '-e', '-f', '-c', command, '/dev/null'], { env, stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    const closed = new Promise<number | null>((resolve) => child.on('close', resolve));
    try {
      await waitFor(() => out.includes('Ready: watching'), { timeoutMs: 60_000, message: 'the watcher ready' });
    } finally {
      child.stdin.write('\x03'); // Ctrl-C, through the terminal
    }
    await closed;
    expect(out).toMatch(/\r\x1b\[K\d+\/\d+ files, [\d.]+ [kM]?B of /);
    expect(out).toContain('copied 30000 files');
    // The line was erased before the first log line, so no log line starts after progress text.
    const beforeFirstLine = out.slice(0, out.search(/\[\d{4}-\d\d-\d\dT/)); // (ISO 8601 times)
    expect(beforeFirstLine.endsWith('\r\x1b[K')).toBe(true);
  }, 120_000);
});
