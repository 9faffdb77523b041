/**
 * `upload-sync cleanup` and `upload-sync sync --cleanup` through the built CLI (dist/cli.js), run
 * as real processes with a clean environment; and the progress line of a sync on a terminal.
 */
import { afterEach, describe, expect, test } from '@jest/globals';
import { rm, stat, utimes } from 'node:fs/promises';
import { join } from 'node:path';
import type { CleanupResult, SyncProgress, SyncResult } from '../src/index.js';
import { syncUploads } from '../src/index.js';
import { createProgressLine, formatProgress } from '../src/cli/progress.js';
import { cleanEnv, exists, readTree, runCli, tempProject, waitFor, writeTree } from './helpers.js';

const DAY = 24 * 60 * 60 * 1000;

const projects: Array<ReturnType<typeof tempProject>> = [];
afterEach(async () => {
  await Promise.all(projects.splice(0).map((p) => p.cleanup()));
});

/**
 * A synced-looking project: `keep.mp3` in both folders (old), `old.mp3` and `albums/gone.mp3`
 * orphans 40 days old, `new.mp3` an orphan of yesterday.
 */
async function project() {
  const p = tempProject('upload-sync-cli-cleanup-');
  projects.push(p);
  await writeTree(p.source, { 'keep.mp3': 'keep' });
  await writeTree(p.dest, { 'keep.mp3': 'keep', 'old.mp3': 'old', 'albums/gone.mp3': 'gone', 'new.mp3': 'new' });
  const ago = (days: number) => new Date(Date.now() - days * DAY);
  for (const [rel, days] of [['keep.mp3', 100], ['old.mp3', 40], ['albums/gone.mp3', 40], ['new.mp3', 1]] as const) {
    await utimes(join(p.dest, rel), ago(days), ago(days));
  }
  const synced = (await stat(join(p.dest, 'keep.mp3'))).mtime;
  await utimes(join(p.source, 'keep.mp3'), synced, synced); // the mirror is current for it
  return { ...p, env: cleanEnv({ UPLOAD_SYNC_LOCK_DIR: join(p.root, 'locks') }) };
}

/** stdout must be one JSON document and nothing else. */
function onlyJson<T>(stdout: string): T {
  const parsed = JSON.parse(stdout) as T;
  expect(stdout).toBe(`${JSON.stringify(parsed, null, 2)}\n`);
  return parsed;
}

