import { isAbsolute, relative, sep } from 'node:path';
import { toPosix } from '../shared/filter.js';
import type { WatcherError } from './watcher.js';

/**
 * Why a path is reported: `event`, the platform said something happened to it (written, created,
 * removed, renamed: native events often cannot tell which); `removed`, it is gone (polling knows);
 * `listed`, a listing of a new folder found it (no event may ever come for it).
 */
export type ChangeCause = 'event' | 'removed' | 'listed';

/**
 * What an event source tells the watcher, and all it tells: the sources decide nothing (what to
 * sync, when, with `delete` or not), they only report. Paths are source-relative and `/`-separated;
 * dot names (our temp files among them) and partial uploads never come through.
 */
export interface SourceEvents {
  /**
   * `rel` changed. `''` is the source folder itself (removed, created, or its attributes changed),
   * when the platform tells (chokidar's polling does not: the source folder is also checked every second).
   */
  changed(rel: string, cause: ChangeCause): void;
  /** A folder appeared; its files come as `changed(…, 'listed')` or as events. */
  folderAdded(rel: string): void;
  /** A folder went (everything under it with it). */
  folderRemoved(rel: string): void;
  /** A folder could not be watched or read, or a watch failed; after ENOSPC or EMFILE the source has stopped. */
  error(err: unknown): void;
}

/** One way of learning what changes under the source folder: native events or polling. */
export interface EventSource {
  readonly mode: 'native' | 'polling';
  /** Starts watching; resolves once the whole tree is watched (or at once after `close()`). */
  start(): Promise<void>;
  /** Lists the folders created lately once more, now (`flush()`: a file not reported yet is synced too). */
  rescan(): Promise<void>;
  /** Stops: no report after this call. */
  close(): Promise<void>;
}

/** Source-relative `/`-path of an absolute one under `root`; `null` outside it. */
export function relOf(root: string, abs: string): string | null {
  const rel = relative(root, abs);
  if (rel === '..' || rel.startsWith(`..${sep}`) || isAbsolute(rel)) return null;
  return toPosix(rel);
}

/** `rel` inside folder `dir` (`''` for the source folder itself). */
export const childOf = (dir: string, name: string) => (dir === '' ? name : `${dir}/${name}`);

export function toWatcherError(code: string, message: string, path?: string, cause?: unknown): WatcherError {
  const err = new Error(message, cause === undefined ? undefined : { cause }) as WatcherError;
  err.code = code;
  if (path !== undefined) err.path = path;
  return err;
}
