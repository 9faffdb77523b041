/**
 * The planner of a push (folder → bucket): the source's tree (the engine's walk: same filters,
 * same symlink rules) against the bucket's listing, a page at a time. Files the bucket lacks or
 * holds at another size are copied; same-size ones are HEADed for their mtime; objects whose file
 * is gone are deleted, with `delete`. Objects the sync would never write (dotfiles, partial names,
 * filtered-out extensions, keys no file could have) are never looked at.
 */
import { lstatSync } from 'node:fs';
import { join } from 'node:path';
import { walk, fileInfo, linkedFile } from '../engine/walk.js';
import type { FileInfo, Findings } from '../engine/plan-types.js';
import { errorCode, errorMessage } from '../shared/errors.js';
import { isIgnoredName, isSyncablePath } from '../shared/filter.js';
import { addCopy, isFilePath, newBatch, pushTarget, quickCheck, type BucketBatch, type PlanContext, type SameSize } from './plan.js';
import { mapLimit, prefetch } from './pool.js';

/** Copies handed on at once when the bucket has none of the files (an initial push). */
const COPY_BATCH = 1000;

/** A full push of the subtree `top` (`''`: the whole source). */
export async function* planPushTree(ctx: PlanContext, top: string): AsyncGenerator<BucketBatch> {
  const { config } = ctx;
  const first = newBatch();
  const listing = await walk(ctx.local, top, {
    extensions: config.extensions,
    sourceReal: ctx.localReal,
    onSkippedLink: (rel, reason) => first.found.skippedLinks.push({ rel, reason }),
    signal: ctx.signal,
  });
  for (const e of listing.errors) first.found.errors.push(e);
  // Nothing under a folder that could not be read is deleted from the bucket: its files may be there.
  const unreadable = listing.unreadable.map((rel) => (rel === '' ? '' : `${rel}/`));
  const hidden = (rel: string) => unreadable.some((u) => rel.startsWith(u));
  const local = listing.files;
  yield first;

  for await (const page of prefetch(ctx.list(top === '' ? '' : `${top}/`, { signal: ctx.signal }))) {
    const batch = newBatch();
    const sameSize: SameSize[] = [];
    for (const entry of page) {
      const rel = entry.path;
      if (!isFilePath(rel) || !isSyncablePath(rel, config.extensions)) continue;
      const file = local.get(rel);
      if (file === undefined) {
        if (config.delete && !hidden(rel)) batch.actions.push({ type: 'delete', rel });
        continue;
      }
      local.delete(rel);
      if (file.size !== entry.size) addCopy(ctx, batch, { rel, src: file, update: true }, file.mtimeMs);
      else sameSize.push({ rel, local: file });
    }
    for (const { pair, head } of await quickCheck(ctx, sameSize, batch.found)) {
      addCopy(ctx, batch, { rel: pair.rel, src: pair.local, update: head !== null }, pair.local.mtimeMs);
    }
    yield batch;
  }

  // What the bucket lacks: new files.
  let batch = newBatch();
  for (const [rel, file] of local) {
    addCopy(ctx, batch, { rel, src: file, update: false }, file.mtimeMs);
    if (batch.actions.length >= COPY_BATCH) {
      yield batch;
      batch = newBatch();
    }
  }
  yield batch;
}

/**
 * A targeted push (`files`): each path alone, by the full run's rules, without walking the tree;
 * a folder as a subtree. A path gone from the source is deleted from the bucket with `delete`
 * (else skipped). One HEAD per file, `concurrency` at a time.
 */
export async function* planPushFiles(ctx: PlanContext, entries: readonly unknown[]): AsyncGenerator<BucketBatch> {
  const batch = newBatch();
  const { found } = batch;
  const seen = new Set<string>();
  const subtrees: string[] = [];
  const files: SameSize[] = [];
  const gone: string[] = [];
  for (const entry of entries) {
    const rel = pushTarget(ctx.local, ctx.localReal, entry, found);
    if (rel === null || seen.has(rel)) continue;
    seen.add(rel);
    if (rel === '') {
      subtrees.push('');
      continue;
    }
    try {
      const what = lookAt(ctx, rel, found);
      if (what === 'folder') subtrees.push(rel);
      else if (what === 'gone') {
        if (ctx.config.delete) gone.push(rel);
        else found.skipped++;
      } else if (what !== null) files.push({ rel, local: what });
    } catch (err) {
      found.errors.push({ path: rel, code: errorCode(err), message: errorMessage(err) });
    }
  }
  // A file and its object: a HEAD each (a listing of one name is no cheaper), then the quick check.
  for (const { pair, head } of await quickCheck(ctx, files, found)) {
    addCopy(ctx, batch, { rel: pair.rel, src: pair.local, update: head !== null }, pair.local.mtimeMs);
  }
  // A path gone from the source: its object goes (if there is one: S3 would call any key deleted),
  // and so do the objects under it, a folder gone (the subtree's walk finds nothing, its listing does).
  const heads = await mapLimit(gone, ctx.config.concurrency, (rel) => ctx.head(rel, { signal: ctx.signal }).catch((err: unknown) => err as Error));
  gone.forEach((rel, i) => {
    const head = heads[i];
    if (head instanceof Error) found.errors.push({ path: rel, code: errorCode(head), message: errorMessage(head) });
    else if (head !== null && head !== undefined) batch.actions.push({ type: 'delete', rel });
    subtrees.push(rel);
  });
  yield batch;
  for (const top of subtrees) yield* planPushTree(ctx, top);
}

/**
 * One source path as the full run would see it: a file (or a symlink to a file inside the source),
 * a folder, `'gone'`, or `null` when it is skipped (an ignored name, a path through a symlinked
 * folder, something the sync never takes).
 */
function lookAt(ctx: PlanContext, rel: string, found: Findings): FileInfo | 'folder' | 'gone' | null {
  const parts = rel.split('/');
  if (parts.some(isIgnoredName)) {
    found.skipped++;
    return null;
  }
  let at = ctx.local;
  for (const part of parts.slice(0, -1)) {
    at = join(at, part);
    const st = lstatSync(at, { throwIfNoEntry: false });
    if (st === undefined || (!st.isDirectory() && !st.isSymbolicLink())) return 'gone';
    if (st.isSymbolicLink()) {
      found.skipped++;
      found.skippedLinks.push({ rel: rel.slice(0, at.length - ctx.local.length - 1), reason: `${rel} is reached through it, and symlinked folders are not followed` });
      return null;
    }
  }
  const abs = join(ctx.local, rel);
  const st = lstatSync(abs, { throwIfNoEntry: false });
  if (st === undefined) return 'gone';
  if (st.isDirectory()) return 'folder';
  if (st.isFile()) {
    if (!isSyncablePath(rel, ctx.config.extensions)) {
      found.skipped++;
      return null;
    }
    return fileInfo(st);
  }
  if (st.isSymbolicLink() && isSyncablePath(rel, ctx.config.extensions)) {
    const info = linkedFile(abs, rel, ctx.localReal, (r, reason) => found.skippedLinks.push({ rel: r, reason }));
    if (info !== null) return info;
  }
  found.skipped++;
  return null;
}
