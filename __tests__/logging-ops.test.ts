/**
 * What an operator reads (issue 13 point 4): every kind of sync in the log file, each line with its
 * time; nothing for a run that changed nothing (DEBUG keeps it); a failure as one line with the
 * reason and the fix; the watcher's "will retry" and "recovered" for a disk that was read-only or
 * full and works again (a real tmpfs, root only, as in full-disk.test.ts); a wait for the lock;
 * and `upload-sync check --strict` as a health check.
 */
import { afterEach, describe, expect, jest, test } from '@jest/globals';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { mkdir, readFile, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { createWatcher, syncUploads, type UploadWatcher } from '../src/index.js';
import { saveMultipart, saveUpload } from '../src/next.js';
import { acquireLock } from '../src/shared/lock.js';
import { CLI, cleanEnv, exists, ROOT, run, runCli, tempProject, waitFor, writeTree } from './helpers.js';

/** The old scripts' line: `[YYYY-MM-DD HH:MM:SS] LEVEL: message`. */
const LINE = /^\[\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\] (INFO|WARN|ERROR): \S/;
/** What the watcher prints on stdout and stderr: its own ISO 8601 UTC time. */
const STAMPED = /^\[\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\] (INFO|WARN|ERROR): \S/;
const HOUR_AGO = () => new Date(Date.now() - 3600_000);

const projects: Array<ReturnType<typeof tempProject>> = [];
const watchers: UploadWatcher[] = [];
const mounts: string[] = [];
afterEach(async () => {
  await Promise.all(watchers.splice(0).map((w) => w.close()));
  for (const m of mounts.splice(0)) execFileSync('umount', ['-l', m], { stdio: 'pipe' });
  await Promise.all(projects.splice(0).map((p) => p.cleanup()));
});

function project() {
  const p = tempProject('upload-sync-logops-');
  projects.push(p);
  const logFile = join(p.root, 'logs', 'upload-sync.log');
  const lockDir = join(p.root, 'locks');
  return { ...p, logFile, lockDir, env: cleanEnv({ UPLOAD_SYNC_LOCK_DIR: lockDir, UPLOAD_SYNC_LOG_FILE: logFile }) };
}

const linesOf = async (file: string) => ((await exists(file)) ? (await readFile(file, 'utf8')).split('\n').filter((l) => l !== '') : []);
const message = (line: string) => line.replace(/^\[[^\]]+\] \w+: /, '');

