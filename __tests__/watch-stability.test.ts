// The stability tracker alone: file states are fed by the test (a fake `look`), time is jest's
// fake clock, so each case is exact and takes no real time.
import { afterEach, beforeEach, describe, expect, jest, test } from '@jest/globals';
import { StabilityTracker, pollInterval, type Look } from '../src/watch/stability.js';

const STABLE = 1000;
const POLL = pollInterval(STABLE); // 100

/** What each path looks like now (`root` is `/src`); a path not listed is gone. */
let files: Map<string, Look>;
let looks: string[];
let stable: { rel: string; at: number }[];
let errors: unknown[];
let t0: number;

const file = (size: number, mtimeMs = Date.now()): Look => ({ key: `${size}:${mtimeMs}:1`, mtimeMs });
const put = (rel: string, look: Look) => files.set(`/src/${rel}`, look);

function tracker(keepGone = false): StabilityTracker {
  const t = new StabilityTracker(
    { stableMs: STABLE, pollMs: POLL, keepGone },
    (rels) => stable.push(...rels.map((rel) => ({ rel, at: Date.now() - t0 }))),
    (err) => errors.push(err),
    async (path) => {
      looks.push(path);
      return files.get(path) ?? { key: 'gone', mtimeMs: NaN };
    },
  );
  t.reset('/src');
  return t;
}

beforeEach(() => {
  jest.useFakeTimers({ now: 1_000_000 });
  t0 = Date.now();
  files = new Map();
  looks = [];
  stable = [];
  errors = [];
});
afterEach(() => {
  jest.useRealTimers();
});

describe('StabilityTracker', () => {
  test('a file written every 300 ms is never stable; once the writes stop it is, stableMs after the last one (within a poll)', async () => {
    const t = tracker();
    let size = 0;
    put('a.wav', file(size));
    t.touch('a.wav');
    for (let i = 0; i < 10; i++) {
      await jest.advanceTimersByTimeAsync(300);
      put('a.wav', file(++size)); // a write that sends no event: only the look sees it
    }
    const lastWrite = Date.now() - t0;
    expect(stable).toEqual([]);
    expect(t.paths).toEqual(['a.wav']);
    await jest.advanceTimersByTimeAsync(STABLE + 2 * POLL);
    expect(stable).toHaveLength(1);
    expect(stable[0]!.rel).toBe('a.wav');
    expect(stable[0]!.at - lastWrite).toBeGreaterThanOrEqual(STABLE);
    expect(stable[0]!.at - lastWrite).toBeLessThanOrEqual(STABLE + POLL);
    expect(t.paths).toEqual([]);
    // Once stable and reported, it is no longer looked at.
    const n = looks.length;
    await jest.advanceTimersByTimeAsync(10 * POLL);
    expect(looks.length).toBe(n);
    expect(errors).toEqual([]);
  });

  test('an old file renamed in is stable stableMs after its event, not at once (its mtime is long before)', async () => {
    const t = tracker();
    put('old.mp3', file(10, Date.now() - 3_600_000));
    t.touch('old.mp3');
    await jest.advanceTimersByTimeAsync(STABLE - POLL);
    expect(stable).toEqual([]);
    await jest.advanceTimersByTimeAsync(2 * POLL);
    expect(stable.map((s) => s.rel)).toEqual(['old.mp3']);
  });

  test('touch() starts the clock again; track() leaves a pending path\'s clock as it is', async () => {
    const t = tracker();
    put('a.mp3', file(1, Date.now() - 3_600_000));
    put('b.mp3', file(1, Date.now() - 3_600_000));
    t.touch('a.mp3');
    t.touch('b.mp3');
    await jest.advanceTimersByTimeAsync(STABLE / 2);
    t.touch('a.mp3'); // an event: a write we do not see in size or mtime (same second, same size)
    t.track('b.mp3'); // a listing found it: nothing new
    await jest.advanceTimersByTimeAsync(STABLE / 2 + POLL);
    expect(stable.map((s) => s.rel)).toEqual(['b.mp3']);
    await jest.advanceTimersByTimeAsync(STABLE / 2);
    expect(stable.map((s) => s.rel)).toEqual(['b.mp3', 'a.mp3']);
  });

  test('folders and other non-files are dropped; a gone path is dropped, or kept and reported with keepGone', async () => {
    for (const keepGone of [false, true]) {
      stable = [];
      const t = tracker(keepGone);
      files.set('/src/dir', { key: 'dir', mtimeMs: NaN });
      files.set('/src/fifo', { key: 'other', mtimeMs: NaN });
      for (const rel of ['dir', 'fifo', 'gone.mp3']) t.touch(rel);
      await jest.advanceTimersByTimeAsync(POLL);
      expect(t.paths).toEqual(keepGone ? ['gone.mp3'] : []);
      await jest.advanceTimersByTimeAsync(STABLE + POLL);
      expect(stable.map((s) => s.rel)).toEqual(keepGone ? ['gone.mp3'] : []);
      t.close();
    }
  });

  test('takeAll() takes every pending path, stable or not; reset() forgets them; with no root nothing is looked at', async () => {
    const t = tracker();
    put('a.mp3', file(1));
    t.touch('a.mp3');
    t.touch('b.mp3');
    expect(t.takeAll().sort()).toEqual(['a.mp3', 'b.mp3']);
    expect(t.paths).toEqual([]);
    await jest.advanceTimersByTimeAsync(STABLE * 2);
    expect(stable).toEqual([]);

    t.touch('c.mp3');
    t.reset(null); // the source folder gone
    t.touch('d.mp3');
    looks = [];
    await jest.advanceTimersByTimeAsync(STABLE * 2);
    expect(looks).toEqual([]);
    expect(t.paths).toEqual(['d.mp3']);
    expect(errors).toEqual([]);
    t.close();
    expect(t.paths).toEqual([]);
  });

  test('a path touched again while a poll still looks at another is not reported stable', async () => {
    let hang: Promise<void> | null = null;
    const t = new StabilityTracker(
      { stableMs: STABLE, pollMs: POLL, keepGone: false },
      (rels) => stable.push(...rels.map((rel) => ({ rel, at: Date.now() - t0 }))),
      (err) => errors.push(err),
      async (path) => {
        if (path.endsWith('slow.mp3') && hang) await hang; // a stat that hangs (a slow disk)
        return file(1, 0);
      },
    );
    t.reset('/src');
    t.track('a.mp3');
    t.track('slow.mp3');
    await jest.advanceTimersByTimeAsync(STABLE - POLL / 2); // looked at, not stable yet
    expect(stable).toEqual([]);
    let release!: () => void;
    hang = new Promise<void>((r) => (release = r));
    await jest.advanceTimersByTimeAsync(POLL); // the poll that finds both stable: a.mp3 done, slow.mp3 hangs
    t.touch('a.mp3'); // a.mp3 written again meanwhile
    release();
    await jest.advanceTimersByTimeAsync(0);
    expect(stable.map((s) => s.rel)).toEqual(['slow.mp3']);
    expect(t.paths).toEqual(['a.mp3']);
    t.close();
  });
});
