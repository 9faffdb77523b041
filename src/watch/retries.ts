import type { Logger, SyncErrorEntry, SyncResult } from '../shared/options.js';

/** The wait before a path that failed once is synced again; it doubles with each failure, up to `MAX_RETRY_MS`. */
export const FIRST_RETRY_MS = 1000;
export const MAX_RETRY_MS = 60_000;

/** The wait after the `failures`-th failure in a row: 1 s, 2 s, 4 s … 1 min. */
export function backoff(failures: number): number {
  return Math.min(MAX_RETRY_MS, FIRST_RETRY_MS * 2 ** Math.max(0, failures - 1));
}

/**
 * Failures a retry cannot mend: the run was stopped (`close()`), the file is still being written
 * (it comes back once stable), a name or a link only a change in the source can make syncable (that
 * change is an event of its own), the source folder gone (watched for).
 */
const NOT_RETRIED = new Set(['ERR_ABORTED', 'ERR_CHANGED', 'ERR_INVALID_PATH', 'ERR_OUTSIDE', 'ERR_SOURCE_MISSING']);

/** What a run was asked to sync: these paths, or the whole tree but the files it left as young (a reconcile). */
export type Covered = { paths: readonly string[] } | { all: true; except: readonly string[] };

interface Failure {
  /** Failures of this path in a row (0: only its run failed as a whole). */
  failures: number;
  code: string;
  /** When it is synced again; `null` while not scheduled (in a run, or pending again after a change). */
  dueAt: number | null;
}

/** The folders holding `rel`, outermost first: `a/b/c` gives `a`, `a/b`. */
function* parents(rel: string): Generator<string> {
  for (let i = rel.indexOf('/'); i !== -1; i = rel.indexOf('/', i + 1)) yield rel.slice(0, i);
}

/**
 * A test of whether a path is one of `paths` or inside one of them; with `holding`, also whether it
 * holds one (a folder). Sets, not scans: a full disk can fail thousands of files in one run.
 */
function matcher(paths: Iterable<string>, holding: boolean): (rel: string) => boolean {
  const exact = new Set(paths);
  const holders = new Set<string>();
  if (holding) for (const p of exact) for (const dir of parents(p)) holders.add(dir);
  return (rel) => {
    if (exact.has(rel) || holders.has(rel)) return true;
    for (const dir of parents(rel)) if (exact.has(dir)) return true;
    return false;
  };
}
const seconds = (ms: number) => `${Math.round(ms / 100) / 10} s`;
const times = (n: number) => `${n} failure${n === 1 ? '' : 's'}`;
/** The first few of `total` items, and how many more. */
const list = (items: string[], total = items.length) => items.slice(0, 5).join(', ') + (total > 5 ? ` and ${total - 5} more` : '');

/**
 * Which paths failed and when each is synced again. A file that failed is retried after 1 s, then
 * 2 s, 4 s … up to 1 min, not left to the next reconcile (which may be 10 min away, or never). A
 * run that failed as a whole (the lock not obtained, dest not writable) holds every batch back the
 * same way (`gateUntil`): the next one would fail alike.
 */
export class Retries {
  private readonly failed = new Map<string, Failure>();
  /** Paths that changed while a run was in flight: they come back through the stability tracker, not as retries. */
  private changedInRun: Set<string> | null = null;
  private gate = { failures: 0, until: 0 };

  constructor(private readonly log: Logger) {}

  /** No batch before this time. */
  get gateUntil(): number {
    return this.gate.until;
  }

  /** Paths scheduled for a retry. */
  get scheduled(): string[] {
    return [...this.failed].filter(([, f]) => f.dueAt !== null).map(([rel]) => rel);
  }

  /** When the first retry is due; `Infinity` when none is scheduled. */
  get nextDueAt(): number {
    let due = Infinity;
    for (const f of this.failed.values()) if (f.dueAt !== null) due = Math.min(due, f.dueAt);
    return due;
  }

  runStarted(): void {
    this.changedInRun = new Set();
  }

  /** `rel` changed: no retry for it until it is stable and synced again (its failures are remembered). */
  changed(rel: string): void {
    this.changedInRun?.add(rel);
    const f = this.failed.get(rel);
    if (f) f.dueAt = null;
  }

