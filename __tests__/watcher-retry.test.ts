import { mkdir, rm, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, test } from '@jest/globals';
import { createWatcher, type SyncResult, type UploadWatcher, type WatcherError } from '../src/index.js';
import { exists, tempProject, waitFor, writeTree } from './helpers.js';
import { readMirror } from './watch-helpers.js';

let p: ReturnType<typeof tempProject>;
let w: UploadWatcher | undefined;
beforeEach(async () => {
  p = tempProject('upload-sync-retry-');
  await mkdir(p.source, { recursive: true });
});
afterEach(async () => {
  await w?.close();
  await p.cleanup();
});

const old = async (path: string) => {
  const t = new Date(Date.now() - 3600_000);
  await utimes(path, t, t);
};

describe('createWatcher: files that failed are retried with a backoff', () => {
  test('a file dest cannot take is retried, not left to the next reconcile, and synced once dest is fixed', async () => {
    await writeTree(p.source, { 'a.mp3': 'a', 'b.mp3': 'b' });
    await old(join(p.source, 'a.mp3'));
    await old(join(p.source, 'b.mp3'));
    // A folder in dest where the source has a file: that one file fails (ERR_TYPE_CONFLICT) until
    // someone removes the folder, which the source never hears of.
    await writeTree(p.dest, { 'a.mp3/stray': 'x' });
    const lines: string[] = [];
    const logger = { info: (m: string) => lines.push(m), warn: (m: string) => lines.push(m), error: (m: string) => lines.push(m) };
    // No periodic reconcile: only a retry can bring a.mp3.
    w = createWatcher({ source: p.source, dest: p.dest, force: true, lockDir: join(p.root, 'locks'), stableMs: 100, debounceMs: 20, reconcileMs: 0, logger });
    const syncs: SyncResult[] = [];
    const errors: WatcherError[] = [];
    w.on('sync', (r) => syncs.push(r));
    w.on('error', (e) => errors.push(e));
    await w.ready;
    expect(syncs[0]).toMatchObject({ status: 'partial', copied: ['b.mp3'], errors: [{ path: 'a.mp3', code: 'ERR_TYPE_CONFLICT' }] });
    expect(errors).toMatchObject([{ code: 'ERR_TYPE_CONFLICT', path: 'a.mp3' }]);
    await waitFor(() => lines.some((l) => /will retry: a\.mp3 in 1 s \(ERR_TYPE_CONFLICT, 1 failure\)/.test(l)), { message: 'the "will retry" line' });
    expect(w.stats().pending).toEqual(['a.mp3']); // waiting for its retry

    // Still failing: retried again, with a longer wait.
    await waitFor(() => lines.some((l) => /will retry: a\.mp3 in 2 s \(ERR_TYPE_CONFLICT, 2 failures\)/.test(l)), { message: 'the second "will retry" line' });
    expect(syncs.slice(1).every((r) => r.errors.length === 1 && r.errors[0]!.path === 'a.mp3')).toBe(true); // only a.mp3 is retried

    await rm(join(p.dest, 'a.mp3'), { recursive: true });
    await waitFor(() => syncs.some((r) => r.copied.includes('a.mp3')), { message: 'a retry that copied a.mp3' });
    await waitFor(() => lines.some((l) => /^a\.mp3 recovered: synced after \d+ failures$/.test(l)), { message: 'the "recovered" line' });
    expect(await readMirror(p.dest)).toEqual({ 'a.mp3': 'a', 'b.mp3': 'b' });
    expect(w.stats()).toMatchObject({ reconciles: 1, pending: [] }); // the start's only: a retry did it

    // Done with it: no more retries of a.mp3, and new files sync as ever.
    const runs = syncs.length;
    await writeFile(join(p.source, 'c.mp3'), 'c');
    await waitFor(async () => exists(join(p.dest, 'c.mp3')), { message: 'c.mp3 in dest' });
    await waitFor(() => syncs.length > runs, { message: "c.mp3's 'sync' event" });
    expect(syncs.slice(runs).flatMap((r) => [...r.copied, ...r.updated])).toEqual(['c.mp3']);
  });
});