describe('upload-sync cleanup', () => {
  test('--help: exit 0, every flag and examples; the main help and sync --help list it', async () => {
    const r = await runCli(['cleanup', '--help'], { env: cleanEnv() });
    expect(r.code).toBe(0);
    for (const flag of ['--older-than DAYS', '--all', '--max-delete N', '--dry-run', '--json', '--root', 'ERR_SOURCE_EMPTY']) expect(r.stdout).toContain(flag);
    expect(r.stdout).toMatch(/Examples:\n\s+upload-sync cleanup --dry-run/);
    const main = await runCli(['--help'], { env: cleanEnv() });
    expect(main.stdout).toMatch(/^\s+cleanup\s+\S/m);
    const sync = await runCli(['sync', '--help'], { env: cleanEnv() });
    expect(sync.stdout).toContain('--cleanup');
    expect(sync.stdout).toContain('upload-sync sync --cleanup');
  });

  test('--json: exit 0, stdout holds the result and nothing else; old orphans gone, the rest kept', async () => {
    const { root, dest, env } = await project();
    const r = await runCli(['cleanup', '--root', root, '--json'], { env });
    expect(r.code).toBe(0);
    const result = onlyJson<CleanupResult>(r.stdout);
    expect(result).toMatchObject({ status: 'ok', dryRun: false, removed: ['albums/gone.mp3', 'old.mp3'], kept: 2, bytesFreed: 7, errors: [] });
    expect(r.stderr).toBe('');
    expect(Object.keys(await readTree(dest))).toEqual(['keep.mp3', 'new.mp3']);
    expect(await exists(join(dest, 'albums'))).toBe(false);
  });

  test('off a terminal: one summary line on stdout', async () => {
    const { root, env } = await project();
    const r = await runCli(['cleanup', '--root', root], { env });
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^Done: cleanup of .*uploads \(orphans older than 30 days\): removed 2 files \(7 B\), 2 kept in \d+ ms\n$/);
    expect(r.stdout.split('\n')).toHaveLength(2);
    const verbose = await runCli(['cleanup', '--root', root, '--older-than', '0', '-v'], { env });
    expect(verbose.stdout).toMatch(/^ {2}- new\.mp3\nDone: .*removed 1 file \(3 B\), 1 kept/);
  });

  test('--dry-run: lists what would go, removes nothing', async () => {
    const { root, dest, env } = await project();
    const before = await readTree(dest);
    const r = await runCli(['cleanup', '--root', root, '--dry-run', '--json'], { env });
    expect(r.code).toBe(0);
    expect(onlyJson<CleanupResult>(r.stdout)).toMatchObject({ status: 'ok', dryRun: true, removed: ['albums/gone.mp3', 'old.mp3'] });
    expect(await readTree(dest)).toEqual(before);
  });

  test('--older-than overrides UPLOAD_SYNC_CLEANUP_DAYS, which overrides the default of 30', async () => {
    const { root, env } = await project();
    const fromEnv = await runCli(['cleanup', '--root', root, '--dry-run', '--json'], { env: { ...env, UPLOAD_SYNC_CLEANUP_DAYS: '50' } });
    expect(onlyJson<CleanupResult>(fromEnv.stdout).removed).toEqual([]);
    const fromFlag = await runCli(['cleanup', '--root', root, '--dry-run', '--json', '--older-than', '0.5'], { env: { ...env, UPLOAD_SYNC_CLEANUP_DAYS: '50' } });
    expect(onlyJson<CleanupResult>(fromFlag.stdout).removed).toEqual(['albums/gone.mp3', 'new.mp3', 'old.mp3']);
  });

  test('--all prunes by age alone, files still in the source too', async () => {
    const { root, dest, env } = await project();
    const r = await runCli(['cleanup', '--root', root, '--all', '--json'], { env });
    expect(r.code).toBe(0);
    expect(onlyJson<CleanupResult>(r.stdout).removed).toEqual(['albums/gone.mp3', 'keep.mp3', 'old.mp3']);
    expect(Object.keys(await readTree(dest))).toEqual(['new.mp3']);
  });

  test('--max-delete: exit 1, partial, the rest reported (JSON entries; one stderr line in plain mode)', async () => {
    const { root, dest, env } = await project();
    const r = await runCli(['cleanup', '--root', root, '--max-delete', '1', '--json'], { env });
    expect(r.code).toBe(1);
    const result = onlyJson<CleanupResult>(r.stdout);
    expect(result).toMatchObject({ status: 'partial', removed: ['albums/gone.mp3'], errors: [{ path: 'old.mp3', code: 'ERR_MAX_DELETE' }] });
    expect(await exists(join(dest, 'old.mp3'))).toBe(true);

    await writeTree(dest, { 'another.mp3': 'x' });
    await utimes(join(dest, 'another.mp3'), new Date(Date.now() - 40 * DAY), new Date(Date.now() - 40 * DAY));
    const plain = await runCli(['cleanup', '--root', root], { env: { ...env, UPLOAD_SYNC_MAX_DELETE: '1' } });
    expect(plain.stderr).toBe('upload-sync: stopped at the cap of 1 (--max-delete, UPLOAD_SYNC_MAX_DELETE): 1 file left for a later run, e.g. old.mp3\n');
    expect(plain.code).toBe(1);
    expect(plain.stdout).toMatch(/^Partly done: .*removed 1 file .*1 over the cap/);
  });

  test('a missing or empty source: exit 1, ERR_SOURCE_EMPTY, nothing removed', async () => {
    const { root, source, dest, env } = await project();
    const before = await readTree(dest);
    const moved = await runCli(['cleanup', '--root', root, '--source', join(root, 'unmounted'), '--json'], { env });
    expect(moved.code).toBe(1);
    expect(onlyJson<CleanupResult>(moved.stdout)).toMatchObject({ status: 'failed', removed: [], errors: [{ code: 'ERR_SOURCE_EMPTY' }] });

    await writeTree(source, { '.DS_Store': 'x', 'upload.mp3.part': 'x' });
    await rm(join(source, 'keep.mp3'));
    const plain = await runCli(['cleanup', '--root', root], { env });
    expect(plain.code).toBe(1);
    expect(plain.stdout).toMatch(/^Failed: /);
    expect(plain.stderr).toMatch(/^upload-sync: ERR_SOURCE_EMPTY: Source folder .* holds no file that would be synced/);
    expect(await readTree(dest)).toEqual(before);
  });

  test.each<[string, string[], Record<string, string>, RegExp]>([
    ['--older-than abc', ['--older-than', 'abc'], {}, /--older-than: expected a number of days >= 0, got "abc"/],
    ['--older-than -1', ['--older-than=-1'], {}, /--older-than: expected a number of days >= 0, got "-1"/],
    ['--max-delete 0', ['--max-delete', '0'], {}, /--max-delete: expected a whole number >= 1, got "0"/],
    ['UPLOAD_SYNC_CLEANUP_DAYS=soon', [], { UPLOAD_SYNC_CLEANUP_DAYS: 'soon' }, /Invalid environment variable UPLOAD_SYNC_CLEANUP_DAYS: .*"soon"/],
    ['UPLOAD_SYNC_MAX_DELETE=lots', [], { UPLOAD_SYNC_MAX_DELETE: 'lots' }, /UPLOAD_SYNC_MAX_DELETE.*"lots"/],
    ['an unknown flag', ['--everything'], {}, /--everything/],
  ])('%s: exit 2, the message on stderr, a JSON failure on stdout (--json), nothing removed', async (_, args, extraEnv, message) => {
    const { root, dest, env } = await project();
    const before = await readTree(dest);
    const r = await runCli(['cleanup', '--root', root, '--json', ...args], { env: { ...env, ...extraEnv } });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(message);
    expect(onlyJson<{ status: string; errors: Array<{ code: string; message: string }> }>(r.stdout)).toEqual({
      status: 'failed',
      errors: [{ path: '', code: 'ERR_CONFIG', message: expect.stringMatching(message) }],
    });
    expect(await readTree(dest)).toEqual(before);
  });
});

