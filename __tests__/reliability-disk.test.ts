/**
 * A full disk. Where the machine allows it (root on Linux), a real 2 MB tmpfs is mounted and dest
 * (or source) lives on it; otherwise, or with RELIABILITY_INJECT_FS=1, an injected `node:fs/promises`
 * throws ENOSPC once writes under that folder pass 2 MB, after writing what fits (as a real disk
 * does). The test output says which one ran.
 *
 * ENOSPC mid-copy gives `partial` (or `failed` when nothing else was done) with that code, the temp
 * file is removed, source and the other dest files are untouched, and `saveUpload` still reports
 * the upload as saved when its sync hits ENOSPC on dest.
 */
import { afterAll, afterEach, beforeAll, describe, expect, jest, test } from '@jest/globals';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import * as realFs from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, relative, sep } from 'node:path';
import type { SyncResult } from '../src/index.js';
import { exists, readTree, tempFiles, tempProject, writeTree } from './helpers.js';

for (const key of Object.keys(process.env)) {
  if (/UPLOAD_SYNC/.test(key)) delete process.env[key];
}

const CAPACITY = 2 * 1024 * 1024;
let base: ReturnType<typeof tempProject>;
/** The small filesystem: a tmpfs mount point, or a plain folder the injected fs limits (made in beforeAll). */
let SMALL = '';

// Can this machine mount a tmpfs? Tried once here, on a throwaway folder, because the choice decides
// whether node:fs/promises is replaced before the library is imported. The real mount is made in
// beforeAll and undone in afterAll, so nothing stays mounted even when every test is filtered out.
let mode: 'tmpfs' | 'injected' = 'injected';
let why = 'RELIABILITY_INJECT_FS=1';
if (!/^(1|true)$/i.test(process.env.RELIABILITY_INJECT_FS ?? '')) {
  const probe = mkdtempSync(join(tmpdir(), 'upload-sync-disk-probe-'));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${CAPACITY}`, 'tmpfs', probe], { stdio: 'pipe' });
    execFileSync('umount', [probe], { stdio: 'pipe' });
    mode = 'tmpfs';
  } catch (err) {
    why = `mount refused: ${String((err as { stderr?: Buffer }).stderr ?? '').trim() || (err as Error).message}`;
  } finally {
    rmSync(probe, { recursive: true, force: true });
  }
}
// eslint-disable-next-line no-console
console.log(
  mode === 'tmpfs'
    ? `reliability-disk: a real ${CAPACITY / 1024 / 1024} MB tmpfs is mounted for these tests`
    : `reliability-disk: NO real small filesystem (${why}); ENOSPC comes from an injected node:fs/promises limiting one folder to ${CAPACITY} bytes`,
);

if (mode === 'injected') {
  const inside = (p: unknown) => {
    const rel = relative(SMALL, String(p));
    return rel !== '' && !rel.startsWith(`..${sep}`) && rel !== '..';
  };
  /** Bytes held by files under SMALL now. */
  const used = (dir = SMALL): number =>
    readdirSync(dir, { withFileTypes: true }).reduce((sum, e) => {
      const abs = join(dir, e.name);
      return sum + (e.isDirectory() ? used(abs) : e.isFile() ? statSync(abs).size : 0);
    }, 0);
  const enospc = (syscall: string, path: string, dest?: string) =>
    Object.assign(new Error(`ENOSPC: no space left on device, ${syscall} '${path}'${dest ? ` -> '${dest}'` : ''}`), {
      errno: -28,
      code: 'ENOSPC',
      syscall,
      path,
      ...(dest ? { dest } : {}),
    });
  jest.unstable_mockModule('node:fs/promises', () => ({
    ...realFs,
    default: realFs,
    async copyFile(src: string, dst: string, flags?: number) {
      if (!inside(dst)) return realFs.copyFile(src, dst, flags);
      const free = CAPACITY - used();
      const size = statSync(src).size;
      if (size <= free) return realFs.copyFile(src, dst, flags);
      // Like a real disk: what fits is written, then the copy fails.
      const fh = await realFs.open(src, 'r');
      const part = Buffer.alloc(Math.max(0, free));
      await fh.read(part, 0, part.length, 0);
      await fh.close();
      await realFs.writeFile(dst, part, { flag: 'wx' });
      throw enospc('copyfile', src, dst);
    },
    async open(path: string, flags?: string | number, m?: number) {
      const handle = await realFs.open(path, flags, m);
      if (!inside(path)) return handle;
      return new Proxy(handle, {
        get(target, prop, receiver) {
          if (prop !== 'write') {
            const value = Reflect.get(target, prop, receiver) as unknown;
            return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
          }
          return async (buffer: Uint8Array, offset = 0, length = buffer.byteLength - offset, position?: number | null) => {
            const free = CAPACITY - used();
            if (length <= free) return target.write(buffer, offset, length, position);
            if (free > 0) await target.write(buffer, offset, free, position);
            throw enospc('write', path);
          };
        },
      });
    },
  }));
}

const { syncUploads } = await import('../src/index.js');
const { saveUpload } = await import('../src/next.js');
const { main } = await import('../src/cli/main.js');

let mounted = false;
let lockDir = '';
beforeAll(() => {
  base = tempProject('upload-sync-disk-');
  SMALL = join(base.root, 'small-fs');
  lockDir = join(base.root, 'locks');
  mkdirSync(SMALL);
  if (mode === 'tmpfs') {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${CAPACITY}`, 'tmpfs', SMALL], { stdio: 'pipe' });
    mounted = true;
  }
});
afterEach(async () => {
  // Empty the small filesystem for the next test (not the mount point itself).
  for (const name of readdirSync(SMALL)) rmSync(join(SMALL, name), { recursive: true, force: true });
});
afterAll(async () => {
  if (mounted) execFileSync('umount', [SMALL]);
  await base?.cleanup();
});

