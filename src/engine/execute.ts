/**
 * The executor: takes the planner's batches as they come and does them in dest, in order, and
 * reports each outcome. It never calls back into the planner: data flows one way.
 */
import type { Destination } from './destination.js';
import { findingsSize, type Action, type CopyJob, type Findings } from './plan-types.js';
import type { PublishOutcome } from './publish.js';
import type { Report } from './report.js';
import { UploadSyncError, errorCode, errorMessage } from '../shared/errors.js';

export class Executor {
  /** Folders that could not be made: what lies under them fails with the same reason, not a confusing ENOENT. */
  private readonly failedDirs = new Map<string, { code: string; message: string }>();

  constructor(
    private readonly dest: Destination,
    private readonly report: Report,
    private readonly dryRun: boolean,
    private readonly signal: AbortSignal | undefined,
  ) {}

  async run(batches: AsyncIterable<Findings>): Promise<void> {
    try {
      await this.consume(batches);
    } finally {
      // Every file handed on is finished, even after an abort or a failure of the plan: no
      // half-done temp file, and no helper thread stopped in the middle of a copy.
      if (!this.dryRun) await this.dest.drain();
    }
    if (this.dryRun) return;
    for (const rel of this.dest.finish((rel, err) => this.report.fail(rel, err))) this.report.note(`Removed empty folder ${rel}`);
  }

  private async consume(batches: AsyncIterable<Findings>): Promise<void> {
    for await (const found of batches) {
      this.report.absorb(found);
      if (!this.dryRun && found.temps.length > 0) this.removeDeadTemps(found.temps);
      if (!this.dryRun && found.sourceTemps.length > 0) this.removeDeadSourceTemps(found.sourceTemps);
      const copies: CopyJob[] = [];
      for (const action of found.actions) {
        if (this.signal?.aborted) break;
        const blocked = action.type === 'copy' ? this.blockedBy(action.job.rel) : action.type === 'mkdir' ? this.blockedBy(action.rel) : null;
        if (blocked !== null && action.type === 'copy') this.report.copyFailed(action.job, blocked);
        else if (blocked !== null && action.type === 'mkdir') this.failedDirs.set(action.rel, blocked);
        else if (action.type === 'copy') copies.push(action.job);
        else this.apply(action);
      }
      // Let each job go once it is done: a batch kept whole while its files are copied lived long
      // enough to be promoted to the old generation, and 300,000 copies grew the heap by tens of MB.
      found.actions.length = 0;
      if (copies.length > 0 && !this.signal?.aborted) await this.copy(copies);
      if (this.signal?.aborted) break;
    }
  }

  private apply(action: Exclude<Action, { type: 'copy' }>): void {
    try {
      switch (action.type) {
        case 'mkdir':
          if (this.dryRun) {
            if (action.replaceFile) this.report.deleted(action.rel);
          } else {
            const removed = this.dest.makeDir(action);
            if (removed !== null) this.report.deleted(removed);
          }
          break;
        case 'open':
        case 'dirmode':
          if (!this.dryRun) this.dest.noteDir(action);
          break;
        case 'chmod':
          if (!this.dryRun) this.dest.setFileMode(action.rel, action.mode);
          break;
        case 'delete':
          this.delete(action.rel);
          break;
        case 'prune':
          if (!this.dryRun) this.dest.notePrune(action.rel);
          break;
      }
    } catch (err) {
      this.report.fail(action.rel, err);
      if (action.type === 'mkdir') this.failedDirs.set(action.rel, { code: errorCode(err), message: errorMessage(err) });
    }
  }

  /** The failure of a folder above `rel` that could not be made, as this path's own error; `null` when none. */
  private blockedBy(rel: string): (Error & { code: string }) | null {
    if (this.failedDirs.size === 0) return null;
    for (let i = rel.lastIndexOf('/'); i > 0; i = rel.lastIndexOf('/', i - 1)) {
      const dir = rel.slice(0, i);
      const failed = this.failedDirs.get(dir);
      if (failed) return Object.assign(new Error(`its folder ${dir} could not be made: ${failed.message}`), { code: failed.code });
    }
    return null;
  }

  private delete(rel: string): void {
    const outcome = this.dest.remove(rel);
    if (outcome === 'removed') this.report.deleted(rel);
    else if (outcome === 'capped') this.report.fail(rel, new UploadSyncError('ERR_MAX_DELETE', 'Not deleted: the run reached its cap of deletions (maxDelete)'));
  }

  private async copy(jobs: CopyJob[]): Promise<void> {
    this.report.planned(jobs);
    if (this.dryRun) {
      for (const job of jobs) this.report.copied(job);
      return;
    }
    await this.dest.publish(jobs, (job, outcome, removed) => this.done(job, outcome, removed));
  }

  private done(job: CopyJob, outcome: PublishOutcome, removed: string[] | undefined): void {
    for (const rel of removed ?? []) this.report.deleted(rel);
    reportOutcome(this.report, job, outcome);
  }

  private removeDeadSourceTemps(rels: readonly string[]): void {
    try {
      for (const { rel, pid } of this.dest.removeDeadSourceTemps(rels)) this.report.note(`Removed ${rel} from the source, a temp file of an upload that died (pid ${pid})`);
    } catch (err) {
      this.report.warn((err as Error).message);
    }
  }

  private removeDeadTemps(rels: readonly string[]): void {
    try {
      for (const { rel, pid } of this.dest.removeDeadTemps(rels)) this.report.note(`Removed ${rel}, a temp file of a sync that died (pid ${pid})`);
    } catch (err) {
      this.report.warn((err as Error).message);
    }
  }
}

/** What one publish did, in the report. */
function reportOutcome(report: Report, job: CopyJob, outcome: PublishOutcome): void {
  if (outcome.status === 'copied') report.copied(job);
  else if (outcome.status === 'gone') report.gone(job);
  else if (outcome.status === 'failed') report.copyFailed(job, Object.assign(new Error(outcome.message), { code: outcome.code }));
}

/**
 * The plan of most targeted runs (an upload): at most one file to copy, into a folder that is
 * there and writable, and nothing else to do (see `runOnce`). Done here, without a `Destination`:
 * that machinery (folder modes, deletions, copiers, the helper thread) was most of such a run's
 * CPU, and on a busy 2-core machine an upload's tail follows its CPU (BENCHMARKS.md, session 20).
 */
export async function publishAlone(found: Findings, report: Report, publish: (job: CopyJob) => PublishOutcome | null, publishAsync: (job: CopyJob) => Promise<PublishOutcome>): Promise<void> {
  report.absorb(found);
  const [action] = found.actions;
  if (action === undefined || action.type !== 'copy') return;
  report.planned([action.job]);
  reportOutcome(report, action.job, publish(action.job) ?? (await publishAsync(action.job)));
}

/** Whether `publishAlone` can do the plan `found` (with `first`, the dest root's own findings). */
export function isAlone(first: Findings, found: Findings): boolean {
  if (findingsSize(first) > 0 || found.temps.length > 0 || found.sourceTemps.length > 0 || found.actions.length > 1) return false;
  const [action] = found.actions;
  return action === undefined || (action.type === 'copy' && !action.job.replaceDir);
}
