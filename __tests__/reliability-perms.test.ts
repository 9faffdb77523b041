/**
 * Permissions. Root ignores permission bits, so when the tests run as root the sync runs in a child
 * process as `nobody` (spawn with uid/gid, as the watcher tests do); otherwise as the test user,
 * with chmod doing the refusing.
 *
 * An unreadable source file (or folder) is an error entry and the rest syncs; an unwritable dest is
 * `failed`, with a message that says what to fix (the old scripts' chown/chmod advice).
 */
import { afterEach, describe, expect, test } from '@jest/globals';
import { chmod, mkdir, readdir, stat, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { CleanupResult, SyncResult } from '../src/index.js';
import { CLI, DIST_ESM, cleanEnv, exists, readTree, tempFiles, tempProject, waitFor, writeTree } from './helpers.js';
import { AS_ROOT, giveToNobody, killChild, startNode, type Child } from './reliability-helpers.js';

let p: ReturnType<typeof tempProject>;
const children: Child[] = [];
afterEach(async () => {
  for (const c of children.splice(0)) await killChild(c);
  await p?.cleanup();
});

/** Every folder and file under `dir` (itself included) given to nobody. */
async function giveTreeToNobody(dir: string): Promise<void> {
  await giveToNobody(dir);
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const abs = join(dir, e.name);
    if (e.isDirectory()) await giveTreeToNobody(abs);
    else await giveToNobody(abs);
  }
}

/** A folder the sync's user cannot write: root's (0755) when we are root, else 0555. */
async function unwritable(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true });
  if (AS_ROOT) await chmod(dir, 0o755);
  else await chmod(dir, 0o555);
}

/** A project the sync's user owns: root folder traversable, source and locks its own. */
async function project(files: Record<string, string>): Promise<{ lockDir: string }> {
  p = tempProject('upload-sync-perms-');
  await chmod(p.root, 0o755);
  await writeTree(p.source, files);
  const lockDir = join(p.root, 'locks');
  await mkdir(lockDir);
  await giveTreeToNobody(p.root);
  return { lockDir };
}

/** `syncUploads` or `cleanupOld` in a child process run as nobody (when we are root). */
async function asUser<R>(fn: 'syncUploads' | 'cleanupOld', options: Record<string, unknown>): Promise<R> {
  const script = `
    import { ${fn} } from ${JSON.stringify(pathToFileURL(DIST_ESM).href)};
    const result = await ${fn}(${JSON.stringify({ force: true, ...options })});
    process.stdout.write(JSON.stringify(result));`;
  const child = startNode(['--input-type=module', '-e', script], { asNobody: true, env: cleanEnv() });
  children.push(child);
  const exit = await child.exited;
  expect({ exit, stderr: child.stderr() }).toEqual({ exit: { code: 0, signal: null }, stderr: '' });
  return JSON.parse(child.stdout()) as R;
}
const syncAsUser = (options: Record<string, unknown>) => asUser<SyncResult>('syncUploads', options);
const cleanupAsUser = (options: Record<string, unknown>) => asUser<CleanupResult>('cleanupOld', options);

/** The CLI run as nobody (when we are root). */
async function cliAsUser(args: string[], env: Record<string, string> = {}) {
  const child = startNode([CLI, ...args], { asNobody: true, env: cleanEnv(env) });
  children.push(child);
  const exit = await child.exited;
  return { code: exit.code, stdout: child.stdout(), stderr: child.stderr() };
}

