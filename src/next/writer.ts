/**
 * The one disk path of every upload (`saveUpload` and `saveMultipart`): bytes go into a hidden
 * temp file beside the final name, are checked against `maxBytes` as they arrive, fsynced, and
 * only then published by `link` (never overwrites) or `rename`; the folder is fsynced after,
 * while the mirror copies the file.
 * Two steps, so a multipart request can write all its files and publish them only once the whole
 * body has arrived and parsed.
 */
import { statSync } from 'node:fs';
import { link, open, rename, unlink, type FileHandle } from 'node:fs/promises';
import { tempPathFor } from '../engine/publish.js';
import { UploadSyncError, errorCode } from '../shared/errors.js';

/** A temp file holding a whole upload, not yet published. */
export interface Written {
  tmp: string;
  target: string;
  size: number;
}

export interface WriteOptions {
  maxBytes: number;
  signal: AbortSignal | undefined;
  /** fsync the temp file before it can be published. */
  fsync: boolean;
}

export const aborted = (target: string) => new UploadSyncError('ERR_ABORTED', 'Upload aborted; nothing was saved', { path: target });

export function tooLarge(maxBytes: number, got?: number): UploadSyncError {
  return new UploadSyncError('ERR_TOO_LARGE', `Upload too large: the limit (\`maxBytes\`) is ${maxBytes} bytes${got === undefined ? '' : `, got ${got}`}`);
}

export function alreadyExists(rel: string, target: string): UploadSyncError {
  return new UploadSyncError('ERR_EXISTS', `${rel} already exists in the uploads folder; pass \`overwrite: true\` to replace it`, { path: target });
}

/**
 * Whether `p` exists. Synchronous, as the folder checks of an upload are: a lookup in a folder the
 * process just used takes microseconds, and a trip through the thread pool costs more than that
 * (two wake-ups; on a busy machine, a wait for a core each).
 */
export const exists = (p: string): boolean => statSync(p, { throwIfNoEntry: false }) !== undefined;

/**
 * Streams `chunks` into a new temp file beside `target`. On any failure (limit, abort, a chunk
 * that is not bytes, a failing stream, a full disk) the temp file is removed and the error thrown.
 */
export async function writeTemp(chunks: AsyncIterable<Uint8Array>, target: string, { maxBytes, signal, fsync }: WriteOptions): Promise<Written> {
  const tmp = tempPathFor(target);
  let handle: FileHandle | undefined;
  let size = 0;
  let ok = false;
  try {
    if (signal?.aborted) throw aborted(target);
    handle = await open(tmp, 'wx');
    for await (const chunk of chunks) {
      if (signal?.aborted) throw aborted(target);
      if (!(chunk instanceof Uint8Array)) {
        throw new UploadSyncError('ERR_CONFIG', 'Invalid argument `file` of saveUpload: expected a stream of bytes (Uint8Array chunks)');
      }
      size += chunk.byteLength;
      if (size > maxBytes) throw tooLarge(maxBytes);
      for (let offset = 0; offset < chunk.byteLength; ) {
        const { bytesWritten } = await handle.write(chunk, offset, chunk.byteLength - offset);
        offset += bytesWritten;
      }
    }
    if (signal?.aborted) throw aborted(target);
    // Before the file can get its final name: a power cut after the answer must not leave a
    // published name over missing blocks (ext4 and xfs may commit the name before the data).
    if (fsync) await handle.sync();
    await handle.close();
    handle = undefined;
    ok = true;
    return { tmp, target, size };
  } finally {
    await handle?.close().catch(() => undefined);
    if (!ok) await unlink(tmp).catch(() => undefined);
  }
}

/**
 * Gives a written temp file its final name: `rename` when `overwrite`, else `link` (which fails if
 * the name was taken meanwhile) then unlink of the temp name. The temp name is gone afterwards,
 * whatever happened. The new name is durable only once its folder is fsynced: `whileFolderSyncs`.
 */
export async function publishTemp(w: Written, { overwrite, rel }: { overwrite: boolean; rel: string }): Promise<void> {
  const { tmp, target } = w;
  try {
    if (overwrite) {
      await rename(tmp, target);
    } else {
      try {
        await link(tmp, target);
      } catch (err) {
        if (errorCode(err) === 'EEXIST') throw alreadyExists(rel, target);
        // No hard links on this filesystem: check, then rename (a race can replace a file here).
        if (!['EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'ENOSYS', 'EMLINK'].includes(errorCode(err))) throw err;
        if (exists(target)) throw alreadyExists(rel, target);
        await rename(tmp, target);
      }
    }
  } finally {
    // After link() the temp name is a second name of the published file: always drop it.
    await unlink(tmp).catch(() => undefined);
  }
}

/**
 * Runs `work` (the mirror's copy of what was just published) while `folder` is fsynced (`null`:
 * no fsync), and answers once both are done: the copy is page-cache work, the fsync a wait on the
 * disk, so on a busy disk the copy costs the upload next to nothing. The fsync is handed to the
 * thread pool before `work` starts: the mirror's copy of a small file runs synchronously on this
 * thread, and an fsync asked for after it (as an `await open()` in between would do) starts only
 * once the copy is over. The mirror may get the file a moment before its source name is durable; a
 * power cut then loses the answer too (nothing was acknowledged).
 * The fsync's error wins over `work`'s result; `work` is always awaited, never left running.
 */
export async function whileFolderSyncs<T>(folder: string | null, work: () => Promise<T>): Promise<T> {
  if (folder === null) return work();
  const opened = await open(folder, 'r').then(
    (handle) => ({ handle, error: undefined }),
    (error: unknown) => ({ handle: undefined, error }),
  );
  const synced = opened.handle ? opened.handle.sync() : Promise.reject(opened.error);
  const [sync, done] = await Promise.allSettled([synced, work()]);
  await opened.handle?.close();
  if (sync.status === 'rejected') throw sync.reason;
  if (done.status === 'rejected') throw done.reason;
  return done.value;
}

/** Removes temp files that will not be published (a refused or failed request). */
export async function discard(written: readonly Written[]): Promise<void> {
  await Promise.all(written.map((w) => unlink(w.tmp).catch(() => undefined)));
}
