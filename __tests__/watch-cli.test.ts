import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, open, stat, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { afterEach, beforeEach, describe, expect, test } from '@jest/globals';
import { EXIT_DISABLED, describe as describeSync } from '../src/cli/watch.js';
import type { SyncResult } from '../src/index.js';
import { CLI, cleanEnv, exists, runCli, tempFiles, tempProject, waitFor, writeTree } from './helpers.js';

let p: ReturnType<typeof tempProject>;
let children: ChildProcess[] = [];
beforeEach(async () => {
  p = tempProject('upload-sync-watch-cli-');
  await mkdir(p.source, { recursive: true });
});
afterEach(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  children = [];
  await p.cleanup();
});

/** `upload-sync watch` as PM2 runs it: a child with an IPC channel, cwd at the project root. */
function startWatch(args: string[] = [], env: Record<string, string> = {}) {
  const child = spawn(process.execPath, [CLI, 'watch', '--stable-ms', '100', '--debounce-ms', '20', ...args], {
    cwd: p.root,
    env: cleanEnv({ ENABLE_UPLOAD_SYNC: 'true', UPLOAD_SYNC_LOCK_DIR: join(p.root, 'locks'), ...env }),
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
  });
  children.push(child);
  let stdout = '';
  let stderr = '';
  const messages: unknown[] = [];
  child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  child.on('message', (m) => messages.push(m));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  return { child, exited, messages, stdout: () => stdout, stderr: () => stderr };
}

/** Each line stamped with its time, ISO 8601 in UTC (PM2's logs have none of their own). */
const LINE = /^\[\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\] (INFO|WARN|ERROR): \S/;

