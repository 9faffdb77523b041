/**
 * cleanupOld on real temp folders; file ages are faked with utimes. jest runs with NODE_ENV=test,
 * so in-process calls pass `force` (except the test of the enable rule).
 */
import { afterEach, beforeEach, describe, expect, jest, test } from '@jest/globals';
import { mkdirSync, renameSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { mkdir, readFile, readdir, symlink, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { cleanupOld, syncUploads, type CleanupOptions, type CleanupResult } from '../src/index.js';
import { acquireLock } from '../src/shared/lock.js';
import { exists, readTree, tempFiles, tempProject, writeTree } from './helpers.js';

// In-process calls read process.env: keep the machine's upload-sync settings out of this file.
for (const key of Object.keys(process.env)) {
  if (/UPLOAD_SYNC/.test(key)) delete process.env[key];
}

const DAY = 24 * 60 * 60 * 1000;
const HOUR = 60 * 60 * 1000;

let p: ReturnType<typeof tempProject>;
beforeEach(() => {
  p = tempProject('upload-sync-cleanup-');
});
afterEach(async () => {
  await p.cleanup();
});

const lockDir = () => join(p.root, 'locks');
const clean = (extra: CleanupOptions = {}): Promise<CleanupResult> =>
  cleanupOld({ source: p.source, dest: p.dest, force: true, lockDir: lockDir(), ...extra });

/** Sets a file's mtime (and atime) `ms` in the past. */
async function age(path: string, ms: number): Promise<void> {
  const t = new Date(Date.now() - ms);
  await utimes(path, t, t);
}

/** Writes `files` under `base`, each `{ rel: days old }`. */
async function writeAged(base: string, files: Record<string, number>): Promise<void> {
  await writeTree(base, Object.fromEntries(Object.keys(files).map((rel) => [rel, `content of ${rel}`])));
  for (const [rel, days] of Object.entries(files)) await age(join(base, rel), days * DAY);
}

const size = (rel: string) => Buffer.byteLength(`content of ${rel}`);

describe('orphans', () => {
  test('removes old orphans; keeps new orphans and every file still in the source, however old', async () => {
    await writeTree(p.source, { 'keep.mp3': 'x', 'albums/keep2.mp3': 'y' });
    await writeAged(p.dest, { 'keep.mp3': 400, 'albums/keep2.mp3': 90, 'old-orphan.mp3': 40, 'albums/old.mp3': 31, 'new-orphan.mp3': 5 });

    const r = await clean();
    expect(r).toEqual({
      status: 'ok',
      dryRun: false,
      removed: ['albums/old.mp3', 'old-orphan.mp3'],
      removedFromSource: [],
      kept: 3,
      bytesFreed: size('albums/old.mp3') + size('old-orphan.mp3'),
      errors: [],
      durationMs: expect.any(Number),
    });
    expect(Object.keys(await readTree(p.dest))).toEqual(['albums/keep2.mp3', 'keep.mp3', 'new-orphan.mp3']);
  });

  test('olderThanDays sets the age: 3 takes the 5-day orphan too, 0 takes every orphan', async () => {
    await writeTree(p.source, { 'keep.mp3': 'x' });
    await writeAged(p.dest, { 'keep.mp3': 0, 'five.mp3': 5, 'two.mp3': 2 });
    expect((await clean({ olderThanDays: 3 })).removed).toEqual(['five.mp3']);
    await writeFile(join(p.dest, 'just-now.mp3'), 'new');
    expect((await clean({ olderThanDays: 0 })).removed).toEqual(['just-now.mp3', 'two.mp3']);
    expect(Object.keys(await readTree(p.dest))).toEqual(['keep.mp3']);
  });

  test('the age is the file\'s mtime: an orphan touched since it went stale stays', async () => {
    await writeTree(p.source, { 'keep.mp3': 'x' });
    await writeAged(p.dest, { 'a.mp3': 60 });
    await utimes(join(p.dest, 'a.mp3'), new Date(), new Date());
    expect(await clean()).toMatchObject({ status: 'ok', removed: [], kept: 1 });
  });

  test('the extension filter bounds cleanup: excluded files, dotfiles and partial names are never touched', async () => {
    await writeTree(p.source, { 'keep.mp3': 'x' });
    await writeAged(p.dest, { 'song.mp3': 90, 'cover.jpg': 90, '.DS_Store': 90, 'up.mp3.part': 90, '.hidden/x.mp3': 90 });
    const r = await clean({ extensions: 'audio' });
    expect(r).toMatchObject({ status: 'ok', removed: ['song.mp3'], kept: 0 });
    const all = await clean({ extensions: 'audio', orphansOnly: false, olderThanDays: 0 });
    expect(all.removed).toEqual([]);
    expect(Object.keys(await readTree(p.dest))).toEqual(['.DS_Store', '.hidden/x.mp3', 'cover.jpg', 'up.mp3.part']);
  });
});

describe('orphansOnly: false', () => {
  test('prunes by age alone, in the source or not (the old find -mtime +30 -delete); new files stay', async () => {
    await writeTree(p.source, { 'in-source.mp3': 'x' });
    await writeAged(p.dest, { 'in-source.mp3': 45, 'orphan.mp3': 45, 'fresh.mp3': 2, 'albums/old.mp3': 31 });
    const r = await clean({ orphansOnly: false });
    expect(r).toMatchObject({ status: 'ok', removed: ['albums/old.mp3', 'in-source.mp3', 'orphan.mp3'], kept: 1 });
    expect(Object.keys(await readTree(p.dest))).toEqual(['fresh.mp3']);
    expect(await exists(join(p.dest, 'albums'))).toBe(false);
  });

  test('needs no source: a missing source is not refused', async () => {
    await writeAged(p.dest, { 'a.mp3': 40, 'b.mp3': 1 });
    const r = await clean({ orphansOnly: false });
    expect(r).toMatchObject({ status: 'ok', removed: ['a.mp3'], kept: 1, errors: [] });
  });
});

describe('dry run', () => {
  test('lists what would go and bytes that would be freed; removes nothing, not even folders', async () => {
    await writeTree(p.source, { 'keep.mp3': 'x' });
    await writeAged(p.dest, { 'keep.mp3': 90, 'gone/old.mp3': 40, 'new.mp3': 1, '.upload-sync-1-abc.tmp': 1 });
    const before = await readTree(p.dest);
    const r = await clean({ dryRun: true });
    expect(r).toMatchObject({ status: 'ok', dryRun: true, removed: ['.upload-sync-1-abc.tmp', 'gone/old.mp3'], kept: 2 });
    expect(r.bytesFreed).toBe(size('gone/old.mp3') + size('.upload-sync-1-abc.tmp'));
    expect(await readTree(p.dest)).toEqual(before);
    expect(await exists(join(p.dest, 'gone'))).toBe(true);

    // The real run removes exactly what the dry run listed.
    expect((await clean()).removed).toEqual(r.removed);
  });

  test('takes no lock: it runs while another process holds it', async () => {
    await writeTree(p.source, { 'keep.mp3': 'x' });
    await writeAged(p.dest, { 'old.mp3': 40 });
    const release = await acquireLock(lockDir(), p.dest, 1000, { onCompromised: () => {} });
    try {
      expect(await clean({ dryRun: true, lockTimeoutMs: 100 })).toMatchObject({ status: 'ok', removed: ['old.mp3'] });
    } finally {
      await release();
    }
  });
});

describe('maxDelete', () => {
  test('removes at most that many files, then stops: partial, the rest reported as ERR_MAX_DELETE', async () => {
    await writeTree(p.source, { 'keep.mp3': 'x' });
    await writeAged(p.dest, { 'a.mp3': 40, 'b.mp3': 40, 'c/d.mp3': 40, 'e.mp3': 40, 'new.mp3': 1 });

    const dry = await clean({ maxDelete: 2, dryRun: true });
    const r = await clean({ maxDelete: 2 });
    expect(r).toMatchObject({ status: 'partial', removed: ['a.mp3', 'b.mp3'], kept: 3 });
    expect(r.errors).toEqual([
      { path: 'c/d.mp3', code: 'ERR_MAX_DELETE', message: expect.stringContaining('maxDelete (2)') },
      { path: 'e.mp3', code: 'ERR_MAX_DELETE', message: expect.any(String) },
    ]);
    expect(dry).toMatchObject({ status: 'partial', removed: r.removed, errors: r.errors });
    expect(Object.keys(await readTree(p.dest))).toEqual(['c/d.mp3', 'e.mp3', 'new.mp3']);

    const next = await clean({ maxDelete: 2 });
    expect(next).toMatchObject({ status: 'ok', removed: ['c/d.mp3', 'e.mp3'], errors: [] });
    expect(await exists(join(p.dest, 'c'))).toBe(false);
  });

  test('stale temp files go first under the cap', async () => {
    await writeTree(p.source, { 'keep.mp3': 'x' });
    await writeAged(p.dest, { 'a.mp3': 40, 'z/.upload-sync-9-ff.tmp': 1 });
    const r = await clean({ maxDelete: 1 });
    expect(r.removed).toEqual(['z/.upload-sync-9-ff.tmp']);
    expect(r.errors.map((e) => [e.path, e.code])).toEqual([['a.mp3', 'ERR_MAX_DELETE']]);
  });
});

describe('refusals', () => {
  test('a missing source: failed, ERR_SOURCE_EMPTY, nothing removed (not even stale temp files)', async () => {
    await writeAged(p.dest, { 'a.mp3': 400, 'x/b.mp3': 400, '.upload-sync-1-aa.tmp': 2 });
    const before = await readTree(p.dest);
    const r = await clean();
    expect(r).toMatchObject({ status: 'failed', removed: [], kept: 0, bytesFreed: 0 });
    expect(r.errors).toEqual([{ path: '', code: 'ERR_SOURCE_EMPTY', message: expect.stringContaining(`${p.source} does not exist`) }]);
    expect(await readTree(p.dest)).toEqual(before);
  });

  test('a source holding no syncable file (dotfiles, partial uploads, filtered extensions, empty folders): ERR_SOURCE_EMPTY', async () => {
    await writeTree(p.source, { '.DS_Store': 'x', 'up.mp3.part': 'x', 'cover.jpg': 'x', '.hidden/a.mp3': 'x' });
    await mkdir(join(p.source, 'albums', 'empty'), { recursive: true });
    await writeAged(p.dest, { 'a.mp3': 400, 'albums/b.mp3': 400 });
    const before = await readTree(p.dest);
    const r = await clean({ extensions: 'audio' });
    expect(r.status).toBe('failed');
    expect(r.errors.map((e) => e.code)).toEqual(['ERR_SOURCE_EMPTY']);
    expect(r.errors[0]!.message).toContain('holds no file that would be synced');
    expect(await readTree(p.dest)).toEqual(before);
  });

  test('a source that is a file, not a folder: ERR_SOURCE_EMPTY', async () => {
    await mkdir(join(p.root, 'public'), { recursive: true });
    await writeFile(p.source, 'not a folder');
    await writeAged(p.dest, { 'a.mp3': 400 });
    expect((await clean()).errors.map((e) => e.code)).toEqual(['ERR_SOURCE_EMPTY']);
    expect(await exists(join(p.dest, 'a.mp3'))).toBe(true);
  });

  test('a source unmounted during the run stops it at the next orphan', async () => {
    await writeTree(p.source, { 'keep.mp3': 'x' });
    await writeAged(p.dest, { 'a.mp3': 40, 'b.mp3': 40, 'c.mp3': 40 });
    const logger = {
      info: (m: string) => m.startsWith('Removed orphan a.mp3') && renameSync(p.source, `${p.source}-unmounted`),
      warn() {},
      error() {},
    };
    const r = await clean({ logger });
    expect(r).toMatchObject({ status: 'failed', removed: ['a.mp3'] });
    expect(r.errors.map((e) => e.code)).toEqual(['ERR_SOURCE_EMPTY']);
    expect(Object.keys(await readTree(p.dest))).toEqual(['b.mp3', 'c.mp3']);
  });

  test('a source replaced during the run (an unmount that leaves the empty mount point) stops it at the next orphan', async () => {
    await writeTree(p.source, { 'keep.mp3': 'x' });
    await writeAged(p.dest, { 'a.mp3': 40, 'b.mp3': 40, 'c.mp3': 40 });
    const logger = {
      info: (m: string) => {
        if (!m.startsWith('Removed orphan a.mp3')) return;
        renameSync(p.source, `${p.source}-unmounted`);
        mkdirSync(p.source); // the mount point: same path, another (empty) folder
      },
      warn() {},
      error() {},
    };
    const r = await clean({ logger });
    expect(r).toMatchObject({ status: 'failed', removed: ['a.mp3'] });
    expect(r.errors).toEqual([expect.objectContaining({ code: 'ERR_SOURCE_EMPTY', message: expect.stringContaining('changed during the cleanup') })]);
    expect(Object.keys(await readTree(p.dest))).toEqual(['b.mp3', 'c.mp3']);
  });

  test('a dest that is a symlink is never followed: ERR_DEST_SYMLINK', async () => {
    await writeTree(p.source, { 'keep.mp3': 'x' });
    const outside = join(p.root, 'outside');
    await writeAged(outside, { 'a.mp3': 400 });
    await mkdir(join(p.dest, '..'), { recursive: true });
    await symlink(outside, p.dest);
    const r = await clean({ orphansOnly: false, olderThanDays: 0 });
    expect(r.status).toBe('failed');
    expect(r.errors.map((e) => e.code)).toEqual(['ERR_DEST_SYMLINK']);
    expect(await exists(join(outside, 'a.mp3'))).toBe(true);
  });

  test('no dest yet: ok, nothing to do, and dest is not created', async () => {
    await writeTree(p.source, { 'keep.mp3': 'x' });
    expect(await clean()).toMatchObject({ status: 'ok', removed: [], kept: 0, errors: [] });
    expect(await exists(p.dest)).toBe(false);
  });
});

describe('symlinks and the dest boundary', () => {
  test('a symlink in dest to a folder outside: nothing outside is removed, the link is kept', async () => {
    await writeTree(p.source, { 'keep.mp3': 'x' });
    const outside = join(p.root, 'outside');
    await writeAged(outside, { 'a.mp3': 400, 'deep/b.mp3': 400 });
    await writeAged(p.dest, { 'orphan.mp3': 400 });
    await mkdir(join(p.dest, 'sub'));
    await symlink(outside, join(p.dest, 'linked'));
    await symlink(join(outside, 'a.mp3'), join(p.dest, 'sub', 'file-link.mp3'));

    for (const options of [{}, { orphansOnly: false, olderThanDays: 0 }]) {
      const r = await clean(options);
      expect(r.status).toBe('ok');
      expect(r.removed.filter((rel) => rel !== 'orphan.mp3')).toEqual([]);
    }
    expect(Object.keys(await readTree(outside))).toEqual(['a.mp3', 'deep/b.mp3']);
    expect((await readdir(join(p.dest, 'sub')))).toEqual(['file-link.mp3']);
    expect(await readFile(join(p.dest, 'linked', 'a.mp3'), 'utf8')).toBe('content of a.mp3');
    expect(await exists(join(p.dest, 'orphan.mp3'))).toBe(false);
  });

  test('each path is checked again at the moment of deletion', async () => {
    await writeTree(p.source, { 'keep.mp3': 'x' });
    await writeAged(p.dest, { 'a.mp3': 40, 'b.mp3': 40, 'c.mp3': 40, 'd/e.mp3': 40, 'f.mp3': 40, 'g.mp3': 40 });
    const outside = join(p.root, 'outside');
    await writeAged(outside, { 'e.mp3': 400 });
    // Between the listing and the deletions, once the first file is gone: b is written to, c is
    // uploaded again, d is swapped for a symlink leading out, g becomes a symlink.
    const logger = {
      info: (m: string) => {
        if (!m.startsWith('Removed orphan a.mp3')) return;
        utimesSync(join(p.dest, 'b.mp3'), new Date(), new Date());
        writeFileSync(join(p.source, 'c.mp3'), 'uploaded again');
        renameSync(join(p.dest, 'd'), join(p.root, 'd-moved'));
        symlinkSync(outside, join(p.dest, 'd'));
        renameSync(join(p.dest, 'g.mp3'), join(p.root, 'g-moved.mp3'));
        symlinkSync(join(p.root, 'g-moved.mp3'), join(p.dest, 'g.mp3'));
      },
      warn() {},
      error() {},
    };
    const r = await clean({ logger });
    expect(r.removed).toEqual(['a.mp3', 'f.mp3']);
    expect(r.status).toBe('partial');
    expect(r.errors).toEqual([{ path: 'd/e.mp3', code: 'ERR_DEST_SYMLINK', message: expect.stringContaining('symlink') }]);
    expect(r.kept).toBe(4);
    expect(await readFile(join(outside, 'e.mp3'), 'utf8')).toBe('content of e.mp3');
    expect(Object.keys(await readTree(p.dest))).toEqual(['b.mp3', 'c.mp3']);
    expect(await exists(join(p.root, 'g-moved.mp3'))).toBe(true);
  });
});

describe('folders', () => {
  test('folders left empty are removed, deepest first; dest itself is kept', async () => {
    await writeTree(p.source, { 'keep.mp3': 'x' });
    await writeAged(p.dest, { 'gone/deep/er/x.mp3': 40, 'gone/y.mp3': 40, 'solo.mp3': 40 });
    const r = await clean();
    expect(r.removed).toEqual(['gone/deep/er/x.mp3', 'gone/y.mp3', 'solo.mp3']);
    expect(await exists(p.dest)).toBe(true);
    expect(await readdir(p.dest)).toEqual([]);
  });

  test('folders that hold anything, or that the source still has, stay; empty orphan folders go', async () => {
    await writeTree(p.source, { 'keep.mp3': 'x', 'albums/live/new.mp3': 'new' });
    await writeAged(p.dest, { 'albums/live/old.mp3': 40, 'dotted/x.mp3': 40, 'dotted/.keep': 40, 'young/x.mp3': 40, 'young/y.mp3': 1 });
    await mkdir(join(p.dest, 'was-empty', 'inner'), { recursive: true });
    const r = await clean();
    expect(r.removed).toEqual(['albums/live/old.mp3', 'dotted/x.mp3', 'young/x.mp3']);
    expect(await exists(join(p.dest, 'albums', 'live'))).toBe(true); // the source has it: a sync would make it again
    expect(await readdir(join(p.dest, 'dotted'))).toEqual(['.keep']);
    expect(await readdir(join(p.dest, 'young'))).toEqual(['y.mp3']);
    expect(await exists(join(p.dest, 'was-empty'))).toBe(false);
  });
});

describe('stale temp files', () => {
  test('our temp files older than an hour go, fresh ones stay, other names are not ours', async () => {
    await writeTree(p.source, { 'keep.mp3': 'x' });
    await writeTree(p.dest, { '.upload-sync-1-old.tmp': 'o', 'albums/.upload-sync-2-old.tmp': 'o', '.upload-sync-3-new.tmp': 'n', '.other.tmp': 'x', 'song.tmp': 'x' });
    for (const rel of ['.upload-sync-1-old.tmp', 'albums/.upload-sync-2-old.tmp', '.other.tmp', 'song.tmp']) await age(join(p.dest, rel), 2 * HOUR);
    await age(join(p.dest, '.upload-sync-3-new.tmp'), 30 * 60 * 1000);
    const r = await clean({ extensions: 'audio' }); // our own temp files go whatever the filter
    expect(r).toMatchObject({ status: 'ok', removed: ['.upload-sync-1-old.tmp', 'albums/.upload-sync-2-old.tmp'], kept: 1 });
    expect((await tempFiles(p.dest)).map((t) => t.slice(p.dest.length + 1))).toEqual(['.upload-sync-3-new.tmp']);
    expect(await exists(join(p.dest, '.other.tmp'))).toBe(true);
    expect(await exists(join(p.dest, 'song.tmp'))).toBe(true);
    expect(await exists(join(p.dest, 'albums'))).toBe(false);
  });
});

describe('configuration, enable rule, lock', () => {
  test.each<[string, unknown]>([
    ['negative', -1],
    ['not a number', 'abc'],
    ['NaN', NaN],
    ['Infinity', Infinity],
    ['an empty string', ''],
    ['an object', {}],
  ])('olderThanDays %s: failed with ERR_CONFIG naming the option, never a rejection, nothing removed', async (_, value) => {
    await writeTree(p.source, { 'keep.mp3': 'x' });
    await writeAged(p.dest, { 'old.mp3': 400 });
    const r = await clean({ olderThanDays: value as number });
    expect(r).toMatchObject({ status: 'failed', removed: [], errors: [{ path: '', code: 'ERR_CONFIG', message: expect.stringContaining('olderThanDays') }] });
    expect(await exists(join(p.dest, 'old.mp3'))).toBe(true);
  });

  test('other bad options resolve as failed with ERR_CONFIG too', async () => {
    expect((await clean({ maxDelete: 0 })).errors[0]).toMatchObject({ code: 'ERR_CONFIG', message: expect.stringContaining('maxDelete') });
    expect((await clean({ orphansOnly: 'maybe' as never })).errors[0]!.code).toBe('ERR_CONFIG');
    expect((await cleanupOld({ source: p.source, dest: p.source, force: true })).errors[0]!.code).toBe('ERR_CONFIG');
    expect((await cleanupOld(null as never)).status).toBe('failed');
  });

  test('disabled by the environment without force: nothing on disk is touched', async () => {
    await writeTree(p.source, { 'keep.mp3': 'x' });
    await writeAged(p.dest, { 'old.mp3': 400 });
    expect(process.env.NODE_ENV).toBe('test');
    const r = await cleanupOld({ source: p.source, dest: p.dest, lockDir: lockDir() });
    expect(r).toMatchObject({ status: 'disabled', removed: [], kept: 0, errors: [] });
    expect(await exists(join(p.dest, 'old.mp3'))).toBe(true);
  });

  test('takes the sync lock: waits for its holder, fails with ELOCKED after lockTimeoutMs, removes nothing', async () => {
    await writeTree(p.source, { 'keep.mp3': 'x' });
    await writeAged(p.dest, { 'old.mp3': 400 });
    const release = await acquireLock(lockDir(), p.dest, 1000, { onCompromised: () => {} });
    let r: CleanupResult;
    try {
      r = await clean({ lockTimeoutMs: 200 });
    } finally {
      await release();
    }
    expect(r).toMatchObject({ status: 'failed', removed: [], errors: [expect.objectContaining({ path: '', code: 'ELOCKED' })] });
    expect(await exists(join(p.dest, 'old.mp3'))).toBe(true);
    expect((await clean()).removed).toEqual(['old.mp3']);
  });

  test('signal: an aborted run removes nothing more (ERR_ABORTED, not fatal); a lock wait ends on abort; a non-signal is ERR_CONFIG', async () => {
    await writeTree(p.source, { 'keep.mp3': 'x' });
    await writeAged(p.dest, { 'old.mp3': 400, 'older.mp3': 500 });
    const aborted = AbortSignal.abort();
    const r = await clean({ signal: aborted });
    expect(r).toMatchObject({ status: 'failed', removed: [], errors: [expect.objectContaining({ path: '', code: 'ERR_ABORTED' })] });
    expect(await readTree(p.dest)).toEqual({ 'old.mp3': 'content of old.mp3', 'older.mp3': 'content of older.mp3' });

    // Aborted while it waits for the lock: it stops waiting then, long before lockTimeoutMs.
    const release = await acquireLock(lockDir(), p.dest, 1000, { onCompromised: () => {} });
    const controller = new AbortController();
    try {
      const started = Date.now();
      const waiting = clean({ signal: controller.signal, lockTimeoutMs: 20_000 });
      setTimeout(() => controller.abort(), 50);
      const w = await waiting;
      expect(Date.now() - started).toBeLessThan(5_000);
      expect(w).toMatchObject({ status: 'failed', removed: [], errors: [expect.objectContaining({ code: 'ERR_ABORTED' })] });
    } finally {
      await release();
    }

    expect((await clean({ signal: 'stop' as never })).errors[0]).toMatchObject({ code: 'ERR_CONFIG', message: expect.stringContaining('signal') });
    expect((await clean({ signal: new AbortController().signal })).removed).toEqual(['old.mp3', 'older.mp3']);
  });

  test('after a sync with the same settings, cleanup removes nothing the sync just copied', async () => {
    await writeAged(p.source, { 'a.mp3': 400, 'b/c.mp3': 400 });
    expect((await syncUploads({ source: p.source, dest: p.dest, force: true, lockDir: lockDir() })).copied).toEqual(['a.mp3', 'b/c.mp3']);
    await writeAged(p.dest, { 'gone.mp3': 400 });
    const r = await clean({ olderThanDays: 0 });
    expect(r).toMatchObject({ status: 'ok', removed: ['gone.mp3'], kept: 2 });
  });

  test('the logger gets start, each removal, the summary; failures at error level', async () => {
    await writeTree(p.source, { 'keep.mp3': 'x' });
    await writeAged(p.dest, { 'old.mp3': 400, 'new.mp3': 1 });
    const logger = { info: jest.fn(), warn: jest.fn(), error: jest.fn() };
    await clean({ logger });
    expect(logger.info).toHaveBeenNthCalledWith(1, expect.stringMatching(/^Cleanup started: .*orphans older than 30 days/));
    expect(logger.info).toHaveBeenCalledWith(expect.stringMatching(/^Removed orphan old\.mp3 \(\d+ B, 400 days old\)$/));
    expect(logger.info).toHaveBeenLastCalledWith(expect.stringMatching(/^Cleanup ok: 1 removed \(\d+ B\), 1 kept, 0 errors in \d+ ms$/));
    expect(logger.error).not.toHaveBeenCalled();

    await writeTree(p.root, { 'empty-source/.keep': '' });
    await cleanupOld({ source: join(p.root, 'empty-source'), dest: p.dest, force: true, lockDir: lockDir(), logger });
    expect(logger.error).toHaveBeenCalledWith(expect.stringMatching(/^Cleanup failed: ERR_SOURCE_EMPTY: /));
    expect(logger.error).toHaveBeenLastCalledWith(expect.stringMatching(/^Cleanup failed: 0 removed/));
  });
});
