// Test helpers for a run's helper thread (src/threads.ts).
import type { DirItem } from '../src/engine/diff.js';
import type { CopyJob, CopyOutcome, RunHelper } from '../src/engine/threads.js';

/**
 * A helper that takes a share at the first chance, whether or not its thread is up (the share
 * waits for it), so the sharing happens whatever the machine's speed. Records its shares, and the
 * outcome of each copy it reports.
 */
export function eager(inner: RunHelper): RunHelper & { compareShares: DirItem[][]; copyShares: CopyJob[][]; outcomes: Array<[string, CopyOutcome]> } {
  let queued: (() => void) | null = null;
  let pending = false;
  let copying = false;
  const compareShares: DirItem[][] = [];
  const copyShares: CopyJob[][] = [];
  const outcomes: Array<[string, CopyOutcome]> = [];
  const deliver = (send: () => void) => {
    pending = true;
    queued = send;
    const tryNow = () => {
      if (inner.failed) throw new Error('the helper thread failed before it took its first share');
      if (!inner.idle) return void inner.changed().then(tryNow);
      queued = null;
      send();
    };
    tryNow();
  };
  // A share is pending until it is delivered and the thread is no longer busy with it.
  const settle = () => {
    if (pending && queued === null && !inner.busy) pending = false;
  };
  return {
    compareShares,
    copyShares,
    outcomes,
    get idle() {
      settle();
      return !pending && !inner.failed;
    },
    get busy() {
      settle();
      return pending;
    },
    get failed() {
      return inner.failed;
    },
    get copying() {
      settle();
      return pending && copying;
    },
    give: (items: DirItem[]) => {
      compareShares.push(items);
      copying = false;
      deliver(() => inner.give(items));
    },
    giveCopies: (jobs: CopyJob[]) => {
      copyShares.push(jobs);
      copying = true;
      deliver(() => inner.giveCopies(jobs));
    },
    collect: (into) => inner.collect(into),
    collectCopies: <J extends CopyJob>() => {
      const collected = inner.collectCopies<J>();
      for (const { job, outcome } of collected.done) outcomes.push([job.rel, outcome]);
      return collected;
    },
    changed: () => inner.changed(),
    stop: () => inner.stop(),
  };
}
