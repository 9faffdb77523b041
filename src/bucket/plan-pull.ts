/**
 * The planner of a pull (bucket → folder): the bucket's listing, a page at a time, against dest's
 * tree (the engine's walk). Objects dest lacks or holds at another size are fetched; same-size ones
 * are HEADed for their mtime (`x-amz-meta-mtime`, else `LastModified`); files whose object is gone
 * are deleted, with `delete`, and the folders they leave empty. Objects no local file could be
 * (folder markers, dotfiles, partial names, filtered-out extensions) are never fetched.
 */
import { lstatSync } from 'node:fs';
import { join } from 'node:path';
import { fileInfo, walk } from '../engine/walk.js';
import { errorCode, errorMessage } from '../shared/errors.js';
import { isSyncablePath } from '../shared/filter.js';
import { addCopy, isFilePath, newBatch, objectInfo, objectMtime, pullTarget, quickCheck, type BucketBatch, type PlanContext, type SameSize } from './plan.js';
import { prefetch } from './pool.js';

/** What a pull leaves for the executor's end: dest folders no object needs, removed if empty (with `delete`). */
export interface PullLeftovers {
  prune: Set<string>;
}

/** A full pull of the subtree `top` (`''`: the whole prefix) into dest. */
export async function* planPullTree(ctx: PlanContext, top: string, leftovers: PullLeftovers): AsyncGenerator<BucketBatch> {
  const { config } = ctx;
  const first = newBatch();
  const listing = await walk(ctx.local, top, { extensions: config.extensions, temps: true, signal: ctx.signal });
  for (const e of listing.errors) first.found.errors.push(e);
  for (const rel of listing.temps.keys()) first.found.temps.push(rel);
  const local = listing.files;
  const folders = new Set(listing.dirs.keys());
  folders.delete('');
  yield first;

  for await (const page of prefetch(ctx.list(top === '' ? '' : `${top}/`, { signal: ctx.signal }))) {
    const batch = newBatch();
    const sameSize: SameSize[] = [];
    for (const entry of page) {
      const rel = entry.path;
      if (!isFilePath(rel) || !isSyncablePath(rel, config.extensions)) continue;
      for (let i = rel.indexOf('/'); i > 0; i = rel.indexOf('/', i + 1)) folders.delete(rel.slice(0, i));
      const file = local.get(rel);
      local.delete(rel);
      const info = objectInfo(entry.size, objectMtime({ mtimeMs: null, lastModified: entry.lastModified }));
      if (listing.symlinks.has(rel)) {
        batch.found.skippedLinks.push({ rel, reason: 'dest has a symlink there, which a pull neither follows nor replaces' });
      } else if (file === undefined) addCopy(ctx, batch, { rel, src: info, update: false }, 0);
      else if (file.size !== entry.size) addCopy(ctx, batch, { rel, src: info, update: true }, 0);
      else sameSize.push({ rel, local: file });
    }
    for (const { pair, head } of await quickCheck(ctx, sameSize, batch.found)) {
      if (head === null) continue; // deleted from the bucket meanwhile: the next pull removes the file
      addCopy(ctx, batch, { rel: pair.rel, src: objectInfo(head.size, objectMtime(head)), update: true }, 0);
    }
    yield batch;
  }

  if (!config.delete) return;
  const batch = newBatch();
  for (const rel of local.keys()) batch.actions.push({ type: 'delete', rel });
  for (const rel of folders) leftovers.prune.add(rel);
  yield batch;
}

/**
 * A targeted pull (`files`): paths relative to the prefix. An object is compared and fetched
 * alone (one HEAD); a path with no object is taken as a folder (its subtree is pulled); a file whose
 * object is gone is deleted with `delete` (else skipped).
 */
export async function* planPullFiles(ctx: PlanContext, entries: readonly unknown[], leftovers: PullLeftovers): AsyncGenerator<BucketBatch> {
  const batch = newBatch();
  const { found } = batch;
  const seen = new Set<string>();
  const subtrees: string[] = [];
  const url = ctx.config.source;
  const wanted: string[] = [];
  for (const entry of entries) {
    const rel = pullTarget(url, entry, found);
    if (rel === null || seen.has(rel)) continue;
    seen.add(rel);
    if (rel === '') subtrees.push('');
    else if (!isFilePath(rel) || !isSyncablePath(rel, ctx.config.extensions)) found.skipped++;
    else wanted.push(rel);
  }
  const pairs: SameSize[] = [];
  for (const rel of wanted) {
    try {
      const st = lstatSync(join(ctx.local, rel), { throwIfNoEntry: false });
      if (st?.isDirectory()) subtrees.push(rel);
      else if (st?.isSymbolicLink()) found.skippedLinks.push({ rel, reason: 'dest has a symlink there, which a pull neither follows nor replaces' });
      else pairs.push({ rel, local: st?.isFile() ? fileInfo(st) : objectInfo(-1, 0) });
    } catch (err) {
      found.errors.push({ path: rel, code: errorCode(err), message: errorMessage(err) });
    }
  }
  for (const { pair, head } of await quickCheck(ctx, pairs, found)) {
    const inDest = pair.local.size >= 0;
    if (head !== null) addCopy(ctx, batch, { rel: pair.rel, src: objectInfo(head.size, objectMtime(head)), update: inDest }, 0);
    else {
      if (inDest && ctx.config.delete) batch.actions.push({ type: 'delete', rel: pair.rel });
      else if (!inDest) subtrees.push(pair.rel); // no such object: a folder of the bucket, maybe
      else found.skipped++;
    }
  }
  yield batch;
  for (const top of subtrees) yield* planPullTree(ctx, top, leftovers);
}