const KB = 1024;
const MB = 1024 * KB;

/** Runs the CLI in this process (so the injected fs applies too), capturing its output. */
async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  process.env.UPLOAD_SYNC_LOCK_DIR = lockDir;
  const out = jest.spyOn(process.stdout, 'write').mockImplementation((chunk: unknown) => ((stdout += String(chunk)), true));
  const err = jest.spyOn(process.stderr, 'write').mockImplementation((chunk: unknown) => ((stderr += String(chunk)), true));
  try {
    const code = await main(args);
    return { code, stdout, stderr };
  } finally {
    out.mockRestore();
    err.mockRestore();
    delete process.env.UPLOAD_SYNC_LOCK_DIR;
  }
}

describe(`a full dest (${mode === 'tmpfs' ? 'a real 2 MB tmpfs' : 'injected ENOSPC'})`, () => {
  test('ENOSPC mid-copy: partial with ENOSPC, temp removed, source and the other dest files untouched', async () => {
    const source = join(base.root, 'source-1');
    const dest = join(SMALL, 'mirror');
    await writeTree(source, { 'album/big.wav': Buffer.alloc(500 * KB, 'v1-'), 'kept.mp3': Buffer.alloc(100 * KB, 'kept-') });
    expect(await syncUploads({ source, dest, force: true, lockDir })).toMatchObject({ status: 'ok', copied: ['album/big.wav', 'kept.mp3'] });
    const destBefore = await readTree(dest);

    // A new 3 MB version of big.wav, and two small new files: more than the filesystem holds.
    await writeTree(source, { 'album/big.wav': Buffer.alloc(3 * MB, 'v2-'), 'a.mp3': Buffer.alloc(10 * KB, 'a-'), 'z.mp3': Buffer.alloc(10 * KB, 'z-') });
    const sourceBefore = await readTree(source);
    const result = await syncUploads({ source, dest, force: true, lockDir });

    expect(result.status).toBe('partial');
    expect(result.errors.map((e) => [e.path, e.code])).toEqual([['album/big.wav', 'ENOSPC']]);
    expect(result.errors[0]!.message).toMatch(/no space left on device/);
    expect(result.copied).toEqual(['a.mp3', 'z.mp3']);
    expect(result.updated).toEqual([]);
    expect(await tempFiles(dest)).toEqual([]); // the part written before the disk filled is gone
    const destAfter = await readTree(dest);
    expect(destAfter['album/big.wav']).toBe(destBefore['album/big.wav']); // the old version, whole
    expect(destAfter['kept.mp3']).toBe(destBefore['kept.mp3']);
    expect(await readTree(source)).toEqual(sourceBefore);

    // Only that file: nothing could be done, so `failed`, same code, still no temp file.
    const targeted = await syncUploads({ source, dest, force: true, lockDir, files: ['album/big.wav'] });
    expect(targeted.status).toBe('failed');
    expect(targeted.errors.map((e) => [e.path, e.code])).toEqual([['album/big.wav', 'ENOSPC']]);
    expect(await tempFiles(dest)).toEqual([]);
    expect((await readTree(dest))['album/big.wav']).toBe(destBefore['album/big.wav']);

    // The CLI: exit 1, the error on stderr, and what to do about it.
    const run = await cli(['sync', '--source', source, '--dest', dest]);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain('album/big.wav: ENOSPC');
    expect(run.stderr).toMatch(/full.*free space/i);
    expect(await tempFiles(dest)).toEqual([]);
    expect(await readTree(source)).toEqual(sourceBefore);
  });

  test('saveUpload: the upload is saved (and reported saved) when its sync hits ENOSPC on dest', async () => {
    const source = join(base.root, 'source-2');
    const dest = join(SMALL, 'mirror');
    const bytes = Buffer.alloc(3 * MB, 'upload-');
    const saved = await saveUpload(bytes, { name: 'song.wav', source, dest, force: true, lockDir });

    expect(saved).toMatchObject({ name: 'song.wav', path: join(source, 'song.wav'), size: 3 * MB });
    expect((await realFs.readFile(saved.path)).equals(bytes)).toBe(true);
    const sync = saved.sync as SyncResult;
    expect(sync.status).toBe('failed');
    expect(sync.errors.map((e) => [e.path, e.code])).toEqual([['song.wav', 'ENOSPC']]);
    expect(await tempFiles(dest)).toEqual([]);
    expect(await tempFiles(source)).toEqual([]);
    expect(await exists(join(dest, 'song.wav'))).toBe(false);
  });
});

