/**
 * The primitives of a store in an S3-compatible bucket (issue 12), for push/pull, saving into the
 * bucket and serving from it: list, head, put, get, deleteMany, presignGet. Every method takes a
 * path relative to the store's prefix (see keys.ts); every failure is an `UploadSyncError`:
 * `ERR_STORE` for the bucket's own errors (the status and S3 code in the message, the SDK's error
 * as `cause`), `ERR_EXISTS`, `ERR_TOO_LARGE`, `ERR_ABORTED`, `ERR_INVALID_NAME`, `ERR_CONFIG`.
 */
import type { Readable } from 'node:stream';
import { errorMessage } from '../shared/errors.js';
import type { S3ClientLike } from '../shared/options.js';
import { keyOf, listPrefixOf, parseMtime, pathOfKey } from './keys.js';
import { mapStoreError, statusOf, type SdkError } from './sdk-errors.js';
import { loadPresigner, type S3Sdk } from './sdk.js';
import { sdkWriteCalls } from './sdk-write.js';
import { writeObject, type WriteCalls } from './write.js';
import type { DeleteResult, GetOptions, GetResult, PutOptions, PutResult, StoreEntry, StoreHead, StoreTuning } from './types.js';

export type { DeleteResult, GetOptions, GetResult, PutOptions, PutResult, StoreEntry, StoreHead, StoreTuning } from './types.js';

export const DEFAULT_PART_SIZE = 8 * 1024 * 1024;
export const DEFAULT_QUEUE_SIZE = 2;
const MIN_PART_SIZE = 5 * 1024 * 1024;
const LIST_PAGE = 1000;
const DELETE_BATCH = 1000;

export class S3Store {
  readonly partSize: number;
  readonly queueSize: number;

  /** The SDK module; typed `object` in the constructor so the library's types never need the SDK installed. */
  private readonly sdk: S3Sdk;
  private readonly writes: WriteCalls;

  constructor(
    sdk: object,
    readonly client: S3ClientLike,
    readonly bucket: string,
    readonly prefix: string,
    tuning: StoreTuning = {},
    private readonly ownsClient = false,
  ) {
    this.sdk = sdk as S3Sdk;
    this.writes = sdkWriteCalls(this.sdk, client, bucket);
    this.partSize = Math.max(MIN_PART_SIZE, tuning.partSize ?? DEFAULT_PART_SIZE);
    this.queueSize = Math.max(1, tuning.queueSize ?? DEFAULT_QUEUE_SIZE);
  }

  /** The object key of a relative path (`ERR_INVALID_NAME` for a path no file could have). */
  key(path: string): string {
    return keyOf(this.prefix, path);
  }

  /**
   * Every object whose path starts with `prefix` (`''`: the whole store; `'a/'`: the folder `a`),
   * one page of up to 1,000 per iteration, in key order (ListObjectsV2).
   */
  async *list(prefix = '', options: { signal?: AbortSignal } = {}): AsyncGenerator<StoreEntry[]> {
    const Prefix = listPrefixOf(this.prefix, prefix);
    let ContinuationToken: string | undefined;
    do {
      const out = (await this.send(new this.sdk.ListObjectsV2Command({ Bucket: this.bucket, Prefix: Prefix === '' ? undefined : Prefix, ContinuationToken, MaxKeys: LIST_PAGE }), options.signal)) as {
        Contents?: { Key?: string; Size?: number; LastModified?: Date; ETag?: string }[];
        IsTruncated?: boolean;
        NextContinuationToken?: string;
      };
      const page: StoreEntry[] = [];
      for (const o of out.Contents ?? []) {
        if (o.Key === undefined) continue;
        if (this.prefix !== '' && !o.Key.startsWith(`${this.prefix}/`)) continue;
        page.push({ key: o.Key, path: pathOfKey(this.prefix, o.Key), size: o.Size ?? 0, lastModified: o.LastModified ?? new Date(0), etag: o.ETag ?? '' });
      }
      yield page;
      ContinuationToken = out.IsTruncated === true ? out.NextContinuationToken : undefined;
    } while (ContinuationToken !== undefined);
  }

  /** The object's size, source mtime, ETag and type; `null` when there is no such object. */
  async head(path: string, options: { signal?: AbortSignal } = {}): Promise<StoreHead | null> {
    const key = this.key(path);
    try {
      const out = (await this.client.send(new this.sdk.HeadObjectCommand({ Bucket: this.bucket, Key: key }), { abortSignal: options.signal })) as {
        ContentLength?: number;
        ETag?: string;
        ContentType?: string;
        LastModified?: Date;
        Metadata?: Record<string, string>;
      };
      return {
        size: out.ContentLength ?? 0,
        mtimeMs: parseMtime(out.Metadata?.mtime),
        etag: out.ETag ?? '',
        contentType: out.ContentType ?? null,
        lastModified: out.LastModified ?? null,
      };
    } catch (err) {
      if (statusOf(err) === 404) return null;
      throw mapStoreError(err, this.bucket, key, options.signal);
    }
  }

  /**
   * Writes the bytes of `body` as the object `path` (write.ts): one PutObject when they fit in
   * one part, else a multipart upload written as they arrive (multipart.ts: memory bounded by
   * `partSize × (queueSize + 1)`, aborted on any failure).
   * @throws UploadSyncError `ERR_EXISTS` (`ifNoneMatch`), `ERR_TOO_LARGE` (`maxBytes`), `ERR_ABORTED`,
   * `ERR_STORE`; in each case nothing is left in the bucket (no object, no pending upload).
   */
  async put(path: string, body: AsyncIterable<Uint8Array>, options: PutOptions = {}): Promise<PutResult> {
    return await writeObject(this.writes, this.key(path), body, options, this);
  }

