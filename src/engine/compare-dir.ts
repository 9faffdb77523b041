import { lstatSync, readdirSync, type Stats } from 'node:fs';
import { UploadSyncError, errorCode, errorMessage } from '../shared/errors.js';
import { isIgnoredName, isTempName, matchesExtensions } from '../shared/filter.js';
import { isCurrent } from './compare.js';
import { emptyFindings, type CompareOptions, type DirItem, type FileInfo, type FolderResult } from './plan-types.js';
import { fileInfo, linkedFile } from './walk.js';

/** Names in a folder, or `null` when it is not there (removed while we walked). */
function list(abs: string): string[] | null {
  try {
    // Names only: every name is lstat-ed anyway, and `withFileTypes` costs an object per entry.
    return readdirSync(abs);
  } catch (err) {
    if (errorCode(err) === 'ENOENT' || errorCode(err) === 'ENOTDIR') return null;
    throw err;
  }
}

/** `lstat`, or `undefined` when the path is not there. */
const lstatOf = (abs: string): Stats | undefined => lstatSync(abs, { throwIfNoEntry: false });

const modeOf = (st: { mode: number }) => st.mode & 0o7777;
/** Owner write and search bits: what a non-root process needs to add or remove entries of a folder. */
const OWNER_WX = 0o300;

/**
 * Compares one folder of source with the same folder of dest (not recursive: the folders below
 * come back as `children`). Synchronous calls: a promise per file is the slowest way to walk a tree
 * in Node (PERF-NOTES.md). A folder is read once per side and an entry stat-ed once per side;
 * nothing is stat-ed on the side that lacks it. Pure apart from these reads, so the helper thread
 * runs the same function on its share.
 */
export function compareDir(o: CompareOptions, item: DirItem): FolderResult {
  return new FolderComparison(o, item).run();
}

/**
 * What dest has under a name: its `Stats`, `undefined` (nothing), or `'listed'`: in dest's listing,
 * not stat-ed yet (many names never need it: filtered out, or not taken with `delete` off).
 */
type DestEntry = Stats | undefined | 'listed';

/**
 * Compares one entry of a folder (a targeted sync: no listing of either folder, so an upload into
 * a folder of 50,000 files costs what it costs in an empty one), by the very rules of `compareDir`.
 * `src`/`dst`: what each side has under `name` (`undefined`: nothing).
 */
export function compareEntry(o: CompareOptions, parent: DirItem, name: string, src: Stats | undefined, dst: Stats | undefined): FolderResult {
  return new FolderComparison(o, parent).one(name, src, dst);
}

class FolderComparison {
  private readonly out: FolderResult = { ...emptyFindings(), children: [] };

  constructor(
    private readonly o: CompareOptions,
    private readonly item: DirItem,
  ) {}

  run(): FolderResult {
    const { rel, inSrc, inDst } = this.item;
    let srcNames: string[] | null = null;
    let dstNames: Set<string>;
    try {
      if (inSrc) srcNames = list(this.src(rel));
    } catch (err) {
      // Unreadable: nothing under it is copied, and nothing under it may be deleted from dest.
      return this.fail(rel, err, 'Cannot read source folder: ');
    }
    try {
      dstNames = new Set(inDst ? list(this.dst(rel)) : null);
    } catch (err) {
      return this.fail(rel, err, 'Cannot read dest folder: ');
    }
    for (const name of srcNames ?? []) {
      if (isIgnoredName(name)) {
        if (isTempName(name)) this.out.sourceTemps.push(this.at(name)); // a file? checked where it is removed
        continue;
      }
      const dst: DestEntry = dstNames.delete(name) ? 'listed' : undefined;
      try {
        const src = lstatOf(this.src(this.at(name)));
        if (src === undefined) this.vanished(name);
        else this.sourceEntry(name, src, dst);
      } catch (err) {
        this.entryFailed(name, err);
      }
    }
    for (const name of dstNames) {
      try {
        this.destOnly(name);
      } catch (err) {
        this.entryFailed(name, err);
      }
    }
    return this.out;
  }

  one(name: string, src: Stats | undefined, dst: Stats | undefined): FolderResult {
    try {
      if (src !== undefined) this.sourceEntry(name, src, dst);
      else if (dst !== undefined) this.destOnly(name, dst);
    } catch (err) {
      this.entryFailed(name, err);
    }
    return this.out;
  }

  private at(name: string): string {
    return this.item.rel === '' ? name : `${this.item.rel}/${name}`;
  }

  // Plain concatenation: path.join's normalizing is a measurable part of a 100,000-file walk, and
  // both roots are already absolute and normalized.
  private src(rel: string): string {
    return rel === '' ? this.o.source : `${this.o.source}/${rel}`;
  }

  private dst(rel: string): string {
    return rel === '' ? this.o.dest : `${this.o.dest}/${rel}`;
  }

  /** Dest's `Stats` under `rel`, read now if only listed so far. */
  private read(rel: string, dst: DestEntry): Stats | undefined {
    return dst === 'listed' ? lstatOf(this.dst(rel)) : dst;
  }

  private fail(rel: string, err: unknown, what = ''): FolderResult {
    this.out.errors.push({ path: rel, code: errorCode(err), message: `${what}${errorMessage(err)}` });
    return this.out;
  }

  /** An entry removed while we looked is left to the next run; any other failure is its error. */
  private entryFailed(name: string, err: unknown): void {
    if (errorCode(err) !== 'ENOENT' && errorCode(err) !== 'ENOTDIR') this.fail(this.at(name), err);
    else this.vanished(name);
  }

