/**
 * The one place where the library deletes from dest: sync's `delete`, a file/folder swap, and
 * `cleanupOld` all go through here, so one set of rules guards every deletion, checked at the
 * moment of deletion (the tree may have changed since it was compared):
 * - the real path is inside dest, and never dest itself (a symlinked folder never leads out);
 * - only a regular file is removed as a file, only an empty folder as a folder; symlinks never;
 * - the source is looked at again: a path it has now (a fresh upload) is not an orphan;
 * - `dryRun` counts what would go and touches nothing; `maxDelete` caps the files removed.
 */
import { lstatSync, readdirSync, realpathSync, rmdirSync, statSync, unlinkSync, type Stats } from 'node:fs';
import { dirname, join } from 'node:path';
import { isInside } from '../config/paths.js';
import { UploadSyncError, errorCode } from './errors.js';
import { isIgnoredName, matchesExtensions } from './filter.js';

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

/**
 * When the source forbids a deletion: `'exists'` when it has anything the sync would take under
 * that path (an orphan is only an orphan while the source lacks it); `'file'` only when it has a
 * file there (a swap: dest's file gives way to the source's folder); `'never'` (cleanup by age).
 */
export type SourceCheck = 'exists' | 'file' | 'never';

export type Removal = 'removed' | 'kept' | 'capped';

/** A caller's own reasons to keep a file (cleanup: too young), and our temp files (which the filter never names). */
export interface RemoveFileOptions {
  /** Called with the file's `Stats` just before removal: `false` keeps it. */
  accept?: (st: Stats) => boolean;
  /** Remove whatever the file is called (our temp files); else only names the filter lets through. */
  anyName?: boolean;
}

export class DeleteGuard {
  /** Files removed (or that would be, in a dry run). */
  count = 0;

  constructor(private readonly o: DeleteGuardOptions) {}

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
    if (!options.anyName && !matchesExtensions(rel.slice(rel.lastIndexOf('/') + 1), this.o.extensions)) return 'kept';
    if (this.sourceForbids(rel, check)) return 'kept';
    if (options.accept && !options.accept(st)) return 'kept';
    if (this.count >= this.o.maxDelete) return 'capped';
    if (!this.o.dryRun) {
      try {
        unlinkSync(abs);
      } catch (err) {
        if (errorCode(err) === 'ENOENT') return 'kept';
        throw err;
      }
    }
    this.count++;
    this.removed = st;
    return 'removed';
  }

  /** The `Stats` of the file the last `removeFile` removed (size and age, for the report). */
  removed: Stats | null = null;

  /** Removes the folder `rel` of dest if it is empty and the source has no folder there: `true` when removed. */
  removeEmptyFolder(rel: string): boolean {
    const abs = this.destPath(rel);
    if (abs === null) return false;
    const st = lstatSync(abs, { throwIfNoEntry: false });
    if (st === undefined || !st.isDirectory()) return false;
    if (this.sourceForbids(rel, 'exists')) return false;
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
    if (rel === '' || rel.split('/').some((part) => part === '' || part === '.' || part === '..')) {
      throw new UploadSyncError('ERR_OUTSIDE', `Refusing to delete ${JSON.stringify(rel)}: not a path inside dest (and never dest itself)`, { path: rel });
    }
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

  /** Whether the source, looked at now and as the sync sees it (no symlinked folder followed), forbids the deletion. */
  private sourceForbids(rel: string, check: SourceCheck): boolean {
    if (check === 'never') return false;
    const parts = rel.split('/');
    let at = this.o.source;
    for (let i = 0; i < parts.length - 1; i++) {
      at = `${at}/${parts[i]}`;
      const st = lstatSync(at, { throwIfNoEntry: false });
      if (st === undefined || !st.isDirectory()) return false; // the sync cannot reach the path: it is gone
    }
    const st = lstatSync(`${at}/${parts[parts.length - 1]}`, { throwIfNoEntry: false });
    if (st === undefined) return false;
    if (st.isFile()) return true;
    if (check === 'file') return false;
    if (st.isDirectory()) return true;
    if (st.isSymbolicLink()) return this.linksToFileInside(`${at}/${parts[parts.length - 1]}`);
    return false; // a FIFO or socket: never synced
  }

  private linksToFileInside(abs: string): boolean {
    try {
      const target = realpathSync.native(abs);
      return isInside(target, this.o.sourceReal) && statSync(target).isFile();
    } catch {
      return false;
    }
  }
}