describe('upload-sync sync --cleanup', () => {
  test('syncs, then cleans: JSON {sync, cleanup}, exit 0', async () => {
    const { root, source, dest, env } = await project();
    await writeTree(source, { 'fresh.mp3': 'fresh upload' });
    const r = await runCli(['sync', '--root', root, '--cleanup', '--json'], { env });
    expect(r.code).toBe(0);
    const { sync, cleanup } = onlyJson<{ sync: SyncResult; cleanup: CleanupResult }>(r.stdout);
    expect(sync).toMatchObject({ status: 'ok', copied: ['fresh.mp3'], unchanged: 1 });
    expect(cleanup).toMatchObject({ status: 'ok', removed: ['albums/gone.mp3', 'old.mp3'], kept: 3 });
    expect(Object.keys(await readTree(dest))).toEqual(['fresh.mp3', 'keep.mp3', 'new.mp3']);
  });

  test('plain: one line for each, off a terminal', async () => {
    const { root, env } = await project();
    const r = await runCli(['sync', '--root', root, '--cleanup'], { env });
    expect(r.code).toBe(0);
    const lines = r.stdout.trimEnd().split('\n');
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(/^Done: .*public\/uploads -> .* nothing to copy, 1 unchanged in /);
    expect(lines[1]).toMatch(/^Done: cleanup of .* removed 2 files \(7 B\), 2 kept in /);
  });

  test('--dry-run: both parts dry, nothing changes', async () => {
    const { root, source, dest, env } = await project();
    await writeTree(source, { 'fresh.mp3': 'fresh upload' });
    const before = await readTree(dest);
    const r = await runCli(['sync', '--root', root, '--cleanup', '--dry-run', '--json'], { env });
    expect(r.code).toBe(0);
    const { sync, cleanup } = onlyJson<{ sync: SyncResult; cleanup: CleanupResult }>(r.stdout);
    expect(sync).toMatchObject({ dryRun: true, copied: ['fresh.mp3'] });
    expect(cleanup).toMatchObject({ dryRun: true, removed: ['albums/gone.mp3', 'old.mp3'] });
    expect(await readTree(dest)).toEqual(before);
  });

  test('a failed sync skips the cleanup: exit 1, cleanup null', async () => {
    const { root, dest, env } = await project();
    const before = await readTree(dest);
    const r = await runCli(['sync', '--root', root, '--source', join(root, 'nowhere'), '--cleanup', '--json'], { env });
    expect(r.code).toBe(1);
    const out = onlyJson<{ sync: SyncResult; cleanup: CleanupResult | null }>(r.stdout);
    expect(out.sync.errors.map((e) => e.code)).toEqual(['ERR_SOURCE_MISSING']);
    expect(out.cleanup).toBeNull();
    expect(await readTree(dest)).toEqual(before);
    const plain = await runCli(['sync', '--root', root, '--source', join(root, 'nowhere'), '--cleanup'], { env });
    expect(plain.code).toBe(1);
    expect(plain.stderr).toContain('cleanup skipped: the sync failed');
  });

  test('a partial cleanup makes the exit code 1', async () => {
    const { root, env } = await project();
    const r = await runCli(['sync', '--root', root, '--cleanup', '--json'], { env: { ...env, UPLOAD_SYNC_MAX_DELETE: '1' } });
    expect(r.code).toBe(1);
    const { sync, cleanup } = onlyJson<{ sync: SyncResult; cleanup: CleanupResult }>(r.stdout);
    expect(sync.status).toBe('ok');
    expect(cleanup.status).toBe('partial');
  });
});

