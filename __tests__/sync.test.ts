import { chmod, lstat, mkdir, readdir, readFile, rm, stat, symlink, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, jest, test } from '@jest/globals';
import { resolveSyncConfig, syncUploads, type SyncOptions, type SyncResult } from '../src/index.js';
import * as api from '../src/index.js';
import { syncSettled } from '../src/engine/sync.js';
import { sameMtime } from '../src/engine/compare.js';
import lockfile from 'proper-lockfile';
import { lockPath } from '../src/shared/lock.js';
import { exists, readTree, run, tempFiles, tempProject, writeTree } from './helpers.js';

let p: ReturnType<typeof tempProject>;
beforeEach(() => {
  p = tempProject();
});
afterEach(async () => {
  await p.cleanup();
});

/** A sync of the temp project; jest runs with NODE_ENV=test, so `force` stands in for production. */
const sync = (extra: Parameters<typeof syncUploads>[0] = {}) =>
  syncUploads({ source: p.source, dest: p.dest, force: true, lockDir: join(p.root, 'locks'), ...extra });

const TREE = {
  'song.mp3': 'mp3 bytes',
  'albums/Late Night/01 Intro.flac': 'flac',
  'albums/Late Night/02 Café ünïcode 曲.mp3': 'unicode name',
  'albums/deep/er/still/track.wav': 'deep',
  'empty.ogg': '',
  '.DS_Store': 'dotfile',
  '.hidden/inside.mp3': 'in a dot folder',
  'upload.mp3.part': 'partial',
  'other.mp3.crdownload': 'partial',
  'note.tmp': 'temp',
  'backup.mp3~': 'editor backup',
};

const MIRRORED = ['albums/Late Night/01 Intro.flac', 'albums/Late Night/02 Café ünïcode 曲.mp3', 'albums/deep/er/still/track.wav', 'empty.ogg', 'song.mp3'];

