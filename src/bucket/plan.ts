/**
 * What a bucket run's planner hands its executor, one way: batches of actions (a page of the
 * bucket's listing at a time) plus the engine's `Findings` for the report (unchanged, skipped,
 * errors, young). The quick check is size plus the source's mtime: the listing gives sizes, and
 * only objects whose size matches are HEADed (for `x-amz-meta-mtime`), `concurrency` at a time.
 */
import { isAbsolute, relative, resolve } from 'node:path';
import type { SyncConfig } from '../config/config.js';
import { isInside } from '../config/paths.js';
import { sameMtime } from '../engine/compare.js';
import { emptyFindings, type CopyJob, type FileInfo, type Findings } from '../engine/plan-types.js';
import { UploadSyncError, errorCode, errorMessage } from '../shared/errors.js';
import { toPosix } from '../shared/filter.js';
import { MAX_KEY_BYTES } from '../store/keys.js';
import type { HeadFn, ListFn } from '../store/lean.js';
import type { S3Store, StoreHead } from '../store/s3-store.js';
import { mapLimit } from './pool.js';

/** One thing to do: a file to put into the bucket (push) or to get from it (pull), or a deletion on the receiving side. */
export type BucketAction = { type: 'copy'; job: CopyJob } | { type: 'delete'; rel: string };

export interface BucketBatch {
  actions: BucketAction[];
  found: Findings;
}

/** What a planner reads: the run's config, the open store, and the local side's real path. */
export interface PlanContext {
  config: SyncConfig;
  store: S3Store;
  /** The listing and the quick check's HEAD (src/store/lean.ts). */
  list: ListFn;
  head: HeadFn;
  /** The local folder: the source of a push, the dest of a pull. */
  local: string;
  localReal: string;
  /** Files modified after this (epoch ms) are left out as `young` (the watcher's reconcile). */
  newerThan: number | null;
  signal: AbortSignal | undefined;
}

export const newBatch = (): BucketBatch => ({ actions: [], found: emptyFindings() });

/** The quick-check view of an object (or of a file, for the job of a pull): size and mtime, nothing of a local inode. */
export const objectInfo = (size: number, mtimeMs: number): FileInfo => ({ size, mtimeMs, atimeMs: mtimeMs, mode: 0, ino: -1, dev: -1 });

/**
 * The mtime an object stands for: the source's, kept in `x-amz-meta-mtime`; for an object written
 * without it (another tool), its `LastModified` to the whole second (what an HTTP header carries,
 * so the listing, a HEAD and a GET agree).
 */
export function objectMtime(head: Pick<StoreHead, 'mtimeMs' | 'lastModified'>): number {
  if (head.mtimeMs !== null) return head.mtimeMs;
  const ms = head.lastModified?.getTime() ?? 0;
  return Math.floor(ms / 1000) * 1000;
}

/**
 * A path the bucket may hold but no file could have (a folder marker `a/`, `a//b`, `..`, a control
 * character, a key over S3's limit): such objects are never copied, compared or deleted.
 */
export function isFilePath(path: string): boolean {
  // eslint-disable-next-line no-control-regex
  if (path === '' || /[\u0000-\u001f\u007f]/.test(path) || Buffer.byteLength(path) > MAX_KEY_BYTES) return false;
  return !path.split('/').some((s) => s === '' || s === '.' || s === '..');
}

/** A file and an object of the same size, whose mtimes the quick check compares. */
export interface SameSize {
  rel: string;
  /** The file's side of the comparison (the source's file in a push, dest's in a pull). */
  local: FileInfo;
}

/**
 * HEADs the objects whose size matches their file's, `concurrency` at a time, and sorts them:
 * unchanged (size and mtime within 1 ms), or to copy. An object gone meanwhile is a copy in a
 * push and nothing in a pull (`onGone`). A HEAD that fails is that path's error.
 */
export async function quickCheck(ctx: PlanContext, pairs: readonly SameSize[], found: Findings): Promise<Array<{ pair: SameSize; head: StoreHead | null }>> {
  const heads = await mapLimit(pairs, ctx.config.concurrency, async (pair) => {
    try {
      return await ctx.head(pair.rel, { signal: ctx.signal });
    } catch (err) {
      if (ctx.signal?.aborted) throw err;
      return err instanceof Error ? err : new Error(String(err));
    }
  });
  const differ: Array<{ pair: SameSize; head: StoreHead | null }> = [];
  pairs.forEach((pair, i) => {
    const head = heads[i]!;
    if (head instanceof Error) {
      found.errors.push({ path: pair.rel, code: errorCode(head), message: errorMessage(head) });
    } else if (head !== null && head.size === pair.local.size && sameMtime(pair.local.mtimeMs, objectMtime(head))) {
      found.unchanged++;
    } else {
      differ.push({ pair, head });
    }
  });
  return differ;
}

/** Adds a copy, or leaves a file modified after `newerThan` for later (it may still be written). */
export function addCopy(ctx: PlanContext, batch: BucketBatch, job: CopyJob, changedAt: number): void {
  if (ctx.newerThan !== null && changedAt > ctx.newerThan) batch.found.young.push(job.rel);
  else batch.actions.push({ type: 'copy', job });
}

/**
 * A `files` entry of a push as a `/`-separated path relative to the source (`''`: the source
 * itself), or `null` after reporting why not: the engine's rules (ERR_INVALID_PATH, ERR_OUTSIDE).
 */
export function pushTarget(source: string, sourceReal: string, entry: unknown, found: Findings): string | null {
  const shown = typeof entry === 'string' ? entry : String(entry);
  if (typeof entry !== 'string' || entry === '' || entry.includes('\0')) {
    found.errors.push({ path: shown, code: 'ERR_INVALID_PATH', message: `Invalid entry in \`files\`: expected a non-empty path without NUL bytes, got ${JSON.stringify(entry) ?? shown}` });
    return null;
  }
  const abs = isAbsolute(entry) ? resolve(entry) : resolve(source, entry);
  for (const root of [source, sourceReal]) {
    if (abs === root || isInside(abs, root)) return toPosix(relative(root, abs));
  }
  found.errors.push({ path: entry, code: 'ERR_OUTSIDE', message: `Path resolves outside the source folder ${source}; nothing was written for it` });
  return null;
}

/**
 * A `files` entry of a pull: a path relative to the bucket's prefix (`''` or `.`: all of it), or
 * `null` after reporting why not. An absolute path, or one that climbs out (`..`), is `ERR_OUTSIDE`.
 */
export function pullTarget(url: string, entry: unknown, found: Findings): string | null {
  const shown = typeof entry === 'string' ? entry : String(entry);
  if (typeof entry !== 'string' || entry === '' || entry.includes('\0')) {
    found.errors.push({ path: shown, code: 'ERR_INVALID_PATH', message: `Invalid entry in \`files\`: expected a non-empty path without NUL bytes, got ${JSON.stringify(entry) ?? shown}` });
    return null;
  }
  const parts = entry.split('/').filter((p) => p !== '' && p !== '.');
  if (entry.startsWith('/') || parts.includes('..')) {
    found.errors.push({ path: entry, code: 'ERR_OUTSIDE', message: `A path of a pull is relative to ${url}, and stays inside it; nothing was written for it` });
    return null;
  }
  return parts.join('/');
}

/** The error of an object path that no local file could have. */
export const notAFile = (rel: string) => new UploadSyncError('ERR_INVALID_NAME', `${JSON.stringify(rel)} cannot be a file path (an empty, "." or ".." name, or a control character)`);