  /** The retries due by `now`, taken (unscheduled until their run settles); with `all`, every scheduled one. */
  take(now: number, all = false): string[] {
    const rels: string[] = [];
    for (const [rel, f] of this.failed) {
      if (f.dueAt === null || (!all && f.dueAt > now)) continue;
      f.dueAt = null;
      rels.push(rel);
    }
    return rels;
  }

  /** A restart: nothing stays scheduled (the reconcile that follows covers it; its failures are remembered). */
  unscheduleAll(): void {
    for (const f of this.failed.values()) f.dueAt = null;
  }

  /** What a run's result says about the paths it covered: failures scheduled again, recoveries logged. */
  settle(covered: Covered, result: SyncResult): void {
    const isChanged = matcher(this.changedInRun ?? [], true);
    this.changedInRun = null;
    const runError = result.status === 'failed' ? result.errors.find((e) => e.path === '') : undefined;
    if (runError) {
      if ('paths' in covered) this.runFailed(covered.paths.filter((rel) => !isChanged(rel)), runError);
      return; // (a reconcile that failed as a whole: the next one tries again, as before)
    }
    if (this.gate.failures > 0) this.log.info(`Syncs recovered after ${this.gate.failures} failed run${this.gate.failures === 1 ? '' : 's'}`);
    this.gate = { failures: 0, until: 0 };
    if (result.errors.some((e) => e.code === 'ERR_ABORTED')) return; // stopped by close(): what it left is not known
    const fileErrors = result.errors.filter((e) => e.path !== '');
    this.schedule(fileErrors.filter((e) => !NOT_RETRIED.has(e.code) && !isChanged(e.path)));
    this.recover(covered, matcher(fileErrors.map((e) => e.path), true));
  }

  private runFailed(rels: string[], err: SyncErrorEntry): void {
    if (NOT_RETRIED.has(err.code)) {
      this.gate = { failures: 0, until: 0 }; // (the source gone: batches go as soon as it is back)
      return;
    }
    this.gate.failures++;
    const wait = backoff(this.gate.failures);
    this.gate.until = Date.now() + wait;
    for (const rel of rels) {
      const f = this.failed.get(rel);
      if (f) f.dueAt = this.gate.until;
      else this.failed.set(rel, { failures: 0, code: err.code, dueAt: this.gate.until });
    }
    if (rels.length > 0) this.log.warn(`Sync failed as a whole (${err.code}); will retry ${rels.length} path${rels.length === 1 ? '' : 's'} in ${seconds(wait)}`);
  }

  private schedule(errors: SyncErrorEntry[]): void {
    if (errors.length === 0) return;
    const now = Date.now();
    const told: string[] = [];
    for (const e of errors) {
      const f = this.failed.get(e.path) ?? { failures: 0, code: e.code, dueAt: null };
      f.failures++;
      f.code = e.code;
      f.dueAt = now + backoff(f.failures);
      this.failed.set(e.path, f);
      if (told.length < 5) told.push(`${e.path} in ${seconds(backoff(f.failures))} (${e.code}, ${times(f.failures)})`);
    }
    this.log.warn(`${errors.length} file${errors.length === 1 ? '' : 's'} failed; will retry: ${list(told, errors.length)}`);
  }

  /** Paths this run covered without a failure: done with them. */
  private recover(covered: Covered, failedNow: (rel: string) => boolean): void {
    let inRun: (rel: string) => boolean;
    if ('paths' in covered) inRun = matcher(covered.paths, false);
    else {
      const except = new Set(covered.except);
      inRun = (rel) => !except.has(rel);
    }
    const recovered: [string, number][] = [];
    for (const [rel, f] of this.failed) {
      if (!inRun(rel) || failedNow(rel)) continue;
      this.failed.delete(rel);
      if (f.failures > 0) recovered.push([rel, f.failures]);
    }
    if (recovered.length === 1) this.log.info(`${recovered[0]![0]} recovered: synced after ${times(recovered[0]![1])}`);
    else if (recovered.length > 1) this.log.info(`${recovered.length} files recovered: ${list(recovered.map(([rel, n]) => `${rel} (after ${times(n)})`))}`);
  }
}