describe('full mode', () => {
  test('mirrors a nested tree and never syncs dotfiles, partial uploads or links leaving the source', async () => {
    await writeTree(p.source, TREE);
    await writeTree(join(p.root, 'outside'), { 'secret.mp3': 'secret', 'dir/x.mp3': 'x' });
    await symlink(join(p.root, 'outside', 'secret.mp3'), join(p.source, 'link-out.mp3'));
    await symlink(join(p.root, 'outside', 'dir'), join(p.source, 'dir-out'));
    await symlink(join(p.source, 'song.mp3'), join(p.source, 'link-in.mp3'));

    const r = await sync();
    expect(r).toMatchObject({ status: 'ok', dryRun: false, updated: [], deleted: [], unchanged: 0, errors: [] });
    expect(r.copied).toEqual([...MIRRORED, 'link-in.mp3'].sort());
    expect(r.bytes).toBe(['mp3 bytes', 'flac', 'unicode name', 'deep', '', 'mp3 bytes'].reduce((n, s) => n + Buffer.byteLength(s), 0));
    const mirror = await readTree(p.dest);
    expect(Object.keys(mirror)).toEqual([...MIRRORED, 'link-in.mp3'].sort());
    expect(mirror['link-in.mp3']).toBe('mp3 bytes');
    expect((await lstat(join(p.dest, 'link-in.mp3'))).isFile()).toBe(true);
    expect(await exists(join(p.dest, 'dir-out'))).toBe(false);
    expect(await tempFiles(p.dest)).toEqual([]);
  });

  test('copied files get the source mtime and mode; a second run copies nothing', async () => {
    await writeTree(p.source, TREE);
    const old = new Date('2024-03-01T12:34:56.789Z');
    await utimes(join(p.source, 'song.mp3'), old, old);
    await chmod(join(p.source, 'song.mp3'), 0o640);
    expect((await sync()).status).toBe('ok');
    const st = await stat(join(p.dest, 'song.mp3'));
    expect(sameMtime(st.mtimeMs, old.getTime())).toBe(true);
    expect(st.mode & 0o777).toBe(0o640);

    const second = await sync();
    expect(second).toMatchObject({ status: 'ok', copied: [], updated: [], deleted: [], unchanged: MIRRORED.length, bytes: 0 });
  });

  test('a changed file is updated: new size, or same size with a new mtime', async () => {
    await writeTree(p.source, { 'a.mp3': 'aaaa', 'b.mp3': 'bbbb', 'c.mp3': 'cccc' });
    await sync();
    await writeFile(join(p.source, 'a.mp3'), 'longer content');
    await writeFile(join(p.source, 'b.mp3'), 'BBBB');
    const later = new Date(Date.now() + 5000);
    await utimes(join(p.source, 'b.mp3'), later, later);
    const r = await sync();
    expect(r).toMatchObject({ status: 'ok', copied: [], updated: ['a.mp3', 'b.mp3'], unchanged: 1 });
    expect(await readTree(p.dest)).toEqual({ 'a.mp3': 'longer content', 'b.mp3': 'BBBB', 'c.mp3': 'cccc' });
  });

  test('empty source folders are created in the mirror', async () => {
    await mkdir(join(p.source, 'albums', 'empty'), { recursive: true });
    await sync();
    expect((await stat(join(p.dest, 'albums', 'empty'))).isDirectory()).toBe(true);
  });

  test('fileMode and dirMode are applied to the mirror (the old chmod 775)', async () => {
    await writeTree(p.source, { 'x/a.mp3': 'a' });
    await chmod(join(p.source, 'x'), 0o700);
    await chmod(join(p.source, 'x', 'a.mp3'), 0o600);
    await sync({ fileMode: '664', dirMode: 0o775 });
    expect((await stat(join(p.dest, 'x'))).mode & 0o7777).toBe(0o775);
    expect((await stat(join(p.dest, 'x', 'a.mp3'))).mode & 0o7777).toBe(0o664);
    // The mode of an unchanged file is corrected on the next run too.
    await chmod(join(p.dest, 'x', 'a.mp3'), 0o600);
    const r = await sync({ fileMode: 0o664, dirMode: 0o775 });
    expect(r.unchanged).toBe(1);
    expect((await stat(join(p.dest, 'x', 'a.mp3'))).mode & 0o7777).toBe(0o664);
  });

  test('the extension filter limits what is synced', async () => {
    await writeTree(p.source, { 'a.mp3': 'a', 'b.FLAC': 'b', 'c.jpg': 'c', 'd.txt': 'd' });
    const r = await sync({ extensions: 'audio' });
    expect(r.copied).toEqual(['a.mp3', 'b.FLAC']);
    const r2 = await sync({ extensions: ['jpg'] });
    expect(r2.copied).toEqual(['c.jpg']);
  });

  test('hardlink strategy links (same inode) and a second run sees it current', async () => {
    await writeTree(p.source, { 'a/b.mp3': 'linked' });
    const r = await sync({ strategy: 'hardlink' });
    expect(r.copied).toEqual(['a/b.mp3']);
    const [s, d] = await Promise.all([stat(join(p.source, 'a/b.mp3')), stat(join(p.dest, 'a/b.mp3'))]);
    expect(d.ino).toBe(s.ino);
    expect(s.nlink).toBe(2);
    expect(await sync({ strategy: 'hardlink' })).toMatchObject({ copied: [], updated: [], unchanged: 1 });
    expect(await tempFiles(p.dest)).toEqual([]);
  });

  // /dev/shm is a tmpfs on Linux, another filesystem than the temp folder: link() fails with EXDEV there.
  const onLinux = process.platform === 'linux' ? test : test.skip;
  onLinux('hardlink across filesystems falls back to a copy', async () => {
    const { mkdtemp } = await import('node:fs/promises');
    const shm = await mkdtemp('/dev/shm/upload-sync-');
    try {
      const source = join(shm, 'uploads');
      await writeTree(source, { 'x/a.mp3': 'across devices' });
      expect((await stat(shm)).dev).not.toBe((await stat(p.root)).dev);
      const r = await sync({ source, strategy: 'hardlink' });
      expect(r).toMatchObject({ status: 'ok', copied: ['x/a.mp3'] });
      const [s, d] = await Promise.all([stat(join(source, 'x/a.mp3')), stat(join(p.dest, 'x/a.mp3'))]);
      expect(d.ino === s.ino && d.dev === s.dev).toBe(false);
      expect(sameMtime(s.mtimeMs, d.mtimeMs)).toBe(true);
      expect(await readFile(join(p.dest, 'x/a.mp3'), 'utf8')).toBe('across devices');
      expect(await tempFiles(p.dest)).toEqual([]);
    } finally {
      await rm(shm, { recursive: true, force: true });
    }
  });

  test('dryRun reports what would change and writes nothing', async () => {
    await writeTree(p.source, { 'a.mp3': 'aaa', 'b/c.mp3': 'c' });
    await writeTree(p.dest, { 'old.mp3': 'orphan' });
    const r = await sync({ dryRun: true, delete: true });
    expect(r).toMatchObject({ status: 'ok', dryRun: true, copied: ['a.mp3', 'b/c.mp3'], deleted: ['old.mp3'], bytes: 4 });
    expect(await readTree(p.dest)).toEqual({ 'old.mp3': 'orphan' });
    expect(await exists(join(p.dest, 'b'))).toBe(false);
  });

  test('a dry run with no dest yet creates nothing', async () => {
    await writeTree(p.source, { 'a.mp3': 'a' });
    expect((await sync({ dryRun: true })).copied).toEqual(['a.mp3']);
    expect(await exists(p.dest)).toBe(false);
  });
});