  /**
   * Reads the object `path`, passing the Range and conditional headers to the server. 304, 404, 412
   * and 416 are answers (`body: null`), not errors. Consume or destroy `body`.
   */
  async get(path: string, options: GetOptions = {}): Promise<GetResult> {
    const key = this.key(path);
    try {
      const out = (await this.client.send(
        new this.sdk.GetObjectCommand({
          Bucket: this.bucket,
          Key: key,
          Range: options.range,
          IfNoneMatch: options.ifNoneMatch,
          IfModifiedSince: options.ifModifiedSince,
          IfMatch: options.ifMatch,
          IfUnmodifiedSince: options.ifUnmodifiedSince,
        }),
        { abortSignal: options.signal },
      )) as {
        $metadata: { httpStatusCode?: number };
        Body?: Readable;
        ContentLength?: number;
        ContentRange?: string;
        ContentType?: string;
        ETag?: string;
        LastModified?: Date;
        AcceptRanges?: string;
        Metadata?: Record<string, string>;
      };
      const headers: Record<string, string> = {};
      if (out.ContentLength !== undefined) headers['content-length'] = String(out.ContentLength);
      if (out.ContentRange !== undefined) headers['content-range'] = out.ContentRange;
      if (out.ContentType !== undefined) headers['content-type'] = out.ContentType;
      if (out.ETag !== undefined) headers.etag = out.ETag;
      if (out.LastModified !== undefined) headers['last-modified'] = out.LastModified.toUTCString();
      if (out.AcceptRanges !== undefined) headers['accept-ranges'] = out.AcceptRanges;
      if (out.Metadata?.mtime !== undefined) headers['x-amz-meta-mtime'] = out.Metadata.mtime;
      return { status: out.$metadata.httpStatusCode ?? 200, headers, body: out.Body ?? null };
    } catch (err) {
      const status = statusOf(err);
      if (status === 304 || status === 404 || status === 412 || status === 416) {
        const raw = (err as SdkError).$response?.headers ?? {};
        const headers: Record<string, string> = {};
        for (const name of ['etag', 'last-modified', 'content-range']) if (raw[name] !== undefined) headers[name] = raw[name];
        return { status, headers, body: null };
      }
      throw mapStoreError(err, this.bucket, key, options.signal);
    }
  }

  /**
   * Deletes objects by path, 1,000 per DeleteObjects request. A path refused by the server, or
   * one that is not a valid path, is reported in `errors` and does not stop the others.
   * @throws UploadSyncError `ERR_STORE` when a whole request fails (the batches before it are done).
   */
  async deleteMany(paths: readonly string[], options: { signal?: AbortSignal } = {}): Promise<DeleteResult> {
    const deleted: string[] = [];
    const errors: DeleteResult['errors'] = [];
    const valid: { path: string; key: string }[] = [];
    for (const path of paths) {
      try {
        valid.push({ path, key: this.key(path) });
      } catch (err) {
        errors.push({ path, key: '', code: 'ERR_INVALID_NAME', message: errorMessage(err) });
      }
    }
    for (let i = 0; i < valid.length; i += DELETE_BATCH) {
      const batch = valid.slice(i, i + DELETE_BATCH);
      const out = (await this.send(
        new this.sdk.DeleteObjectsCommand({ Bucket: this.bucket, Delete: { Objects: batch.map((b) => ({ Key: b.key })), Quiet: true } }),
        options.signal,
      )) as { Errors?: { Key?: string; Code?: string; Message?: string }[] };
      const failed = new Map((out.Errors ?? []).map((e) => [e.Key ?? '', e]));
      for (const b of batch) {
        const e = failed.get(b.key);
        if (e === undefined) deleted.push(b.path);
        else errors.push({ path: b.path, key: b.key, code: e.Code ?? 'ERR_STORE', message: e.Message ?? 'not deleted' });
      }
    }
    return { deleted, errors };
  }

  /**
   * A presigned GET URL of the object, valid `expiresIn` seconds. GET only: the signature covers
   * the method, so a HEAD of that URL gets 403. `response` sets headers of the bucket's answer
   * (signed `response-content-type`… parameters). Loads `@aws-sdk/s3-request-presigner` on first use.
   */
  async presignGet(path: string, expiresIn = 300, response: { contentType?: string; contentDisposition?: string; cacheControl?: string } = {}): Promise<string> {
    const key = this.key(path);
    const { getSignedUrl } = await loadPresigner();
    const command = new this.sdk.GetObjectCommand({
      Bucket: this.bucket, Key: key, ResponseContentType: response.contentType, ResponseContentDisposition: response.contentDisposition, ResponseCacheControl: response.cacheControl,
    });
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    return await getSignedUrl(this.client as any, command, { expiresIn });
  }

  /** Closes the client's sockets, when this store made the client (the user's own is left alone). */
  destroy(): void {
    if (this.ownsClient) (this.client as { destroy?: () => void }).destroy?.();
  }

  private async send(command: unknown, signal: AbortSignal | undefined): Promise<unknown> {
    try {
      return await this.client.send(command, { abortSignal: signal });
    } catch (err) {
      throw mapStoreError(err, this.bucket, undefined, signal);
    }
  }

}
