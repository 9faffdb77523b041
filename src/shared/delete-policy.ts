/**
 * The rules every deletion of the library follows, wherever it deletes: from a folder
 * (`DeleteGuard`, delete-guard.ts) or from a bucket (`BucketGuard`, src/bucket/guard.ts). Each
 * guard is the mechanism (paths and unlink, keys and DeleteObjects); the policy is here, once:
 * - only a path strictly inside the root (dest, or the bucket's prefix), never the root itself;
 * - only a file the sync manages: its name passes the extension filter;
 * - the source is looked at again at the moment of deletion: a path it has now is not an orphan;
 * - `dryRun` counts and touches nothing; `maxDelete` caps how many go.
 */
import { lstatSync, realpathSync, statSync } from 'node:fs';
import { isInside } from '../config/paths.js';
import { UploadSyncError } from './errors.js';
import { matchesExtensions } from './filter.js';

/**
 * When the source forbids a deletion: `'exists'` when it has anything the sync would take under
 * that path (an orphan is only an orphan while the source lacks it); `'file'` only when it has a
 * file there (a swap: dest's file gives way to the source's folder); `'never'` (cleanup by age, a
 * pull: the source is a bucket, whose listing the run holds).
 */
export type SourceCheck = 'exists' | 'file' | 'never';

export type Removal = 'removed' | 'kept' | 'capped';

/**
 * `rel` as a path strictly inside the root: `/`-separated names, none empty, `.` or `..`.
 * @throws UploadSyncError `ERR_OUTSIDE` for anything else, the root itself (`''`) included.
 */
export function checkInside(rel: string, root: string): void {
  if (rel === '' || rel.split('/').some((part) => part === '' || part === '.' || part === '..')) {
    throw new UploadSyncError('ERR_OUTSIDE', `Refusing to delete ${JSON.stringify(rel)}: not a path inside ${root} (and never ${root} itself)`, { path: rel });
  }
}

/** Whether the file `rel` is one the sync manages (its name passes the filter), so one it may delete. */
export function isManaged(rel: string, extensions: ReadonlySet<string> | null): boolean {
  return matchesExtensions(rel.slice(rel.lastIndexOf('/') + 1), extensions);
}

/** The cap and the dry run: how many deletions were made (or would be), and whether one more may go. */
export class DeleteBudget {
  count = 0;

  constructor(readonly maxDelete: number) {}

  /** Counts one deletion: `false` when the cap is reached (nothing counted). */
  take(): boolean {
    if (this.count >= this.maxDelete) return false;
    this.count++;
    return true;
  }

  /** Gives back a deletion that did not happen after all (gone meanwhile, refused by the server). */
  giveBack(): void {
    this.count--;
  }
}

/** Whether the source, looked at now and as the sync sees it (no symlinked folder followed), forbids deleting `rel`. */
export function sourceForbids(source: string, sourceReal: string, rel: string, check: SourceCheck): boolean {
  if (check === 'never') return false;
  const parts = rel.split('/');
  let at = source;
  for (let i = 0; i < parts.length - 1; i++) {
    at = `${at}/${parts[i]}`;
    const st = lstatSync(at, { throwIfNoEntry: false });
    if (st === undefined || !st.isDirectory()) return false; // the sync cannot reach the path: it is gone
  }
  const path = `${at}/${parts[parts.length - 1]}`;
  const st = lstatSync(path, { throwIfNoEntry: false });
  if (st === undefined) return false;
  if (st.isFile()) return true;
  if (check === 'file') return false;
  if (st.isDirectory()) return true;
  if (st.isSymbolicLink()) return linksToFileInside(path, sourceReal);
  return false; // a FIFO or socket: never synced
}

function linksToFileInside(abs: string, sourceReal: string): boolean {
  try {
    const target = realpathSync.native(abs);
    return isInside(target, sourceReal) && statSync(target).isFile();
  } catch {
    return false;
  }
}
