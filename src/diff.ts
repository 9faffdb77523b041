import { lstatSync, readdirSync, type Dirent } from 'node:fs';
import { join } from 'node:path';
import { isCurrent } from './compare.js';
import { UploadSyncError, errorCode, errorMessage } from './errors.js';
import { isIgnoredName, isTempName, matchesExtensions } from './filter.js';
import type { SyncErrorEntry } from './options.js';
import { fileInfo, linkedFile, type FileInfo } from './walk.js';

export interface DiffOptions {
  extensions: ReadonlySet<string> | null;
  /** The source's real path: a symlink is taken as a file only when its target is a file inside it. */
  sourceReal: string;
  /** List dest files whose source is gone (and folders only dest has). */
  delete: boolean;
  /** When set, dest folders and unchanged files whose mode differs are listed for a chmod. */
  dirMode: number | null;
  fileMode: number | null;
  /**
   * Files modified after this time (epoch ms) are not copied but listed in `young`: they may still
   * be written (the watcher's reconcile syncs them once they are stable). `null`: copy all.
   */
  newerThan?: number | null;
  signal?: AbortSignal | undefined;
  /** Compares folders in another thread; resolves `null` when it cannot. Omitted: one thread. */
  worker?: DiffWorker | null;
}

export type DiffWorker = (source: string, dest: string, items: DirItem[], opts: DiffOptions) => Promise<Diff | null>;

/** What it takes to make dest a mirror of source: only the differences, never a listing of either tree. */
export interface Diff {
  copies: Array<{ rel: string; src: FileInfo; update: boolean }>;
  /** Dest files whose source is gone (with `delete`). */
  deletes: string[];
  unchanged: number;
  /** Unchanged dest files whose mode is not `fileMode`. */
  modeFixes: string[];
  /** Source folders dest lacks (to create), or has with another mode than `dirMode` (to chmod), parents first. */
  dirs: Array<{ rel: string; mode: number }>;
  /** Folders only dest has (with `delete`), parents first: removed after the deletions if then empty. */
  destOnlyDirs: string[];
  /** Our temp files found in dest. */
  temps: string[];
  /** Files that differ but were modified after `newerThan`: left for later. */
  young: string[];
  /** Symlinks in source that were not taken as files, and why. */
  skippedLinks: Array<{ rel: string; reason: string }>;
  errors: SyncErrorEntry[];
}

/** Entries between yields to the event loop: keeps a long walk from starving timers (lock refresh, servers). */
const YIELD_EVERY = 2000;
const tick = () => new Promise<void>((resolve) => setImmediate(resolve));

/** Entries of a folder, or `null` when it is not there (removed while we walked). */
function list(abs: string): Dirent[] | null {
  try {
    return readdirSync(abs, { withFileTypes: true });
  } catch (err) {
    if (errorCode(err) === 'ENOENT' || errorCode(err) === 'ENOTDIR') return null;
    throw err;
  }
}

const lstatOrNull = (abs: string) => lstatSync(abs, { throwIfNoEntry: false }) ?? null;

/** A folder still to compare, and which sides have it. */
export interface DirItem {
  rel: string;
  inSrc: boolean;
  inDst: boolean;
}

export function emptyDiff(): Diff {
  return { copies: [], deletes: [], unchanged: 0, modeFixes: [], dirs: [], destOnlyDirs: [], temps: [], young: [], skippedLinks: [], errors: [] };
}

/** Below this many folders in the frontier, a second thread costs more than it saves. */
const SPLIT_AT = 16;
/** Folders read breadth first, at most, while looking for that frontier. */
const MAX_BREADTH_DIRS = 64;

/**
 * Compares the subtree `prefix` ('' for all) of source and dest, one folder of each side at a time,
 * and keeps only what differs. A folder is read once per side, a file stat-ed once per side, and
 * nothing is stat-ed on the side that lacks it: the fewest calls a quick check can make (what
 * `rsync` does). Synchronous calls with a yield every few thousand entries: a promise per file is
 * the slowest way to walk a tree in Node (PERF-NOTES.md), and memory stays at the size of the diff.
 *
 * The time goes into the kernel's lstat and readdir, which one thread cannot speed up; so a large
 * tree is shared with a worker thread (`diff-worker`), as rsync shares it between its sender and
 * receiver: the first folders are read breadth first, then every other folder of that frontier
 * goes to the worker.
 */