describe(`permissions (${AS_ROOT ? 'as nobody, in child processes' : 'as the test user'})`, () => {
  test('an unreadable source file and folder are error entries (EACCES); the rest syncs', async () => {
    const { lockDir } = await project({ 'a.mp3': 'a', 'sub/c.mp3': 'c', 'locked.mp3': 'secret', 'private/x.mp3': 'x' });
    await chmod(join(p.source, 'locked.mp3'), 0o000);
    await chmod(join(p.source, 'private'), 0o000);
    await mkdir(join(p.root, '.next', 'standalone'), { recursive: true });
    await giveTreeToNobody(join(p.root, '.next'));

    const result = await syncAsUser({ source: p.source, dest: p.dest, lockDir });
    expect(result.status).toBe('partial');
    expect(result.errors.map((e) => [e.path, e.code])).toEqual([['locked.mp3', 'EACCES'], ['private', 'EACCES']]);
    expect(result.copied).toEqual(['a.mp3', 'sub/c.mp3']);
    expect(await readTree(p.dest)).toEqual({ 'a.mp3': 'a', 'sub/c.mp3': 'c' });
    expect(await tempFiles(p.dest)).toEqual([]);

    // The CLI: exit 1, the entries on stderr, and what to do about them.
    const run = await cliAsUser(['sync', '--source', p.source, '--dest', p.dest], { UPLOAD_SYNC_LOCK_DIR: lockDir });
    expect(run.code).toBe(1);
    expect(run.stderr).toContain('locked.mp3: EACCES');
    expect(run.stderr).toMatch(/to fix: .*cannot read 2 paths .*chmod -R a\+rX/);
    await chmod(join(p.source, 'private'), 0o755);
  });

  test('an unwritable dest: failed, and the result\'s message says what to fix (chown/chmod)', async () => {
    const { lockDir } = await project({ 'a.mp3': 'a', 'sub/c.mp3': 'c' });
    await unwritable(p.dest); // exists, not writable by the sync's user
    const result = await syncAsUser({ source: p.source, dest: p.dest, lockDir });
    expect(result.status).toBe('failed');
    expect(result.copied).toEqual([]);
    expect(result.errors.length).toBeGreaterThan(0);
    expect(result.errors.filter((e) => e.code !== 'EACCES' && e.code !== 'EPERM')).toEqual([]);
    expect(await readdir(p.dest)).toEqual([]);
    // What to fix, in the result itself (a route's or the watcher's log has nothing else).
    expect(result.errors.map((e) => e.message).join('\n')).toMatch(/chown|chmod/);

    // Dest missing, its parent not writable: failed as well, with the same advice.
    await unwritable(join(p.root, 'readonly-parent'));
    const missing = await syncAsUser({ source: p.source, dest: join(p.root, 'readonly-parent', 'uploads'), lockDir });
    expect(missing.status).toBe('failed');
    expect(missing.errors.map((e) => e.code)).toEqual(['EACCES']);
    expect(missing.errors[0]!.message).toMatch(/chown|chmod|install -d/);
  });

  test('cleanup that cannot remove an orphan: partial, the rest removed, and the entry says what to fix (chown/chmod)', async () => {
    const { lockDir } = await project({ 'keep.mp3': 'k' });
    await writeTree(p.dest, { 'keep.mp3': 'k', 'gone.mp3': 'orphan' });
    await giveTreeToNobody(join(p.root, '.next'));
    const locked = join(p.dest, 'locked');
    await mkdir(locked);
    await writeFile(join(locked, 'orphan.mp3'), 'orphan');
    const old = new Date(Date.now() - 40 * 86_400_000);
    for (const rel of ['gone.mp3', 'locked/orphan.mp3']) await utimes(join(p.dest, rel), old, old);
    await unwritable(locked); // its files cannot be removed by the cleanup's user
    const result = await cleanupAsUser({ source: p.source, dest: p.dest, lockDir });
    await chmod(locked, 0o755);
    expect(result.status).toBe('partial');
    expect(result.removed).toEqual(['gone.mp3']);
    expect(result.errors.map((e) => [e.path, e.code])).toEqual([['locked/orphan.mp3', 'EACCES']]);
    expect(result.errors[0]!.message).toMatch(/hint: the mirror must be writable by \S+: chown -R /);
    expect(await readTree(p.dest)).toEqual({ 'keep.mp3': 'k', 'locked/orphan.mp3': 'orphan' });
  });

  test('an unwritable dest from the CLI: exit 1, and stderr says what to fix (chown/chmod, the mode variables)', async () => {
    const { lockDir } = await project({ 'a.mp3': 'a', 'sub/c.mp3': 'c' });
    await unwritable(p.dest);
    const env = { UPLOAD_SYNC_LOCK_DIR: lockDir };
    const run = await cliAsUser(['sync', '--source', p.source, '--dest', p.dest], env);
    expect(run.code).toBe(1);
    expect(run.stdout).toMatch(/^Failed: /);
    expect(run.stderr).toContain('a.mp3: EACCES');
    const hint = run.stderr.split('\n').find((l) => l.startsWith('upload-sync: to fix:')) ?? '';
    expect(hint).toContain(`cannot write into ${p.dest}`);
    expect(hint).toMatch(/sudo chown -R \S+ /);
    expect(hint).toMatch(/chmod -R g\+rwX/);
    expect(hint).toContain('UPLOAD_SYNC_DIR_MODE=775 UPLOAD_SYNC_FILE_MODE=664');
    expect(await readdir(p.dest)).toEqual([]);

    // Dest missing under a parent it cannot write: create it for this user.
    await unwritable(join(p.root, 'readonly-parent'));
    const missing = await cliAsUser(['sync', '--source', p.source, '--dest', join(p.root, 'readonly-parent', 'uploads')], env);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/to fix: .*cannot write into .*readonly-parent\/uploads.*install -d -o \S+ /);

    // A lock folder another user made: UPLOAD_SYNC_LOCK_DIR.
    const rootsLocks = join(p.root, 'roots-locks');
    await unwritable(rootsLocks);
    await giveTreeToNobody(join(p.root, '.next'));
    await chmod(p.dest, 0o755); // dest writable again: only the lock folder is in the way now
    await giveToNobody(p.dest);
    const locked = await cliAsUser(['sync', '--source', p.source, '--dest', p.dest], { UPLOAD_SYNC_LOCK_DIR: rootsLocks });
    expect(locked.code).toBe(1);
    expect(locked.stderr).toMatch(/to fix: .*cannot create its lock in .*roots-locks.*UPLOAD_SYNC_LOCK_DIR/);
    expect(await exists(join(p.dest, 'a.mp3'))).toBe(false);
    expect((await stat(p.dest)).isDirectory()).toBe(true);
  });
  test('upload-sync watch on an unwritable dest: each error, one "to fix" line however often it recurs, and it keeps running', async () => {
    const { lockDir } = await project({ 'a.mp3': 'a' });
    await unwritable(p.dest);
    const w = startNode([CLI, 'watch', '--force', '--source', p.source, '--dest', p.dest, '--stable-ms', '50', '--debounce-ms', '10', '--reconcile-ms', '0'], {
      asNobody: true,
      env: cleanEnv({ UPLOAD_SYNC_LOCK_DIR: lockDir }),
      ipc: true,
    });
    children.push(w);
    await waitFor(() => w.messages.includes('ready') || w.proc.exitCode !== null, { message: `the watcher to be ready (stderr: ${w.stderr()})` });
    await waitFor(() => w.stderr().includes('to fix:'), { message: `the hint (stderr: ${w.stderr()})` });
    // Another upload fails the same way: its error is logged, the advice is not repeated.
    await writeTree(p.source, { 'b.mp3': 'b' });
    await waitFor(() => w.stderr().includes('b.mp3: EACCES') || w.proc.exitCode !== null, { message: `the error of b.mp3 (stderr: ${w.stderr()})` });
    const lines = w.stderr().trimEnd().split('\n');
    expect(lines.filter((l) => l.includes('a.mp3: EACCES'))).not.toEqual([]);
    const hints = lines.filter((l) => l.includes('to fix:'));
    expect(hints).toHaveLength(1);
    expect(hints[0]).toMatch(/WARN: to fix: .*cannot write into .*sudo chown -R /);
    expect(w.proc.exitCode).toBeNull(); // it never dies on an error
    w.proc.kill('SIGTERM');
    expect(await w.exited).toEqual({ code: 0, signal: null });
  });
});
