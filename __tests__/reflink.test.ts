/**
 * The reflink path of a copy (btrfs, XFS, APFS: `copyFile` with COPYFILE_FICLONE_FORCE makes a
 * copy-on-write clone at once). The test machines' ext4 and tmpfs have none, so `copyFile` is
 * injected: first as a filesystem that clones (a plain copy stands in for the clone), then as one
 * that refuses (EOPNOTSUPP), which real disks do here too. What is checked is the library's side:
 * every copy is a clone where the filesystem makes one, the clone gets the source's mode (or
 * `fileMode`) and times before it is published, and after one refusal no copy tries again.
 */
import { constants } from 'node:fs';
import * as realFs from 'node:fs/promises';
import { lstat, readdir, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, jest, test } from '@jest/globals';
import { readTree, tempFiles, tempProject, writeTree } from './helpers.js';

/** How the injected filesystem answers a forced reflink. */
let reflinks: 'clone' | 'refuse' = 'clone';
/** Every forced reflink asked for: [source, target]. */
const attempts: Array<[string, string]> = [];

jest.unstable_mockModule('node:fs/promises', () => ({
  ...realFs,
  default: realFs,
  async copyFile(src: string, dst: string, flags = 0) {
    if ((flags & constants.COPYFILE_FICLONE_FORCE) === 0) return realFs.copyFile(src, dst, flags);
    attempts.push([src, dst]);
    if (reflinks === 'refuse') {
      throw Object.assign(new Error(`EOPNOTSUPP: operation not supported on socket, copyfile '${src}' -> '${dst}'`), {
        errno: -95,
        code: 'EOPNOTSUPP',
        syscall: 'copyfile',
        path: src,
        dest: dst,
      });
    }
    // A clone has the source's bytes; its mode and times are the new file's, as after a real FICLONE.
    return realFs.copyFile(src, dst, flags & ~constants.COPYFILE_FICLONE_FORCE);
  },
}));
const { syncUploads } = await import('../src/index.js');

let p: ReturnType<typeof tempProject>;
beforeEach(() => {
  p = tempProject('upload-sync-reflink-');
  attempts.length = 0;
});
afterEach(async () => {
  await p.cleanup();
});

const run = (extra = {}) => syncUploads({ source: p.source, dest: p.dest, force: true, lockDir: join(p.root, 'locks'), ...extra });
const BIG = 300 * 1024; // over 256 KiB: read and written in steps when not cloned (small files take another path)

/** Two large songs with an old mtime and an unusual mode, and a small one. */
async function songs(): Promise<void> {
  await writeTree(p.source, { 'album/one.flac': Buffer.alloc(BIG, 1), 'album/two.flac': Buffer.alloc(BIG + 1, 2), 'small.mp3': 'small' });
  const past = new Date('2024-05-01T12:00:00.123Z');
  for (const rel of ['album/one.flac', 'album/two.flac', 'small.mp3']) {
    await utimes(join(p.source, rel), past, past);
    await realFs.chmod(join(p.source, rel), 0o604);
  }
}

async function expectMirror(mode: number): Promise<void> {
  expect(await readTree(p.dest)).toEqual(await readTree(p.source));
  for (const rel of ['album/one.flac', 'album/two.flac', 'small.mp3']) {
    const [s, d] = await Promise.all([lstat(join(p.source, rel)), lstat(join(p.dest, rel))]);
    expect([rel, d.mode & 0o777, Math.abs(d.mtimeMs - s.mtimeMs) < 0.01]).toEqual([rel, mode, true]);
  }
  expect(await tempFiles(p.dest)).toEqual([]);
}

// In order: the first refusal is remembered by the process for good.
describe('copies by reflink', () => {
  test('on a filesystem that clones: every file is cloned, then given the source\'s mode and times', async () => {
    reflinks = 'clone';
    await songs();
    const result = await run();
    expect(result).toMatchObject({ status: 'ok', copied: ['album/one.flac', 'album/two.flac', 'small.mp3'], errors: [] });
    expect(attempts.map(([src]) => src).sort()).toEqual(['album/one.flac', 'album/two.flac', 'small.mp3'].map((rel) => join(p.source, rel)));
    // Cloned into a temp file beside the target, never onto the final name.
    for (const [, dst] of attempts) expect(dst).toMatch(/\/(album\/)?\.upload-sync-[0-9a-z]+-[0-9a-f]{12}\.tmp$/);
    await expectMirror(0o604);

    // fileMode applies to a clone as to a copy; an update is cloned again.
    await writeFile(join(p.source, 'album/one.flac'), Buffer.alloc(BIG, 3));
    attempts.length = 0;
    const update = await run({ fileMode: 0o640 });
    expect(update).toMatchObject({ status: 'ok', updated: ['album/one.flac'], errors: [] });
    expect(attempts).toHaveLength(1);
    expect(await readTree(p.dest)).toEqual(await readTree(p.source));
    expect((await lstat(join(p.dest, 'album/one.flac'))).mode & 0o777).toBe(0o640);
  });

  test('on a filesystem that refuses: the copy falls back to reading and writing, and once refused no copy tries again', async () => {
    reflinks = 'refuse';
    await songs();
    const result = await run();
    expect(result).toMatchObject({ status: 'ok', copied: ['album/one.flac', 'album/two.flac', 'small.mp3'], errors: [] });
    // The copies run at once: each may have asked before the first refusal came.
    expect(attempts.length).toBeGreaterThanOrEqual(1);
    expect(attempts.length).toBeLessThanOrEqual(3);
    await expectMirror(0o604);
    expect(await readdir(join(p.dest, 'album'))).toEqual(['one.flac', 'two.flac']); // the refused temp files were removed

    // The refusal is remembered: later copies, and later runs, go straight to reading and writing.
    attempts.length = 0;
    await writeTree(p.source, { 'album/three.flac': Buffer.alloc(BIG, 4), 'album/four.flac': Buffer.alloc(BIG, 5) });
    const later = await run();
    expect(later).toMatchObject({ status: 'ok', copied: ['album/four.flac', 'album/three.flac'], errors: [] });
    expect(attempts).toEqual([]);
    expect(await readTree(p.dest)).toEqual(await readTree(p.source));
  });
});