  private vanished(name: string): void {
    // A name that is not valid UTF-8 reaches us with U+FFFD in place of its bytes, and that name
    // does not exist: say so, rather than skip the file as if it had just been removed.
    const rel = this.at(name);
    if (name.includes('\uFFFD')) this.fail(rel, new UploadSyncError('ERR_INVALID_PATH', `The file name of ${rel} is not valid UTF-8, so it cannot be synced; rename it`));
  }

  private sourceEntry(name: string, entry: Stats, other: DestEntry): void {
    const rel = this.at(name);
    if (entry.isDirectory()) return this.sourceFolder(rel, entry, this.read(rel, other));
    if (!matchesExtensions(name, this.o.extensions)) {
      this.out.filtered++; // untouched on both sides, and counted: a filter that leaves out everything is told
      return;
    }
    let src: Stats | FileInfo | null = null;
    if (entry.isFile()) src = entry;
    else if (entry.isSymbolicLink()) src = linkedFile(this.src(rel), rel, this.o.sourceReal, (r, reason) => this.out.skippedLinks.push({ rel: r, reason }));
    if (src === null) return this.notTaken(rel, other); // FIFOs, sockets, devices, links not taken
    this.sourceFile(rel, src, this.read(rel, other));
  }

  private sourceFolder(rel: string, src: Stats, other: Stats | undefined): void {
    const { actions, children } = this.out;
    const mode = this.o.dirMode ?? modeOf(src);
    if (other === undefined) {
      actions.push({ type: 'mkdir', rel, mode, replaceFile: false });
      children.push({ rel, inSrc: true, inDst: false });
    } else if (other.isDirectory()) {
      const have = modeOf(other);
      if (this.o.openDirs && (have & OWNER_WX) !== OWNER_WX) actions.push({ type: 'open', rel, mode, have });
      else if (have !== mode) actions.push({ type: 'dirmode', rel, mode });
      children.push({ rel, inSrc: true, inDst: true });
    } else if (other.isSymbolicLink()) {
      this.fail(rel, destSymlink(rel));
    } else if (this.o.delete) {
      actions.push({ type: 'mkdir', rel, mode, replaceFile: true });
      children.push({ rel, inSrc: true, inDst: false });
    } else {
      this.fail(rel, typeConflict(rel, 'a folder', 'a file'));
    }
  }

  private sourceFile(rel: string, src: Stats | FileInfo, dst: Stats | undefined): void {
    const { o, out } = this;
    const young = o.newerThan !== null && src.mtimeMs > o.newerThan;
    const copy = (update: boolean, replaceDir = false) => {
      if (young) out.young.push(rel);
      else out.actions.push({ type: 'copy', job: { rel, src: asInfo(src), update, ...(replaceDir ? { replaceDir } : {}) } });
    };
    if (dst === undefined) return copy(false);
    if (dst.isFile()) {
      if (!isCurrent(src, dst, o.mtimeWindowMs)) return copy(true);
      out.unchanged++;
      const mode = o.fileMode ?? modeOf(src);
      // A hard link shares its inode (and mode) with the source: nothing to set.
      const linked = src.ino === dst.ino && src.dev === dst.dev;
      if (!linked && modeOf(dst) !== mode) out.actions.push({ type: 'chmod', rel, mode });
    } else if (dst.isSymbolicLink()) {
      this.fail(rel, destSymlink(rel));
    } else if (dst.isDirectory() && o.delete) {
      copy(false, true);
    } else {
      this.fail(rel, typeConflict(rel, 'a file', dst.isDirectory() ? 'a folder' : 'something else'));
    }
  }

  /** A source name the sync does not take (a symlink it does not follow, a FIFO): with `delete`, dest's entry goes, as rsync's would. */
  private notTaken(rel: string, listed: DestEntry): void {
    this.out.skipped++;
    if (listed === undefined || !this.o.delete) return;
    const other = this.read(rel, listed);
    if (other?.isDirectory()) this.destFolderGone(rel);
    else if (other?.isFile()) this.out.actions.push({ type: 'delete', rel });
  }

  /** What only dest has: our temp files, and, with `delete`, orphans and folders to prune. */
  private destOnly(name: string, known?: Stats): void {
    const rel = this.at(name);
    if (isIgnoredName(name)) {
      if (!isTempName(name)) return;
      const entry = known ?? lstatOf(this.dst(rel));
      if (entry?.isFile()) this.out.temps.push(rel);
      return;
    }
    const entry = known ?? lstatOf(this.dst(rel));
    if (entry === undefined) return; // removed meanwhile
    if (entry.isDirectory()) {
      // Read even without `delete`: a sync that died may have left temp files in it (a readdir, no stat).
      if (this.o.delete) this.destFolderGone(rel);
      else this.out.children.push({ rel, inSrc: false, inDst: true });
    } else if (this.o.delete && entry.isFile() && matchesExtensions(name, this.o.extensions)) {
      this.out.actions.push({ type: 'delete', rel });
    }
    // Symlinks in dest: never followed, never removed.
  }

  private destFolderGone(rel: string): void {
    this.out.actions.push({ type: 'prune', rel });
    this.out.children.push({ rel, inSrc: false, inDst: true });
  }
}

const asInfo = (st: Stats | FileInfo): FileInfo => ('isFile' in st ? fileInfo(st) : st);

function destSymlink(rel: string): UploadSyncError {
  return new UploadSyncError('ERR_DEST_SYMLINK', `Dest holds a symlink at ${rel}; symlinks in dest are never followed or replaced, remove it to sync this path`);
}

function typeConflict(rel: string, srcIs: string, dstIs: string): UploadSyncError {
  return new UploadSyncError(
    'ERR_TYPE_CONFLICT',
    `Source has ${srcIs} at ${rel} where dest has ${dstIs}; run the sync with \`delete\` (--delete) to replace it, or remove the one in dest`,
  );
}
