// The batcher alone: stable paths are fed by the test, syncs are fakes that record when they ran
// and answer what the test says, time is jest's fake clock.
import { afterEach, beforeEach, describe, expect, jest, test } from '@jest/globals';
import type { SyncErrorEntry, SyncResult } from '../src/index.js';
import { Batcher, collapse, emptyResult, type SyncRuns } from '../src/watch/batcher.js';
import { SerialQueue } from '../src/watch/queue.js';
import { backoff } from '../src/watch/retries.js';

const DEBOUNCE = 200;
const MAX_WAIT = 1000;

interface Run {
  kind: 'targeted' | 'full';
  paths: string[];
  at: number;
}

let runs: Run[];
let lines: string[];
let t0: number;
/** What the next targeted runs answer with, given the paths they were asked for (default: ok). */
let answer: (paths: string[]) => Partial<SyncResult>;
let fullAnswer: () => { result: Partial<SyncResult>; young: string[] };

const fail = (path: string, code = 'EACCES'): SyncErrorEntry => ({ path, code, message: `${code}: permission denied` });
const result = (r: Partial<SyncResult>): SyncResult => ({ ...emptyResult(r.errors?.length ? 'partial' : 'ok'), ...r });
const since = (ms: number) => ms - t0;
const logged = (word: string) => lines.filter((l) => l.includes(word));

function batcher(reconcileMs = 0): Batcher {
  const fake: SyncRuns = {
    targeted: async (paths) => {
      runs.push({ kind: 'targeted', paths, at: since(Date.now()) });
      return result(answer(paths));
    },
    full: async () => {
      runs.push({ kind: 'full', paths: [], at: since(Date.now()) });
      const { result: r, young } = fullAnswer();
      return { result: result(r), young };
    },
  };
  const log = { info: (m: string) => lines.push(m), warn: (m: string) => lines.push(m), error: (m: string) => lines.push(m) };
  return new Batcher({ debounceMs: DEBOUNCE, maxWaitMs: MAX_WAIT, reconcileMs }, new SerialQueue((err) => lines.push(`threw: ${String(err)}`)), fake, log);
}

beforeEach(() => {
  jest.useFakeTimers({ now: 1_000_000 });
  t0 = Date.now();
  runs = [];
  lines = [];
  answer = () => ({});
  fullAnswer = () => ({ result: {}, young: [] });
});
afterEach(() => {
  jest.useRealTimers();
});

describe('Batcher: batches', () => {
  test('stable paths wait for debounceMs of quiet, then go in one targeted run, collapsed', async () => {
    const b = batcher();
    b.activity();
    b.add(['album/a.mp3', 'album/b.mp3']);
    await jest.advanceTimersByTimeAsync(100);
    b.activity(); // another event: the batch waits for quiet again
    b.add(['album', 'c.mp3']);
    expect(b.pending.sort()).toEqual(['album', 'album/a.mp3', 'album/b.mp3', 'c.mp3']);
    await jest.advanceTimersByTimeAsync(DEBOUNCE + 50);
    expect(runs).toEqual([{ kind: 'targeted', paths: ['album', 'c.mp3'], at: 100 + DEBOUNCE }]);
    expect(b.pending).toEqual([]);
    expect(lines).toEqual([]);
  });

  test('while events keep coming, a stable path waits at most maxWaitMs', async () => {
    const b = batcher();
    b.activity();
    b.add(['a.mp3']);
    for (let i = 0; i < 30; i++) {
      await jest.advanceTimersByTimeAsync(DEBOUNCE / 2);
      b.activity();
    }
    expect(runs.map((r) => r.at)).toEqual([MAX_WAIT]);
  });

  test('a stable path that changes again leaves the batch (it comes back once stable)', async () => {
    const b = batcher();
    b.add(['a.mp3', 'b.mp3']);
    b.drop('a.mp3');
    expect(b.has('a.mp3')).toBe(false);
    await jest.advanceTimersByTimeAsync(DEBOUNCE);
    expect(runs.map((r) => r.paths)).toEqual([['b.mp3']]);
  });

  test('flush() runs what collect() gives and every waiting path at once; with nothing, an empty ok result', async () => {
    const b = batcher();
    b.activity();
    b.add(['a.mp3']);
    const r = await b.flush(async () => ['pending.mp3']);
    expect(runs).toEqual([{ kind: 'targeted', paths: ['a.mp3', 'pending.mp3'], at: 0 }]);
    expect(r.status).toBe('ok');
    expect(await b.flush(async () => [])).toEqual(emptyResult());
    expect(runs).toHaveLength(1);
  });

  test('the periodic reconcile runs every reconcileMs, counted from the end of the one before; close() stops it', async () => {
    const b = batcher(5000);
    b.startReconciling();
    await jest.advanceTimersByTimeAsync(16_000);
    expect(runs.map((r) => `${r.kind}@${r.at}`)).toEqual(['full@5000', 'full@10000', 'full@15000']);
    b.close();
    await jest.advanceTimersByTimeAsync(20_000);
    expect(runs).toHaveLength(3);
  });
});