describe('delete', () => {
  test('removes orphans and folders left empty; keeps what the filter excludes, dotfiles and symlinks', async () => {
    await writeTree(p.source, { 'keep.mp3': 'k' });
    await writeTree(p.dest, {
      'keep.mp3': 'k', 'gone.mp3': 'g', 'old/album/x.mp3': 'x', 'cover.jpg': 'not audio', '.htaccess': 'dot', 'upload.mp3.part': 'partial',
    });
    await writeTree(join(p.root, 'outside'), { 'precious.mp3': 'keep me' });
    await symlink(join(p.root, 'outside'), join(p.dest, 'linkdir'));
    await symlink(join(p.root, 'outside', 'precious.mp3'), join(p.dest, 'link.mp3'));

    const r = await sync({ delete: true, extensions: 'audio' });
    expect(r.status).toBe('ok');
    expect(r.deleted).toEqual(['gone.mp3', 'old/album/x.mp3']);
    expect(await exists(join(p.dest, 'old'))).toBe(false);
    for (const kept of ['keep.mp3', 'cover.jpg', '.htaccess', 'upload.mp3.part', 'linkdir', 'link.mp3']) {
      expect(await exists(join(p.dest, kept))).toBe(true);
    }
    expect(await readFile(join(p.root, 'outside', 'precious.mp3'), 'utf8')).toBe('keep me');
  });

  test('without delete, orphans stay', async () => {
    await writeTree(p.source, { 'a.mp3': 'a' });
    await writeTree(p.dest, { 'orphan.mp3': 'o' });
    const r = await sync();
    expect(r.deleted).toEqual([]);
    expect(await exists(join(p.dest, 'orphan.mp3'))).toBe(true);
  });
});

