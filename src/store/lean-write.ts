/**
 * Saving into a bucket and serving from it without the AWS SDK: {@link LeanStore} has what
 * `saveUpload`, `saveMultipart` (head, put, deleteMany) and `createUploadsRoute` (head, get,
 * presignGet: lean-read.ts) need of a store, its requests signed here (lean-http.ts).
 * Why: an app server saving uploads into a bucket configured by `s3://…` and its keys in the
 * environment, and serving them, would otherwise load `@aws-sdk/client-s3` (and its presigner)
 * for a few kinds of request, ~13 MB of RSS per process (issue 12's goal is 1 GB saved at ≤ 100 MB
 * peak), and pay its middleware per request.
 *
 * The multipart upload is multipart.ts's, the same as the SDK path's (one part buffer reused,
 * `maxBytes` while streaming, aborted on any failure), on these requests: each part is sent from
 * the part buffer itself (`Content-Length` exact, `UNSIGNED-PAYLOAD`), nothing else copies it.
 */
import type { StoreConfig } from '../config/store.js';
import { UploadSyncError, errorMessage } from '../shared/errors.js';
import { keyOf } from './keys.js';
import { getObject, headObject, presignObject } from './lean-read.js';
import { encode, escapeXml, header, signer, tag, unescapeXml, type Headers, type Request, type Signer } from './lean-http.js';
import type { BucketStore, DeleteResult, GetOptions, GetResult, PresignResponse, PutOptions, PutResult, StoreHead } from './types.js';
import { writeObject, type ObjectFields, type WriteCalls } from './write.js';

const SOCKETS = 256;

/** The store of a config that `canSign` (lean-http.ts), for saving into it and serving from it. */
export class LeanStore implements BucketStore {
  readonly bucket: string;
  readonly prefix: string;
  readonly partSize: number;
  readonly queueSize: number;
  private readonly http: Signer;
  private readonly writes: WriteCalls;

  constructor(config: StoreConfig, tuning: { partSize: number; queueSize: number }) {
    this.bucket = config.bucket;
    this.prefix = config.prefix;
    this.partSize = tuning.partSize;
    this.queueSize = tuning.queueSize;
    // One agent for saves and the route: a save holds a socket per part in flight, a proxied GET one
    // for as long as its client takes to read the body (minutes for a slow listener), so the cap is
    // well above the SDK's 50: a request queued behind it would wait for a stream to end (504).
    this.http = signer(config, SOCKETS);
    this.writes = leanWriteCalls(this.http);
  }

  key(path: string): string {
    return keyOf(this.prefix, path);
  }

  /** As `S3Store.head` (an invalid path rejects with `ERR_INVALID_NAME`, as every method here). */
  async head(path: string, options: { signal?: AbortSignal | undefined } = {}): Promise<StoreHead | null> {
    return await headObject(this.http, this.key(path), options.signal);
  }

  /** As `S3Store.get`: Range and conditionals passed through; 304, 404, 412 and 416 answered with `body: null`. */
  async get(path: string, options: GetOptions = {}): Promise<GetResult> {
    return await getObject(this.http, this.key(path), options);
  }

  /** As `S3Store.presignGet`, signed here by aws4 (`signQuery`): no request, no SDK. */
  async presignGet(path: string, expiresIn = 300, response: PresignResponse = {}): Promise<string> {
    return presignObject(this.http, this.key(path), expiresIn, response);
  }

  /** As `S3Store.put` (write.ts), on signed requests. */
  async put(path: string, body: AsyncIterable<Uint8Array>, options: PutOptions = {}): Promise<PutResult> {
    return await writeObject(this.writes, this.key(path), body, options, this);
  }

  /** One DELETE per path (a request's few objects; DeleteObjects would need a Content-MD5 of its body). A failed one is in `errors`. */
  async deleteMany(paths: readonly string[], options: { signal?: AbortSignal } = {}): Promise<DeleteResult> {
    const result: DeleteResult = { deleted: [], errors: [] };
    for (const path of paths) {
      let key = '';
      try {
        key = this.key(path);
        await this.http.send({ method: 'DELETE', resource: this.http.resource(key), what: `, key ${key}`, signal: options.signal });
        result.deleted.push(path);
      } catch (err) {
        result.errors.push({ path, key, code: (err as { code?: string }).code ?? 'ERR_STORE', message: errorMessage(err) });
      }
    }
    return result;
  }

