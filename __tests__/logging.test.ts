/**
 * The log file in production use: what a sync and a cleanup write (through the built CLI, with
 * UPLOAD_SYNC_LOG_FILE as a PM2 app would set it), and rotation by rename while a run is logging.
 */
import { afterEach, describe, expect, test } from '@jest/globals';
import { readFile, rename, utimes } from 'node:fs/promises';
import { join } from 'node:path';
import { cleanEnv, exists, runCli, tempProject, waitFor, writeTree } from './helpers.js';

const LINE = /^\[\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\] (INFO|WARN|ERROR): \S/;
const DAY = 24 * 60 * 60 * 1000;

const projects: Array<ReturnType<typeof tempProject>> = [];
afterEach(async () => {
  await Promise.all(projects.splice(0).map((p) => p.cleanup()));
});

function project() {
  const p = tempProject('upload-sync-log-');
  projects.push(p);
  const logFile = join(p.root, 'logs', 'upload-sync.log');
  return { ...p, logFile, env: cleanEnv({ UPLOAD_SYNC_LOCK_DIR: join(p.root, 'locks'), UPLOAD_SYNC_LOG_FILE: logFile }) };
}

const linesOf = async (file: string) => (await readFile(file, 'utf8')).split('\n').filter((l) => l !== '');
/** The message part of a line, without the timestamp and level. */
const message = (line: string) => line.replace(/^\[[^\]]+\] \w+: /, '');

describe('the log file', () => {
  test('after a sync: start, each file copied, the totals and the outcome; one line per event, no contents', async () => {
    const { root, logFile, env, source } = project();
    await writeTree(source, { 'a.mp3': 'SECRET-CONTENT-A', 'albums/b.mp3': 'SECRET-CONTENT-B' });
    expect((await runCli(['sync', '--root', root], { env })).code).toBe(0);
    const lines = await linesOf(logFile);
    for (const line of lines) expect(line).toMatch(LINE);
    const messages = lines.map(message);
    expect(messages).toHaveLength(4);
    expect(messages[0]).toBe(`Sync started: ${source} -> ${join(root, '.next', 'standalone', 'public', 'uploads')} (full)`);
    // Files are copied 4 at a time: their lines come in the order the copies end.
    expect(messages.slice(1, 3).sort()).toEqual(['Copied a.mp3 (16 B)', 'Copied albums/b.mp3 (16 B)']);
    expect(messages[3]).toMatch(/^Sync ok: 2 copied, 0 updated, 0 deleted, 0 unchanged, 0 errors, 32 B in \d+ ms$/);
    expect(await readFile(logFile, 'utf8')).not.toContain('SECRET-CONTENT');

    // A failure is logged at ERROR, the cause and the outcome.
    expect((await runCli(['sync', '--root', root, '--source', join(root, 'gone')], { env })).code).toBe(1);
    const failed = (await linesOf(logFile)).slice(lines.length);
    expect(failed[1]).toMatch(/ERROR: Sync failed: ERR_SOURCE_MISSING: Source folder .*gone does not exist/);
    expect(failed[2]).toMatch(/ERROR: Sync failed: 0 copied/);
  });

  test('after a cleanup: start, each file removed, folders removed, the totals and the outcome', async () => {
    const { root, logFile, env, source, dest } = project();
    await writeTree(source, { 'keep.mp3': 'k' });
    await writeTree(dest, { 'keep.mp3': 'k', 'gone/old.mp3': 'old!', '.upload-sync-1-x.tmp': 'tmp' });
    const old = new Date(Date.now() - 45 * DAY);
    await utimes(join(dest, 'gone', 'old.mp3'), old, old);
    await utimes(join(dest, '.upload-sync-1-x.tmp'), old, old);
    expect((await runCli(['cleanup', '--root', root], { env })).code).toBe(0);
    const lines = await linesOf(logFile);
    for (const line of lines) expect(line).toMatch(LINE);
    expect(lines.map(message)).toEqual([
      `Cleanup started: ${dest}: orphans older than 30 days (source ${source}), stale temp files`,
      'Removed stale temp file .upload-sync-1-x.tmp (3 B, 45 days old)',
      'Removed orphan gone/old.mp3 (4 B, 45 days old)',
      'Removed empty folder gone',
      expect.stringMatching(/^Cleanup ok: 2 removed \(7 B\), 1 kept, 0 errors in \d+ ms$/),
    ]);

    // A refusal is logged at ERROR with its code, then the outcome.
    expect((await runCli(['cleanup', '--root', root, '--source', join(root, 'unmounted'), '--dry-run'], { env })).code).toBe(1);
    const refused = (await linesOf(logFile)).slice(lines.length);
    expect(refused[0]).toMatch(/INFO: Cleanup started \(dry run\): /);
    expect(refused[1]).toMatch(/ERROR: Cleanup failed: ERR_SOURCE_EMPTY: Source folder .*unmounted does not exist; refusing/);
    expect(refused[2]).toMatch(/ERROR: Cleanup failed \(dry run\): 0 removed/);
  });

  test('rotation: the file renamed while a sync is logging loses no line and doubles none', async () => {
    const { root, logFile, env, source } = project();
    const count = 1500;
    const names = Array.from({ length: count }, (_, i) => `f${String(i).padStart(4, '0')}.mp3`);
    await writeTree(source, Object.fromEntries(names.map((n) => [n, `song ${n}`])));

    // logrotate's default: rename the file, the writer's next line makes a new one.
    const running = runCli(['sync', '--root', root], { env });
    await waitFor(() => exists(logFile), { intervalMs: 1, message: 'the log file to appear' });
    const rotated = `${logFile}.1`;
    await rename(logFile, rotated);
    const r = await running;
    expect(r.code).toBe(0);

    const before = await linesOf(rotated);
    const after = await linesOf(logFile);
    // The rename happened mid-run: the run started in the old file and ended in the new one.
    expect(message(before[0]!)).toMatch(/^Sync started: /);
    expect(before.some((l) => message(l).startsWith('Sync ok'))).toBe(false);
    expect(message(after[after.length - 1]!)).toMatch(new RegExp(`^Sync ok: ${count} copied`));

    const all = [...before, ...after];
    for (const line of all) expect(line).toMatch(LINE);
    const expected = ['Sync started', ...names.map((n) => `Copied ${n} (`), `Sync ok: ${count} copied`];
    expect(all).toHaveLength(expected.length);
    for (const start of expected) expect(all.filter((l) => message(l).startsWith(start))).toHaveLength(1);
  });
});
