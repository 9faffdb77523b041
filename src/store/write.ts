/**
 * Writing a stream as an object: one PutObject when it fits in one part, else a multipart upload
 * written as the bytes arrive (multipart.ts). The policy is here; the requests are a
 * {@link WriteCalls}: the SDK's commands (sdk-write.ts, for a user's own client) or requests signed
 * here without the SDK (lean-write.ts, for a store from the environment).
 */
import { formatMtime } from './keys.js';
import { uploadMultipart } from './multipart.js';
import { aborted, PartSource } from './source.js';
import type { PutOptions, PutResult } from './types.js';

/** What an object is written with, besides its bytes. */
export interface ObjectFields {
  /** `x-amz-meta-*` (lower-case names without the prefix). */
  readonly metadata: Record<string, string>;
  readonly contentType: string | undefined;
}

/** One part of a multipart upload, as CompleteMultipartUpload lists it. */
export interface CompletedPart {
  PartNumber: number;
  ETag: string | undefined;
}

/**
 * The requests a write makes. Each may reject with anything: `mapError` makes it an
 * `UploadSyncError` (a 412 on `putObject` or `completeUpload` must become `ERR_EXISTS`).
 */
export interface WriteCalls {
  /** One PutObject of the whole body (`If-None-Match: *` when `ifNoneMatch`); resolves its ETag, `''` when the answer had none. */
  putObject(key: string, body: Buffer, fields: ObjectFields, ifNoneMatch: boolean, signal: AbortSignal | undefined): Promise<string>;
  /** CreateMultipartUpload; resolves the UploadId. */
  createUpload(key: string, fields: ObjectFields, signal: AbortSignal | undefined): Promise<string>;
  /** UploadPart of exactly `body`; resolves the part's ETag. `body` is the caller's again once this settles. */
  uploadPart(key: string, uploadId: string, partNumber: number, body: Buffer, signal: AbortSignal | undefined): Promise<string | undefined>;
  /** CompleteMultipartUpload (`If-None-Match: *` when `ifNoneMatch`); an error in a 200 answer rejects. */
  completeUpload(key: string, uploadId: string, parts: CompletedPart[], ifNoneMatch: boolean, signal: AbortSignal | undefined): Promise<void>;
  /** AbortMultipartUpload, never under the caller's signal (it must reach the server). */
  abortUpload(key: string, uploadId: string): Promise<void>;
  /** The object's ETag from a HEAD, `null` when there is no such object. */
  etagOf(key: string, signal?: AbortSignal): Promise<string | null>;
  mapError(err: unknown, key: string, signal: AbortSignal | undefined): unknown;
}

/** Parts and parts in flight: memory is `partSize × (queueSize + 1)` at most. */
export interface PartTuning {
  readonly partSize: number;
  readonly queueSize: number;
}

/**
 * Writes the bytes of `body` as the object `key`. The first `partSize` bytes are read first: a
 * body that ends within them goes in one PutObject (its length is then known); a longer one, or
 * one of unknown length, becomes a multipart upload written as its bytes arrive.
 * @throws UploadSyncError `ERR_EXISTS` (`ifNoneMatch`), `ERR_TOO_LARGE` (`maxBytes`), `ERR_ABORTED`,
 * `ERR_STORE`; in each case nothing is left in the bucket (no object, no pending upload).
 */
export async function writeObject(calls: WriteCalls, key: string, body: AsyncIterable<Uint8Array>, options: PutOptions, tuning: PartTuning): Promise<PutResult> {
  const { signal, ifNoneMatch = false } = options;
  const { partSize } = tuning;
  if (signal?.aborted === true) throw aborted(signal);
  const fields: ObjectFields = { metadata: options.mtimeMs === undefined ? {} : { mtime: formatMtime(options.mtimeMs) }, contentType: options.contentType };
  const source = new PartSource(body, options.maxBytes ?? Infinity, signal);
  // A body of known small size gets a buffer of its size (+1 to see its end), not a whole part:
  // 8 MiB per small file made a push of 10,000 files spend most of its CPU allocating.
  const hint = options.size !== undefined && options.size < partSize ? options.size + 1 : partSize;
  let first = Buffer.allocUnsafeSlow(hint);
  let n: number;
  try {
    n = await source.fill(first);
    if (!source.done && first.length < partSize) {
      const whole = Buffer.allocUnsafeSlow(partSize); // longer than said: a part after all
      first.copy(whole, 0, 0, n);
      n += await source.fill(whole.subarray(n));
      first = whole;
    }
  } catch (err) {
    source.close();
    throw err;
  }
  if (source.done) {
    try {
      const etag = await calls.putObject(key, first.subarray(0, n), fields, ifNoneMatch, signal);
      return { key, size: n, etag: etag !== '' ? etag : ((await calls.etagOf(key)) ?? ''), parts: 0 };
    } catch (err) {
      // A PutObject is one request with the whole body: aborted, it either reached the server
      // whole or not at all (never a partial object). Not deleted here: that could delete the
      // object it was replacing.
      throw calls.mapError(err, key, signal);
    }
  }
  const parts = await uploadMultipart({ calls, key, fields, ifNoneMatch, ...tuning }, source, first, signal);
  let etag: string | null;
  try {
    etag = await calls.etagOf(key); // Ceph answers an empty ETag to CompleteMultipartUpload
  } catch (err) {
    throw calls.mapError(err, key, undefined);
  }
  return { key, size: source.total, etag: etag ?? '', parts };
}