describe(`a full source (${mode === 'tmpfs' ? 'a real 2 MB tmpfs' : 'injected ENOSPC'})`, () => {
  test('saveUpload: ENOSPC is thrown, no temp file, nothing under the final name, older uploads intact', async () => {
    const source = join(SMALL, 'uploads');
    const dest = join(base.root, 'mirror-3');
    await writeTree(source, { 'old.mp3': Buffer.alloc(100 * KB, 'old-') });
    const before = await readTree(source);

    const err = await saveUpload(Buffer.alloc(3 * MB, 'big-'), { name: 'new.wav', source, dest, force: true, lockDir }).then(
      () => null,
      (e: unknown) => e as NodeJS.ErrnoException,
    );
    expect(err?.code).toBe('ENOSPC');
    expect(await tempFiles(source)).toEqual([]); // the part written is removed: the space is free again
    expect(await exists(join(source, 'new.wav'))).toBe(false);
    expect(await readTree(source)).toEqual(before);

    // A smaller upload fits in the space the failed one gave back.
    const small = await saveUpload(Buffer.alloc(1 * MB, 'small-'), { name: 'fits.wav', source, dest, force: true, lockDir });
    expect(small.sync).toMatchObject({ status: 'ok', copied: ['fits.wav'] });
    expect((await realFs.readFile(join(dest, 'fits.wav'))).length).toBe(1 * MB);
    expect(dirname(small.path)).toBe(source);
  });
});
