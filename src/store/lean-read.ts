/**
 * Reading an object without the AWS SDK: HEAD, GET (Range and conditionals passed through, 304,
 * 404, 412 and 416 answered rather than thrown, the body streamed) and a presigned GET URL, on
 * lean-http.ts's signed requests. What `S3Store.head`, `get` and `presignGet` do through the SDK,
 * with the same results: push/pull's quick check and pull (lean.ts), the route's bucket reads
 * (src/next/serve-store.ts) and saving's HEADs (lean-write.ts).
 */
import { parseMtime } from './keys.js';
import { header, type Headers, type Signer } from './lean-http.js';
import type { GetOptions, GetResult, PresignResponse, StoreHead } from './types.js';

/** The headers of a GET's answer kept in `GetResult.headers`, as `S3Store.get` gives them. */
const KEPT = ['content-length', 'content-range', 'content-type', 'etag', 'last-modified', 'accept-ranges', 'x-amz-meta-mtime'];

/** A HEAD of `key`: its size, source mtime, ETag and type, or `null` when there is no such object. */
export async function headObject(http: Signer, key: string, signal: AbortSignal | undefined): Promise<StoreHead | null> {
  const answer = await http.send({ method: 'HEAD', resource: http.resource(key), what: `, key ${key}`, signal });
  if (answer.status === 404) return null;
  const lastModified = header(answer.headers['last-modified']);
  return {
    size: Number(answer.headers['content-length'] ?? 0),
    mtimeMs: parseMtime(header(answer.headers['x-amz-meta-mtime'])),
    etag: header(answer.headers.etag) ?? '',
    contentType: header(answer.headers['content-type']) ?? null,
    lastModified: lastModified === undefined ? null : new Date(lastModified),
  };
}

/**
 * A GET of `key` as `S3Store.get`: the Range and conditional headers passed to the server; 200 and
 * 206 with the body (consume or destroy it), 304, 404, 412 and 416 with `body: null`. Tried again
 * like every request until its answer starts (a network error, a 5xx); the body itself is not.
 */
export async function getObject(http: Signer, key: string, options: GetOptions = {}): Promise<GetResult> {
  const headers: Headers = {};
  if (options.range !== undefined) headers.Range = options.range;
  if (options.ifNoneMatch !== undefined) headers['If-None-Match'] = options.ifNoneMatch;
  if (options.ifModifiedSince !== undefined) headers['If-Modified-Since'] = options.ifModifiedSince.toUTCString();
  if (options.ifMatch !== undefined) headers['If-Match'] = options.ifMatch;
  if (options.ifUnmodifiedSince !== undefined) headers['If-Unmodified-Since'] = options.ifUnmodifiedSince.toUTCString();
  const answer = await http.send({
    method: 'GET', resource: http.resource(key), what: `, key ${key}`, headers, signal: options.signal, stream: true, answers: [304, 412, 416],
  });
  const out: Record<string, string> = {};
  for (const name of KEPT) {
    const v = header(answer.headers[name]);
    if (v !== undefined) out[name] = v;
  }
  return { status: answer.status, headers: out, body: answer.body ?? null };
}

/**
 * A presigned GET URL of `key`, valid `expiresIn` seconds, with the signed `response-*` parameters
 * of `response` (the bucket's answer then carries that type, disposition and caching). Local: no
 * request. GET only: the signature covers the method, so a HEAD of the URL gets 403.
 */
export function presignObject(http: Signer, key: string, expiresIn: number, response: PresignResponse = {}): string {
  const query: Record<string, string> = {};
  if (response.cacheControl !== undefined) query['response-cache-control'] = response.cacheControl;
  if (response.contentDisposition !== undefined) query['response-content-disposition'] = response.contentDisposition;
  if (response.contentType !== undefined) query['response-content-type'] = response.contentType;
  return http.presign(http.resource(key), query, expiresIn);
}
