import { spawn } from 'node:child_process';
import fs from 'node:fs';
import { appendFile, chmod, chown, lstat, mkdir, open, readdir, readFile, rename, rm, stat, unlink, utimes, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as delay } from 'node:timers/promises';
import { afterEach, beforeEach, describe, expect, test } from '@jest/globals';
import { changedAt } from '../src/watch/watcher.js';
import { createWatcher, UploadSyncError, type SyncResult, type UploadWatcher, type WatcherError, type WatcherOptions } from '../src/index.js';
import { DIST_ESM, cleanEnv, exists, run, tempFiles, tempProject, waitFor, writeTree } from './helpers.js';
import { published, readMirror } from './watch-helpers.js';

let p: ReturnType<typeof tempProject>;
let watchers: UploadWatcher[] = [];

beforeEach(async () => {
  p = tempProject('upload-sync-watch-');
  await mkdir(p.source, { recursive: true });
});
afterEach(async () => {
  await Promise.all(watchers.map((w) => w.close()));
  watchers = [];
  await p.cleanup();
});

/** An hour ago: files that old are synced by the start reconcile at once (not waited on as maybe still written). */
const old = async (path: string) => {
  const t = new Date(Date.now() - 3600_000);
  await utimes(path, t, t);
};

const readText = (path: string) => readFile(path, 'utf8').catch(() => null);