  destroy(): void {
    this.http.close();
  }
}

/** CreateMultipartUpload… as signed requests; every failure is already an `UploadSyncError`. */
function leanWriteCalls(http: Signer): WriteCalls {
  const fieldHeaders = (f: ObjectFields): Headers => {
    const h: Headers = {};
    if (f.contentType !== undefined) h['Content-Type'] = f.contentType;
    for (const [name, value] of Object.entries(f.metadata)) h[`X-Amz-Meta-${name}`] = value;
    return h;
  };
  /** Sends; a 404 (NoSuchBucket, NoSuchUpload) is an error here, not an answer. */
  const write = async (r: Request) => {
    const answer = await http.send(r);
    if (answer.status === 404) throw http.storeError(r, 404, answer.text, answer.headers);
    return answer;
  };
  const uploadQuery = (uploadId: string) => `uploadId=${encode(uploadId)}`;

  return {
    async putObject(key, body, fields, ifNoneMatch, signal) {
      const headers = { 'Content-Length': body.length, ...fieldHeaders(fields), ...(ifNoneMatch ? { 'If-None-Match': '*' } : {}) };
      const answer = await write({ method: 'PUT', resource: http.resource(key), what: `, key ${key}`, key, headers, body, signal });
      return header(answer.headers.etag) ?? '';
    },
    async createUpload(key, fields, signal) {
      const r: Request = { method: 'POST', resource: `${http.resource(key)}?uploads`, what: `, key ${key}`, headers: { 'Content-Length': 0, ...fieldHeaders(fields) }, signal };
      const answer = await write(r);
      const id = tag(answer.text, 'UploadId');
      if (id === undefined || id === '') throw new UploadSyncError('ERR_STORE', `CreateMultipartUpload of ${key} answered no UploadId`);
      return unescapeXml(id);
    },
    async uploadPart(key, uploadId, partNumber, body, signal) {
      const resource = `${http.resource(key)}?partNumber=${partNumber}&${uploadQuery(uploadId)}`;
      const answer = await write({ method: 'PUT', resource, what: `, key ${key}`, headers: { 'Content-Length': body.length }, body, signal });
      return header(answer.headers.etag);
    },
    async completeUpload(key, uploadId, parts, ifNoneMatch, signal) {
      const xml = `<CompleteMultipartUpload>${parts.map((p) => `<Part><PartNumber>${p.PartNumber}</PartNumber><ETag>${escapeXml(p.ETag ?? '')}</ETag></Part>`).join('')}</CompleteMultipartUpload>`;
      const body = Buffer.from(xml);
      const headers = { 'Content-Length': body.length, 'Content-Type': 'application/xml', ...(ifNoneMatch ? { 'If-None-Match': '*' } : {}) };
      const r: Request = { method: 'POST', resource: `${http.resource(key)}?${uploadQuery(uploadId)}`, what: `, key ${key}`, key, headers, body, signal };
      const answer = await write(r);
      // S3 may answer 200 and then an error (the answer starts before the parts are assembled).
      if (!answer.text.includes('<CompleteMultipartUploadResult')) {
        const code = tag(answer.text, 'Code');
        throw http.storeError(r, code === 'PreconditionFailed' ? 412 : answer.status, answer.text, answer.headers);
      }
    },
    async abortUpload(key, uploadId) {
      await http.send({ method: 'DELETE', resource: `${http.resource(key)}?${uploadQuery(uploadId)}`, what: `, key ${key}` });
    },
    etagOf: async (key, signal) => (await headObject(http, key, signal))?.etag ?? null,
    mapError(err, key, signal) {
      if (err instanceof UploadSyncError) return err;
      if (signal?.aborted === true) return new UploadSyncError('ERR_ABORTED', 'The request to the bucket was aborted', { cause: err });
      return new UploadSyncError('ERR_STORE', `Bucket ${http.bucket}, key ${key}: ${errorMessage(err)}`, { cause: err });
    },
  };
}
