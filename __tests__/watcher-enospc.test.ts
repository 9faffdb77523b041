import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, test } from '@jest/globals';
import { FSWatcher } from 'chokidar';
import { createWatcher, type SyncResult, type UploadWatcher, type WatcherError } from '../src/index.js';
import { exists, tempProject, waitFor } from './helpers.js';

// The inotify watch limit cannot be lowered for one test (it is machine-wide and needs root), so
// the real chokidar is patched: a native-events instance fails, once started, as fs.watch fails at
// the limit. Polling instances are left alone. (The watcher's `import('chokidar')` gets this same
// module: jest keeps one module registry per test file.)
const created: boolean[] = [];
const realAdd = FSWatcher.prototype.add;
beforeAll(() => {
  FSWatcher.prototype.add = function (this: FSWatcher & { faulted?: boolean }, ...args: Parameters<FSWatcher['add']>) {
    if (!this.faulted) {
      this.faulted = true;
      created.push(this.options.usePolling);
      if (!this.options.usePolling) {
        this.once('ready', () => {
          setImmediate(() => {
            const err = Object.assign(new Error("ENOSPC: System limit for number of file watchers reached, watch '/x'"), { code: 'ENOSPC', errno: -28, syscall: 'watch', path: '/x' });
            this.emit('error', err);
          });
        });
      }
    }
    return realAdd.apply(this, args);
  };
});
afterAll(() => {
  FSWatcher.prototype.add = realAdd;
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
    expect(created).toEqual([false, true]);
    expect(w.stats()).toMatchObject({ errors: 1, lastError: { code: 'ENOSPC' } });

    // Still watching, now by polling: a new file arrives.
    await mkdir(join(p.source, 'later'));
    await writeFile(join(p.source, 'later', 'song.mp3'), 'song');
    await waitFor(async () => exists(join(p.dest, 'later', 'song.mp3')), { message: 'later/song.mp3 in dest' });
    expect(syncs.some((r) => r.copied.includes('later/song.mp3'))).toBe(true);
  });
});