describe('targeted mode (files)', () => {
  test('syncs only the given paths, relative or absolute inside the source', async () => {
    await writeTree(p.source, { 'a.mp3': 'a', 'b/c.mp3': 'c', 'other.mp3': 'not asked' });
    const r = await sync({ files: ['a.mp3', join(p.source, 'b', 'c.mp3')] });
    expect(r).toMatchObject({ status: 'ok', copied: ['a.mp3', 'b/c.mp3'] });
    expect(Object.keys(await readTree(p.dest))).toEqual(['a.mp3', 'b/c.mp3']);
    expect(await sync({ files: ['a.mp3'] })).toMatchObject({ copied: [], unchanged: 1 });
  });

  test('a folder entry syncs its subtree', async () => {
    await writeTree(p.source, { 'album/1.mp3': '1', 'album/cd2/2.mp3': '2', 'x.mp3': 'x' });
    const r = await sync({ files: ['album'] });
    expect(r.copied).toEqual(['album/1.mp3', 'album/cd2/2.mp3']);
  });

  test('a path that no longer exists is skipped, or its mirror removed with delete', async () => {
    await writeTree(p.source, { 'a.mp3': 'a', 'dir/b.mp3': 'b' });
    await sync();
    await rm(join(p.source, 'a.mp3'));
    await rm(join(p.source, 'dir'), { recursive: true });
    expect(await sync({ files: ['a.mp3', 'dir'] })).toMatchObject({ status: 'ok', deleted: [], errors: [] });
    expect(await exists(join(p.dest, 'a.mp3'))).toBe(true);
    const r = await sync({ files: ['a.mp3', 'dir'], delete: true });
    expect(r).toMatchObject({ status: 'ok', deleted: ['a.mp3', 'dir/b.mp3'] });
    expect(await exists(join(p.dest, 'dir'))).toBe(false);
  });

  test('filtered entries (dotfiles, partial names, extensions) are skipped, not errors', async () => {
    await writeTree(p.source, { '.secret.mp3': 's', 'x.mp3.part': 'p', 'c.jpg': 'c' });
    const r = await sync({ files: ['.secret.mp3', 'x.mp3.part', 'c.jpg'], extensions: 'audio' });
    expect(r).toMatchObject({ status: 'ok', copied: [], errors: [] });
    expect(await exists(p.dest)).toBe(true);
    expect(await readTree(p.dest)).toEqual({});
  });

  test.each([['./album/a.mp3'], ['album//a.mp3'], ['album/./a.mp3'], ['x/../album/a.mp3'], ['album/a.mp3/']])('the entry %s names album/a.mp3: it is copied under that name', async (entry) => {
    await writeTree(p.source, { 'album/a.mp3': 'a' });
    const r = await sync({ files: [entry] });
    expect(r).toMatchObject({ status: 'ok', copied: ['album/a.mp3'], errors: [] });
    expect(await readTree(p.dest)).toEqual({ 'album/a.mp3': 'a' });
  });

  test.each([
    ['../outside.mp3'],
    ['a/../../outside.mp3'],
    ['/etc/passwd'],
    ['..'],
  ])('traversal %s is an ERR_OUTSIDE entry and writes nothing', async (entry) => {
    await writeTree(p.root, { 'outside.mp3': 'o' });
    await writeTree(p.source, { 'a.mp3': 'a' });
    const r = await sync({ files: [entry] });
    expect(r.status).toBe('failed');
    expect(r.errors).toEqual([expect.objectContaining({ code: 'ERR_OUTSIDE' })]);
    expect(r.copied).toEqual([]);
    expect(await readTree(p.dest)).toEqual({});
  });

  test('a path through a symlinked folder that leaves the source is ERR_OUTSIDE; the rest syncs (partial)', async () => {
    await writeTree(join(p.root, 'outside'), { 'x.mp3': 'x' });
    await writeTree(p.source, { 'ok.mp3': 'ok' });
    await symlink(join(p.root, 'outside'), join(p.source, 'escape'));
    await symlink(join(p.root, 'outside', 'x.mp3'), join(p.source, 'file-link.mp3'));
    const r = await sync({ files: ['escape/x.mp3', 'file-link.mp3', 'ok.mp3'] });
    expect(r.status).toBe('partial');
    expect(r.copied).toEqual(['ok.mp3']);
    expect(r.errors.map((e) => [e.path, e.code])).toEqual([['escape/x.mp3', 'ERR_OUTSIDE'], ['file-link.mp3', 'ERR_OUTSIDE']]);
    expect(await readTree(p.dest)).toEqual({ 'ok.mp3': 'ok' });
  });

  test.each<[unknown]>([[''], ['a\0b.mp3'], [42], [null]])('a bad entry %j is an error entry, never a throw', async (entry) => {
    await writeTree(p.source, { 'a.mp3': 'a' });
    const r = await sync({ files: [entry as string, 'a.mp3'] });
    expect(r.status).toBe('partial');
    expect(r.errors[0]!.code).toBe('ERR_INVALID_PATH');
    expect(r.copied).toEqual(['a.mp3']);
  });
});

