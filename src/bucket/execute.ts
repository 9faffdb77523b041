/**
 * The loop a push and a pull share: each batch of the plan is absorbed into the report, its
 * deletions handed to the side's remover in order, then its copies started `concurrency` at a time
 * (told as copied without a request in a dry run). The side says how to remove and how to transfer;
 * this module owns the order, the abort checks and the pool.
 */
import type { CopyJob, Findings } from '../engine/plan-types.js';
import type { Report } from '../engine/report.js';
import type { BucketBatch } from './plan.js';
import { Pool } from './pool.js';

export interface BatchSide {
  report: Report;
  concurrency: number;
  dryRun: boolean;
  signal: AbortSignal | undefined;
  /** What a batch's findings ask of the side before its actions (a pull: temp files of dead runs). */
  found?: (found: Findings) => void;
  /** Removes (or queues the removal of) one entry; reports its own outcome, never throws. */
  remove: (rel: string) => void | Promise<void>;
  /** Transfers one file; reports its own outcome, never rejects. */
  transfer: (job: CopyJob) => Promise<void>;
}

/** Runs every batch of `batches`; resolves once every transfer started has ended. */
export async function executeBatches(side: BatchSide, batches: AsyncIterable<BucketBatch>): Promise<void> {
  const { report, signal } = side;
  const pool = new Pool(side.concurrency);
  try {
    for await (const { actions, found } of batches) {
      report.absorb(found);
      side.found?.(found);
      const jobs: CopyJob[] = [];
      for (const action of actions) {
        if (signal?.aborted) break;
        if (action.type === 'copy') jobs.push(action.job);
        else await side.remove(action.rel);
      }
      if (signal?.aborted) break;
      report.planned(jobs);
      for (const job of jobs) {
        if (signal?.aborted) break;
        if (side.dryRun) report.copied(job);
        else await pool.add(() => side.transfer(job));
      }
    }
  } finally {
    await pool.drain();
  }
}