describe('upload-sync watch', () => {
  test('tells its parent it is ready after the first sync, logs one line per sync, exits 0 on SIGTERM', async () => {
    await writeTree(p.source, { 'old.mp3': 'old' });
    const t = new Date(Date.now() - 3600_000);
    await utimes(join(p.source, 'old.mp3'), t, t);
    const w = startWatch();
    await waitFor(() => w.messages.includes('ready') || w.child.exitCode !== null, { message: `the ready message (stderr: ${w.stderr()})` });
    expect(await exists(join(p.dest, 'old.mp3'))).toBe(true); // ready comes after the first sync
    await writeTree(p.source, { 'albums/new.mp3': 'new' });
    await waitFor(() => w.stdout().includes('albums/new.mp3'), { message: 'the sync line' });
    expect(await exists(join(p.dest, 'albums/new.mp3'))).toBe(true);

    const t0 = performance.now();
    w.child.kill('SIGTERM');
    expect(await w.exited).toEqual({ code: 0, signal: null });
    expect(performance.now() - t0).toBeLessThan(5000);
    const lines = w.stdout().trimEnd().split('\n');
    expect(lines.every((l) => LINE.test(l))).toBe(true);
    expect(lines.filter((l) => l.includes('Synced: copied 1 file'))).toHaveLength(2); // old.mp3 at start, then albums/new.mp3
    expect(lines.some((l) => l.includes('Ready: watching public/uploads (native events)'))).toBe(true);
    expect(lines.slice(-2).map((l) => l.replace(/^\[[^\]]+\] /, ''))).toEqual(['INFO: Stopping (SIGTERM): finishing the sync in flight', 'INFO: Stopped']);
    expect(w.stderr()).toBe('');
  });

  test('SIGINT during a large copy: the copy finishes, nothing half-written, exit 0', async () => {
    const MB = 1024 * 1024;
    const size = 256 * MB;
    const fh = await open(join(p.source, 'big.wav'), 'w');
    for (let i = 0; i < size / MB; i++) await fh.write(Buffer.alloc(MB, i % 251));
    await fh.close();
    const t = new Date(Date.now() - 3600_000);
    await utimes(join(p.source, 'big.wav'), t, t);
    const w = startWatch(['--polling']);
    await waitFor(async () => (await tempFiles(p.dest)).length > 0 || w.child.exitCode !== null, { intervalMs: 1, message: 'the copy to start' });
    w.child.kill('SIGINT');
    expect(await w.exited).toEqual({ code: 0, signal: null });
    expect(await tempFiles(p.dest)).toEqual([]);
    expect((await stat(join(p.dest, 'big.wav'))).size).toBe(size);
    expect(w.stdout()).toContain('Stopping (SIGINT)');
    expect(w.messages).toEqual([]); // stopped before its first sync was done: never told PM2 it was ready
  });

  test('--json prints one result object per line per sync', async () => {
    const w = startWatch(['--json']);
    await waitFor(() => w.messages.includes('ready'), { message: 'the ready message' });
    await writeFile(join(p.source, 'a.mp3'), 'a');
    await waitFor(() => w.stdout().includes('a.mp3'), { message: 'the sync line' });
    w.child.kill('SIGTERM');
    expect((await w.exited).code).toBe(0);
    const results = w.stdout().trimEnd().split('\n').map((l) => JSON.parse(l) as { status: string; copied: string[] });
    expect(results.map((r) => r.copied)).toEqual([[], ['a.mp3']]);
    expect(results.every((r) => r.status === 'ok')).toBe(true);
    expect(w.stderr()).toContain('Ready: watching');
  });

  test('disabled by the environment: says so and exits at once with its own code (78), named in --help', async () => {
    await writeTree(p.source, { 'a.mp3': 'a' });
    const r = await runCli(['watch'], { cwd: p.root, env: cleanEnv() });
    // Not 0: PM2 records a death by signal as 0, and stop_exit_codes must tell the two apart.
    expect(EXIT_DISABLED).toBe(78);
    expect(r.code).toBe(EXIT_DISABLED);
    expect(r.stdout).toMatch(/disabled by the environment.*not watching/);
    const help = await runCli(['watch', '--help'], { env: cleanEnv() });
    expect(help.stdout).toContain('exits 78');
    expect(help.stdout).toContain('stop_exit_codes: [78]');
    expect(await exists(p.dest)).toBe(false);
    const off = await runCli(['watch', '--force'], { cwd: p.root, env: cleanEnv({ DISABLE_UPLOAD_SYNC: 'maybe' }) });
    expect(off.code).toBe(2); // a value that is not a boolean is a configuration error
  });

  test('a bad flag or variable is exit 2 with a message naming it', async () => {
    const flag = await runCli(['watch', '--force', '--stable-ms', 'abc'], { cwd: p.root, env: cleanEnv() });
    expect(flag.code).toBe(2);
    expect(flag.stderr).toContain('--stable-ms');
    const variable = await runCli(['watch'], { cwd: p.root, env: cleanEnv({ ENABLE_UPLOAD_SYNC: 'true', UPLOAD_SYNC_MAX_WAIT_MS: '-5' }) });
    expect(variable.code).toBe(2);
    expect(variable.stderr).toContain('UPLOAD_SYNC_MAX_WAIT_MS');
    const unknown = await runCli(['watch', '--nope'], { cwd: p.root, env: cleanEnv() });
    expect(unknown.code).toBe(2);
  });
});

test('the one line per sync names the codes of its errors (a shutdown\'s ERR_ABORTED is told from a failure)', () => {
  const result = (errors: Array<[string, string]>): SyncResult => ({
    status: errors.length === 0 ? 'ok' : 'partial',
    dryRun: false,
    copied: ['a.mp3', 'b.mp3'],
    updated: [],
    deleted: [],
    unchanged: 3,
    filtered: 0,
    errors: errors.map(([path, code]) => ({ path, code, message: `${code} on ${path}` })),
    bytes: 2048,
    durationMs: 12,
  });
  expect(describeSync(result([]))).toBe('Synced: copied 2 files (2.0 kB), 3 unchanged in 12 ms: a.mp3, b.mp3');
  expect(describeSync(result([['', 'ERR_ABORTED']]))).toBe('Synced in part: copied 2 files (2.0 kB), 3 unchanged, 1 error (ERR_ABORTED) in 12 ms: a.mp3, b.mp3');
  expect(describeSync(result([['c.mp3', 'EACCES'], ['d.mp3', 'ERR_CHANGED'], ['e.mp3', 'EACCES']]))).toBe(
    'Synced in part: copied 2 files (2.0 kB), 3 unchanged, 3 errors (EACCES ×2, ERR_CHANGED) in 12 ms: a.mp3, b.mp3',
  );
  // A failed sync copied nothing; it never reads "nothing to copy".
  expect(describeSync({ ...result([['', 'EROFS']]), status: 'failed', copied: [], bytes: 0 })).toBe('Sync failed: nothing copied, 3 unchanged, 1 error (EROFS) in 12 ms');
});
