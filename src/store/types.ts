/** What the store's primitives take and answer (src/store/s3-store.ts). */
import type { Readable } from 'node:stream';

/** One object of a listing. */
export interface StoreEntry {
  /** The full object key. */
  readonly key: string;
  /** The key relative to the store's prefix (not checked: a bucket may hold keys no file could have). */
  readonly path: string;
  readonly size: number;
  /** When the object was written to the bucket (not the file's mtime: see {@link S3Store.head}). */
  readonly lastModified: Date;
  /** As the server sends it, quotes included. */
  readonly etag: string;
}

/** What a HEAD tells. */
export interface StoreHead {
  readonly size: number;
  /** The source file's mtime kept in `x-amz-meta-mtime` (ms since the epoch, µs precision); `null` without it. */
  readonly mtimeMs: number | null;
  /** As the server sends it, quotes included. Multipart objects have a `-N` suffix. */
  readonly etag: string;
  readonly contentType: string | null;
  readonly lastModified: Date | null;
}

export interface PutOptions {
  /** The source file's mtime, kept in `x-amz-meta-mtime` (the quick check of push/pull compares it). */
  mtimeMs?: number;
  contentType?: string;
  /**
   * Never overwrite: `ERR_EXISTS` when the key exists. A single PutObject sends `If-None-Match: *`
   * (atomic where the server honours it: AWS S3, Ceph RGW, R2). A multipart upload HEADs the key
   * just before CompleteMultipartUpload and also sends `If-None-Match: *` on it: AWS S3 honours that
   * atomically; Ceph RGW 16 ignores it, so there the HEAD is the only guard and a writer completing
   * between the HEAD and our Complete is overwritten (a race of milliseconds).
   */
  ifNoneMatch?: boolean;
  /** Aborts the upload: `ERR_ABORTED`, and nothing is left in the bucket (the multipart upload is aborted). */
  signal?: AbortSignal;
  /** `ERR_TOO_LARGE` as soon as more bytes than this arrive; nothing is left in the bucket. */
  maxBytes?: number;
  /** The body's length when known (a file's size): a small body is then read into a buffer of its size, not a part's. A wrong hint costs a copy, never bytes. */
  size?: number;
}

export interface PutResult {
  readonly key: string;
  readonly size: number;
  /** From the PutObject answer, or from a HEAD after a multipart upload (Ceph answers an empty ETag to Complete). */
  readonly etag: string;
  /** 0 for a single PutObject, else the number of parts. */
  readonly parts: number;
}

export interface GetOptions {
  /** An HTTP Range header value, e.g. `bytes=0-99`, `bytes=-500`. */
  range?: string;
  ifNoneMatch?: string;
  ifModifiedSince?: Date;
  ifMatch?: string;
  ifUnmodifiedSince?: Date;
  signal?: AbortSignal;
}

/** Headers of the bucket's answer to a presigned GET (signed `response-*` parameters). */
export interface PresignResponse {
  contentType?: string;
  contentDisposition?: string;
  cacheControl?: string;
}

/**
 * A GET's answer: `body` for 200 and 206, `null` for 304, 404, 412 and 416 (which are answers, not
 * errors). Header names are lower-case: `content-length`, `content-range`, `content-type`, `etag`,
 * `last-modified`, `accept-ranges`, `x-amz-meta-mtime`, those the server sent. The gateway's own 416
 * carries no `Content-Range` (Ceph): HEAD for the size when `bytes *\/size` is needed.
 */
export interface GetResult {
  readonly status: number;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: Readable | null;
}

export interface DeleteResult {
  /** Paths deleted (or already absent: S3 does not tell them apart). */
  readonly deleted: string[];
  readonly errors: { readonly path: string; readonly key: string; readonly code: string; readonly message: string }[];
}

/** How large and how many parts a multipart upload holds in memory at most: `partSize × (queueSize + 1)`. */
export interface StoreTuning {
  /** At least 5 MiB (S3's minimum for every part but the last). @default 8 MiB */
  partSize?: number;
  /** Parts sent at once. @default 2 */
  queueSize?: number;
}

/**
 * What saving into a bucket needs of a store: `S3Store` (the SDK's, for a user's own client), or
 * `LeanStore` (lean-write.ts: no SDK, for a store from the environment). Paths as `S3Store`'s.
 */
export interface WritableStore {
  readonly bucket: string;
  key(path: string): string;
  head(path: string, options?: { signal?: AbortSignal | undefined }): Promise<StoreHead | null>;
  put(path: string, body: AsyncIterable<Uint8Array>, options?: PutOptions): Promise<PutResult>;
  deleteMany(paths: readonly string[], options?: { signal?: AbortSignal }): Promise<DeleteResult>;
}

/**
 * What the route reads of a store (src/next/serve-store.ts): `S3Store`, or `LeanStore` (no SDK).
 * Paths as `S3Store`'s; `get` answers 304, 404, 412 and 416 (`body: null`) rather than throwing.
 */
export interface ReadableStore {
  readonly bucket: string;
  head(path: string, options?: { signal?: AbortSignal | undefined }): Promise<StoreHead | null>;
  get(path: string, options?: GetOptions): Promise<GetResult>;
  /** A presigned GET URL, valid `expiresIn` seconds. */
  presignGet(path: string, expiresIn?: number, response?: PresignResponse): Promise<string>;
}

/** The store an app's uploads are saved into and served from: one per store settings per process (shared-store.ts). */
export type BucketStore = WritableStore & ReadableStore;
