/**
 * The executor: takes the planner's batches as they come and does them in dest, in order, and
 * reports each outcome. It never calls back into the planner: data flows one way.
 */
import type { Destination } from './destination.js';
import type { Action, CopyJob, Findings } from './plan-types.js';
import type { PublishOutcome } from './publish.js';
import type { Report } from './report.js';
import { UploadSyncError } from '../shared/errors.js';

export class Executor {
  constructor(
    private readonly dest: Destination,
    private readonly report: Report,
    private readonly dryRun: boolean,
    private readonly signal: AbortSignal | undefined,
  ) {}

  async run(batches: AsyncIterable<Findings>): Promise<void> {
    for await (const found of batches) {
      this.report.absorb(found);
      if (!this.dryRun && found.temps.length > 0) this.removeDeadTemps(found.temps);
      const copies: CopyJob[] = [];
      for (const action of found.actions) {
        if (this.signal?.aborted) break;
        if (action.type === 'copy') copies.push(action.job);
        else this.apply(action);
      }
      if (copies.length > 0 && !this.signal?.aborted) await this.copy(copies);
      if (this.signal?.aborted) break;
    }
    if (this.dryRun) return;
    await this.dest.drain(); // a file in flight is finished, even after an abort: no half-done temp file
    for (const rel of this.dest.finish((rel, err) => this.report.fail(rel, err))) this.report.note(`Removed empty folder ${rel}`);
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
    }
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
    if (outcome.status === 'copied') this.report.copied(job);
    else if (outcome.status === 'gone') this.report.gone(job);
    else if (outcome.status === 'failed') this.report.copyFailed(job, Object.assign(new Error(outcome.message), { code: outcome.code }));
  }

  private removeDeadTemps(rels: readonly string[]): void {
    try {
      for (const { rel, pid } of this.dest.removeDeadTemps(rels)) this.report.note(`Removed ${rel}, a temp file of a sync that died (pid ${pid})`);
    } catch (err) {
      this.report.warn((err as Error).message);
    }
  }
}