describe('syncSettled: the full run of the watcher\'s reconcile (internal)', () => {
  const settled = (newerThan: number, extra: SyncOptions = {}) =>
    syncSettled(resolveSyncConfig({ source: p.source, dest: p.dest, force: true, lockDir: join(p.root, 'locks'), ...extra }), newerThan);
  const hourAgo = new Date(Date.now() - 3600_000);
  const age = (rel: string, at = hourAgo) => utimes(join(p.source, rel), at, at);

  test('files modified after newerThan are left and returned as young; older ones are copied', async () => {
    await writeTree(p.source, { 'old.mp3': 'old', 'album/old2.mp3': 'old 2', 'same.mp3': 'same', 'changing.mp3': 'first take' });
    for (const rel of ['old.mp3', 'album/old2.mp3', 'changing.mp3']) await age(rel);
    await sync({ files: ['same.mp3', 'changing.mp3'] }); // in dest already: same.mp3 as it is now, changing.mp3 as it was
    await writeTree(p.source, { 'fresh.mp3': 'being written', 'album/fresh2.mp3': 'being written too', 'changing.mp3': 'second take, being written' });
    const logger = { info: jest.fn(), warn: jest.fn(), error: jest.fn() };

    const { result, young } = await settled(Date.now() - 10_000, { logger });
    expect(result).toMatchObject({ status: 'ok', dryRun: false, copied: ['album/old2.mp3', 'old.mp3'], updated: [], deleted: [], errors: [] });
    expect(result.unchanged).toBe(1); // same.mp3: fresh, but current in dest, so not young
    expect(result.bytes).toBe(Buffer.byteLength('old 2') + Buffer.byteLength('old'));
    expect([...young].sort()).toEqual(['album/fresh2.mp3', 'changing.mp3', 'fresh.mp3']);
    expect(await readTree(p.dest)).toEqual({ 'album/old2.mp3': 'old 2', 'changing.mp3': 'first take', 'old.mp3': 'old', 'same.mp3': 'same' });
    // Young files are not an event of their own (they are told once copied): DEBUG only.
    expect(logger.info).not.toHaveBeenCalledWith(expect.stringMatching(/^Left 3 files for later/));
    expect(logger.error).not.toHaveBeenCalled();

    // Once they are older than newerThan, the same run copies them.
    const again = await settled(Date.now() + 10_000);
    expect(again.young).toEqual([]);
    expect(again.result).toMatchObject({ status: 'ok', copied: ['album/fresh2.mp3', 'fresh.mp3'], updated: ['changing.mp3'], unchanged: 3 });
  });

  test('a run with only young files and a per-path error is partial, not failed (young files are not failures)', async () => {
    await writeTree(p.source, { 'fresh.mp3': 'fresh', 'clash.mp3': 'a file here' });
    await age('clash.mp3');
    await mkdir(join(p.dest, 'clash.mp3'), { recursive: true }); // a folder in dest where source has a file
    const { result, young } = await settled(Date.now() - 10_000);
    expect(young).toEqual(['fresh.mp3']);
    expect(result.status).toBe('partial');
    expect(result.errors.map((e) => [e.path, e.code])).toEqual([['clash.mp3', 'ERR_TYPE_CONFLICT']]);
  });

  test('it is its own run: never merged with a plain call queued with it, either way', async () => {
    await writeTree(p.source, { 'old.mp3': 'old', 'fresh.mp3': 'fresh' });
    await age('old.mp3');
    const newerThan = Date.now() - 10_000;
    // The first call runs at once; the three after it, made in the same tick, wait in the queue.
    const running = sync({ files: ['old.mp3'] });
    const leaving = settled(newerThan);
    const plain = sync(); // must not join `leaving`: it copies the young file
    const leavingAgain = settled(newerThan); // must not join `plain`
    await running;
    const first = await leaving;
    expect(first.young).toEqual(['fresh.mp3']);
    expect(first.result.copied).toEqual([]);
    const full = await plain;
    expect(full).not.toBe(first.result);
    expect(full.copied).toEqual(['fresh.mp3']);
    const second = await leavingAgain;
    expect(second.result).not.toBe(full);
    expect(second).toMatchObject({ young: [], result: { copied: [], unchanged: 2 } });
    expect(await readTree(p.dest)).toEqual({ 'fresh.mp3': 'fresh', 'old.mp3': 'old' });
  });

  test('not part of the package\'s API', () => {
    expect(Object.keys(api)).not.toContain('syncSettled');
  });
});