describe('progress', () => {
  test('the engine reports planned totals, then each copy, ending at the totals', async () => {
    const p = tempProject('upload-sync-progress-');
    projects.push(p);
    const files: Record<string, string> = {};
    for (let i = 0; i < 20; i++) files[`f${i}.mp3`] = 'x'.repeat(100 + i);
    await writeTree(p.source, files);
    const seen: SyncProgress[] = [];
    const r = await syncUploads({ source: p.source, dest: p.dest, force: true, lockDir: join(p.root, 'locks'), onProgress: (s) => seen.push(s) });
    expect(r.copied).toHaveLength(20);
    const bytesTotal = Object.values(files).reduce((n, s) => n + s.length, 0);
    expect(seen[0]).toEqual({ filesDone: 0, filesTotal: 20, bytesDone: 0, bytesTotal });
    expect(seen[seen.length - 1]).toEqual({ filesDone: 20, filesTotal: 20, bytesDone: bytesTotal, bytesTotal });
    expect(seen).toHaveLength(21);
    for (let i = 1; i < seen.length; i++) expect(seen[i]!.filesDone).toBe(i);

    // A callback that throws never breaks a sync; a bad one is ERR_CONFIG.
    const again = await syncUploads({ source: p.source, dest: join(p.root, 'dest2'), force: true, lockDir: join(p.root, 'locks'), onProgress: () => { throw new Error('boom'); } });
    expect(again).toMatchObject({ status: 'ok', errors: [] });
    expect((await syncUploads({ source: p.source, dest: p.dest, force: true, onProgress: 'yes' as never })).errors[0]!.code).toBe('ERR_CONFIG');
  });

  test('formatProgress: files and bytes done of total, and the rate', () => {
    expect(formatProgress({ filesDone: 12, filesTotal: 40, bytesDone: 3_100_000, bytesTotal: 9_800_000 }, 2000)).toBe('12/40 files, 3.1 MB of 9.8 MB, 1.6 MB/s');
    expect(formatProgress({ filesDone: 0, filesTotal: 3, bytesDone: 0, bytesTotal: 500 }, 0)).toBe('0/3 files, 0 B of 500 B, 0 B/s');
  });

  test('the progress line is redrawn in place once the run lasts, cut to the width, and erased at the end', async () => {
    let text = '';
    const stream = { columns: 30, write: (s: string) => (text += s) };
    const line = createProgressLine(stream, { delayMs: 0, intervalMs: 5 });
    line.update({ filesDone: 1, filesTotal: 4, bytesDone: 10, bytesTotal: 40 });
    await waitFor(() => text.includes('1/4 files'), { message: 'the first frame' });
    line.update({ filesDone: 4, filesTotal: 4, bytesDone: 40, bytesTotal: 40 });
    await waitFor(() => text.includes('4/4 files'), { message: 'the second frame' });
    line.done();
    const frames = text.split('\r\x1b[K').filter(Boolean);
    for (const f of frames) expect(f.length).toBeLessThanOrEqual(29);
    expect(text.endsWith('\r\x1b[K')).toBe(true);
    const after = text;
    line.update({ filesDone: 5, filesTotal: 5, bytesDone: 50, bytesTotal: 50 });
    expect(text).toBe(after);

    // A quick run (shorter than the delay) draws nothing at all.
    let quiet = '';
    const quick = createProgressLine({ write: (s: string) => (quiet += s) }, { delayMs: 60_000, intervalMs: 5 });
    quick.update({ filesDone: 1, filesTotal: 1, bytesDone: 1, bytesTotal: 1 });
    quick.done();
    expect(quiet).toBe('');
  });
});
