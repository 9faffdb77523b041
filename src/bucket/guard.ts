/**
 * The one place where the library deletes from a bucket (a push with `delete`): the same rules as
 * on disk (src/shared/delete-policy.ts: inside the root and never the root itself, only files the
 * filter lets through, the source looked at again, dry run, cap), with a bucket's mechanism:
 * objects are deleted in batches of up to 1,000 per request (DeleteObjects), not one by one.
 */
import { DeleteBudget, checkInside, isManaged, sourceForbids, type Removal } from '../shared/delete-policy.js';
import { isSyncablePath } from '../shared/filter.js';
import type { S3Store } from '../store/s3-store.js';

export interface BucketGuardOptions {
  store: Pick<S3Store, 'deleteMany'>;
  /** `s3://bucket/prefix`, for messages. */
  url: string;
  /** The local source of the push, looked at again before a deletion. */
  source: string;
  sourceReal: string;
  extensions: ReadonlySet<string> | null;
  dryRun: boolean;
  /** Objects deleted at most (`Infinity`: no cap). */
  maxDelete: number;
}

/** Objects queued before a DeleteObjects request goes (S3's most per request). */
export const DELETE_BATCH = 1000;

export class BucketGuard {
  private readonly budget: DeleteBudget;
  private queued: string[] = [];

  constructor(private readonly o: BucketGuardOptions) {
    this.budget = new DeleteBudget(o.maxDelete);
  }

  /** Objects deleted (or that would be, in a dry run). */
  get count(): number {
    return this.budget.count;
  }

  /** Whether enough deletions are queued for a request of their own. */
  get full(): boolean {
    return this.queued.length >= DELETE_BATCH;
  }

  /**
   * Queues the object `rel` (relative to the prefix) for deletion if every rule allows it:
   * `'removed'` (deleted at the next `flush`), `'kept'` (not ours to delete: a name the sync never
   * takes, or the source has a file there again), `'capped'`.
   * @throws UploadSyncError `ERR_OUTSIDE` for a path that is not strictly inside the prefix (the prefix itself included).
   */
  admit(rel: string): Removal {
    checkInside(rel, this.o.url);
    if (!isSyncablePath(rel, this.o.extensions) || !isManaged(rel, this.o.extensions)) return 'kept';
    if (sourceForbids(this.o.source, this.o.sourceReal, rel, 'file')) return 'kept';
    if (!this.budget.take()) return 'capped';
    this.queued.push(rel);
    return 'removed';
  }

  /**
   * Deletes what is queued (in a dry run: nothing, every queued path is reported as deleted).
   * @returns the paths deleted, and those the bucket refused.
   */
  async flush(signal?: AbortSignal): Promise<{ deleted: string[]; errors: Array<{ path: string; code: string; message: string }> }> {
    const batch = this.queued;
    this.queued = [];
    if (batch.length === 0 || this.o.dryRun) return { deleted: batch, errors: [] };
    const out = await this.o.store.deleteMany(batch, { signal });
    for (let i = 0; i < out.errors.length; i++) this.budget.giveBack();
    return { deleted: out.deleted, errors: out.errors.map(({ path, code, message }) => ({ path, code, message })) };
  }
}