describe('dest safety', () => {
  test('a symlinked folder in dest is never written through', async () => {
    await writeTree(p.source, { 'album/a.mp3': 'a', 'b.mp3': 'b' });
    await mkdir(p.dest, { recursive: true });
    await mkdir(join(p.root, 'elsewhere'));
    await symlink(join(p.root, 'elsewhere'), join(p.dest, 'album'));
    const r = await sync();
    expect(r.status).toBe('partial');
    expect(r.copied).toEqual(['b.mp3']);
    expect(r.errors.some((e) => e.path.startsWith('album') && e.code === 'ERR_DEST_SYMLINK')).toBe(true);
    expect(await readdir(join(p.root, 'elsewhere'))).toEqual([]);
    // targeted too
    const t = await sync({ files: ['album/a.mp3'] });
    expect(t.errors[0]!.code).toBe('ERR_DEST_SYMLINK');
    expect(await readdir(join(p.root, 'elsewhere'))).toEqual([]);
  });

  test('a folder in dest where source has a file is an error entry, and is kept', async () => {
    await writeTree(p.source, { 'x.mp3': 'file', 'y.mp3': 'y' });
    await writeTree(p.dest, { 'x.mp3/inner.mp3': 'in a folder' });
    const r = await sync();
    expect(r.status).toBe('partial');
    expect(r.errors).toEqual([expect.objectContaining({ path: 'x.mp3', code: 'ERR_TYPE_CONFLICT' })]);
    expect(await readFile(join(p.dest, 'x.mp3', 'inner.mp3'), 'utf8')).toBe('in a folder');
  });
});

describe('results and statuses', () => {
  test('disabled by the environment without force: nothing on disk is touched', async () => {
    await writeTree(p.source, { 'a.mp3': 'a' });
    expect(process.env.NODE_ENV).toBe('test');
    const r = await syncUploads({ source: p.source, dest: p.dest });
    expect(r).toMatchObject({ status: 'disabled', copied: [], errors: [] });
    expect(await exists(p.dest)).toBe(false);
  });

  test('a bad configuration resolves as failed with ERR_CONFIG (never rejects)', async () => {
    const r = await syncUploads({ source: p.source, dest: p.source, force: true });
    expect(r).toMatchObject({ status: 'failed', errors: [expect.objectContaining({ code: 'ERR_CONFIG' })] });
    const r2 = await syncUploads({ files: 'a.mp3' as never, force: true, source: p.source, dest: p.dest });
    expect(r2.errors[0]!.code).toBe('ERR_CONFIG');
    const r3 = await syncUploads(null as never);
    expect(r3.status).toBe('failed');
  });

  test('a missing source is failed with ERR_SOURCE_MISSING, and dest is not created', async () => {
    const r = await sync();
    expect(r).toMatchObject({ status: 'failed', errors: [expect.objectContaining({ code: 'ERR_SOURCE_MISSING' })] });
    expect(r.errors[0]!.message).toContain(p.source);
    expect(await exists(p.dest)).toBe(false);
  });

  test('an aborted signal stops the run with ERR_ABORTED', async () => {
    await writeTree(p.source, { 'a.mp3': 'a' });
    const r = await sync({ signal: AbortSignal.abort() });
    expect(r.status).toBe('failed');
    expect(r.errors.map((e) => e.code)).toEqual(['ERR_ABORTED']);
    expect(await exists(join(p.dest, 'a.mp3'))).toBe(false);
  });

  test('an abort during a run leaves no temp file and reports what was done', async () => {
    const files: Record<string, Buffer> = {};
    for (let i = 0; i < 40; i++) files[`f${String(i).padStart(2, '0')}.mp3`] = Buffer.alloc(256 * 1024, i);
    await writeTree(p.source, files);
    const controller = new AbortController();
    const logger = { info: (m: string) => m.startsWith('Copied') && controller.abort(), warn() {}, error() {} };
    const r: SyncResult = await sync({ signal: controller.signal, logger, concurrency: 1 });
    expect(r.status).toBe('partial');
    expect(r.errors.map((e) => e.code)).toEqual(['ERR_ABORTED']);
    expect(r.copied.length).toBeGreaterThan(0);
    expect(r.copied.length).toBeLessThan(40);
    expect(Object.keys(await readTree(p.dest))).toEqual(r.copied);
    expect(await tempFiles(p.dest)).toEqual([]);
  });

  test('paths in results are relative to dest and /-separated', async () => {
    await writeTree(p.source, { 'a/b/c.mp3': 'c' });
    expect((await sync()).copied).toEqual(['a/b/c.mp3']);
  });
});