export async function diffTrees(source: string, dest: string, prefix: string, opts: DiffOptions): Promise<Diff> {
  const diff = emptyDiff();
  const srcTop = lstatOrNull(join(source, prefix));
  const dstTop = lstatOrNull(join(dest, prefix));
  if (dstTop !== null && !dstTop.isDirectory() && srcTop?.isDirectory()) {
    addError(diff, prefix, conflict(prefix, dstTop.isSymbolicLink()));
    return diff;
  }
  const inSrcTop = srcTop?.isDirectory() ?? false;
  const inDstTop = dstTop?.isDirectory() ?? false;
  if (inSrcTop && !inDstTop && prefix !== '') diff.dirs.push({ rel: prefix, mode: srcTop!.mode & 0o7777 });
  if (!inSrcTop && inDstTop && opts.delete && prefix !== '') diff.destOnlyDirs.push(prefix);

  const stack: DirItem[] = [{ rel: prefix, inSrc: inSrcTop, inDst: inDstTop }];
  const worker = opts.worker ?? null;
  if (worker !== null) await diffDirs(source, dest, stack, opts, diff, SPLIT_AT);
  if (worker === null || stack.length < SPLIT_AT) {
    await diffDirs(source, dest, stack, opts, diff);
    return diff;
  }
  const theirs = stack.filter((_, i) => i % 2 === 0);
  const mine = stack.filter((_, i) => i % 2 === 1);
  const [other] = await Promise.all([worker(source, dest, theirs, opts), diffDirs(source, dest, mine, opts, diff)]);
  if (other === null) await diffDirs(source, dest, theirs, opts, diff); // no worker after all: do it here
  else mergeDiff(diff, other);
  return diff;
}

function mergeDiff(into: Diff, from: Diff): void {
  into.unchanged += from.unchanged;
  for (const key of ['copies', 'deletes', 'modeFixes', 'dirs', 'destOnlyDirs', 'temps', 'young', 'skippedLinks', 'errors'] as const) {
    (into[key] as unknown[]).push(...from[key]);
  }
}

function addError(diff: Diff, rel: string, err: unknown, what = ''): void {
  diff.errors.push({ path: rel, code: errorCode(err), message: `${what}${errorMessage(err)}` });
}

/**
 * Compares the folders of `stack` and all below them, adding to `diff`. With `untilFrontier`, stops
 * once the stack holds that many folders (or after a few dozen), leaving the rest in `stack`.
 */
