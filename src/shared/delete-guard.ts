/**
 * The one place where the library deletes from dest: sync's `delete`, a file/folder swap, and
 * `cleanupOld` all go through here, so one set of rules guards every deletion, checked at the
 * moment of deletion (the tree may have changed since it was compared):
 * - the real path is inside dest, and never dest itself (a symlinked folder never leads out);
 * - only a regular file is removed as a file, only an empty folder as a folder; symlinks never;
 * - the source is looked at again: a path it has now (a fresh upload) is not an orphan;
 * - `dryRun` counts what would go and touches nothing; `maxDelete` caps the files removed.
 * The rules are delete-policy.ts's, shared with the bucket's guard (src/bucket/guard.ts); this is
 * their mechanism on disk.
 */
import { lstatSync, readdirSync, realpathSync, rmdirSync, unlinkSync, type Stats } from 'node:fs';
import { dirname, join } from 'node:path';
import { UploadSyncError, errorCode } from './errors.js';
import { isIgnoredName } from './filter.js';
import { DeleteBudget, checkInside, isManaged, sourceForbids, type Removal, type SourceCheck } from './delete-policy.js';

export type { Removal, SourceCheck } from './delete-policy.js';

export interface DeleteGuardOptions {
  source: string;
  sourceReal: string;
  dest: string;
  destReal: string;
  /** Files the filter excludes are never removed. */
  extensions: ReadonlySet<string> | null;
  dryRun: boolean;
  /** Files removed at most (`Infinity`: no cap). */
  maxDelete: number;
}

/** A caller's own reasons to keep a file (cleanup: too young), and our temp files (which the filter never names). */
export interface RemoveFileOptions {
  /** Called with the file's `Stats` just before removal: `false` keeps it. */
  accept?: (st: Stats) => boolean;
  /** Remove whatever the file is called (our temp files); else only names the filter lets through. */
  anyName?: boolean;
}

export class DeleteGuard {
  private readonly budget: DeleteBudget;

  constructor(private readonly o: DeleteGuardOptions) {
    this.budget = new DeleteBudget(o.maxDelete);
  }

  /** Files removed (or that would be, in a dry run). */
  get count(): number {
    return this.budget.count;
  }

  /**
   * Removes the file `rel` of dest if every rule allows it: `'removed'`; `'kept'` when a rule says
   * no (the reason is not an error: it is not ours to remove, or is back in source); `'capped'`.
   * @throws filesystem errors of the removal itself (EACCES, …).
   */
  removeFile(rel: string, check: SourceCheck, options: RemoveFileOptions = {}): Removal {
    this.removed = null;
    const abs = this.destPath(rel);
    if (abs === null) return 'kept';
    const st = lstatSync(abs, { throwIfNoEntry: false });
    if (st === undefined || !st.isFile()) return 'kept'; // gone already, or a symlink or folder now
    if (!options.anyName && !isManaged(rel, this.o.extensions)) return 'kept';
    if (sourceForbids(this.o.source, this.o.sourceReal, rel, check)) return 'kept';
    if (options.accept && !options.accept(st)) return 'kept';
    if (!this.budget.take()) return 'capped';
    if (!this.o.dryRun) {
      try {
        unlinkSync(abs);
      } catch (err) {
        this.budget.giveBack();
        if (errorCode(err) === 'ENOENT') return 'kept';
        throw err;
      }
    }
    this.removed = st;
    return 'removed';
  }

  /** The `Stats` of the file the last `removeFile` removed (size and age, for the report). */
  removed: Stats | null = null;

  /**
   * Removes the folder `rel` of dest if it is empty and the source has no folder there (`check`:
   * `'never'` for a pull, whose source is a bucket): `true` when removed.
   */
  removeEmptyFolder(rel: string, check: SourceCheck = 'exists'): boolean {
    const abs = this.destPath(rel);
    if (abs === null) return false;
    const st = lstatSync(abs, { throwIfNoEntry: false });
    if (st === undefined || !st.isDirectory()) return false;
    if (sourceForbids(this.o.source, this.o.sourceReal, rel, check)) return false;
    if (this.o.dryRun) return readdirSync(abs).length === 0;
    try {
      rmdirSync(abs);
      return true;
    } catch (err) {
      // Not empty (files the filter keeps out, dotfiles, symlinks), or gone: keep it.
      if (['ENOTEMPTY', 'EEXIST', 'ENOENT', 'ENOTDIR'].includes(errorCode(err))) return false;
      throw err;
    }
  }

  /**
   * Removes the dest folder `rel` and everything the sync manages in it (a swap: the source has a
   * file there now). Returns the files removed; throws `ERR_TYPE_CONFLICT` when something stays
   * (a dotfile, a file the filter keeps out, a symlink), since the folder then cannot give way.
   */
  removeTree(rel: string): string[] {
    const removed: string[] = [];
    const visit = (dir: string) => {
      const abs = this.destPath(dir);
      if (abs === null) return;
      for (const entry of readdirSync(abs, { withFileTypes: true })) {
        const child = `${dir}/${entry.name}`;
        if (entry.isDirectory() && !isIgnoredName(entry.name)) visit(child);
        else if (entry.isFile() && !isIgnoredName(entry.name) && this.removeFile(child, 'never') === 'removed') removed.push(child);
      }
      if (!this.o.dryRun) {
        try {
          rmdirSync(abs);
        } catch (err) {
          if (errorCode(err) !== 'ENOTEMPTY' && errorCode(err) !== 'EEXIST') throw err;
          throw new UploadSyncError('ERR_TYPE_CONFLICT', `Dest folder ${dir} holds files the sync does not manage (dotfiles, filtered-out files or symlinks), so it cannot give way to the source's file ${rel}; remove them`, { path: dir });
        }
      }
    };
    visit(rel);
    return removed;
  }

  /**
   * dest/rel, once its folder is known to be where the comparison saw it: its real path is dest's
   * real path plus `rel`'s folders, so no folder on the way was swapped for a symlink (leading out,
   * or elsewhere in dest). `null` when that folder is gone.
   */
  private destPath(rel: string): string | null {
    checkInside(rel, 'dest');
    const abs = join(this.o.dest, rel);
    let parentReal: string;
    try {
      parentReal = realpathSync.native(dirname(abs));
    } catch (err) {
      if (errorCode(err) === 'ENOENT' || errorCode(err) === 'ENOTDIR') return null;
      throw err;
    }
    const parent = dirname(rel);
    const expected = parent === '.' ? this.o.destReal : join(this.o.destReal, parent);
    if (parentReal !== expected) {
      throw new UploadSyncError('ERR_DEST_SYMLINK', `A folder on the way to ${rel} is a symlink (to ${parentReal}); nothing is removed through one`, { path: abs });
    }
    return abs;
  }
}