describe('logging', () => {
  test('the log file gets [YYYY-MM-DD HH:MM:SS] LEVEL: lines, its folder created', async () => {
    await writeTree(p.source, { 'a.mp3': 'a', 'line\nbreak.mp3': 'b' });
    const logFile = join(p.root, 'logs', 'deep', 'upload-sync.log');
    await sync({ logFile });
    const lines = (await readFile(logFile, 'utf8')).trimEnd().split('\n');
    for (const line of lines) expect(line).toMatch(/^\[\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\] (INFO|WARN|ERROR): /);
    expect(lines[0]).toContain('Sync started');
    expect(lines).toContainEqual(expect.stringContaining('Copied a.mp3'));
    expect(lines).toContainEqual(expect.stringContaining('Copied line\\nbreak.mp3'));
    expect(lines[lines.length - 1]).toMatch(/INFO: Sync ok: 2 copied/);
  });

  test('a logger option receives the messages; failures at error level', async () => {
    await writeTree(p.source, { 'a.mp3': 'a' });
    const logger = { info: jest.fn(), warn: jest.fn(), error: jest.fn() };
    await sync({ logger, files: ['a.mp3', '../x.mp3'] });
    expect(logger.info).toHaveBeenCalledWith(expect.stringContaining('Copied a.mp3'));
    expect(logger.error).toHaveBeenCalledWith(expect.stringContaining('ERR_OUTSIDE'));
  });

  test('a log file that cannot be written never fails the sync: one warning on stderr', async () => {
    await writeTree(p.source, { 'a.mp3': 'a', 'b.mp3': 'b' });
    const blocked = join(p.root, 'not-a-folder');
    await writeFile(blocked, 'a file where the log folder should be');
    const writes: string[] = [];
    const spy = jest.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
      writes.push(String(chunk));
      return true;
    });
    try {
      const r = await sync({ logFile: join(blocked, 'sync.log') });
      const r2 = await sync({ logFile: join(blocked, 'sync.log'), files: ['a.mp3'] });
      expect(r.status).toBe('ok');
      expect(r2.status).toBe('ok');
    } finally {
      spy.mockRestore();
    }
    const warnings = writes.filter((w) => w.includes('cannot write log file'));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain(join(blocked, 'sync.log'));
  });
});