export async function diffDirs(source: string, dest: string, stack: DirItem[], opts: DiffOptions, diff: Diff, untilFrontier?: number): Promise<void> {
  const fail = (rel: string, err: unknown, what = '') => addError(diff, rel, err, what);
  const onSkippedLink = (rel: string, reason: string) => diff.skippedLinks.push({ rel, reason });
  const newerThan = opts.newerThan ?? null;
  let count = 0;
  let visited = 0;
  while (stack.length > 0 && (untilFrontier === undefined || (stack.length < untilFrontier && visited < MAX_BREADTH_DIRS))) {
    if (opts.signal?.aborted) break;
    // Breadth first while building a frontier to share, depth first after (a smaller stack).
    const { rel, inSrc, inDst } = untilFrontier === undefined ? stack.pop()! : stack.shift()!;
    visited++;
    const at = (name: string) => (rel === '' ? name : `${rel}/${name}`);
    // Plain concatenation: path.join's normalizing is a measurable part of a 100,000-file walk, and
    // both roots are already absolute and normalized (Windows takes '/' too).
    const srcAbs = (childRel: string) => `${source}/${childRel}`;
    const dstAbs = (childRel: string) => `${dest}/${childRel}`;

    let srcEntries: Dirent[] | null = null;
    if (inSrc) {
      try {
        srcEntries = list(rel === '' ? source : srcAbs(rel));
      } catch (err) {
        // Unreadable: nothing under it is copied, and nothing under it may be deleted from dest.
        fail(rel, err, 'Cannot read source folder: ');
        continue;
      }
    }
    const dstByName = new Map<string, Dirent>();
    if (inDst) {
      try {
        for (const e of list(rel === '' ? dest : dstAbs(rel)) ?? []) dstByName.set(e.name, e);
      } catch (err) {
        fail(rel, err, 'Cannot read dest folder: ');
        continue;
      }
    }

    for (const entry of srcEntries ?? []) {
      if (++count % YIELD_EVERY === 0) await tick();
      const name = entry.name;
      if (isIgnoredName(name)) continue;
      const childRel = at(name);
      const other = dstByName.get(name);
      dstByName.delete(name);
      try {
        if (entry.isDirectory()) {
          if (other !== undefined && !other.isDirectory()) {
            fail(childRel, conflict(childRel, other.isSymbolicLink()));
            continue;
          }
          if (other === undefined) {
            diff.dirs.push({ rel: childRel, mode: lstatSync(srcAbs(childRel)).mode & 0o7777 });
          } else if (opts.dirMode !== null && (lstatSync(dstAbs(childRel)).mode & 0o7777) !== opts.dirMode) {
            diff.dirs.push({ rel: childRel, mode: opts.dirMode });
          }
          stack.push({ rel: childRel, inSrc: true, inDst: other !== undefined });
          continue;
        }
        if (!matchesExtensions(name, opts.extensions)) continue;
        let src: FileInfo | null = null;
        if (entry.isFile()) src = fileInfo(lstatSync(srcAbs(childRel)));
        else if (entry.isSymbolicLink()) src = linkedFile(srcAbs(childRel), childRel, opts.sourceReal, onSkippedLink);
        if (src === null) continue; // sockets, FIFOs, devices, links not taken
        if (other === undefined) {
          if (newerThan !== null && src.mtimeMs > newerThan) diff.young.push(childRel);
          else diff.copies.push({ rel: childRel, src, update: false });
        } else if (other.isFile()) {
          const dst = fileInfo(lstatSync(dstAbs(childRel)));
          if (isCurrent(src, dst)) {
            diff.unchanged++;
            if (opts.fileMode !== null && dst.mode !== opts.fileMode) diff.modeFixes.push(childRel);
          } else if (newerThan !== null && src.mtimeMs > newerThan) {
            diff.young.push(childRel);
          } else {
            diff.copies.push({ rel: childRel, src, update: true });
          }
        } else {
          fail(childRel, conflict(childRel, other.isSymbolicLink()));
        }
      } catch (err) {
        if (errorCode(err) !== 'ENOENT' && errorCode(err) !== 'ENOTDIR') fail(childRel, err);
        // A name that is not valid UTF-8 reaches us with U+FFFD in place of its bytes, and that name
        // does not exist: say so, rather than skip the file as if it had just been removed.
        else if (name.includes('\uFFFD')) fail(childRel, new UploadSyncError('ERR_INVALID_PATH', `The file name of ${childRel} is not valid UTF-8, so it cannot be synced; rename it`));
        // Else removed while we walked: the next run (or the watcher) sees what is there then.
      }
    }

    // What only dest has: our temp files, and, with `delete`, orphans and folders to prune.
    for (const [name, entry] of dstByName) {
      if (isIgnoredName(name)) {
        if (isTempName(name) && entry.isFile()) diff.temps.push(at(name));
        continue;
      }
      if (entry.isDirectory()) {
        // Read even without `delete`: a sync that died may have left temp files in it (a readdir, no stat).
        if (opts.delete) diff.destOnlyDirs.push(at(name));
        stack.push({ rel: at(name), inSrc: false, inDst: true });
      } else if (opts.delete && entry.isFile() && matchesExtensions(name, opts.extensions)) {
        diff.deletes.push(at(name));
      }
      // Symlinks in dest: never followed, never removed.
    }
  }
}

function conflict(rel: string, isLink: boolean): UploadSyncError {
  return isLink
    ? new UploadSyncError('ERR_DEST_SYMLINK', `Dest holds a symlink at ${rel}; symlinks in dest are never followed or replaced, remove it to sync this path`)
    : new UploadSyncError('ERR_TYPE_CONFLICT', `Dest and source disagree on whether ${rel} is a file or a folder; remove or rename the one in dest`);
}