/** The pid of a process that has exited: a temp file named after it belongs to nobody. */
async function deadPid(): Promise<number> {
  return Number((await run(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'])).stdout);
}

describe('the log file: every sync, one line per event, each with its time', () => {
  test("saveUpload's sync, saveMultipart's, the watcher's and the CLI's all write it; the file the route had synced is not told again by the watcher", async () => {
    const p = project();
    await mkdir(p.source, { recursive: true });
    const common = { root: p.root, force: true, lockDir: p.lockDir, logFile: p.logFile };
    const w = createWatcher({ ...common, stableMs: 50, debounceMs: 20, reconcileMs: 0 });
    watchers.push(w);
    await w.ready;
    // The start reconcile of an empty source changed nothing: not a line.
    expect(await linesOf(p.logFile)).toEqual([]);

    const saved = await saveUpload(Buffer.from('saved bytes'), { ...common, name: 'saved.mp3' });
    expect(saved.sync?.status).toBe('ok');
    const body = new FormData();
    body.append('file', new File([Buffer.from('multipart bytes')], 'from form.mp3', { type: 'audio/mpeg' }));
    const { files } = await saveMultipart(new Request('http://localhost/api/upload', { method: 'POST', body }), { ...common });
    expect(files[0]!.sync?.status).toBe('ok');
    // The watcher heard of both (the route synced them already: its runs change nothing) and of this one.
    await writeTree(p.source, { 'watched.mp3': 'watched bytes' });
    await waitFor(async () => (await linesOf(p.logFile)).some((l) => l.includes('Copied watched.mp3')), { message: "the watcher's copy in the log file" });
    await w.close(); // (so that the CLI's run is the one that copies cli.mp3)
    await writeTree(p.source, { 'cli.mp3': 'cli bytes' });
    expect((await runCli(['sync', '--root', p.root, '--file', 'cli.mp3'], { env: p.env })).code).toBe(0);

    const lines = await linesOf(p.logFile);
    for (const line of lines) expect(line).toMatch(LINE);
    const messages = lines.map(message);
    const copied = (rel: string) => messages.filter((m) => m === `Copied ${rel} (${Buffer.byteLength(`${rel.split('.')[0]} bytes`)} B)`);
    expect(copied('saved.mp3')).toHaveLength(1);
    expect(messages.filter((m) => /^Copied (?!saved|watched|cli)\S+\.mp3 \(15 B\)$/.test(m))).toHaveLength(1); // the multipart one, under its random name
    expect(copied('watched.mp3')).toHaveLength(1);
    expect(copied('cli.mp3')).toHaveLength(1);
    // Four runs that copied: four starts and four summaries, whatever the watcher ran besides.
    expect(messages.filter((m) => m.startsWith('Sync started: '))).toHaveLength(4);
    expect(messages.filter((m) => /^Sync ok: 1 copied, 0 updated, 0 deleted, \d+ unchanged, 0 errors, \d+ B in \d+ ms$/.test(m))).toHaveLength(4);
    expect(messages.some((m) => m.includes('0 copied'))).toBe(false); // the watcher's runs of the route's files: silent
  });

  test('a run that changed nothing writes nothing at info level; DEBUG=upload-sync:* still shows it', async () => {
    const p = project();
    await writeTree(p.source, { 'a.mp3': 'a', 'b/c.mp3': 'c' });
    expect((await runCli(['sync', '--root', p.root], { env: p.env })).code).toBe(0);
    const after = await linesOf(p.logFile);
    expect(after.length).toBeGreaterThan(0);

    // Again, full and targeted, through the CLI and the API: the mirror is in sync.
    const again = await runCli(['sync', '--root', p.root], { env: { ...p.env, DEBUG: 'upload-sync:*' } });
    expect(again.code).toBe(0);
    expect(again.stderr).toMatch(/upload-sync:sync DEBUG Sync ok: 0 copied, 0 updated, 0 deleted, 2 unchanged/);
    expect(again.stderr).toMatch(/upload-sync:sync INFO Sync started: /);
    expect((await runCli(['sync', '--root', p.root, '--file', 'a.mp3'], { env: p.env })).code).toBe(0);
    const logger = { info: jest.fn(), warn: jest.fn(), error: jest.fn() };
    expect((await syncUploads({ root: p.root, force: true, lockDir: p.lockDir, logFile: p.logFile, files: ['b/c.mp3'], logger })).status).toBe('ok');
    expect(await linesOf(p.logFile)).toEqual(after);
    expect(logger.info).not.toHaveBeenCalled();

    // Something to tell again: told, with its start.
    await writeTree(p.source, { 'new.mp3': 'new' });
    expect((await runCli(['sync', '--root', p.root], { env: p.env })).code).toBe(0);
    expect((await linesOf(p.logFile)).slice(after.length).map(message)).toEqual([
      expect.stringMatching(/^Sync started: .* \(full\)$/),
      'Copied new.mp3 (3 B)',
      expect.stringMatching(/^Sync ok: 1 copied, 0 updated, 0 deleted, 2 unchanged, 0 errors/),
    ]);
  });

  test('upload-sync watch prints no line for a sync that changed nothing, and stamps each line with its ISO 8601 UTC time', async () => {
    const p = project();
    await writeTree(p.source, { 'old.mp3': 'old' });
    await utimes(join(p.source, 'old.mp3'), HOUR_AGO(), HOUR_AGO());
    const { spawn } = await import('node:child_process');
    // stable 1 s: time for the CLI's targeted sync (the route's, here) to copy routed.mp3 first.
    const child = spawn(process.execPath, [CLI, 'watch', '--force', '--root', p.root, '--stable-ms', '1000', '--debounce-ms', '20', '--reconcile-ms', '0'], {
      env: { ...p.env, DEBUG: 'upload-sync:sync' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise((resolve) => child.on('exit', resolve));
    try {
      await waitFor(() => stdout.includes('Ready: watching'), { message: `the watcher ready (stderr: ${stderr})` });
      // An upload the route synced itself (a targeted CLI sync here): the watcher's run of it changes nothing.
      await writeTree(p.source, { 'routed.mp3': 'routed' });
      expect((await runCli(['sync', '--root', p.root, '--file', 'routed.mp3'], { env: p.env })).code).toBe(0);
      await waitFor(() => /DEBUG Sync ok: 0 copied, 0 updated, 0 deleted, 1 unchanged/.test(stderr), { message: "the watcher's run of routed.mp3 (DEBUG)" });
      await writeTree(p.source, { 'own.mp3': 'own' });
      await waitFor(() => stdout.includes('own.mp3'), { message: "the watcher's line for own.mp3" });
    } finally {
      child.kill('SIGTERM');
      await exited;
    }
    const lines = stdout.trimEnd().split('\n');
    for (const line of lines) expect(line).toMatch(STAMPED);
    expect(lines.filter((l) => l.includes('nothing to copy'))).toEqual([]);
    expect(lines.filter((l) => l.includes('Synced: copied 1 file'))).toHaveLength(2); // old.mp3 at start, own.mp3
  });
});

describe('failures: one line with the reason and the fix', () => {
  test('a file that cannot be synced: one ERROR line with its code and reason, one stderr line', async () => {
    const p = project();
    await writeTree(p.source, { 'a.mp3': 'a', 'b.mp3': 'b' });
    // A folder in dest where a.mp3 must go: that file fails (ERR_TYPE_CONFLICT), b.mp3 is copied.
    await writeTree(p.dest, { 'a.mp3/stray': 'x' });
    const r = await runCli(['sync', '--root', p.root], { env: p.env });
    expect(r.code).toBe(1);
    const lines = await linesOf(p.logFile);
    for (const line of lines) expect(line).toMatch(LINE);
    const errors = lines.filter((l) => / ERROR: /.test(l));
    expect(errors).toEqual([expect.stringMatching(/ERROR: Failed a\.mp3: ERR_TYPE_CONFLICT: /), expect.stringMatching(/ERROR: Sync partial: 1 copied, .* 1 error,/)]);
    // The CLI's own stderr: one line per error, never an object dump.
    expect(r.stderr.trimEnd().split('\n').filter((l) => l.includes('a.mp3'))).toHaveLength(1);
  });
});

// ---------------------------------------------------------------------------------------------
// A real disk that is read-only, then full (tmpfs; root only).

function tmpfsRefused(): string | null {
  if (process.platform !== 'linux') return `not Linux (${process.platform})`;
  if (process.getuid?.() !== 0) return 'not root';
  const probe = mkdtempSync(join(tmpdir(), 'upload-sync-logops-probe-'));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', probe], { stdio: 'pipe' });
    execFileSync('umount', [probe], { stdio: 'pipe' });
    return null;
  } catch (err) {
    return `mount refused: ${(err as Error).message}`;
  } finally {
    rmSync(probe, { recursive: true, force: true });
  }
}
const refused = tmpfsRefused();
const IN_CI = /^(1|true|yes)$/i.test(process.env.CI ?? '');
if (refused !== null) console.log(`logging-ops: NO real tmpfs (${refused}): ${IN_CI ? 'failing, as CI must run these tests' : 'skipping the disk tests'}`);
const disk = refused === null || IN_CI ? describe : describe.skip;

/** Mounts a tmpfs of `size` on dest (made first), unmounted after the test. */
async function mountDest(dest: string, options: string): Promise<void> {
  await mkdir(dest, { recursive: true });
  execFileSync('mount', ['-t', 'tmpfs', '-o', options, 'tmpfs', dest], { stdio: 'pipe' });
  mounts.push(dest);
}

disk('the watcher on a disk that fails, then works again', () => {
  test('read-only: each failure one line with the fix, "will retry", then "recovered" once it is remounted read-write (log file, stamped)', async () => {
    const p = project();
    await writeTree(p.source, { 'a.mp3': 'a' });
    await utimes(join(p.source, 'a.mp3'), HOUR_AGO(), HOUR_AGO());
    await mountDest(p.dest, 'size=1m,mode=755');
    execFileSync('mount', ['-o', 'remount,ro', p.dest], { stdio: 'pipe' });
    const w = createWatcher({ root: p.root, force: true, lockDir: p.lockDir, logFile: p.logFile, stableMs: 50, debounceMs: 20, reconcileMs: 0 });
    watchers.push(w);
    w.on('error', () => undefined);
    await w.ready;
    await waitFor(async () => (await linesOf(p.logFile)).some((l) => /will retry: a\.mp3 in 1 s \(EROFS, 1 failure\)/.test(l)), { message: 'the "will retry" line' });
    execFileSync('mount', ['-o', 'remount,rw', p.dest], { stdio: 'pipe' });
    await waitFor(async () => (await linesOf(p.logFile)).some((l) => /INFO: a\.mp3 recovered: synced after \d+ failures?$/.test(l)), { timeoutMs: 30_000, message: 'the "recovered" line' });
    expect(await readFile(join(p.dest, 'a.mp3'), 'utf8')).toBe('a');
    await w.close();

    const lines = await linesOf(p.logFile);
    for (const line of lines) expect(line).toMatch(LINE);
    const failed = lines.filter((l) => l.includes('ERROR: Failed a.mp3: '));
    expect(failed.length).toBeGreaterThan(0);
    for (const l of failed) expect(l).toMatch(/EROFS: .*read-only file system.*\(hint: .* is on a read-only filesystem: remount it read-write/);
  });

  test('upload-sync sync on a read-only dest: one stderr line per file with its hint, one to-fix line, one ERROR line per file in the log file', async () => {
    const p = project();
    await writeTree(p.source, { 'a.mp3': 'a', 'b/c.mp3': 'c' });
    await mountDest(p.dest, 'size=1m,mode=755');
    execFileSync('mount', ['-o', 'remount,ro', p.dest], { stdio: 'pipe' });
    const r = await runCli(['sync', '--root', p.root], { env: p.env });
    expect(r.code).toBe(1);
    const stderr = r.stderr.trimEnd().split('\n');
    // (The folder b and the two files: each an error entry.)
    expect(stderr.filter((l) => l.startsWith('upload-sync: to fix: '))).toEqual([
      `upload-sync: to fix: the filesystem of ${p.dest} is read-only (3 paths not written; a disk error can make Linux remount it so). Check dmesg, remount it read-write (sudo mount -o remount,rw <mount point>), then sync again: nothing half-written was left.`,
    ]);
    const errorLines = stderr.filter((l) => / EROFS: /.test(l));
    expect(errorLines).toHaveLength(3);
    for (const l of errorLines) expect(l).toMatch(/^upload-sync: (a\.mp3|b|b\/c\.mp3): EROFS: .*\(hint: .* is on a read-only filesystem: remount it read-write/);
    const failed = (await linesOf(p.logFile)).filter((l) => / ERROR: Failed /.test(l));
    expect(failed.map((l) => /Failed (\S+):/.exec(l)![1]).sort()).toEqual(['a.mp3', 'b', 'b/c.mp3']);
    // The summary of a run that failed never reads "nothing to copy".
    expect(r.stdout).toMatch(/^Failed: .*: nothing copied, 0 unchanged, 3 errors in /);
    for (const l of failed) expect(l).toMatch(/: EROFS: .*\(hint: .* is on a read-only filesystem: remount it read-write/);
  });

  test('full: ENOSPC with the fix, "will retry", then "recovered" once space is freed', async () => {
    const p = project();
    const big = Buffer.alloc(256 * 1024, 7);
    await writeTree(p.source, { 'big.wav': big });
    await utimes(join(p.source, 'big.wav'), HOUR_AGO(), HOUR_AGO());
    await mountDest(p.dest, 'size=128k,mode=755');
    const w = createWatcher({ root: p.root, force: true, lockDir: p.lockDir, logFile: p.logFile, stableMs: 50, debounceMs: 20, reconcileMs: 0 });
    watchers.push(w);
    w.on('error', () => undefined);
    await w.ready;
    await waitFor(async () => (await linesOf(p.logFile)).some((l) => /will retry: big\.wav in 1 s \(ENOSPC, 1 failure\)/.test(l)), { message: 'the "will retry" line' });
    execFileSync('mount', ['-o', 'remount,size=1m', p.dest], { stdio: 'pipe' });
    await waitFor(async () => (await linesOf(p.logFile)).some((l) => /INFO: big\.wav recovered: synced after \d+ failures?$/.test(l)), { timeoutMs: 30_000, message: 'the "recovered" line' });
    await w.close();
    const lines = await linesOf(p.logFile);
    for (const line of lines) expect(line).toMatch(LINE);
    expect(lines.find((l) => l.includes('ERROR: Failed big.wav: '))).toMatch(/ENOSPC: .*\(hint: the filesystem is full: free space \(df -h .*\), then sync again/);
  });
});

describe('the lock', () => {
  test('a full sync that waited over a second for the lock says how long; one that did not wait says nothing of it', async () => {
    const p = project();
    await writeTree(p.source, { 'a.mp3': 'a' });
    expect((await runCli(['sync', '--root', p.root], { env: p.env })).code).toBe(0);
    expect((await linesOf(p.logFile)).some((l) => l.includes('for the sync lock'))).toBe(false);

    await writeTree(p.source, { 'b.mp3': 'b' });
    const release = await acquireLock(p.lockDir, p.dest, 60_000, { onCompromised: () => undefined });
    const t0 = Date.now();
    const running = runCli(['sync', '--root', p.root], { env: p.env });
    // What is tested is a wait of over a second: the lock is held that long.
    await delay(1500);
    await release();
    expect((await running).code).toBe(0);
    const lines = (await linesOf(p.logFile)).map(message);
    const waited = lines.find((l) => l.startsWith('Waited '));
    expect(waited).toMatch(/^Waited \d+\.\d s for the sync lock \(/);
    const seconds = Number(/^Waited (\d+\.\d) s/.exec(waited!)![1]);
    expect(seconds).toBeGreaterThanOrEqual(1);
    expect(seconds * 1000).toBeLessThanOrEqual(Date.now() - t0 + 100);
  });
});

describe('upload-sync check --strict: a health check', () => {
  const check = (p: ReturnType<typeof project>, ...args: string[]) => runCli(['check', '--root', p.root, '--strict', '--json', ...args], { env: p.env });
  type Health = { ok: boolean; behind: number; toDelete: number; deadTemps: Array<{ where: string; path: string; pid: number }>; warnings: string[] };
  const healthOf = (stdout: string) => (JSON.parse(stdout) as { health: Health }).health;

  test('in sync: exit 0, health ok; behind: exit 1, and 0 without --strict; a file changed within the grace period is on its way', async () => {
    const p = project();
    await writeTree(p.source, { 'a.mp3': 'a' });
    expect((await runCli(['sync', '--root', p.root], { env: p.env })).code).toBe(0);
    const inSync = await check(p);
    expect(inSync.code).toBe(0);
    expect(healthOf(inSync.stdout)).toEqual({ ok: true, behind: 0, toDelete: 0, deadTemps: [], warnings: [] });

    await writeTree(p.source, { 'albums/late.mp3': 'late' });
    const fresh = await check(p); // just written: an upload on its way, not a mirror behind
    expect(fresh.code).toBe(0);
    expect(healthOf(fresh.stdout)).toMatchObject({ ok: true, behind: 0 });
    expect(JSON.parse(fresh.stdout).copied).toEqual(['albums/late.mp3']);

    await utimes(join(p.source, 'albums/late.mp3'), HOUR_AGO(), HOUR_AGO());
    const behind = await check(p);
    expect(behind.code).toBe(1);
    expect(healthOf(behind.stdout)).toMatchObject({ ok: false, behind: 1, toDelete: 0 });
    expect(behind.stderr).toMatch(/^upload-sync: not healthy: 1 file to copy \(changed over 60 s ago\); to fix: run 'upload-sync sync'/m);
    expect((await runCli(['check', '--root', p.root], { env: p.env })).code).toBe(0); // not a health check without --strict
    // A dry run's lines in the log file say what it would do, never that it did.
    expect((await linesOf(p.logFile)).map(message)).toContain('Would copy albums/late.mp3 (4 B)');
    expect((await linesOf(p.logFile)).map(message)).not.toContain('Copied albums/late.mp3 (4 B)');
    expect((await runCli(['check', '--root', p.root, '--strict'], { env: p.env })).code).toBe(1);

    // With --delete, a file the mirror should no longer have.
    await rm(join(p.source, 'a.mp3'));
    await utimes(join(p.source, 'albums/late.mp3'), new Date(), new Date());
    expect((await check(p)).code).toBe(0);
    const orphan = await check(p, '--delete');
    expect(orphan.code).toBe(1);
    expect(healthOf(orphan.stdout)).toMatchObject({ ok: false, behind: 0, toDelete: 1 });
  });

  test("a temp file of a dead process, in dest or in source: exit 1, named with its pid; a live process's is not", async () => {
    const p = project();
    await writeTree(p.source, { 'a.mp3': 'a' });
    expect((await runCli(['sync', '--root', p.root], { env: p.env })).code).toBe(0);
    const pid = await deadPid();
    const dead = `.upload-sync-${pid.toString(36)}-0123456789ab.tmp`;
    const live = `.upload-sync-${process.pid.toString(36)}-0123456789ab.tmp`;
    await writeTree(p.dest, { [`albums/${dead}`]: 'half', [live]: 'in flight' });
    const r = await check(p);
    expect(r.code).toBe(1);
    expect(healthOf(r.stdout)).toEqual({ ok: false, behind: 0, toDelete: 0, deadTemps: [{ where: 'dest', path: `albums/${dead}`, pid }], warnings: [] });
    expect(r.stderr).toContain(`1 temp file of dead processes (first: dest albums/${dead}, pid ${pid})`);

    await rm(join(p.dest, 'albums', dead));
    expect((await check(p)).code).toBe(0); // the live one is someone's copy in flight
    await writeFile(join(p.source, dead), 'an upload that died');
    expect(healthOf((await check(p)).stdout).deadTemps).toEqual([{ where: 'source', path: dead, pid }]);
    // A sync removes it; then healthy.
    expect((await runCli(['sync', '--root', p.root], { env: p.env })).code).toBe(0);
    expect((await check(p)).code).toBe(0);
  });
});

describe("the PM2 example's health check", () => {
  test('upload-sync-health.cron, as written: a mirror behind goes to syslog with the reason, the JSON stays for a monitor; in sync, nothing', async () => {
    const p = project();
    const cron = await readFile(join(ROOT, 'examples', 'pm2', 'upload-sync-health.cron'), 'utf8');
    const entries = cron.split('\n').filter((l) => /^[*\d]/.test(l));
    expect(entries).toHaveLength(1);
    const fields = entries[0]!.split(/\s+/);
    expect(fields.slice(0, 5)).toEqual(['*/5', '*', '*', '*', '*']);
    // The line's command, in this test's folders: the project, /var/tmp, and `logger` (syslog) recorded.
    const tmp = join(p.root, 'var-tmp');
    const bin = join(p.root, 'bin');
    const command = fields.slice(6).join(' ').replaceAll('/srv/app', p.root).replaceAll('/var/tmp', tmp);
    await writeTree(p.root, {
      'node_modules/.bin/upload-sync': `#!/bin/sh\nexec ${JSON.stringify(process.execPath)} ${JSON.stringify(CLI)} "$@"\n`,
      'bin/logger': `#!/bin/sh\nprintf '%s\\n' "$*" >> ${JSON.stringify(join(p.root, 'syslog'))}\n`,
    });
    await mkdir(tmp);
    execFileSync('chmod', ['+x', join(p.root, 'node_modules/.bin/upload-sync'), join(bin, 'logger')]);
    const env = { ...p.env, PATH: `${bin}:${process.env.PATH}` };
    const health = async () => (JSON.parse(await readFile(join(tmp, 'upload-sync-health.json'), 'utf8')) as { health: { ok: boolean } }).health;

    await writeTree(p.source, { 'a.mp3': 'a' });
    await utimes(join(p.source, 'a.mp3'), HOUR_AGO(), HOUR_AGO());
    expect((await run('sh', ['-c', command], { env })).code).toBe(0);
    expect(await health()).toMatchObject({ ok: false, behind: 1 });
    expect(await readFile(join(p.root, 'syslog'), 'utf8')).toMatch(/^-t upload-sync -p user\.err mirror not healthy: upload-sync: not healthy: 1 file to copy \(changed over 60 s ago\); to fix: /);

    expect((await runCli(['sync', '--root', p.root], { env: p.env })).code).toBe(0);
    await rm(join(p.root, 'syslog'));
    expect((await run('sh', ['-c', command], { env })).code).toBe(0);
    expect(await health()).toMatchObject({ ok: true, behind: 0 });
    expect(await exists(join(p.root, 'syslog'))).toBe(false);
  });
});

describe("the example upload route's lines in the web log", () => {
  test('a sync that failed: one stamped WARN line per error entry, never an object dump; an unexpected failure: one stamped ERROR line', async () => {
    const p = project();
    // The example imports 'upload-sync/next', as an app does: here, this package's source.
    jest.unstable_mockModule('upload-sync/next', () => import('../src/next.js'), { virtual: true });
    // (A path in a variable: the type check of this project does not follow it into the example's own project.)
    const route = '../examples/next-app/app/api/upload/route.js';
    const { POST } = (await import(route)) as { POST: (request: Request) => Promise<Response> };
    const saved = { ...process.env };
    Object.assign(process.env, { UPLOAD_SYNC_ROOT: p.root, ENABLE_UPLOAD_SYNC: 'true', UPLOAD_SYNC_LOCK_DIR: p.lockDir });
    const printed: unknown[][] = [];
    const spies = (['error', 'warn', 'log'] as const).map((m) => jest.spyOn(console, m).mockImplementation((...args: unknown[]) => void printed.push(args)));
    const post = () => {
      const body = new FormData();
      body.append('file', new File([Buffer.from('song')], 'song.mp3', { type: 'audio/mpeg' }));
      return POST(new Request('http://localhost/api/upload', { method: 'POST', body }));
    };
    try {
      // The mirror's place is taken by a file: the upload is saved, its sync fails as a whole.
      await writeTree(p.root, { '.next/standalone/public/uploads': 'not a folder' });
      const res = await post();
      expect(res.status).toBe(201);
      expect(((await res.json()) as { sync: string }).sync).toBe('failed');
      expect(printed).toHaveLength(1);
      expect(printed[0]).toHaveLength(1);
      expect(printed[0]![0]).toMatch(STAMPED);
      expect(printed[0]![0]).toMatch(/\] WARN: upload-sync: [0-9a-f-]+\.mp3 saved, not mirrored: \(run\): ERR_TYPE_CONFLICT: Dest .* exists and is not a folder$/);

      // The uploads folder cannot be made (public is a file): a 500, and one ERROR line with where it was thrown.
      printed.length = 0;
      await rm(join(p.root, 'public'), { recursive: true });
      await writeTree(p.root, { public: 'not a folder' });
      const broken = await post();
      expect(broken.status).toBe(500);
      expect(printed).toHaveLength(1);
      expect(printed[0]).toHaveLength(1);
      expect(printed[0]![0]).toMatch(STAMPED);
      expect(printed[0]![0]).toMatch(/\] ERROR: upload failed: ENOTDIR: not a directory, mkdir '.*\/public\/uploads' \(at .*\)$/);
      expect(String(printed[0]![0])).not.toContain('\n');
    } finally {
      for (const spy of spies) spy.mockRestore();
      for (const key of Object.keys(process.env)) if (!(key in saved)) delete process.env[key];
      Object.assign(process.env, saved);
    }
  });
});
