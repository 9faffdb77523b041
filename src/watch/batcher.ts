import { errorCode, errorMessage } from '../shared/errors.js';
import type { Logger, SyncResult } from '../shared/options.js';
import type { SerialQueue } from './queue.js';
import { Retries } from './retries.js';

/** The syncs a `Batcher` asks for; the watcher runs them (and tells what they did). */
export interface SyncRuns {
  /** A targeted sync of these source-relative paths. */
  targeted(paths: string[]): Promise<SyncResult>;
  /** A full reconcile (`atStart`: the one at start); `null` when it did not run (the source missing). */
  full(atStart: boolean): Promise<{ result: SyncResult; young: string[] } | null>;
}

export interface BatchTiming {
  debounceMs: number;
  maxWaitMs: number;
  /** `0`: a reconcile at start only. */
  reconcileMs: number;
}

export function emptyResult(status: SyncResult['status'] = 'ok'): SyncResult {
  return { status, dryRun: false, copied: [], updated: [], deleted: [], unchanged: 0, filtered: 0, errors: [], bytes: 0, durationMs: 0 };
}

/** Drops paths inside a folder that is also listed (the folder's run covers them) and duplicates. */
export function collapse(paths: Iterable<string>): string[] {
  const set = new Set(paths);
  return [...set]
    .filter((p) => {
      for (let i = p.indexOf('/'); i !== -1; i = p.indexOf('/', i + 1)) if (set.has(p.slice(0, i))) return false;
      return true;
    })
    .sort();
}

/**
 * When syncs run. Stable paths wait for a batch: `debounceMs` after the last event, or at most
 * `maxWaitMs` after the oldest became stable while events keep coming. Paths that failed are
 * retried with a backoff (`Retries`). A full reconcile runs every `reconcileMs`. Every run goes
 * through the one queue, so none overlaps another.
 */
export class Batcher {
  /** Stable paths waiting for their batch, with the time each became stable (oldest first). */
  private readonly stable = new Map<string, number>();
  private readonly retries: Retries;
  /** The last event: a batch waits until `debounceMs` passed without one (or `maxWaitMs`). */
  private lastActivity = 0;
  private batchTimer: NodeJS.Timeout | null = null;
  private reconcileTimer: NodeJS.Timeout | null = null;
  private batchQueued = false;
  private reconcileQueued: Promise<void> | null = null;
  private closed = false;

  constructor(
    private readonly timing: BatchTiming,
    private readonly queue: SerialQueue,
    private readonly runs: SyncRuns,
    log: Logger,
  ) {
    this.retries = new Retries(log);
  }

  /** Stable paths waiting for their batch, and failed ones waiting for their retry. */
  get pending(): string[] {
    return [...this.stable.keys(), ...this.retries.scheduled];
  }

  /** `rel` is stable and waits for its batch. */
  has(rel: string): boolean {
    return this.stable.has(rel);
  }

  /** An event came: the batch waits for quiet. */
  activity(): void {
    this.lastActivity = Date.now();
  }

  /** Paths found stable: synced in the next batch. */
  add(rels: Iterable<string>): void {
    const now = Date.now();
    for (const rel of rels) this.stable.set(rel, now);
    this.schedule();
  }

  /** `rel` changed again: not stable anymore, and not retried until it is. */
  drop(rel: string): void {
    this.stable.delete(rel);
    this.retries.changed(rel);
  }

  /** A restart: what waited is forgotten (the reconcile that follows finds it again). */
  clear(): void {
    this.stable.clear();
    this.retries.unscheduleAll();
  }

  /** Syncs now whatever `collect` returns and every path waiting here; resolves with that run's result. */
  flush(collect: () => Promise<string[]>): Promise<SyncResult> {
    return this.queue.add(
      async () => {
        if (this.closed) return emptyResult();
        const paths = [...(await collect()), ...this.takeStable(), ...this.retries.take(Date.now(), true)];
        return paths.length === 0 ? emptyResult() : this.runBatch(paths);
      },
      (err) => ({ ...emptyResult('failed'), errors: [{ path: '', code: errorCode(err), message: errorMessage(err) }] }),
    );
  }

  /** A full reconcile, queued; one already queued (not started) serves this request too. */
  reconcile(atStart = false): Promise<void> {
    this.reconcileQueued ??= this.queue.add(async () => {
      this.reconcileQueued = null;
      if (this.closed) return;
      this.retries.runStarted();
      const run = await this.runs.full(atStart);
      if (run && !this.closed) this.retries.settle({ all: true, except: run.young }, run.result);
      this.schedule();
    }, () => undefined);
    return this.reconcileQueued;
  }

  /** A reconcile every `reconcileMs`, each counted from the end of the one before. */
  startReconciling(): void {
    if (this.closed || this.timing.reconcileMs === 0) return;
    this.reconcileTimer = setTimeout(() => {
      void this.reconcile().finally(() => this.startReconciling());
    }, this.timing.reconcileMs).unref();
  }

  /** No run starts after this (the one in flight is the owner's to abort). */
  close(): void {
    this.closed = true;
    for (const timer of [this.batchTimer, this.reconcileTimer]) if (timer) clearTimeout(timer);
    this.stable.clear();
  }

  /** Queues the batch when it is due, or sets a timer for then. */
  private schedule(): void {
    if (this.batchTimer) clearTimeout(this.batchTimer);
    this.batchTimer = null;
    if (this.closed) return;
    const wait = this.dueAt() - Date.now();
    if (wait === Infinity) return;
    if (wait > 0) {
      this.batchTimer = setTimeout(() => this.schedule(), wait).unref();
      return;
    }
    if (this.batchQueued) return;
    this.batchQueued = true;
    void this.queue.add(async () => {
      this.batchQueued = false;
      // Retries due ride with the stable paths, and stable paths with a retry: one run for both.
      const paths = [...this.takeStable(), ...this.retries.take(Date.now())];
      if (paths.length > 0 && !this.closed) await this.runBatch(paths);
      else this.schedule();
    }, () => undefined);
  }

  /** When the next batch is due: its stable paths' time, or the first retry's; never before a failed run's backoff. */
  private dueAt(): number {
    let due = this.retries.nextDueAt;
    const oldest = this.stable.values().next();
    if (!oldest.done) due = Math.min(due, this.lastActivity + this.timing.debounceMs, oldest.value + this.timing.maxWaitMs);
    return due === Infinity ? due : Math.max(due, this.retries.gateUntil);
  }

  private takeStable(): string[] {
    const rels = [...this.stable.keys()];
    this.stable.clear();
    return rels;
  }

  private async runBatch(paths: string[]): Promise<SyncResult> {
    this.retries.runStarted();
    const result = await this.runs.targeted(collapse(paths));
    if (!this.closed) this.retries.settle({ paths }, result);
    this.schedule();
    return result;
  }
}
