/**
 * The lock and the permission hints across real users (issue 11, point 7). Root ignores permission
 * bits, so these tests need root: they make folders as root, then run the built CLI as another user
 * through `setpriv` (util-linux, in every Debian), the way an admin would. As any other user they
 * are skipped (a process cannot become another user without root).
 *
 * The default lock folder is `<os tmpdir>/upload-sync-locks`: each test points TMPDIR at a folder of
 * its own (mode 1777, as /tmp), so the real one is never touched.
 */
import { afterEach, describe, expect, test } from '@jest/globals';
import { chmod, chown, mkdir, stat, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import lockfile from 'proper-lockfile';
import { lockPath } from '../src/shared/lock.js';
import type { SyncResult } from '../src/index.js';
import { CLI, DIST_ESM, cleanEnv, exists, readTree, run, tempFiles, tempProject, writeTree } from './helpers.js';

const AS_ROOT = process.getuid?.() === 0;
/** The other user (Debian's `nobody`; a uid is enough, setpriv needs no passwd entry). */
const USER = 65534;
/** A third user, whose crashed run left a lock (Debian's `www-data`). */
const THIRD_USER = 33;

let p: ReturnType<typeof tempProject> | undefined;
afterEach(async () => {
  await p?.cleanup();
  p = undefined;
});

/** A project the other user can sync: root-owned source (readable), a dest chain the user owns, its own TMPDIR. */
async function project(files: Record<string, string>) {
  p = tempProject('upload-sync-users-');
  await chmod(p.root, 0o755);
  await writeTree(p.source, files);
  await mkdir(p.dest, { recursive: true });
  for (const dir of ['.next', '.next/standalone', '.next/standalone/public', '.next/standalone/public/uploads']) await chown(join(p.root, dir), USER, USER);
  const tmp = join(p.root, 'tmp');
  await mkdir(tmp);
  await chmod(tmp, 0o1777);
  const env = cleanEnv({ TMPDIR: tmp });
  return { ...p, tmp, env, lockDir: join(tmp, 'upload-sync-locks') };
}

/** `node <args>` as the other user (setpriv: real and effective ids, no supplementary groups). */
const asUser = (args: string[], env: NodeJS.ProcessEnv, uid = USER) =>
  run('setpriv', [`--reuid=${uid}`, `--regid=${uid}`, '--clear-groups', process.execPath, ...args], { env });

/** `syncUploads(options)` of the built package as the other user; resolves with its result. */
async function syncAsUser(options: Record<string, unknown>, env: NodeJS.ProcessEnv): Promise<SyncResult> {
  const script = `
    import { syncUploads } from ${JSON.stringify(pathToFileURL(DIST_ESM).href)};
    process.stdout.write(JSON.stringify(await syncUploads(${JSON.stringify({ force: true, ...options })})));`;
  const r = await asUser(['--input-type=module', '-e', script], env);
  expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
  return JSON.parse(r.stdout) as SyncResult;
}

const rootOnly = AS_ROOT ? describe : describe.skip;
if (!AS_ROOT) console.log('cli-lock-users.test.ts: skipped (needs root to run the CLI as another user)');

rootOnly('the lock and the hints across users (root makes the folders, the CLI runs as another user)', () => {
  test('the default lock folder made by root works for another user, and both share one lock for one dest', async () => {
    const t = await project({ 'a.mp3': 'a', 'sub/b.mp3': 'b' });
    // Root syncs first (the build), creating the default lock folder.
    const first = await run(process.execPath, [CLI, 'sync', '--source', t.source, '--dest', t.dest], { env: t.env });
    expect({ code: first.code, stderr: first.stderr }).toEqual({ code: 0, stderr: '' });
    const made = await stat(t.lockDir);
    expect({ uid: made.uid, mode: (made.mode & 0o7777).toString(8) }).toEqual({ uid: 0, mode: '777' });

    // Another user (PM2's) syncs the same dest with the same default: it gets the lock, no EACCES.
    await writeTree(t.source, { 'c.mp3': 'c' });
    const second = await asUser([CLI, 'sync', '--source', t.source, '--dest', t.dest], t.env);
    expect({ code: second.code, stderr: second.stderr }).toEqual({ code: 0, stderr: '' });
    expect(second.stdout).toMatch(/^Done: .*copied 1 file/);
    expect(await readTree(t.dest)).toEqual(await readTree(t.source));

    // One lock for both users: while root holds it, the other user's run waits for it (ELOCKED after its timeout).
    const release = await lockfile.lock(t.dest, { lockfilePath: lockPath(t.lockDir, t.dest), realpath: false });
    try {
      await writeTree(t.source, { 'd.mp3': 'd' });
      const blocked = await syncAsUser({ source: t.source, dest: t.dest, lockTimeoutMs: 300 }, t.env);
      expect(blocked.status).toBe('failed');
      expect(blocked.errors.map((e) => e.code)).toEqual(['ELOCKED']);
      expect(await exists(join(t.dest, 'd.mp3'))).toBe(false);
    } finally {
      await release();
    }
    const after = await syncAsUser({ source: t.source, dest: t.dest, lockTimeoutMs: 300 }, t.env);
    expect({ status: after.status, copied: after.copied }).toEqual({ status: 'ok', copied: ['d.mp3'] });
  });

  test('the lock a crashed run of another user left is taken over (no sticky bit); with one, the hint says so', async () => {
    const t = await project({ 'a.mp3': 'a' });
    const first = await run(process.execPath, [CLI, 'sync', '--source', t.source, '--dest', t.dest], { env: t.env });
    expect(first.code).toBe(0);
    // A third user's run died holding the lock: its entry, not refreshed for a minute.
    const crashed = async () => {
      const lock = lockPath(t.lockDir, t.dest);
      await mkdir(lock);
      await chown(lock, THIRD_USER, THIRD_USER);
      const old = new Date(Date.now() - 60_000);
      await utimes(lock, old, old);
      return lock;
    };
    const lock = await crashed();
    await writeTree(t.source, { 'b.mp3': 'b' });
    const took = await asUser([CLI, 'sync', '--source', t.source, '--dest', t.dest], t.env);
    expect({ code: took.code, stderr: took.stderr }).toEqual({ code: 0, stderr: '' });
    expect(await exists(lock)).toBe(false);
    expect(await readTree(t.dest)).toEqual(await readTree(t.source));

    // Someone "hardened" the folder with the sticky bit: the takeover is refused, and the hint names the folder and the bit.
    await chmod(t.lockDir, 0o1777);
    await crashed();
    await writeTree(t.source, { 'c.mp3': 'c' });
    const refused = await asUser([CLI, 'sync', '--source', t.source, '--dest', t.dest], t.env);
    expect(refused.code).toBe(1);
    const hint = refused.stderr.split('\n').find((l) => l.startsWith('upload-sync: to fix:')) ?? '';
    expect(hint).toContain(`cannot take over or remove a lock in ${t.lockDir} (it is owned by uid 0, mode 1777)`);
    expect(hint).toContain('sticky bit');
    expect(hint).toContain(`sudo chmod 0777 ${t.lockDir}`);
    expect(hint).toContain('UPLOAD_SYNC_LOCK_DIR');
    expect(await exists(join(t.dest, 'c.mp3'))).toBe(false);
  });

  test('a lock folder another user made 0755 (earlier builds): the hint names the lock folder, its owner and mode', async () => {
    const t = await project({ 'a.mp3': 'a' });
    await mkdir(t.lockDir, { mode: 0o755 });
    await chmod(t.lockDir, 0o755);
    const r = await asUser([CLI, 'sync', '--source', t.source, '--dest', t.dest], t.env);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/EACCES/);
    const hints = r.stderr.split('\n').filter((l) => l.startsWith('upload-sync: to fix:'));
    expect(hints).toHaveLength(1);
    expect(hints[0]).toContain(`cannot create its lock in ${t.lockDir} (it is owned by uid 0, mode 755)`);
    expect(hints[0]).toContain(`sudo chmod 0777 ${t.lockDir}`);
    expect(hints[0]).not.toContain('sticky');
  });

  test('an unreadable source file: the error entry and the "to fix" line name the source, not the mirror', async () => {
    const t = await project({ 'a.mp3': 'a', 'secret.mp3': 'root only' });
    await chmod(join(t.source, 'secret.mp3'), 0o600); // root's, unreadable to the other user
    const json = await asUser([CLI, 'sync', '--json', '--source', t.source, '--dest', t.dest], t.env);
    expect(json.code).toBe(1);
    const result = JSON.parse(json.stdout) as SyncResult;
    expect(result.copied).toEqual(['a.mp3']);
    expect(result.errors.map((e) => [e.path, e.code])).toEqual([['secret.mp3', 'EACCES']]);
    // The copy's message names both sides (copyfile 'source' -> 'dest temp'): the advice is about the source.
    expect(result.errors[0]!.message).toContain(`hint: the uploads must be readable by `);
    expect(result.errors[0]!.message).toContain(`chmod -R a+rX ${t.source}`);
    expect(result.errors[0]!.message).not.toContain('mirror');

    const plain = await asUser([CLI, 'sync', '--source', t.source, '--dest', t.dest], { ...t.env, DEBUG: 'upload-sync:*' });
    expect(plain.code).toBe(1);
    // Node's message starts with its code already: the stderr line and the log line say it once.
    expect(plain.stderr).toMatch(/^upload-sync: secret\.mp3: EACCES: permission denied, /m);
    expect(plain.stderr).toMatch(/Failed secret\.mp3: EACCES: permission denied, /);
    expect(plain.stderr).not.toContain('EACCES: EACCES');
    const hints = plain.stderr.split('\n').filter((l) => l.startsWith('upload-sync: to fix:'));
    expect(hints).toEqual([expect.stringContaining(`cannot read secret.mp3 in ${t.source}`)]);
    expect(plain.stderr).not.toContain('cannot write into');
    expect(plain.stderr).not.toContain('mirror must be writable');
    expect(await tempFiles(t.dest)).toEqual([]);

    // The other side, for contrast: a source it can read, a dest it cannot write (root's 0755) names the mirror.
    await chmod(join(t.source, 'secret.mp3'), 0o644);
    await chown(t.dest, 0, 0);
    await writeFile(join(t.source, 'new.mp3'), 'n');
    const denied = await asUser([CLI, 'sync', '--source', t.source, '--dest', t.dest], t.env);
    expect(denied.code).toBe(1);
    const destHints = denied.stderr.split('\n').filter((l) => l.startsWith('upload-sync: to fix:'));
    expect(destHints).toEqual([expect.stringContaining(`cannot write into ${t.dest}`)]);
    expect(denied.stderr).toContain('the mirror must be writable');
  });
});
