/**
 * The planner of a full run: compares source and dest folder by folder and yields what differs in
 * batches, so the executor starts copying before the comparison ends and memory stays at a batch.
 *
 * A large tree is shared with the helper thread, as rsync shares the work between its sender and
 * receiver: folders wait in `todo`; this thread compares them one at a time, and hands a share to
 * the helper whenever it is idle. Every share is a promise kept in `inFlight` until it settles:
 * the loop ends only when nothing is to do, in flight, or unread, so no share's result is lost. A
 * share whose thread died comes back to `todo`.
 */
import { compareDir } from './compare-dir.js';
import type { Helper } from './helper.js';
import { emptyFindings, findingsSize, mergeFindings, type CompareOptions, type DirItem, type Findings, type FolderResult } from './plan-types.js';

/**
 * Entries found before a batch goes to the executor. Small, so a job is copied soon after it is
 * found: one that waits while thousands of others are copied outlives two scavenges of the young
 * generation and is promoted, and an initial sync of 300,000 files left tens of MB of dead jobs in
 * the old generation (2000 here: 150-180 MB peak RSS on tree D; 500: ~130 MB).
 */
const BATCH = 500;
/** Longest stretch of synchronous comparing between two yields to the event loop (timers, the helper's answers). */
const YIELD_MS = 10;
/** Folders compared breadth first at the start, to find a frontier wide enough to share. */
const BREADTH_FIRST = 64;
/**
 * Whether the rest of the comparison is long enough to share with a helper thread. One takes
 * ~25 ms to start (2-3 ms of it on this thread) and compares slowly while its code is cold, so a
 * tree compared in ~100 ms (a no-op of 10,000 files) is compared faster by this thread alone. The
 * rest is guessed from the folders waiting and the time per folder so far; a comparison that has
 * simply gone on long (deep, narrow trees) gets one too.
 */
export function worthAHelper(elapsedMs: number, compared: number, waiting: number): boolean {
  if (elapsedMs >= HELPER_AFTER_MS) return true;
  return compared >= 32 && waiting * (elapsedMs / compared) >= HELPER_WORTH_MS;
}
const HELPER_AFTER_MS = 120;
const HELPER_WORTH_MS = 200;
/**
 * Folders in the helper's first share, doubling with each share up to `MAX_SHARE`. A share's
 * answer arrives whole and its jobs live until the last is copied: at 64 folders (6,400 jobs on
 * tree D) they too were promoted before they died.
 */
const FIRST_SHARE = 4;
const MAX_SHARE = 16;

const tick = () => new Promise<void>((resolve) => setImmediate(resolve));

export interface TreePlanContext {
  compare: CompareOptions;
  /** The run's helper thread (`null`: none), started by the call when `start`. */
  helper: (start: boolean) => Helper | null;
  /** Folders in `todo` from which the helper is worth starting (it takes tens of ms). */
  helperFrom: number;
  signal: AbortSignal | undefined;
}

export async function* planTree(ctx: TreePlanContext, start: DirItem[]): AsyncGenerator<Findings> {
  const todo: DirItem[] = [...start];
  const answered: FolderResult[] = [];
  const inFlight = new Set<Promise<void>>();
  let batch = emptyFindings();
  let compared = 0;
  const started = performance.now();
  let shareSize = FIRST_SHARE;
  let lastYield = performance.now();

  const absorb = (result: FolderResult) => {
    for (const child of result.children) todo.push(child);
    mergeFindings(batch, result);
  };
  const share = (helper: Helper) => {
    // Small shares while the helper's code is cold, growing as it proves itself: both threads end close together.
    const dirs = todo.splice(0, Math.min(shareSize, Math.ceil(todo.length / 3))); // the oldest: larger subtrees
    shareSize = Math.min(MAX_SHARE, shareSize * 2);
    const task = helper.run({ type: 'compare', dirs }).then(
      (results) => void answered.push(...results),
      () => void todo.push(...dirs), // died: compared here instead
    );
    const tracked = task.finally(() => inFlight.delete(tracked));
    inFlight.add(tracked);
  };

  while (todo.length > 0 || inFlight.size > 0 || answered.length > 0) {
    for (const result of answered.splice(0)) absorb(result);
    const aborted = ctx.signal?.aborted ?? false;
    if (!aborted && todo.length >= 2 && (compared >= BREADTH_FIRST || todo.length >= ctx.helperFrom)) {
      const helper = ctx.helper(todo.length >= ctx.helperFrom && worthAHelper(performance.now() - started, compared, todo.length));
      if (helper?.idle) share(helper);
    }
    if (todo.length > 0 && !aborted) {
      // Breadth first while looking for a frontier to share, depth first after (a smaller todo list).
      const item = compared < BREADTH_FIRST ? todo.shift()! : todo.pop()!;
      compared++;
      absorb(compareDir(ctx.compare, item));
      // The helper's answer, taken now rather than at the next yield: its promise settles, and the
      // await lets its callback put the result in `answered`.
      if (ctx.helper(false)?.poll()) await undefined;
    } else if (inFlight.size > 0) {
      await Promise.race(inFlight);
    } else if (aborted) {
      break; // nothing in flight: what is left in todo is left for the next run
    }
    if (findingsSize(batch) >= BATCH) {
      yield batch;
      batch = emptyFindings();
    }
    if (performance.now() - lastYield >= YIELD_MS) {
      await tick();
      lastYield = performance.now();
    }
  }
  if (findingsSize(batch) > 0 || batch.unchanged > 0 || batch.skipped > 0 || batch.filtered > 0) yield batch;
}