describe('sameMtime: within 1 ms, or within the granularity probed on dest', () => {
  test.each<[number, number, number, boolean]>([
    [1_700_000_000_123.456, 1_700_000_000_123.456, 1, true],
    [1_700_000_000_123.456, 1_700_000_000_123.9, 1, true],
    [1_700_000_000_123.456, 1_700_000_000_124.4, 1, true],
    [1_700_000_000_123, 1_700_000_000_125, 1, false],
    // ext4 keeps nanoseconds: a whole-second dest time (tar, unzip, curl -R) is no licence for a wider window.
    [1_700_000_000_123.4, 1_700_000_000_000, 1, false],
    [1_700_000_000_998.4, 1_700_000_001_000, 1, false],
    [1_700_000_000_123.4, 1_700_000_000_000, 1000, true], // dest keeps whole seconds (truncated)
    [1_700_000_001_999.4, 1_700_000_000_000, 2000, true], // FAT: 2 s
    [1_700_000_000_500, 1_700_000_003_000, 2000, false],
    [1_700_000_001_000, 1_700_000_000_000, 1000, false], // a whole second apart: a real change
    [-315_360_000_123.456, -315_360_000_123.456, 1, true], // before 1970
    [-315_360_000_123.456, -315_360_000_000, 1, false],
  ])('sameMtime(%d, %d, window %d) = %s', (src, dest, window, expected) => {
    expect(sameMtime(src, dest, window)).toBe(expected);
  });
});

describe('one folder, two spellings', () => {
  test('a symlinked project path shares the lock of the real path', async () => {
    await writeTree(p.source, { 'a.mp3': 'a' });
    const alias = join(p.root, '..', `${p.root.split('/').pop()}-alias`);
    await symlink(p.root, alias);
    const lockDir = join(p.root, 'locks');
    await mkdir(lockDir, { recursive: true });
    const release = await lockfile.lock(p.dest, { lockfilePath: lockPath(lockDir, p.dest), realpath: false });
    try {
      const viaAlias = await syncUploads({ root: alias, force: true, lockDir, lockTimeoutMs: 300 });
      expect(viaAlias.errors.map((e) => e.code)).toEqual(['ELOCKED']);
    } finally {
      await release();
      await rm(alias);
    }
  });

  test('an absolute files entry through a symlinked path to the source is inside', async () => {
    await writeTree(p.source, { 'a.mp3': 'a' });
    const alias = `${p.root}-alias`;
    await symlink(p.root, alias);
    try {
      const r = await sync({ files: [join(alias, 'public', 'uploads', 'a.mp3')] });
      expect(r).toMatchObject({ status: 'ok', copied: ['a.mp3'] });
    } finally {
      await rm(alias);
    }
  });
});

describe('temp files of a sync that died', () => {
  test('a full sync removes temp files whose process is gone, and keeps a live one\'s', async () => {
    await writeTree(p.source, { 'a.mp3': 'a' });
    // A pid that surely is not running: a child that has exited.
    const child = await run(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']);
    const deadPid = Number(child.stdout);
    const dead = `.upload-sync-${deadPid.toString(36)}-0123456789ab.tmp`;
    const live = `.upload-sync-${process.pid.toString(36)}-ba9876543210.tmp`;
    const notOurs = '.upload-sync-something-else.tmp';
    await writeTree(p.dest, { [dead]: 'half a song', [`album/${dead}`]: 'half', [live]: 'being written', [notOurs]: '?' });
    const lines: string[] = [];
    const r = await sync({ logger: { info: (m) => lines.push(m), warn() {}, error() {} } });
    expect(r.status).toBe('ok');
    expect(await exists(join(p.dest, dead))).toBe(false);
    expect(await exists(join(p.dest, 'album', dead))).toBe(false);
    expect(await exists(join(p.dest, live))).toBe(true);
    expect(await exists(join(p.dest, notOurs))).toBe(true);
    expect(lines).toContainEqual(expect.stringContaining(`temp file of a sync that died (pid ${deadPid})`));
  });

  test('a dry run leaves them alone', async () => {
    await writeTree(p.source, { 'a.mp3': 'a' });
    const dead = '.upload-sync-zzzzzz-0123456789ab.tmp';
    await writeTree(p.dest, { [dead]: 'half' });
    await sync({ dryRun: true });
    expect(await exists(join(p.dest, dead))).toBe(true);
  });
});
