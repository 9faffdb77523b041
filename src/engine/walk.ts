import { lstatSync, readdirSync, realpathSync, statSync, type Stats } from 'node:fs';
import { join } from 'node:path';
import { errorCode, errorMessage } from '../shared/errors.js';
import { isIgnoredName, isTempName, matchesExtensions } from '../shared/filter.js';
import { isInside } from '../config/paths.js';
import type { SyncErrorEntry } from '../shared/options.js';
import type { FileInfo } from './plan-types.js';

export type { FileInfo } from './plan-types.js';

export const fileInfo = (st: Stats): FileInfo => ({
  size: st.size,
  mtimeMs: st.mtimeMs,
  atimeMs: st.atimeMs,
  mode: st.mode & 0o7777,
  ino: st.ino,
  dev: st.dev,
});

/** One side of a sync: what a subtree holds, keyed by `/`-separated paths relative to the side's root. */
export interface Listing {
  files: Map<string, FileInfo>;
  /** Folders (with their mode), the subtree's top included. */
  dirs: Map<string, number>;
  /** Symlinks that were not taken as files: never followed, never removed. */
  symlinks: Set<string>;
  /** Folders that could not be read: nothing under them may be deleted on the other side. */
  unreadable: string[];
  /** Our own temp files (`.upload-sync-*`), listed only with `temps: true`. */
  temps: Map<string, FileInfo>;
  errors: SyncErrorEntry[];
}

export interface WalkOptions {
  extensions: ReadonlySet<string> | null;
  /**
   * Source side: the source's real path. A symlink whose target is a file inside it is listed as
   * that file; any other symlink is reported through `onSkippedLink` and never followed.
   */
  sourceReal?: string;
  onSkippedLink?: (rel: string, reason: string) => void;
  signal?: AbortSignal | undefined;
  /** Also list our temp files (regular files only, whatever the extension filter) in `temps`: cleanup removes stale ones. */
  temps?: boolean;
}

/** Entries between yields to the event loop: keeps a long walk from starving timers (lock refresh, servers). */
const YIELD_EVERY = 2000;
const tick = () => new Promise<void>((resolve) => setImmediate(resolve));

/**
 * Lists the subtree `prefix` ('' for all) under `root`. Synchronous calls per entry, with a yield
 * every few thousand entries: far faster in Node than a promise per file (see PERF-NOTES.md), and
 * still fair to the event loop. A missing subtree is an empty listing.
 */
export async function walk(root: string, prefix: string, opts: WalkOptions): Promise<Listing> {
  const listing: Listing = { files: new Map(), dirs: new Map(), symlinks: new Set(), unreadable: [], temps: new Map(), errors: [] };
  let top: Stats;
  try {
    top = lstatSync(join(root, prefix));
  } catch (err) {
    if (errorCode(err) === 'ENOENT' || errorCode(err) === 'ENOTDIR') return listing;
    throw err;
  }
  if (!top.isDirectory()) return listing;
  listing.dirs.set(prefix, top.mode & 0o7777);

  const stack = [prefix];
  let count = 0;
  while (stack.length > 0) {
    if (opts.signal?.aborted) break;
    const rel = stack.pop()!;
    const abs = join(root, rel);
    let entries;
    try {
      entries = readdirSync(abs, { withFileTypes: true });
    } catch (err) {
      const code = errorCode(err);
      if (code === 'ENOENT' || code === 'ENOTDIR') continue; // removed while we walked
      listing.unreadable.push(rel);
      listing.errors.push({ path: rel, code, message: `Cannot read folder: ${errorMessage(err)}` });
      continue;
    }
    for (const entry of entries) {
      if (++count % YIELD_EVERY === 0) await tick();
      const name = entry.name;
      if (isIgnoredName(name) && !(opts.temps && isTempName(name) && entry.isFile())) continue;
      const childRel = rel === '' ? name : `${rel}/${name}`;
      const childAbs = join(abs, name);
      try {
        if (entry.isDirectory()) {
          listing.dirs.set(childRel, lstatSync(childAbs).mode & 0o7777);
          stack.push(childRel);
        } else if (entry.isFile()) {
          if (isTempName(name)) listing.temps.set(childRel, fileInfo(lstatSync(childAbs)));
          else if (matchesExtensions(name, opts.extensions)) listing.files.set(childRel, fileInfo(lstatSync(childAbs)));
        } else if (entry.isSymbolicLink()) {
          addSymlink(listing, childRel, childAbs, name, opts);
        }
        // Sockets, FIFOs and devices are never synced.
      } catch (err) {
        const code = errorCode(err);
        if (code === 'ENOENT' || code === 'ENOTDIR') continue; // removed while we walked
        listing.errors.push({ path: childRel, code, message: errorMessage(err) });
      }
    }
  }
  return listing;
}

function addSymlink(listing: Listing, rel: string, abs: string, name: string, opts: WalkOptions): void {
  if (opts.sourceReal === undefined) {
    listing.symlinks.add(rel);
    return;
  }
  if (!matchesExtensions(name, opts.extensions)) return;
  const info = linkedFile(abs, rel, opts.sourceReal, opts.onSkippedLink);
  if (info !== null) listing.files.set(rel, info);
}

/** A symlink in source counts as the file it points to, when that is a file inside the source; else `null`, and why. */
export function linkedFile(abs: string, rel: string, sourceReal: string, onSkipped?: (rel: string, reason: string) => void): FileInfo | null {
  let target: string;
  try {
    target = realpathSync.native(abs);
  } catch {
    onSkipped?.(rel, 'its target does not exist');
    return null;
  }
  if (!isInside(target, sourceReal)) {
    onSkipped?.(rel, 'it points outside the source');
    return null;
  }
  const st = statSync(target);
  if (st.isFile()) return fileInfo(st);
  onSkipped?.(rel, 'it points to a folder (symlinked folders are not followed)');
  return null;
}
