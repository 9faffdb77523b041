import { lstatSync, readdirSync, type Dirent, type Stats } from 'node:fs';
import { join } from 'node:path';
import { isCurrent } from './compare.js';
import { UploadSyncError, errorCode, errorMessage } from '../shared/errors.js';
import { isIgnoredName, isTempName, matchesExtensions } from '../shared/filter.js';
import type { SyncErrorEntry } from '../shared/options.js';
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
  /**
   * Called during a long comparison with the copies found so far (taken out of the diff), so the
   * caller does them as it goes and memory stays at a batch: the comparison waits for it.
   */
  onCopies?: ((copies: Diff['copies']) => Promise<void>) | undefined;
  /**
   * The helper thread for a large tree, started on the first call; `null` (or omitted): one
   * thread. The caller owns it: `diffTrees` leaves it running, and the caller stops it.
   */
  helper?: (() => DiffHelper | null) | undefined;
}

/**
 * Another thread that compares shares of the tree (src/threads.ts). It may take a while to start:
 * the caller goes on meanwhile, and gives it a share only once it is `idle`.
 */
export interface DiffHelper {
  /** Started, and not working on a share: `give` may be called. */
  readonly idle: boolean;
  /** Working on a share: `collect` will return it (or hand it back) once `changed` says so. */
  readonly busy: boolean;
  give(items: DirItem[]): void;
  /** Moves the shares it finished into `into`; returns the folders of a share it failed to finish. */
  collect(into: Diff): DirItem[];
  /** Resolves at its next change of state. */
  changed(): Promise<void>;
  stop(): void;
}

/** What it takes to make dest a mirror of source: only the differences, never a listing of either tree. */
export interface Diff {
  /** Shaped as the run's copy operations, so a large plan is not built twice. */
  copies: Array<{ kind: 'copy'; rel: string; src: FileInfo; update: boolean }>;
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
/** While a helper thread may take a share: its messages are only seen at a yield. */
const HELPER_YIELD_EVERY = 500;
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

/** Copies found before they are handed to `onCopies`. */
const STREAM_BATCH = 2000;

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
 * tree is shared with a helper thread (`diff-worker`), as rsync shares it between its sender and
 * receiver: the first folders are read breadth first; if they make a frontier wide enough to share,
 * the helper starts while this thread goes on, and takes shares once it is up. A tree this thread
 * finishes first never waits for the helper's start (a few tens of ms).
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
  const { onCopies } = opts;
  const atYield = onCopies && (async () => {
    if (diff.copies.length >= STREAM_BATCH) await onCopies(diff.copies.splice(0));
  });
  if (opts.helper) await diffDirs(source, dest, stack, opts, diff, { untilFrontier: SPLIT_AT, atYield });
  const helper = stack.length >= SPLIT_AT ? (opts.helper?.() ?? null) : null;
  if (helper === null) {
    await diffDirs(source, dest, stack, opts, diff, { atYield });
    return diff;
  }
  // Once the helper is up, it takes the oldest third of what is left (the larger subtrees: the
  // stack is worked from its top), and again each time it is done while this thread has more.
  // A third, not half: the helper starts with cold code, and smaller shares end both threads closer together.
  const share = () => {
    for (const item of helper.collect(diff)) stack.push(item);
    if (helper.idle && stack.length >= 2) helper.give(stack.splice(0, Math.ceil(stack.length / 3)));
  };
  for (;;) {
    await diffDirs(source, dest, stack, opts, diff, { betweenFolders: share, yieldEvery: HELPER_YIELD_EVERY, atYield });
    share();
    await atYield?.();
    if (opts.signal?.aborted) break;
    if (stack.length > 0) continue; // a share handed back
    if (!helper.busy) break;
    await helper.changed();
  }
  return diff;
}

export function mergeDiff(into: Diff, from: Diff): void {
  into.unchanged += from.unchanged;
  for (const key of DIFF_LISTS) {
    const list = into[key] as unknown[];
    for (const item of from[key]) list.push(item); // not push(...): a share's list can outgrow the stack
  }
}

