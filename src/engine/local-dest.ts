/**
 * A local folder as the destination: folders and modes on this thread with synchronous calls
 * (fast, and there are few), file copies on this thread and, for large runs, on the helper thread.
 */
import { chmodSync, lstatSync, mkdirSync, readdirSync, unlinkSync } from 'node:fs';
import { basename, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { UploadSyncError, errorCode, errorMessage } from '../shared/errors.js';
import type { DeleteGuard, Removal } from '../shared/delete-guard.js';
import type { Destination } from './destination.js';
import type { Helper } from './helper.js';
import type { Action, CopyJob } from './plan-types.js';
import { deadTempOwner, isTempOfThread, publishJob, publishJobSync, type PublishOptions, type PublishOutcome } from './publish.js';

/** Owner read, write and search: what the run needs of a folder it fills. */
const OWNER_RWX = 0o700;
/** Jobs in a run from which a share goes to the helper thread (it is only worth it for many small copies). */
const MIN_SHARE = 16;
const MAX_SHARE = 256;
/** Longest run of synchronous copies between two yields to the event loop. */
const YIELD_MS = 10;
const tick = () => new Promise<void>((resolve) => setImmediate(resolve));
/** What a job's slot holds once the job is taken. */
const RELEASED = null as unknown as CopyJob;

export const parentOf = (rel: string) => {
  const i = rel.lastIndexOf('/');
  return i === -1 ? '' : rel.slice(0, i);
};

export interface LocalDestOptions {
  source: string;
  dest: string;
  publish: Omit<PublishOptions, 'expected'>;
  concurrency: number;
  guard: DeleteGuard;
  dryRun: boolean;
  /** The run's helper thread (`null`: none), started by the call when `start`. */
  helper: (start: boolean) => Helper | null;
  /** Copies handed to `publish` in this run (this call's included) from which the helper thread is started. */
  helperFrom: number;
  signal: AbortSignal | undefined;
}

type Done = (job: CopyJob, outcome: PublishOutcome, removed?: string[]) => void;

export class LocalDest implements Destination {
  /** Final modes of folders, set in `finish` (after they are filled). */
  private readonly finalModes = new Map<string, number>();
  /** Folders we may not write into yet, opened before the first write: their mode now. */
  private readonly closed = new Map<string, number>();
  private readonly prunes: string[] = [];
  private readonly inFlight = new Set<Promise<void>>();
  /** Jobs of a helper share whose thread died (and that thread's id): done here in `drain`. */
  private readonly orphaned: Array<{ job: CopyJob; done: Done; thread: number }> = [];
  private lastYield = performance.now();
  /** Copies handed to `publish` so far: the planner's batches are small (plan-tree.ts says why), the run is not. */
  private copies = 0;

  constructor(private readonly o: LocalDestOptions) {}

  makeDir({ rel, mode, replaceFile }: Extract<Action, { type: 'mkdir' }>): string | null {
    this.open(parentOf(rel));
    let removed: string | null = null;
    if (replaceFile) {
      const outcome = this.o.guard.removeFile(rel, 'file');
      if (outcome !== 'removed') throw new UploadSyncError('ERR_TYPE_CONFLICT', `Dest has a file at ${rel} where the source has a folder, and it could not be removed (${outcome})`);
      removed = rel;
    }
    const abs = join(this.o.dest, rel);
    try {
      mkdirSync(abs);
    } catch (err) {
      if (errorCode(err) !== 'EEXIST' || !lstatSync(abs).isDirectory()) throw err;
    }
    // Writable by us while the run fills it; its own mode once it is filled (a 0555 source folder).
    chmodSync(abs, mode | OWNER_RWX);
    if ((mode | OWNER_RWX) !== mode) this.finalModes.set(rel, mode);
    return removed;
  }

  noteDir(action: Extract<Action, { type: 'dirmode' | 'open' }>): void {
    if (action.type === 'open') {
      this.closed.set(action.rel, action.have);
      if (action.mode !== action.have) this.finalModes.set(action.rel, action.mode);
    } else {
      this.finalModes.set(action.rel, action.mode);
    }
  }

  setFileMode(rel: string, mode: number): void {
    this.open(parentOf(rel));
    chmodSync(join(this.o.dest, rel), mode);
  }

  remove(rel: string): Removal {
    this.open(parentOf(rel));
    return this.o.guard.removeFile(rel, 'exists');
  }

  notePrune(rel: string): void {
    this.prunes.push(rel);
  }

  async publish(jobs: CopyJob[], done: Done): Promise<void> {
    let next = 0;
    let end = jobs.length;
    this.copies += end;
    const helper = this.o.helper(this.copies >= this.o.helperFrom);
    const giveShare = () => {
      if (!helper?.idle || end - next < 2 * MIN_SHARE || this.o.signal?.aborted) return;
      const n = Math.min(MAX_SHARE, Math.ceil((end - next) / 4));
      const share = jobs.slice(end - n, end).filter((job) => this.prepared(job, done));
      jobs.fill(RELEASED, end - n, end);
      end -= n;
      if (share.length > 0) this.track(helper.run({ type: 'publish', jobs: share }).then(
        (outcomes) => outcomes.forEach((outcome, i) => done(share[i]!, outcome, this.takeRemoved(share[i]!))),
        () => share.forEach((job) => this.orphaned.push({ job, done, thread: helper.threadId })),
      ));
    };
    const copier = async () => {
      while (next < end && !this.o.signal?.aborted) {
        giveShare();
        if (next >= end) break;
        const job = jobs[next]!;
        jobs[next++] = RELEASED; // the job lives only while it is copied (see Executor)
        if (!this.prepared(job, done)) continue;
        done(job, publishJobSync(this.o.source, this.o.dest, job, this.o.publish) ?? (await this.publishOne(job)), this.takeRemoved(job));
        // Small files copy with synchronous calls: let timers (the lock's refresh, a server's
        // requests) and the helper's answers in now and then.
        if (performance.now() - this.lastYield >= YIELD_MS) {
          await tick();
          this.lastYield = performance.now();
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.o.concurrency, Math.max(1, end - next)) }, copier));
  }

  private publishOne(job: CopyJob): Promise<PublishOutcome> {
    return publishJob(this.o.source, this.o.dest, job, this.o.publish);
  }

  async drain(): Promise<void> {
    for (;;) {
      while (this.inFlight.size > 0) await Promise.race(this.inFlight);
      if (this.orphaned.length === 0) return;
      const orphans = this.orphaned.splice(0);
      this.removeTempsOfDeadThreads(orphans);
      for (const { job, done } of orphans) done(job, await this.publishOne(job), this.takeRemoved(job));
    }
  }

  /** A helper thread that died mid-copy left its temp file (named after this live process and that thread): removed. */
  private removeTempsOfDeadThreads(orphans: ReadonlyArray<{ job: CopyJob; thread: number }>): void {
    const folders = new Map<string, number>();
    for (const { job, thread } of orphans) folders.set(`${thread}:${parentOf(job.rel)}`, thread);
    for (const [key, thread] of folders) {
      const rel = key.slice(key.indexOf(':') + 1);
      const dir = rel === '' ? this.o.dest : join(this.o.dest, rel);
      let names: string[];
      try {
        names = readdirSync(dir);
      } catch {
        continue;
      }
      for (const name of names) {
        if (!isTempOfThread(name, thread)) continue;
        try {
          unlinkSync(join(dir, name));
        } catch {
          // gone already
        }
      }
    }
  }

  removeDeadTemps(rels: readonly string[]): Array<{ rel: string; pid: number }> {
    return removeDead(this.o.dest, rels, (rel) => this.open(parentOf(rel)));
  }

  removeDeadSourceTemps(rels: readonly string[]): Array<{ rel: string; pid: number }> {
    return removeDead(this.o.source, rels); // the source's folders are never opened (chmod-ed) by a sync
  }

  finish(fail: (rel: string, err: unknown) => void): string[] {
    const pruned: string[] = [];
    const deepestFirst = (a: string, b: string) => depth(b) - depth(a);
    for (const rel of [...this.prunes].sort(deepestFirst)) {
      try {
        this.open(parentOf(rel));
        if (this.o.guard.removeEmptyFolder(rel)) {
          pruned.push(rel);
          this.finalModes.delete(rel);
        }
      } catch (err) {
        fail(rel, err);
      }
    }
    // Folders we opened get their mode back even when it did not change.
    for (const rel of this.opened) if (!this.finalModes.has(rel)) this.finalModes.set(rel, this.closed.get(rel)!);
    for (const [rel, mode] of [...this.finalModes].sort(([a], [b]) => deepestFirst(a, b))) {
      try {
        chmodSync(join(this.o.dest, rel), mode);
      } catch (err) {
        if (errorCode(err) !== 'ENOENT') fail(rel, err);
      }
    }
    return pruned;
  }

  /** Files removed by a swap before a job's copy (reported with its outcome). */
  private readonly removedFor = new Map<string, string[]>();

  private takeRemoved(job: CopyJob): string[] | undefined {
    const removed = this.removedFor.get(job.rel);
    this.removedFor.delete(job.rel);
    return removed;
  }

  /** Gets a job ready on this thread (its folder opened, a folder in its way removed); `false` when it failed. */
  private prepared(job: CopyJob, done: Done): boolean {
    try {
      this.open(parentOf(job.rel));
      if (job.replaceDir) {
        this.open(job.rel);
        this.removedFor.set(job.rel, this.o.guard.removeTree(job.rel));
      }
      return true;
    } catch (err) {
      done(job, { status: 'failed', code: errorCode(err), message: errorMessage(err) });
      return false;
    }
  }

  /** Opens a folder we could not write into (u+wx), once; `finish` gives it its mode back. */
  private open(rel: string): void {
    if (this.o.dryRun) return;
    const have = this.closed.get(rel);
    if (have === undefined || this.opened.has(rel)) return;
    this.opened.add(rel);
    chmodSync(join(this.o.dest, rel), have | OWNER_RWX);
  }

  private readonly opened = new Set<string>();

  private track(task: Promise<void>): void {
    const tracked = task.finally(() => this.inFlight.delete(tracked));
    this.inFlight.add(tracked);
  }
}

/** Removes the temp files under `root` whose writer died (`deadTempOwner`), the rule checked right before each unlink. */
function removeDead(root: string, rels: readonly string[], before?: (rel: string) => void): Array<{ rel: string; pid: number }> {
  const removed: Array<{ rel: string; pid: number }> = [];
  for (const rel of rels) {
    const pid = deadTempOwner(basename(rel));
    if (pid === null) continue;
    try {
      if (!lstatSync(join(root, rel)).isFile()) continue; // a folder or a symlink under such a name: not ours
      before?.(rel);
      unlinkSync(join(root, rel));
      removed.push({ rel, pid });
    } catch (err) {
      if (errorCode(err) !== 'ENOENT') throw new Error(`Could not remove the stale temp file ${rel}: ${errorMessage(err)}`);
    }
  }
  return removed;
}

const depth = (rel: string) => (rel === '' ? 0 : rel.split('/').length);
