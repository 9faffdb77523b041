/**
 * The planner of a targeted run (`files`): each path is compared alone, by the same rules as the
 * full run (`compareEntry`), without listing any folder; a folder given as a path is handed back,
 * for the run to plan as a subtree with `planTree`. So a targeted run never does what a full run
 * would not: a path reached through a symlinked folder is skipped, as the full run skips that folder.
 */
import { lstatSync, realpathSync, type Stats } from 'node:fs';
import { basename, dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import { canonical, isInside } from '../config/paths.js';
import { UploadSyncError, errorCode, errorMessage } from '../shared/errors.js';
import { isIgnoredName, toPosix } from '../shared/filter.js';
import { compareEntry } from './compare-dir.js';
import { emptyFindings, mergeFindings, type DirItem, type Findings } from './plan-types.js';
import type { TreePlanContext } from './plan-tree.js';

/** A part of a path that `resolve()` would fold away: `.` or `..`. */
const DOT_PART = /(?:^|\/)\.{1,2}(?:\/|$)/;

/**
 * A relative path in the form `relative()` gives: `/`-separated, no empty, `.` or `..` part (an
 * upload's path always is). For it, `join` and `resolve` would only make strings: an upload's
 * sync made a few dozen, about a third of what it allocated besides its stats.
 */
function isPlainRel(p: string): boolean {
  return sep === '/' && p[0] !== '/' && p[p.length - 1] !== '/' && !p.includes('//') && !DOT_PART.test(p);
}

/** `join(base, rel)` for a normalized absolute `base` and a plain `rel` (see `isPlainRel`). */
const under = (base: string, rel: string) => (base === '/' ? `/${rel}` : `${base}/${rel}`);

/** Owner write and search bits: what a non-root process needs to add entries to a folder. */
const OWNER_WX = 0o300;

const lstatOrUndefined = (abs: string): Stats | undefined => {
  try {
    // No error made for a missing path: an upload's file is new in dest every time.
    return lstatSync(abs, { throwIfNoEntry: false });
  } catch (err) {
    if (errorCode(err) === 'ENOTDIR') return undefined; // a file where a folder of the path should be
    throw err;
  }
};

/**
 * The paths' own comparisons, in one batch, and the folders given as paths, which the caller walks
 * with `planTree`. Synchronous: most targeted runs (an upload) are this and one copy.
 */
export function planTargets(ctx: TreePlanContext, entries: readonly unknown[]): { found: Findings; subtrees: DirItem[] } {
  const found = emptyFindings();
  const seen = new Set<string>();
  const subtrees: DirItem[] = [];
  for (const entry of entries) {
    const rel = targetRel(ctx, entry, found);
    if (rel === null || seen.has(rel)) continue;
    seen.add(rel);
    if (rel === '') {
      subtrees.push({ rel: '', inSrc: true, inDst: true });
      continue;
    }
    try {
      planOne(ctx, rel, found, subtrees);
    } catch (err) {
      found.errors.push({ path: rel, code: errorCode(err), message: errorMessage(err) });
    }
  }
  return { found, subtrees };
}

/** A `files` entry as a `/`-separated path relative to source, or `null` after reporting why not. */
function targetRel(ctx: TreePlanContext, entry: unknown, found: Findings): string | null {
  const refuse = (path: string, err: UploadSyncError) => {
    found.errors.push({ path, code: err.code, message: err.message });
    return null;
  };
  const shown = typeof entry === 'string' ? entry : String(entry);
  if (typeof entry !== 'string' || entry === '' || entry.includes('\0')) {
    return refuse(shown, new UploadSyncError('ERR_INVALID_PATH', `Invalid entry in \`files\`: expected a non-empty path without NUL bytes, got ${JSON.stringify(entry) ?? shown}`));
  }
  const { source } = ctx.compare;
  if (isPlainRel(entry)) return entry; // what resolve() and relative() below would give back, without their strings
  const abs = isAbsolute(entry) ? resolve(entry) : resolve(source, entry);
  if (abs === source || isInside(abs, source)) return toPosix(relative(source, abs));
  // An absolute path may name the source through another spelling (a symlinked deploy folder).
  const real = isAbsolute(entry) ? join(canonical(dirname(abs)), basename(abs)) : '';
  const { sourceReal } = ctx.compare; // a realpath, taken only here
  if (real !== '' && (real === sourceReal || isInside(real, sourceReal))) return toPosix(relative(sourceReal, real));
  return refuse(entry, new UploadSyncError('ERR_OUTSIDE', `Path resolves outside the source folder ${source}; nothing was written for it`));
}

/**
 * One path: its folders first (each must be a real folder in source, as the full run sees them;
 * missing ones in dest are made, with the source's modes), then the entry itself.
 */
function planOne(ctx: TreePlanContext, rel: string, found: Findings, subtrees: DirItem[]): void {
  const o = ctx.compare;
  const parts = rel.split('/');
  if (parts.some(isIgnoredName)) {
    found.skipped++; // a dotfile, a partial upload, or inside such a folder: never synced
    return;
  }
  let parent = '';
  let srcGone = false;
  let dstMissing = false;
  for (const part of parts.slice(0, -1)) {
    const dir = parent === '' ? part : `${parent}/${part}`;
    const src = srcGone ? undefined : lstatOrUndefined(under(o.source, dir));
    if (src?.isSymbolicLink()) {
      leadsOut(o.sourceReal, under(o.source, dir), rel);
      found.skipped++;
      found.skippedLinks.push({ rel: dir, reason: `${rel} is reached through it, and symlinked folders are not followed` });
      return;
    }
    if (src !== undefined && !src.isDirectory()) srcGone = true; // a file where a folder was: the path is gone
    if (src === undefined) srcGone = true;
    const dst = dstMissing ? undefined : lstatOrUndefined(under(o.dest, dir));
    if (dst === undefined) dstMissing = true;
    else if (!dst.isDirectory()) {
      if (srcGone) {
        found.skipped++; // gone on both sides as a folder: nothing to mirror
        return;
      }
      // The entry's own comparison of this folder reports the conflict (or replaces the file, with `delete`).
      const result = compareEntry(o, { rel: parent, inSrc: true, inDst: true }, part, src, dst);
      mergeFindings(found, result);
      if (!result.actions.some((a) => a.type === 'mkdir')) return;
      dstMissing = true;
      parent = dir;
      continue;
    } else if (o.openDirs && (dst.mode & OWNER_WX) !== OWNER_WX) {
      found.actions.push({ type: 'open', rel: dir, mode: dst.mode & 0o7777, have: dst.mode & 0o7777 });
    }
    if (srcGone && dstMissing) {
      found.skipped++; // gone from source, never in dest
      return;
    }
    if (!srcGone && dstMissing) found.actions.push({ type: 'mkdir', rel: dir, mode: o.dirMode ?? src!.mode & 0o7777, replaceFile: false });
    parent = dir;
  }
  const name = parts[parts.length - 1]!;
  const src = srcGone ? undefined : lstatOrUndefined(under(o.source, rel));
  const dst = dstMissing ? undefined : lstatOrUndefined(under(o.dest, rel));
  if (src === undefined && dst === undefined) {
    found.skipped++; // gone, and never mirrored
    return;
  }
  if (src === undefined && !o.delete) {
    found.skipped++; // gone: mirrored as a deletion only with `delete`
    return;
  }
  if (src?.isSymbolicLink()) leadsOut(o.sourceReal, under(o.source, rel), rel);
  const result = compareEntry(o, { rel: parent, inSrc: !srcGone, inDst: !dstMissing }, name, src, dst);
  for (const child of result.children) subtrees.push(child);
  result.children = [];
  mergeFindings(found, result);
}

/**
 * A targeted path that a symlink leads out of the source is refused (`ERR_OUTSIDE`), like any path
 * outside it; one that stays inside (a symlinked folder, a dangling link) is skipped as the full run skips it.
 */
function leadsOut(sourceReal: string, abs: string, rel: string): void {
  let target: string;
  try {
    target = realpathSync.native(abs);
  } catch {
    return; // dangling: skipped
  }
  if (target !== sourceReal && !isInside(target, sourceReal)) {
    throw new UploadSyncError('ERR_OUTSIDE', `${rel} resolves through a symlink to ${target}, outside the source folder; nothing was written for it`);
  }
}