describe('Batcher: retries', () => {
  test('a file that fails is retried after 1 s, 2 s, 4 s … up to 1 min, logging "will retry", then "recovered"', async () => {
    const b = batcher();
    let failing = true;
    answer = (paths) => ({ copied: failing ? [] : paths, errors: failing ? paths.filter((p) => p === 'bad.mp3').map((p) => fail(p)) : [] });
    b.add(['bad.mp3', 'good.mp3']);
    await jest.advanceTimersByTimeAsync(DEBOUNCE);
    expect(runs[0]!.paths).toEqual(['bad.mp3', 'good.mp3']);
    expect(b.pending).toEqual(['bad.mp3']); // waiting for its retry
    await jest.advanceTimersByTimeAsync(5 * 60_000);
    const gaps = runs.slice(1).map((r, i) => r.at - runs[i]!.at);
    expect(gaps.slice(0, 9)).toEqual([1000, 2000, 4000, 8000, 16_000, 32_000, 60_000, 60_000, 60_000]);
    expect(runs.slice(1).every((r) => r.paths.join() === 'bad.mp3')).toBe(true); // only the failed file
    expect(logged('will retry')).toHaveLength(runs.length);
    expect(lines[0]).toBe('1 file failed; will retry: bad.mp3 in 1 s (EACCES, 1 failure)');
    expect(lines[2]).toBe('1 file failed; will retry: bad.mp3 in 4 s (EACCES, 3 failures)');

    failing = false;
    const before = runs.length;
    await jest.advanceTimersByTimeAsync(60_000);
    expect(runs).toHaveLength(before + 1);
    expect(lines[lines.length - 1]).toBe(`bad.mp3 recovered: synced after ${before} failures`);
    expect(b.pending).toEqual([]);
    await jest.advanceTimersByTimeAsync(10 * 60_000);
    expect(runs).toHaveLength(before + 1); // no more retries
  });

  test('backoff: 1 s doubling, capped at 1 min', () => {
    expect([1, 2, 3, 4, 5, 6, 7, 8, 50].map(backoff)).toEqual([1000, 2000, 4000, 8000, 16_000, 32_000, 60_000, 60_000, 60_000]);
  });

  test('failures no retry can mend, and ERR_CHANGED (back through stability), are not retried', async () => {
    const b = batcher();
    answer = (paths) => ({ errors: paths.map((p) => fail(p, p.split('.')[0]!)) });
    b.add(['ERR_CHANGED.mp3', 'ERR_INVALID_PATH.mp3', 'ERR_OUTSIDE.mp3', 'ERR_TYPE_CONFLICT.mp3']);
    await jest.advanceTimersByTimeAsync(DEBOUNCE + 10 * 60_000);
    expect(runs.slice(1).map((r) => r.paths.join())).toEqual(Array(runs.length - 1).fill('ERR_TYPE_CONFLICT.mp3'));
    expect(runs.length).toBeGreaterThan(5);
  });

  test('a file that changes while its run is in flight is not retried: it comes back once stable', async () => {
    const b = batcher();
    let b2!: Batcher;
    answer = (paths) => {
      b2.drop('bad.mp3'); // an event for it during the run
      return { errors: paths.map((p) => fail(p)) };
    };
    b2 = b;
    b.add(['bad.mp3']);
    await jest.advanceTimersByTimeAsync(DEBOUNCE + 60_000);
    expect(runs).toHaveLength(1);
    expect(b.pending).toEqual([]);
    expect(logged('will retry')).toEqual([]);
    // Stable again later and synced fine: it recovers.
    answer = () => ({});
    b.add(['bad.mp3']);
    await jest.advanceTimersByTimeAsync(DEBOUNCE);
    expect(runs).toHaveLength(2);
    expect(logged('recovered')).toEqual([]); // (its failure was not counted: the change came first)
  });

  test('a failed file waiting for its retry is in flush(), and a change unschedules it', async () => {
    const b = batcher();
    answer = (paths) => ({ errors: paths.map((p) => fail(p)) });
    b.add(['a.mp3', 'b.mp3']);
    await jest.advanceTimersByTimeAsync(DEBOUNCE);
    expect(b.pending.sort()).toEqual(['a.mp3', 'b.mp3']);
    b.drop('b.mp3'); // written again: it waits to be stable, not for its retry
    expect(b.pending).toEqual(['a.mp3']);
    answer = () => ({});
    await b.flush(async () => []);
    expect(runs[1]!.paths).toEqual(['a.mp3']);
    expect(logged('recovered')).toEqual(['a.mp3 recovered: synced after 1 failure']);
    await jest.advanceTimersByTimeAsync(5 * 60_000);
    expect(runs).toHaveLength(2);
  });

  test('a run that fails as a whole holds every batch back with its own backoff, then says it recovered', async () => {
    const b = batcher();
    let locked = 3;
    answer = () => (locked-- > 0 ? { status: 'failed', errors: [fail('', 'ELOCKED')] } : { copied: ['a.mp3', 'b.mp3'] });
    b.activity();
    b.add(['a.mp3']);
    await jest.advanceTimersByTimeAsync(DEBOUNCE);
    expect(logged('will retry')).toEqual(['Sync failed as a whole (ELOCKED); will retry 1 path in 1 s']);
    b.add(['b.mp3']); // stable now, but the run would fail alike: it waits for the backoff too
    await jest.advanceTimersByTimeAsync(DEBOUNCE);
    expect(runs).toHaveLength(1);
    await jest.advanceTimersByTimeAsync(60_000);
    expect(runs.map((r) => r.at)).toEqual([DEBOUNCE, DEBOUNCE + 1000, DEBOUNCE + 3000, DEBOUNCE + 7000]);
    expect(runs[1]!.paths.sort()).toEqual(['a.mp3', 'b.mp3']);
    expect(logged('recovered')).toEqual(['Syncs recovered after 3 failed runs']);
    expect(b.pending).toEqual([]);
  });

  test('a reconcile: its failed files are retried, files it covered without error recover, the young ones do not', async () => {
    const b = batcher();
    answer = (paths) => ({ errors: paths.map((p) => fail(p)) });
    b.activity();
    b.add(['x.mp3', 'young.mp3']);
    await jest.advanceTimersByTimeAsync(DEBOUNCE);
    fullAnswer = () => ({ result: { status: 'partial', errors: [fail('locked')] }, young: ['young.mp3'] });
    await b.reconcile();
    expect(logged('recovered')).toEqual(['x.mp3 recovered: synced after 1 failure']);
    expect(b.pending.sort()).toEqual(['locked', 'young.mp3']);
    answer = () => ({});
    await jest.advanceTimersByTimeAsync(2000);
    expect(runs.slice(2).flatMap((r) => r.paths).sort()).toEqual(['locked', 'young.mp3']);
    expect(logged('recovered')).toEqual(['x.mp3 recovered: synced after 1 failure', '2 files recovered: young.mp3 (after 1 failure), locked (after 1 failure)']);
    expect(b.pending).toEqual([]);
  });

  test('folders: a file inside a folder its run covered recovers with it; an error inside or around a path keeps it failed', async () => {
    const b = batcher();
    answer = (paths) => ({ errors: paths.map((p) => fail(p)) });
    b.activity();
    b.add(['album/a.mp3', 'disc']);
    await jest.advanceTimersByTimeAsync(DEBOUNCE);
    // The retries: album/a.mp3 fails with its folder, `disc` by a file inside it.
    answer = () => ({ errors: [fail('album'), fail('disc/track.mp3')] });
    await jest.advanceTimersByTimeAsync(1000);
    expect(runs.map((r) => r.paths.sort())).toEqual([['album/a.mp3', 'disc'], ['album/a.mp3', 'disc']]);
    expect(logged('recovered')).toEqual([]);
    expect(b.pending.sort()).toEqual(['album', 'disc/track.mp3']);
    answer = () => ({});
    await jest.advanceTimersByTimeAsync(1000);
    expect(runs[2]!.paths.sort()).toEqual(['album', 'disc/track.mp3']);
    expect(logged('recovered')).toEqual(['3 files recovered: album/a.mp3 (after 1 failure), album (after 1 failure), disc/track.mp3 (after 1 failure)']);
  });

  test('close(): no run starts after it, and a run it interrupts schedules no retry', async () => {
    const b = batcher();
    answer = (paths) => {
      b.close(); // close() while the run is in flight; the run ends with its files failed
      return { errors: paths.map((p) => fail(p)) };
    };
    b.activity();
    b.add(['a.mp3']);
    await jest.advanceTimersByTimeAsync(DEBOUNCE);
    expect(runs).toHaveLength(1);
    expect(b.pending).toEqual([]);
    expect(logged('will retry')).toEqual([]);
    b.add(['b.mp3']);
    await jest.advanceTimersByTimeAsync(10 * 60_000);
    expect(runs).toHaveLength(1);
  });
});

describe('collapse', () => {
  test.each([
    ['duplicates go', ['a.mp3', 'a.mp3'], ['a.mp3']],
    ['a path inside a listed folder goes', ['album', 'album/x.mp3', 'albums/y.mp3'], ['album', 'albums/y.mp3']],
    ['deeper too', ['a/b/c/d.mp3', 'a/b'], ['a/b']],
    ['sorted', ['b.mp3', 'a.mp3'], ['a.mp3', 'b.mp3']],
  ])('%s', (_, paths, expected) => {
    expect(collapse(paths)).toEqual(expected);
  });
});