/** Empties `diff` in place. */
export function clearDiff(diff: Diff): void {
  diff.unchanged = 0;
  for (const key of DIFF_LISTS) diff[key].length = 0;
}

const DIFF_LISTS = ['copies', 'deletes', 'modeFixes', 'dirs', 'destOnlyDirs', 'temps', 'young', 'skippedLinks', 'errors'] as const;

function addError(diff: Diff, rel: string, err: unknown, what = ''): void {
  diff.errors.push({ path: rel, code: errorCode(err), message: `${what}${errorMessage(err)}` });
}

export interface DiffControl {
  /** Stop once the stack holds this many folders (or after a few dozen), leaving the rest in it. */
  untilFrontier?: number;
  /** Called before each folder: it may take folders off the stack, or add some. */
  betweenFolders?: () => void;
  /** Entries between yields to the event loop (default 2000). */
  yieldEvery?: number;
  /** Awaited at each yield. */
  atYield?: () => Promise<void>;
}

/**
 * Compares the folders of `stack` and all below them, adding to `diff`. With `untilFrontier`, breadth
 * first; else depth first (a smaller stack), from the top of the stack.
 */
export async function diffDirs(source: string, dest: string, stack: DirItem[], opts: DiffOptions, diff: Diff, control: DiffControl = {}): Promise<void> {
  const { untilFrontier, betweenFolders, yieldEvery = YIELD_EVERY, atYield } = control;
  const fail = (rel: string, err: unknown, what = '') => addError(diff, rel, err, what);
  const onSkippedLink = (rel: string, reason: string) => diff.skippedLinks.push({ rel, reason });
  const newerThan = opts.newerThan ?? null;
  let count = 0;
  let visited = 0;
  while (stack.length > 0 && (untilFrontier === undefined || (stack.length < untilFrontier && visited < MAX_BREADTH_DIRS))) {
    if (opts.signal?.aborted) break;
    betweenFolders?.();
    if (stack.length === 0) break;
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
      if (++count % yieldEvery === 0) {
        await tick();
        await atYield?.();
      }
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
        // Stats as they come, made into a FileInfo only for a copy: a no-op run of a large tree
        // would otherwise make two objects per file for the garbage collector.
        let src: Stats | FileInfo | null = null;
        if (entry.isFile()) src = lstatSync(srcAbs(childRel));
        else if (entry.isSymbolicLink()) src = linkedFile(srcAbs(childRel), childRel, opts.sourceReal, onSkippedLink);
        if (src === null) continue; // sockets, FIFOs, devices, links not taken
        if (other === undefined) {
          if (newerThan !== null && src.mtimeMs > newerThan) diff.young.push(childRel);
          else diff.copies.push({ kind: 'copy', rel: childRel, src: asInfo(src), update: false });
        } else if (other.isFile()) {
          const dst = lstatSync(dstAbs(childRel));
          if (isCurrent(src, dst)) {
            diff.unchanged++;
            if (opts.fileMode !== null && (dst.mode & 0o7777) !== opts.fileMode) diff.modeFixes.push(childRel);
          } else if (newerThan !== null && src.mtimeMs > newerThan) {
            diff.young.push(childRel);
          } else {
            diff.copies.push({ kind: 'copy', rel: childRel, src: asInfo(src), update: true });
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

const asInfo = (st: Stats | FileInfo): FileInfo => ('isFile' in st ? fileInfo(st) : st);

function conflict(rel: string, isLink: boolean): UploadSyncError {
  return isLink
    ? new UploadSyncError('ERR_DEST_SYMLINK', `Dest holds a symlink at ${rel}; symlinks in dest are never followed or replaced, remove it to sync this path`)
    : new UploadSyncError('ERR_TYPE_CONFLICT', `Dest and source disagree on whether ${rel} is a file or a folder; remove or rename the one in dest`);
}
