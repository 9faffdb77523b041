// Durability (issue 11, point 3): which fsync calls happen, seen by strace on a real process.
// Uploads (saveUpload, saveMultipart: the built package) always fsync the file before it gets its
// name and the folder after; the mirror's publish does the same only with the sync option `fsync`.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname, join, relative } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, test } from '@jest/globals';
import { transformFileSync } from '@swc/core';
import { resolveConfig, resolveServeConfig, resolveSyncConfig } from '../src/config/config.js';
import { whileFolderSyncs } from '../src/next/writer.js';
import { UploadSyncError } from '../src/shared/errors.js';
import { ROOT, cleanEnv, tempProject } from './helpers.js';

let p: ReturnType<typeof tempProject>;
beforeEach(() => {
  p = tempProject('upload-sync-fsync-');
});
afterEach(async () => {
  await p.cleanup();
});

/** Runs `node --input-type=module -e code` under strace; the trace lines (file calls and fsyncs, fds shown as paths). */
async function traced(code: string): Promise<string[]> {
  const log = join(p.root, 'strace.log');
  const child = spawn('strace', ['-f', '-y', '-qq', '-o', log, '-e', 'trace=%file,fsync,fdatasync', process.execPath, '--input-type=module', '-e', code], {
    env: cleanEnv(),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let err = '';
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const exitCode = await new Promise<number | null>((resolve) => child.on('close', resolve));
  if (exitCode !== 0) throw new Error(`traced script failed (${exitCode}):\n${err}`);
  return (await readFile(log, 'utf8')).split('\n');
}

/**
 * In `lines`: the publish of `target` (a rename or link of a temp file to it), and the fsyncs
 * around it: of the temp file before, of the folder after.
 */
function around(lines: string[], target: string) {
  const publishAt = lines.findIndex((l) => /\b(rename|renameat2?|link|linkat)\(/.test(l) && l.includes(`"${target}"`));
  expect(publishAt).toBeGreaterThan(-1);
  const tmp = /"([^"]*\.upload-sync-[^"]*\.tmp)"/.exec(lines[publishAt]!)![1]!;
  const fsyncOf = (path: string) => (l: string) => /\bf(data)?sync\(/.test(l) && l.includes(`<${path}>`);
  return {
    tmpSyncedBefore: lines.slice(0, publishAt).some(fsyncOf(tmp)),
    dirSyncedAfter: lines.slice(publishAt + 1).some(fsyncOf(dirname(target))),
    anyFsync: lines.some((l) => /\bf(data)?sync\(/.test(l)),
  };
}

// The engine's publish and the writer's helpers are not exported from the package: transpile src/
// (swc, as jest does) into a folder under node_modules (so its own imports resolve) and run them in
// a traced process.
const out = join(ROOT, 'node_modules', '.cache', `upload-sync-fsync-test-${process.pid}`);
beforeAll(() => {
  const walk = (dir: string): string[] => readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(join(dir, e.name)) : [join(dir, e.name)]));
  for (const file of walk(join(ROOT, 'src')).filter((f) => f.endsWith('.ts'))) {
    const { code } = transformFileSync(file, { jsc: { parser: { syntax: 'typescript' }, target: 'es2022' }, module: { type: 'es6' } });
    const to = join(out, relative(join(ROOT, 'src'), file)).replace(/\.ts$/, '.js');
    mkdirSync(dirname(to), { recursive: true });
    writeFileSync(to, code);
  }
  writeFileSync(join(out, 'package.json'), '{"type":"module"}');
});
afterAll(() => rmSync(out, { recursive: true, force: true }));

describe('uploads fsync the file before its name and the folder after (built package)', () => {
  const NEXT = JSON.stringify(join(ROOT, 'dist', 'next.js'));

  test.each([true, false])('saveUpload, fsync: %s', async (fsync) => {
    const opts = JSON.stringify({ root: p.root, name: 'song.mp3', sync: false, ...(fsync ? {} : { fsync: false }) });
    const lines = await traced(`const { saveUpload } = await import(${NEXT}); await saveUpload(new Uint8Array(300000), ${opts});`);
    const seen = around(lines, join(p.source, 'song.mp3'));
    expect(seen).toEqual({ tmpSyncedBefore: fsync, dirSyncedAfter: fsync, anyFsync: fsync });
  });

  test('saveMultipart: each file before its link, the folder after', async () => {
    const opts = JSON.stringify({ root: p.root, sync: false });
    const code = `const { saveMultipart } = await import(${NEXT});
      const form = new FormData();
      form.append('a', new File([new Uint8Array(100000)], 'a.mp3'));
      form.append('b', new File([new Uint8Array(10)], 'b.mp3'));
      const r = new Request('http://x/', { method: 'POST', body: form });
      await saveMultipart(r, ${opts});`;
    const lines = await traced(code);
    const names = readdirSync(p.source);
    expect(names).toHaveLength(2);
    for (const name of names) expect(around(lines, join(p.source, name))).toMatchObject({ tmpSyncedBefore: true, dirSyncedAfter: true });
  });
});

describe('an upload answers once its folder is fsynced and its mirror copy done, the two at once', () => {
  // Issue 11, point 1: on a busy disk the folder's fsync is the upload's long wait; the mirror's copy
  // (page-cache work) runs inside it instead of after it.
  test('the fsync is in the thread pool before the copy runs, so a copy that holds the thread overlaps it', async () => {
    // The mirror's copy of a small file is synchronous. The copy here holds the thread for 300 ms,
    // then stats a marker: the folder's fsync must have begun before that, not after the copy.
    mkdirSync(p.source, { recursive: true });
    const marker = join(p.root, 'copy-done');
    const code = `const { whileFolderSyncs } = await import(${JSON.stringify(join(out, 'next', 'writer.js'))});
      const { statSync } = await import('node:fs');
      const got = await whileFolderSyncs(${JSON.stringify(p.source)}, async () => {
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 300);
        statSync(${JSON.stringify(marker)}, { throwIfNoEntry: false });
        return 'copied';
      });
      if (got !== 'copied') throw new Error(String(got));`;
    const lines = await traced(code);
    const fsyncAt = lines.findIndex((l) => /\bfsync\(/.test(l) && l.includes(`<${p.source}>`));
    const markerAt = lines.findIndex((l) => l.includes(`"${marker}"`));
    expect(fsyncAt).toBeGreaterThan(-1);
    expect(markerAt).toBeGreaterThan(-1);
    expect(fsyncAt).toBeLessThan(markerAt);
  });

  test('a failed fsync wins, but only once the copy has finished', async () => {
    let finished = false;
    const missing = join(p.root, 'gone');
    const settled = whileFolderSyncs(missing, async () => {
      await new Promise((resolve) => setImmediate(resolve));
      finished = true;
      return 'copied';
    });
    await expect(settled).rejects.toMatchObject({ code: 'ENOENT' });
    expect(finished).toBe(true);
  });

  test('a failed copy is thrown; no folder: no fsync', async () => {
    await expect(whileFolderSyncs(null, async () => Promise.reject(new Error('copy failed')))).rejects.toThrow('copy failed');
    await expect(whileFolderSyncs(null, async () => 7)).resolves.toBe(7);
  });
});

describe('the mirror: publish fsyncs only with the option (src, transpiled, run under strace)', () => {
  /** Publishes source files of these sizes into dest with the given options; the trace. */
  async function publishTraced(sizes: number[], options: Record<string, unknown>): Promise<string[]> {
    mkdirSync(p.source, { recursive: true });
    mkdirSync(p.dest, { recursive: true });
    for (const [i, size] of sizes.entries()) writeFileSync(join(p.source, `f${i}.mp3`), randomBytes(size));
    const files = sizes.map((_, i) => {
      const st = statSync(join(p.source, `f${i}.mp3`));
      return { src: join(p.source, `f${i}.mp3`), target: join(p.dest, `f${i}.mp3`), expected: { size: st.size, mtimeMs: st.mtimeMs, atimeMs: st.atimeMs, mode: st.mode } };
    });
    const code = `const { publish, publishSmallSync } = await import(${JSON.stringify(join(out, 'engine', 'publish.js'))});
      const opts = ${JSON.stringify(options)};
      for (const f of ${JSON.stringify(files)}) {
        // The run's order: the synchronous small-file path first, the async publish when it declines.
        if (!publishSmallSync(f.src, f.target, { ...opts, expected: f.expected })) await publish(f.src, f.target, { ...opts, expected: f.expected });
      }`;
    return traced(code);
  }

  // A small file (the synchronous path, after the first copy found no reflink) and a large one (the streamed path).
  const SIZES = [1000, 2000, 3 * 1024 * 1024];

  test.each([true, false])('copy, fsync: %s', async (fsync) => {
    const lines = await publishTraced(SIZES, { strategy: 'copy', fileMode: null, fsync });
    for (const i of SIZES.keys()) {
      expect([i, around(lines, join(p.dest, `f${i}.mp3`))]).toEqual([i, { tmpSyncedBefore: fsync, dirSyncedAfter: fsync, anyFsync: fsync }]);
    }
  });

  test.each([true, false])('a whole run (the built CLI), UPLOAD_SYNC_FSYNC=%s: each file before its rename, its folder after', async (fsync) => {
    mkdirSync(join(p.source, 'album'), { recursive: true });
    writeFileSync(join(p.source, 'album', 'small.mp3'), randomBytes(2000));
    writeFileSync(join(p.source, 'album', 'large.mp3'), randomBytes(3 * 1024 * 1024));
    const cli = JSON.stringify(join(ROOT, 'dist', 'cli.js'));
    const argv = JSON.stringify(['node', 'upload-sync', 'sync', '--source', p.source, '--dest', p.dest]);
    // The CLI in this very process (under strace), its environment as a user would set it.
    const lines = await traced(`process.env.ENABLE_UPLOAD_SYNC = 'true'; process.env.UPLOAD_SYNC_FSYNC = ${JSON.stringify(String(fsync))}; process.env.UPLOAD_SYNC_LOCK_DIR = ${JSON.stringify(join(p.root, 'locks'))}; process.argv = ${argv}; await import(${cli});`);
    for (const name of ['small.mp3', 'large.mp3']) {
      expect([name, around(lines, join(p.dest, 'album', name))]).toEqual([name, { tmpSyncedBefore: fsync, dirSyncedAfter: fsync, anyFsync: fsync }]);
    }
  });

  test('copy, fsync not given: no fsync', async () => {
    const lines = await publishTraced(SIZES, { strategy: 'copy', fileMode: null });
    expect(lines.filter((l) => /\bf(data)?sync\(/.test(l))).toEqual([]);
  });

  test('hardlink, fsync: the folder after the rename (the data is the source\'s own inode)', async () => {
    const lines = await publishTraced([5000], { strategy: 'hardlink', fileMode: null, fsync: true });
    expect(around(lines, join(p.dest, 'f0.mp3')).dirSyncedAfter).toBe(true);
  });
});

describe('the option parses', () => {
  const root = '/srv/app';
  const code = (fn: () => unknown) => {
    try {
      fn();
    } catch (err) {
      return err instanceof UploadSyncError ? `${err.code}: ${err.message}` : String(err);
    }
    return 'no error';
  };

  test.each<[Record<string, unknown>, Record<string, string>, boolean]>([
    [{}, {}, false],
    [{}, { UPLOAD_SYNC_FSYNC: 'true' }, true],
    [{}, { UPLOAD_SYNC_FSYNC: 'on' }, true],
    [{}, { UPLOAD_SYNC_FSYNC: '0' }, false],
    [{}, { UPLOAD_SYNC_FSYNC: '' }, false],
    [{ fsync: true }, {}, true],
    [{ fsync: false }, { UPLOAD_SYNC_FSYNC: 'yes' }, false],
  ])('options %j, env %j: fsync %s', (options, env, expected) => {
    expect(resolveSyncConfig(options, { UPLOAD_SYNC_ROOT: root, ...env }).fsync).toBe(expected);
    expect(resolveConfig(options, { UPLOAD_SYNC_ROOT: root, ...env }).fsync).toBe(expected);
  });

  test.each<[Record<string, unknown>, Record<string, string>, string]>([
    [{}, { UPLOAD_SYNC_FSYNC: 'sometimes' }, 'environment variable UPLOAD_SYNC_FSYNC: expected true or false (also 1/0, yes/no, on/off), got "sometimes"'],
    [{ fsync: 'yes please' }, {}, 'option `fsync`: expected true or false'],
  ])('a bad value is ERR_CONFIG naming it: %j %j', (options, env, message) => {
    expect(code(() => resolveSyncConfig(options, { UPLOAD_SYNC_ROOT: root, ...env }))).toContain(`ERR_CONFIG: Invalid ${message}`);
  });

  test('a bad UPLOAD_SYNC_FSYNC does not break the route or the saving of uploads', () => {
    expect(code(() => resolveServeConfig({}, { UPLOAD_SYNC_ROOT: root, UPLOAD_SYNC_FSYNC: 'sometimes' }))).toBe('no error');
  });
});
