/**
 * The bucket path of every upload (`saveUpload` and `saveMultipart` with a store): the bytes stream
 * into the store's `put` (one PutObject when they fit in one part, else a multipart upload written as
 * they arrive), never overwriting (`If-None-Match: *`, see `PutOptions.ifNoneMatch`), with the
 * object's source mtime set to the time of the save so a pull gives the file that mtime.
 * Nothing is written to disk and no sync runs: the bucket is the canonical store.
 */
import type { StoreConfig } from '../config/store.js';
import { UploadSyncError } from '../shared/errors.js';
import { sharedBucketStore } from '../store/shared-store.js';
import type { BucketStore, StoreTuning, WritableStore } from '../store/types.js';
import { contentTypeOf } from './mime.js';
import { aborted } from './writer.js';

/**
 * Parts of the uploads saved into a bucket: 5 MiB (S3's smallest), one at a time: a part is read,
 * then sent while the request body waits (TCP holds the client back), then the same buffer takes
 * the next. Memory per upload is then one 5 MiB buffer whatever the file's size (issue 12's goal:
 * 1 GB saved at ≤ 100 MB peak RSS, of which Node and the library take ~60 MB before the first
 * byte without the SDK, ~70 MB with it). Costs: the largest object is 10,000 parts × 5 MiB ≈
 * 48.8 GiB, and no overlap of reading and sending (1 GiB in ~5 s into a local Ceph RGW here, so
 * the client's link is what limits).
 */
export const SAVE_TUNING: Readonly<Required<StoreTuning>> = Object.freeze({ partSize: 5 * 1024 * 1024, queueSize: 1 });

/** An upload written into the bucket, under its final key. */
export interface Stored {
  /** Relative to the store's prefix, `/`-separated: the same name the file would have in the uploads folder. */
  rel: string;
  /** `s3://bucket/key`: where the object is (the `path` of the result). */
  path: string;
  size: number;
  etag: string;
}

export interface PutUploadOptions {
  maxBytes: number;
  signal: AbortSignal | undefined;
  overwrite: boolean;
  /**
   * The key is a random name of ours (no one else can write it): after a failure, delete it.
   * A request aborted or cut on our side may still have completed on the server (a PutObject whose
   * body was all sent, a CompleteMultipartUpload): that object must not stay behind. Not for a name
   * the caller chose: the object there may be another writer's (our write refused, the 412 unseen).
   * For a chosen name, a HEAD first refuses a name taken before a byte is read, as on disk.
   */
  owned: boolean;
  /** The body's length when known (a File, Blob or buffer): a small one is then read into a buffer of its size, not a 5 MiB part. */
  size?: number | undefined;
}

/**
 * The store uploads go into and the route serves from (one per store settings per process, shared
 * by `saveUpload`, `saveMultipart` and every `createUploadsRoute`). A store from the environment
 * (`s3://…` with its keys there) sends its own signed requests and never loads the AWS SDK
 * (src/store/lean-write.ts); a user's own `client`, or credentials left to the SDK's default
 * chain, go through the SDK.
 * @throws UploadSyncError `ERR_CONFIG` when the SDK is needed and not installed.
 */
export function uploadStore(config: StoreConfig): Promise<BucketStore> {
  return sharedBucketStore(config, SAVE_TUNING);
}

/**
 * Streams `chunks` into the object `rel`.
 * @throws UploadSyncError `ERR_EXISTS` (unless `overwrite`), `ERR_TOO_LARGE`, `ERR_ABORTED`,
 * `ERR_CONFIG` (a chunk that is not bytes), `ERR_STORE`; in each case nothing is left in the bucket.
 */
export async function putUpload(store: WritableStore, rel: string, chunks: AsyncIterable<Uint8Array>, o: PutUploadOptions): Promise<Stored> {
  const uri = `s3://${store.bucket}/${store.key(rel)}`;
  if (o.signal?.aborted === true) throw aborted(uri);
  if (!o.overwrite && !o.owned && (await store.head(rel, { signal: o.signal })) !== null) throw existsIn(rel, uri);
  try {
    const r = await store.put(rel, bytesOnly(chunks), {
      ifNoneMatch: !o.overwrite,
      maxBytes: o.maxBytes,
      signal: o.signal,
      mtimeMs: Date.now(),
      contentType: contentTypeOf(rel),
      ...(o.size === undefined ? {} : { size: o.size }),
    });
    return { rel, path: uri, size: r.size, etag: r.etag };
  } catch (err) {
    if (err instanceof UploadSyncError && err.code === 'ERR_EXISTS') throw existsIn(rel, uri);
    // Over the limit or a bad chunk: the body never completed, so no object can exist.
    if (o.owned && !(err instanceof UploadSyncError && (err.code === 'ERR_TOO_LARGE' || err.code === 'ERR_CONFIG'))) await removeStored(store, [{ rel }]);
    throw err;
  }
}

/** Deletes objects of a request that failed after they were written (best effort: a failure here must not hide the request's own). */
export async function removeStored(store: WritableStore, stored: readonly Pick<Stored, 'rel'>[]): Promise<void> {
  if (stored.length === 0) return;
  await store.deleteMany(stored.map((s) => s.rel)).catch(() => undefined);
}

function existsIn(rel: string, uri: string): UploadSyncError {
  return new UploadSyncError('ERR_EXISTS', `${rel} already exists in the store (${uri}); pass \`overwrite: true\` to replace it`, { path: uri });
}

/** The chunks, refusing anything that is not bytes (a `Uint8Array.set` of a string would write zeros). */
async function* bytesOnly(chunks: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
  for await (const chunk of chunks) {
    if (!(chunk instanceof Uint8Array)) {
      throw new UploadSyncError('ERR_CONFIG', 'Invalid argument `file` of saveUpload: expected a stream of bytes (Uint8Array chunks)');
    }
    yield chunk;
  }
}