describe.each([false, true])('createWatcher (usePolling: %s)', (usePolling) => {
  const STABLE = 150;

  /** A forced watcher on the temp project (jest runs with NODE_ENV=test, so `force` stands in for production). */
  function start(extra: WatcherOptions = {}) {
    const w = createWatcher({
      source: p.source,
      dest: p.dest,
      force: true,
      lockDir: join(p.root, 'locks'),
      usePolling,
      stableMs: STABLE,
      debounceMs: 50,
      maxWaitMs: 1000,
      reconcileMs: 0,
      ...extra,
    });
    watchers.push(w);
    const syncs: SyncResult[] = [];
    const errors: WatcherError[] = [];
    w.on('sync', (r) => syncs.push(r));
    w.on('error', (e) => errors.push(e));
    return { w, syncs, errors };
  }

  test('syncs the tree at start, then each new or changed file; ignored names trigger nothing', async () => {
    await writeTree(p.source, { 'old.mp3': 'old', 'albums/a/01.flac': 'one' });
    await old(join(p.source, 'old.mp3'));
    await old(join(p.source, 'albums/a/01.flac'));
    const { w, syncs, errors } = start();
    expect(w.enabled).toBe(true);
    let readyEvents = 0;
    w.on('ready', () => readyEvents++);
    await w.ready;
    // ready = watching and the first full sync done: the old files are there already.
    expect(await readMirror(p.dest)).toEqual({ 'albums/a/01.flac': 'one', 'old.mp3': 'old' });
    expect(readyEvents).toBe(1);
    expect(syncs).toHaveLength(1);
    expect(syncs[0]).toMatchObject({ status: 'ok', dryRun: false, copied: ['albums/a/01.flac', 'old.mp3'] });
    expect(w.stats()).toMatchObject({ mode: usePolling ? 'polling' : 'native', sourcePresent: true, reconciles: 1, syncs: 1, filesSynced: 2, errors: 0 });

    // Names that are never synced: dotfiles, our temp files, partial uploads, a dot folder.
    await writeTree(p.source, { '.DS_Store': 'x', '.upload-sync-1-abc.tmp': 'x', 'song.mp3.part': 'x', 'b.mp3.crdownload': 'x', '.hidden/in.mp3': 'x' });
    await writeTree(p.source, { 'new.mp3': 'new', 'albums/b/02.mp3': 'two' });
    await writeFile(join(p.source, 'old.mp3'), 'old, edited');
    await waitFor(async () => (await readText(join(p.dest, 'albums/b/02.mp3'))) === 'two' && (await readText(join(p.dest, 'old.mp3'))) === 'old, edited' && (await exists(join(p.dest, 'new.mp3'))), { message: 'the new and changed files in dest' });
    expect(await readMirror(p.dest)).toEqual({ 'albums/a/01.flac': 'one', 'albums/b/02.mp3': 'two', 'new.mp3': 'new', 'old.mp3': 'old, edited' });
    expect(await tempFiles(p.dest)).toEqual([]);
    // Every sync after the first was targeted at the changed paths only.
    const later = () => syncs.slice(1).flatMap((r) => [...r.copied, ...r.updated]);
    // The 'sync' event comes once its run has ended, a moment after the rename: wait for it, not the file.
    await waitFor(() => later().length >= 3, { message: "the 'sync' events of the three changes" });
    expect(later().sort()).toEqual(['albums/b/02.mp3', 'new.mp3', 'old.mp3']);

    // Ignored names alone: nothing becomes pending and nothing is synced. A real file written after
    // them shows their events have come (inotify and the poller report one folder in order).
    await writeTree(p.source, { '.another': 'x', 'c.mp3.part': 'x', '.upload-sync-2-def.tmp': 'x' });
    await writeFile(join(p.source, 'marker.mp3'), 'm');
    await waitFor(async () => exists(join(p.dest, 'marker.mp3')), { message: 'the marker in dest' });
    expect(w.stats().pending).toEqual([]);
    expect(later().filter((rel) => rel !== 'marker.mp3').sort()).toEqual(['albums/b/02.mp3', 'new.mp3', 'old.mp3']);
    expect((await readdir(p.dest)).filter((n) => n.startsWith('.') || n.includes('.part') || n.includes('.crdownload'))).toEqual([]);
    expect(errors).toEqual([]);
  });

  test('a file being written when the watcher starts is left by the start reconcile, and never published partially', async () => {
    const stableMs = 400;
    const src = join(p.source, 'slow.wav');
    const dst = join(p.dest, 'slow.wav');
    const chunk = (i: number) => Buffer.alloc(32 * 1024, 65 + (i % 26));
    const written: Buffer[] = [chunk(0)];

    // The writer starts before the watcher and goes on through its start-up (the start reconcile
    // finds the file mid-write, its mtime fresh) and for two more pieces after ready.
    const fh = await open(src, 'w');
    await fh.write(written[0]!);
    const { w, syncs } = start({ stableMs });
    let piecesAtReady: number | null = null;
    void w.ready.then(() => (piecesAtReady = written.length));
    const sizes = new Set<number>();
    let observing = true;
    let looks = 0;
    const observer = (async () => {
      while (observing) {
        looks++;
        const seen = await stat(dst).catch(() => null);
        if (seen) sizes.add(seen.size);
        await delay(3);
      }
    })();
    const gaps: number[] = [];
    let last = performance.now();
    let lastWrite: number;
    let arrived: number;
    const full = () => Buffer.concat(written);
    try {
      while ((piecesAtReady === null || written.length < piecesAtReady + 2) && written.length < 300) {
        await delay(60); // the slow client's pause: part of the scenario, not a wait for the watcher
        const piece = chunk(written.length);
        await fh.write(piece);
        written.push(piece);
        const now = performance.now();
        gaps.push(now - last);
        last = now;
      }
      await fh.close();
      lastWrite = performance.now();
      expect(piecesAtReady).not.toBeNull(); // ready came while the file was being written
      // The start reconcile (the one sync before ready) left it: it was still being written.
      expect(syncs[0]).toMatchObject({ status: 'ok', copied: [], updated: [], errors: [] });
      expect(w.stats().reconciles).toBe(1);
      await waitFor(async () => (await stat(dst).catch(() => null))?.size === full().length, { message: 'the whole file in dest' });
      arrived = performance.now();
    } finally {
      observing = false;
      await observer;
    }

    expect(Math.max(...gaps)).toBeLessThan(stableMs); // the scenario held: every pause was shorter than stableMs
    expect(looks).toBeGreaterThan(20); // dest was looked at all along the write
    expect([...sizes].filter((n) => n !== full().length)).toEqual([]); // and never held a part of it
    expect(arrived - lastWrite).toBeGreaterThanOrEqual(stableMs - 20); // it waited for the file to be stable
    expect((await readFile(dst)).equals(full())).toBe(true);
    // The 'sync' event comes once the run has ended, a moment after the file is in dest.
    await waitFor(() => syncs.some((r) => r.copied.length > 0), { message: "the 'sync' event of the copy" });
    expect(syncs.flatMap((r) => r.copied)).toEqual(['slow.wav']); // copied once, whole
    expect(await tempFiles(p.dest)).toEqual([]);
  });

  test('a writer that stamps an old mtime after each piece is still never published partially', async () => {
    // The clock of stability then cannot come from the mtime: each change counts from when it is seen.
    const stableMs = 300;
    const { w } = start({ stableMs });
    await w.ready;
    const src = join(p.source, 'stamped.wav');
    const dst = join(p.dest, 'stamped.wav');
    const past = new Date(Date.now() - 86_400_000);
    const chunks = Array.from({ length: 6 }, (_, i) => Buffer.alloc(16 * 1024, 97 + i));
    const full = Buffer.concat(chunks);
    const sizes = new Set<number>();
    let observing = true;
    const observer = (async () => {
      while (observing) {
        const seen = await stat(dst).catch(() => null);
        if (seen) sizes.add(seen.size);
        await delay(3);
      }
    })();
    const fh = await open(src, 'w');
    for (const chunk of chunks) {
      await fh.write(chunk);
      await fh.utimes(past, past);
      await delay(stableMs / 3); // the writer's pause, shorter than stableMs: part of the scenario
    }
    await fh.close();
    await waitFor(async () => (await stat(dst).catch(() => null))?.size === full.length, { message: 'the whole file in dest' });
    observing = false;
    await observer;
    expect([...sizes].filter((n) => n !== full.length)).toEqual([]);
    expect((await readFile(dst)).equals(full)).toBe(true);
  });

  test('the start reconcile of a tree is one full run: every file copied, orphans and a dead sync\'s temp files removed', async () => {
    const files: Record<string, string> = {};
    for (let i = 0; i < 60; i++) files[`artist-${i % 3}/album-${i % 4}/track-${String(i).padStart(2, '0')}.mp3`] = `track ${i}`;
    await writeTree(p.source, files);
    await Promise.all(Object.keys(files).map((rel) => old(join(p.source, rel))));
    // What the mirror holds from before: an orphan, a folder the source no longer has, and temp
    // files of a sync that was killed (its pid is gone: a child that has exited).
    const deadPid = Number((await run(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'])).stdout);
    const dead = `.upload-sync-${deadPid.toString(36)}-0123456789ab.tmp`;
    await writeTree(p.dest, { 'orphan.mp3': 'gone from source', 'gone-album/x.mp3': 'x', [dead]: 'half', [`artist-0/${dead}`]: 'half' });
    const lines: string[] = [];
    const logger = { info: (m: string) => lines.push(m), warn: (m: string) => lines.push(m), error: (m: string) => lines.push(m) };
    const { w, syncs, errors } = start({ delete: true, logger });
    await w.ready;

    const sorted = Object.keys(files).sort();
    expect(syncs).toHaveLength(1);
    expect(syncs[0]).toMatchObject({ status: 'ok', dryRun: false, copied: sorted, updated: [], deleted: ['gone-album/x.mp3', 'orphan.mp3'], unchanged: 0, errors: [] });
    expect(w.stats()).toMatchObject({ reconciles: 1, syncs: 1, filesSynced: 62, pending: [], errors: 0 });
    expect(Object.keys(await readMirror(p.dest))).toEqual(sorted);
    expect(await exists(join(p.dest, 'gone-album'))).toBe(false);
    // One run, logged like any sync: its start (full), a line per file, its outcome.
    expect(lines.filter((l) => l.startsWith('Sync started'))).toEqual([expect.stringMatching(/ \(full\)$/)]);
    expect(lines.filter((l) => l.startsWith('Copied '))).toHaveLength(60);
    expect(lines).toContainEqual(expect.stringContaining(`a temp file of a sync that died (pid ${deadPid})`));
    expect(lines.filter((l) => l.startsWith('Sync ok: 60 copied, 0 updated, 2 deleted, 0 unchanged'))).toHaveLength(1);
    expect(errors).toEqual([]);
  });

  test('a file appended to in place (same name, same folder, no rename) is synced again', async () => {
    await writeTree(p.source, { 'album/live.mp3': 'first set' });
    await old(join(p.source, 'album/live.mp3'));
    const { w, syncs, errors } = start();
    await w.ready;
    expect(await readMirror(p.dest)).toEqual({ 'album/live.mp3': 'first set' });
    // An append writes the file where it is: no name appears or goes, its folder sees only writes.
    await appendFile(join(p.source, 'album/live.mp3'), ', encore');
    await waitFor(async () => (await readText(join(p.dest, 'album/live.mp3'))) === 'first set, encore', { message: 'the appended file in dest' });
    await appendFile(join(p.source, 'album/live.mp3'), ', second encore');
    await waitFor(async () => (await readText(join(p.dest, 'album/live.mp3'))) === 'first set, encore, second encore', { message: 'the second append in dest' });
    // The 'sync' event comes once its run has ended, a moment after the rename: wait for it, not the file.
    await waitFor(() => syncs.slice(1).flatMap((r) => r.updated).length >= 2, { message: "the second append's sync event" });
    expect(syncs.slice(1).flatMap((r) => r.updated)).toEqual(['album/live.mp3', 'album/live.mp3']);
    expect(errors).toEqual([]);
  });

  test('200 files written at once all arrive, in a few syncs', async () => {
    const { w, syncs } = start();
    await w.ready;
    const before = syncs.length;
    const files: Record<string, string> = {};
    for (let i = 0; i < 200; i++) files[`batch/${i % 4}/track-${String(i).padStart(3, '0')}.mp3`] = `track ${i}`;
    await Promise.all(Object.entries(files).map(async ([rel, content]) => {
      await mkdir(join(p.source, rel, '..'), { recursive: true });
      await writeFile(join(p.source, rel), content);
    }));
    await waitFor(async () => published(await readMirror(p.dest)).length === 200, { timeoutMs: 30_000, message: '200 files in dest' });
    expect(await readMirror(p.dest)).toEqual(Object.fromEntries(Object.entries(files).sort(([a], [b]) => (a < b ? -1 : 1))));
    // A run's 'sync' event comes once it has ended, a moment after its last file is in dest.
    await waitFor(() => syncs.slice(before).flatMap((r) => r.copied).length >= 200, { message: "the 'sync' events of the 200 copies" });
    const runs = syncs.slice(before);
    expect(runs.flatMap((r) => r.copied).length).toBe(200);
    expect(runs.length).toBeGreaterThanOrEqual(1);
    expect(runs.length).toBeLessThanOrEqual(5);
    expect(runs.every((r) => r.status === 'ok')).toBe(true);
  });

  test('a file renamed into a brand-new folder arrives by the folder\'s rescan, not a reconcile', async () => {
    // reconcileMs 0: no periodic reconcile. A file chokidar (or a watch set up a moment late) misses
    // is never an event, so only the rescan of the new folder can bring it; it then arrives like
    // any file (stableMs, a poll, the batch window), which the 10 s wait below bounds loosely.
    const { w, errors } = start();
    await w.ready;
    const staging = join(p.root, 'staging');
    await mkdir(staging);
    for (let i = 0; i < 5; i++) {
      const name = `new-${i}/deeper/song.mp3`;
      await writeFile(join(staging, `${i}.mp3`), `song ${i}`);
      // The folder and the file a moment apart: the watcher lists the new folder while the file arrives.
      await mkdir(join(p.source, `new-${i}`, 'deeper'), { recursive: true });
      await rename(join(staging, `${i}.mp3`), join(p.source, name));
      await waitFor(async () => (await readText(join(p.dest, name))) === `song ${i}`, { timeoutMs: 10_000, message: `${name} in dest` });
    }
    expect(w.stats().reconciles).toBe(1); // the start's only
    expect(errors).toEqual([]);
  });

  test('files created between start and ready, and while no watcher ran, are synced', async () => {
    await writeTree(p.source, { 'while-down.mp3': 'written while nothing watched' });
    const { w } = start();
    // No await: these land while chokidar scans and the start reconcile runs.
    await writeFile(join(p.source, 'during-start-1.mp3'), 'one');
    await mkdir(join(p.source, 'during'), { recursive: true });
    await writeFile(join(p.source, 'during/start-2.mp3'), 'two');
    await w.ready;
    await writeFile(join(p.source, 'after-ready.mp3'), 'three');
    await waitFor(async () => published(await readMirror(p.dest)).length === 4, { message: 'four files in dest' });
    expect(await readMirror(p.dest)).toEqual({
      'after-ready.mp3': 'three',
      'during-start-1.mp3': 'one',
      'during/start-2.mp3': 'two',
      'while-down.mp3': 'written while nothing watched',
    });
  });

  test('the periodic reconcile catches what no event reports (a mirror wiped by a rebuild)', async () => {
    await writeTree(p.source, { 'a.mp3': 'a', 'sub/b.mp3': 'b' });
    await old(join(p.source, 'a.mp3'));
    await old(join(p.source, 'sub/b.mp3'));
    const { w, syncs } = start({ reconcileMs: 300 });
    await w.ready;
    expect(await readMirror(p.dest)).toEqual({ 'a.mp3': 'a', 'sub/b.mp3': 'b' });
    // `next build` replaces .next/standalone: dest is gone, and the source saw no event at all.
    await rm(join(p.root, '.next'), { recursive: true, force: true });
    const reconcilesBefore = w.stats().reconciles;
    const syncsBefore = syncs.length;
    // The 'sync' event comes once the run has ended, a moment after the files are in dest.
    await waitFor(() => syncs.slice(syncsBefore).some((r) => r.copied.length === 2 && r.status === 'ok'), { message: 'the mirror rebuilt by a reconcile' });
    expect(await readMirror(p.dest)).toEqual({ 'a.mp3': 'a', 'sub/b.mp3': 'b' });
    expect(w.stats().reconciles).toBeGreaterThan(reconcilesBefore);
  });

  test('flush() syncs pending paths at once and resolves with that run', async () => {
    const { w, syncs } = start({ stableMs: 60_000 });
    expect(await w.flush()).toMatchObject({ status: 'ok', copied: [], updated: [], deleted: [], errors: [] }); // waits for ready; nothing pending
    await writeFile(join(p.source, 'fresh.mp3'), 'fresh');
    await waitFor(() => w.stats().pending.includes('fresh.mp3'), { message: 'fresh.mp3 pending' });
    const result = await w.flush();
    expect(result).toMatchObject({ status: 'ok', copied: ['fresh.mp3'], errors: [] });
    expect(syncs[syncs.length - 1]).toBe(result);
    expect(await readText(join(p.dest, 'fresh.mp3'))).toBe('fresh');
    // A late event of the same write may make it pending again; it is current in dest, so a flush copies nothing.
    expect(await w.flush()).toMatchObject({ status: 'ok', copied: [], updated: [] });
  });

  test('close() while a large copy runs: it finishes that copy, leaves no temp file and no half file', async () => {
    const MB = 1024 * 1024;
    const size = 256 * MB;
    const src = join(p.source, 'big.wav');
    const fh = await open(src, 'w');
    for (let i = 0; i < size / MB; i++) await fh.write(Buffer.alloc(MB, i % 251));
    await fh.close();
    await old(src);
    const { w } = start();
    // The start reconcile copies it: close as soon as its temp file shows in dest.
    await waitFor(async () => (await tempFiles(p.dest)).length > 0, { intervalMs: 1, message: 'the copy to start' });
    const closing = w.close();
    expect(w.close()).toBe(closing); // idempotent: the same promise
    await closing;
    expect(await tempFiles(p.dest)).toEqual([]);
    const st = await stat(join(p.dest, 'big.wav')).catch(() => null);
    // Published whole (close waits for the copy in flight), never a half file under the final name.
    expect(st?.size).toBe(size);
    const out = await open(join(p.dest, 'big.wav'), 'r');
    for (const at of [0, 100, 200, 255]) {
      const { buffer } = await out.read(Buffer.alloc(16), 0, 16, at * MB);
      expect(buffer.equals(Buffer.alloc(16, at % 251))).toBe(true);
    }
    await out.close();
    expect(w.stats()).toMatchObject({ mode: 'off', syncing: false });
    await unlink(src);
  });

  test('the source folder removed and created again: the watcher recovers', async () => {
    await writeTree(p.source, { 'first.mp3': '1' });
    const { w, errors } = start();
    await w.ready;
    await waitFor(async () => exists(join(p.dest, 'first.mp3')), { message: 'first.mp3 in dest' });
    await rm(p.source, { recursive: true });
    await waitFor(() => !w.stats().sourcePresent, { message: 'the watcher to see the source gone' });
    expect(errors.some((e) => e.code === 'ERR_SOURCE_MISSING')).toBe(true);
    await mkdir(p.source);
    await writeFile(join(p.source, 'second.mp3'), '2'); // before the watcher noticed the new folder
    await waitFor(() => w.stats().sourcePresent, { message: 'the watcher to see the source back' });
    await writeTree(p.source, { 'later/third.mp3': '3' });
    await waitFor(async () => (await readText(join(p.dest, 'later/third.mp3'))) === '3' && (await readText(join(p.dest, 'second.mp3'))) === '2', { message: 'new files in dest' });
    expect(await readMirror(p.dest)).toEqual({ 'first.mp3': '1', 'later/third.mp3': '3', 'second.mp3': '2' });
  });

  test('deletions are mirrored only with `delete`', async () => {
    await writeTree(p.source, { 'keep.mp3': 'k', 'gone.mp3': 'g', 'album/x.mp3': 'x', 'album/y.mp3': 'y' });
    for (const f of ['keep.mp3', 'gone.mp3', 'album/x.mp3', 'album/y.mp3']) await old(join(p.source, f));
    const withDelete = start({ delete: true });
    await withDelete.w.ready;
    expect(Object.keys(await readMirror(p.dest))).toHaveLength(4);
    await unlink(join(p.source, 'gone.mp3'));
    await rm(join(p.source, 'album'), { recursive: true });
    await waitFor(async () => !(await exists(join(p.dest, 'gone.mp3'))) && !(await exists(join(p.dest, 'album'))), { message: 'deletions mirrored' });
    expect(await readMirror(p.dest)).toEqual({ 'keep.mp3': 'k' });
    await withDelete.w.close();

    const plain = start();
    await plain.w.ready;
    await unlink(join(p.source, 'keep.mp3'));
    await writeFile(join(p.source, 'after.mp3'), 'a');
    await waitFor(async () => exists(join(p.dest, 'after.mp3')), { message: 'after.mp3 in dest' });
    expect(await readMirror(p.dest)).toEqual({ 'after.mp3': 'a', 'keep.mp3': 'k' });
  });

  test('a chmod or utimes of a folder makes nothing pending; a file named after its folder is still synced and deleted', async () => {
    await writeTree(p.source, { 'sub/a.mp3': 'a' });
    await old(join(p.source, 'sub/a.mp3'));
    // A long stableMs: what the events made pending stays pending while it is looked at.
    const { w, errors } = start({ delete: true, stableMs: 60_000, maxWaitMs: 60_000 });
    await w.ready;
    // inotify reports a watched folder's own attribute change named after the folder: `sub/sub`,
    // and `uploads` for the source itself. Nothing by those names exists on either side.
    const t = new Date();
    await chmod(join(p.source, 'sub'), 0o750);
    await utimes(join(p.source, 'sub'), t, t);
    await chmod(p.source, 0o750);
    await utimes(p.source, t, t);
    // Events of one folder come in order: once these two files are pending, the events before them were handled.
    await writeTree(p.source, { 'sub/b.mp3': 'b', 'c.mp3': 'c' });
    await waitFor(() => ['sub/b.mp3', 'c.mp3'].every((f) => w.stats().pending.includes(f)), { message: 'the new files pending' });
    expect(w.stats().pending.filter((rel) => rel !== 'sub')).toEqual(['c.mp3', 'sub/b.mp3']); // (`sub` is dropped by the next poll: a folder)
    await w.flush();
    expect(await readMirror(p.dest)).toEqual({ 'c.mp3': 'c', 'sub/a.mp3': 'a', 'sub/b.mp3': 'b' });
    await w.close();

    // A file that does bear its folder's name is an entry like any other.
    const again = start({ delete: true });
    await again.w.ready;
    await writeTree(p.source, { 'live/live': 'named after its folder' });
    await waitFor(async () => (await readText(join(p.dest, 'live/live'))) === 'named after its folder', { message: 'live/live in dest' });
    await unlink(join(p.source, 'live/live'));
    await waitFor(async () => !(await exists(join(p.dest, 'live/live'))), { message: 'live/live removed from dest' });
    expect(errors).toEqual([]);
    expect(again.errors).toEqual([]);
  });

  test('an unreadable subfolder is reported (EACCES) and the rest is watched', async () => {
    // Root reads everything: the watcher runs in a child process as `nobody` when the tests run as root.
    const asRoot = process.getuid?.() === 0;
    await writeTree(p.source, { 'open/a.mp3': 'a', 'locked/secret.mp3': 's' });
    await old(join(p.source, 'open/a.mp3')); // synced by the start reconcile, before ready
    await mkdir(p.dest, { recursive: true });
    if (asRoot) {
      await chmod(p.root, 0o755);
      for (const dir of [p.root, join(p.root, 'public'), p.source, join(p.source, 'open'), join(p.root, '.next'), join(p.root, '.next', 'standalone'), join(p.root, '.next', 'standalone', 'public'), p.dest]) await chown(dir, 65534, 65534);
    }
    await chmod(join(p.source, 'locked'), 0o000);
    const script = `
      import { createWatcher } from ${JSON.stringify(DIST_ESM)};
      const w = createWatcher({ source: ${JSON.stringify(p.source)}, dest: ${JSON.stringify(p.dest)}, force: true, usePolling: ${usePolling},
        lockDir: ${JSON.stringify(join(p.root, 'locks'))}, stableMs: 100, debounceMs: 20, reconcileMs: 0 });
      w.on('error', (e) => console.log(JSON.stringify({ error: e.code, path: e.path, message: e.message })));
      w.on('sync', (r) => console.log(JSON.stringify({ sync: r.status, copied: r.copied })));
      await w.ready;
      console.log(JSON.stringify({ ready: true }));
      process.stdin.on('data', () => {});
      process.stdin.on('end', () => w.close());
    `;
    if (asRoot) await mkdir(join(p.root, 'locks'), { recursive: true }).then(() => chown(join(p.root, 'locks'), 65534, 65534));
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { env: cleanEnv(), stdio: ['pipe', 'pipe', 'pipe'], ...(asRoot ? { uid: 65534, gid: 65534 } : {}) });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
    try {
      await waitFor(() => out.includes('"ready":true') || child.exitCode !== null, { message: `the child watcher to be ready (stderr: ${err})` });
      const lines = () => out.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
      expect(lines().some((l) => l.error === 'EACCES' && l.path === 'locked')).toBe(true);
      expect(await readMirror(p.dest)).toEqual({ 'open/a.mp3': 'a' });
      // The rest is watched: a new file in the readable folder still arrives.
      await writeFile(join(p.source, 'open', 'b.mp3'), 'b');
      await waitFor(() => lines().some((l) => Array.isArray(l.copied) && l.copied.includes('open/b.mp3')), { message: 'the sync of open/b.mp3' });
      expect(await readText(join(p.dest, 'open', 'b.mp3'))).toBe('b');
    } finally {
      child.stdin.end();
      const code = await exited;
      await chmod(join(p.source, 'locked'), 0o755);
      expect(code).toBe(0);
    }
  });
});

describe('createWatcher, native events: a watch per folder, none per file', () => {
  /** Records what `fs.watch` is asked to watch (the native watching looks it up on `node:fs` at each call). */
  function recordWatches(): { watched: string[]; restore: () => void } {
    const realWatch = fs.watch;
    const watched: string[] = [];
    const recording = (path: fs.PathLike, ...rest: unknown[]) => {
      watched.push(relative(p.source, String(path)));
      return (realWatch as (...args: unknown[]) => fs.FSWatcher)(path, ...rest);
    };
    Object.assign(fs, { watch: recording });
    return { watched, restore: () => Object.assign(fs, { watch: realWatch }) };
  }

  /** The inotify watches this process holds (Linux: the `inotify wd:` lines of its inotify descriptors); `null` elsewhere. */
  async function inotifyWatches(): Promise<number | null> {
    const fds = await readdir('/proc/self/fd').catch(() => null);
    if (fds === null) return null;
    let n = 0;
    for (const fd of fds) {
      const info = await readFile(`/proc/self/fdinfo/${fd}`, 'utf8').catch(() => '');
      n += (info.match(/^inotify wd:/gm) ?? []).length;
    }
    return n;
  }

  function start(extra: WatcherOptions = {}) {
    const w = createWatcher({ source: p.source, dest: p.dest, force: true, lockDir: join(p.root, 'locks'), usePolling: false, stableMs: 150, debounceMs: 50, reconcileMs: 0, ...extra });
    watchers.push(w);
    const errors: WatcherError[] = [];
    w.on('error', (e) => errors.push(e));
    return { w, errors };
  }

  test('a tree of 4 folders and 120 files takes 4 watches; new folders get one each, files none', async () => {
    const files: Record<string, string> = { '.hidden/skip.mp3': 'never watched' };
    for (const folder of ['', 'a/', 'b/', 'b/c/']) for (let i = 0; i < 30; i++) files[`${folder}t-${i}.mp3`] = `${folder}${i}`;
    await writeTree(p.source, files);
    await Promise.all(Object.keys(files).map((rel) => old(join(p.source, rel))));
    const before = await inotifyWatches();
    const { watched, restore } = recordWatches();
    try {
      const { w, errors } = start();
      await w.ready;
      expect(w.stats().mode).toBe('native');
      expect(published(await readMirror(p.dest))).toHaveLength(120);
      expect([...watched].sort()).toEqual(['', 'a', 'b', 'b/c']);
      const now = await inotifyWatches();
      if (now !== null && before !== null) expect(now - before).toBe(4); // the kernel's count: what memory and the inotify limit depend on

      // A new folder, and one inside it, get a watch each; their files are found and synced, and watched by none.
      await writeTree(p.source, { 'd/e/new.mp3': 'new', 'd/top.mp3': 'top' });
      await waitFor(async () => (await readText(join(p.dest, 'd/e/new.mp3'))) === 'new' && (await readText(join(p.dest, 'd/top.mp3'))) === 'top', { message: 'the new folders\' files in dest' });
      await appendFile(join(p.source, 'b/c/t-0.mp3'), ' and more');
      await waitFor(async () => (await readText(join(p.dest, 'b/c/t-0.mp3'))) === 'b/c/0 and more', { message: 'the appended file in dest' });
      expect([...watched].sort()).toEqual(['', 'a', 'b', 'b/c', 'd', 'd/e']);
      for (const rel of watched) expect((await lstat(join(p.source, rel))).isDirectory()).toBe(true);
      const after = await inotifyWatches();
      if (after !== null && before !== null) expect(after - before).toBe(6);
      expect(errors).toEqual([]);
      await w.close();
      const closed = await inotifyWatches();
      if (closed !== null && before !== null) expect(closed - before).toBe(0);
    } finally {
      restore();
    }
  });

  test('a folder moved within the source, or removed and made again, is watched again under its name', async () => {
    await writeTree(p.source, { 'a/1.mp3': '1' });
    await old(join(p.source, 'a/1.mp3'));
    const { watched, restore } = recordWatches();
    try {
      const { w, errors } = start({ delete: true });
      await w.ready;
      // Moved: the old watch follows the folder under its old name, so the new name gets its own.
      await rename(join(p.source, 'a'), join(p.source, 'b'));
      await waitFor(async () => (await readText(join(p.dest, 'b/1.mp3'))) === '1' && !(await exists(join(p.dest, 'a'))), { message: 'the moved folder mirrored' });
      await writeFile(join(p.source, 'b/2.mp3'), '2');
      await waitFor(async () => (await readText(join(p.dest, 'b/2.mp3'))) === '2', { message: 'a new file in the moved folder' });
      expect(watched.filter((rel) => rel === 'b')).toHaveLength(1);
      // Replaced by a new folder of the same name, in one go (before the watcher looks at the first
      // event, it is a folder again): the watch on the removed one is useless, the new one is watched.
      fs.rmSync(join(p.source, 'b'), { recursive: true });
      fs.mkdirSync(join(p.source, 'b'));
      await writeFile(join(p.source, 'b/3.mp3'), '3');
      await waitFor(() => watched.filter((rel) => rel === 'b').length === 2, { message: 'the new folder b watched' });
      await waitFor(async () => (await readText(join(p.dest, 'b/3.mp3'))) === '3' && !(await exists(join(p.dest, 'b/1.mp3'))), { message: 'the replaced folder mirrored' });
      await writeFile(join(p.source, 'b/4.mp3'), '4');
      await waitFor(async () => (await readText(join(p.dest, 'b/4.mp3'))) === '4', { message: 'a new file in the replaced folder' });
      await waitFor(async () => published(await readMirror(p.dest)).length === 2, { message: 'the removed folder\'s files gone from dest' });
      expect(await readMirror(p.dest)).toEqual({ 'b/3.mp3': '3', 'b/4.mp3': '4' });
      expect(errors).toEqual([]);
    } finally {
      restore();
    }
  });
});

describe('createWatcher: configuration and the enable rule', () => {
  const saved = { ...process.env };
  afterEach(() => {
    for (const k of Object.keys(process.env)) if (!(k in saved)) delete process.env[k];
    Object.assign(process.env, saved);
  });

  test('disabled by the environment: not enabled, ready at once, nothing watched or written', async () => {
    process.env.NODE_ENV = 'test';
    delete process.env.ENABLE_UPLOAD_SYNC;
    delete process.env.DISABLE_UPLOAD_SYNC;
    await writeTree(p.source, { 'a.mp3': 'a' });
    const w = createWatcher({ source: p.source, dest: p.dest, stableMs: 10 });
    watchers.push(w);
    let events = 0;
    w.on('ready', () => events++);
    w.on('sync', () => events++);
    expect(w.enabled).toBe(false);
    await w.ready;
    await writeFile(join(p.source, 'b.mp3'), 'b');
    expect(await w.flush()).toMatchObject({ status: 'disabled', copied: [] });
    expect(w.stats()).toMatchObject({ mode: 'off', syncs: 0, pending: [] });
    await w.close();
    expect(events).toBe(0);
    expect(await exists(p.dest)).toBe(false);

    process.env.DISABLE_UPLOAD_SYNC = 'true';
    process.env.NODE_ENV = 'production';
    expect(createWatcher({ source: p.source, dest: p.dest }).enabled).toBe(false);
    delete process.env.DISABLE_UPLOAD_SYNC;
    process.env.NODE_ENV = 'test';
    process.env.ENABLE_UPLOAD_SYNC = 'true';
    const on = createWatcher({ source: p.source, dest: p.dest, lockDir: join(p.root, 'locks') });
    watchers.push(on);
    expect(on.enabled).toBe(true);
    await on.close();
  });

  test('CHOKIDAR_USEPOLLING overrides usePolling both ways, as chokidar does', async () => {
    const opts = { source: p.source, dest: p.dest, force: true, lockDir: join(p.root, 'locks'), reconcileMs: 0 };
    for (const [env, usePolling, mode] of [['true', false, 'polling'], ['0', true, 'native']] as const) {
      process.env.CHOKIDAR_USEPOLLING = env;
      const w = createWatcher({ ...opts, usePolling });
      watchers.push(w);
      await w.ready;
      expect(w.stats().mode).toBe(mode);
      await w.close();
    }
  });

  test('a bad option or environment variable throws ERR_CONFIG from createWatcher itself', () => {
    const bad = (fn: () => unknown) => {
      try {
        fn();
      } catch (err) {
        return err;
      }
      return null;
    };
    const e1 = bad(() => createWatcher({ source: p.source, dest: p.dest, force: true, stableMs: -1 }));
    expect(e1).toBeInstanceOf(UploadSyncError);
    expect(e1).toMatchObject({ code: 'ERR_CONFIG', message: expect.stringContaining('stableMs') });
    process.env.UPLOAD_SYNC_DEBOUNCE_MS = 'abc';
    expect(bad(() => createWatcher({ source: p.source, dest: p.dest, force: true }))).toMatchObject({ code: 'ERR_CONFIG', message: expect.stringContaining('UPLOAD_SYNC_DEBOUNCE_MS') });
    delete process.env.UPLOAD_SYNC_DEBOUNCE_MS;
    expect(bad(() => createWatcher({ source: p.source, dest: p.source, force: true }))).toMatchObject({ code: 'ERR_CONFIG' });
  });
});

describe('changedAt: when a pending file last changed', () => {
  test.each([
    // mtime, since (last event), previous look, now, expected
    ['first look, written long before its event (renamed in): the event', 1_000, 5_000, -Infinity, 5_100, 5_000],
    ['first look, written after its event: the mtime (+ the coarse-clock slack)', 5_050, 5_000, -Infinity, 5_100, 5_070],
    ['a change after the previous look: its mtime', 5_150, 5_000, 5_100, 5_200, 5_170],
    ['a change stamped before the previous look (a writer setting mtimes): now', 1_000, 5_000, 5_100, 5_200, 5_200],
    ['a change stamped in the future (clock step): now', 9_000, 5_000, 5_100, 5_200, 5_200],
    ['mtime plus slack past now: now', 5_190, 5_000, 5_100, 5_200, 5_200],
    ['no mtime (gone): now', NaN, 5_000, 5_100, 5_200, 5_200],
  ])('%s', (_, mtime, since, previousLook, now, expected) => {
    expect(changedAt(mtime, since, previousLook, now)).toBe(expected);
  });
});
