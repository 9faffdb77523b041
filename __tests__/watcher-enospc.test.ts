import fs from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, test } from '@jest/globals';
import { createWatcher, type SyncResult, type UploadWatcher, type WatcherError } from '../src/index.js';
import { exists, tempProject, waitFor, writeTree } from './helpers.js';

// The inotify watch limit cannot be lowered for one test (it is machine-wide and needs root), so
// `fs.watch` is patched: under this test's source it watches the source folder itself, then throws
// for the next folder as fs.watch does at the limit. (The watcher's native events look `fs.watch`
// up on this same `node:fs` object at each call; polling, chokidar's `fs.watchFile`, is left alone.)
const realWatch = fs.watch;
/** Folders of the source that native watching tried to watch, and the watches it opened and has not closed. */
const attempts: string[] = [];
const open = new Set<fs.FSWatcher>();
beforeAll(() => {
  const limited = (path: fs.PathLike, ...rest: unknown[]): fs.FSWatcher => {
    const where = String(path);
    const source = p?.source; // undefined before the first test
    const ours = source !== undefined && (where === source || where.startsWith(`${source}/`));
    if (ours) {
      attempts.push(where);
      if (where !== p.source) {
        throw Object.assign(new Error(`ENOSPC: System limit for number of file watchers reached, watch '${where}'`), { code: 'ENOSPC', errno: -28, syscall: 'watch', path: where });
      }
    }
    const watcher = (realWatch as (...args: unknown[]) => fs.FSWatcher)(path, ...rest);
    if (ours) {
      open.add(watcher);
      const close = watcher.close.bind(watcher);
      watcher.close = () => {
        open.delete(watcher);
        close();
      };
    }
    return watcher;
  };
  Object.assign(fs, { watch: limited });
});
afterAll(() => {
  Object.assign(fs, { watch: realWatch });
});

let p: ReturnType<typeof tempProject>;
let w: UploadWatcher | undefined;
beforeEach(async () => {
  p = tempProject('upload-sync-enospc-');
  await mkdir(p.source, { recursive: true });
});
afterEach(async () => {
  await w?.close();
  await p.cleanup();
});

describe('the inotify watch limit (ENOSPC)', () => {
  test('says how to raise fs.inotify.max_user_watches, falls back to polling, and goes on syncing', async () => {
    await writeTree(p.source, { 'album/old.mp3': 'old' }); // a second folder: the one past the limit
    w = createWatcher({ source: p.source, dest: p.dest, force: true, lockDir: join(p.root, 'locks'), stableMs: 50, debounceMs: 20, reconcileMs: 0 });
    const errors: WatcherError[] = [];
    const syncs: SyncResult[] = [];
    w.on('error', (e) => errors.push(e));
    w.on('sync', (r) => syncs.push(r));
    await w.ready;
    await waitFor(() => errors.length > 0 && w!.stats().mode === 'polling', { message: 'the fall back to polling' });
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatchObject({ code: 'ENOSPC' });
    expect(errors[0]!.message).toMatch(/fs\.inotify\.max_user_watches=\d+/);
    expect(errors[0]!.message).toMatch(/polling/);
    // Native watching was tried (the source, then the folder past the limit), stopped there, and left no watch open.
    expect(attempts).toEqual([p.source, join(p.source, 'album')]);
    expect(open.size).toBe(0);
    expect(w.stats()).toMatchObject({ errors: 1, lastError: { code: 'ENOSPC' } });

    // Still watching, now by polling: a new file arrives.
    await mkdir(join(p.source, 'later'));
    await writeFile(join(p.source, 'later', 'song.mp3'), 'song');
    // The 'sync' event comes after the run ends (lock released, log written), a moment after the
    // file is in dest: wait for the event, then look at dest.
    await waitFor(() => syncs.some((r) => r.copied.includes('later/song.mp3')), { message: "a 'sync' event that copied later/song.mp3" });
    expect(await exists(join(p.dest, 'later', 'song.mp3'))).toBe(true);
  });
});
