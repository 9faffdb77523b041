/**
 * Lean requests for push and pull, where a run makes one request per file: the quick check's HEAD,
 * and the PUT of a file smaller than a part. Each is one signed `node:http(s)` request on a
 * keep-alive agent. The SDK's commands cost about 1.1 ms (HEAD) and 1.4 ms (PUT of 16 KB) of CPU
 * per request (its middleware stack); these cost 0.11 and 0.35 ms. A no-op push of 10,000 files is
 * 10,000 HEADs, an initial push 10,000 PUTs, on a machine whose CPU the gateway may share
 * (bench/s3-push.mjs). Signing is `aws4`'s (a small, dependency-free SigV4 signer). Used only for a
 * store built from the environment (endpoint, region and keys known); a user's own `client` (or
 * the SDK's default credential chain) gets `S3Store.head` and `S3Store.put`, which do the same.
 */
import http from 'node:http';
import https from 'node:https';
import aws4 from 'aws4';
import type { StoreConfig } from '../config/store.js';
import { UploadSyncError } from '../shared/errors.js';
import { formatMtime, parseMtime } from './keys.js';
import type { S3Store, StoreHead } from './s3-store.js';

export type HeadFn = (path: string, options?: { signal?: AbortSignal | undefined }) => Promise<StoreHead | null>;

/** One PUT of a whole small body: its mtime in `x-amz-meta-mtime`, like `S3Store.put`'s single PutObject. */
export type PutSmallFn = (path: string, body: Buffer, options: { mtimeMs: number; contentType: string; signal?: AbortSignal | undefined }) => Promise<void>;

/** The lean requests of a run, and what to close after it. `putSmall` is `null` where only the SDK can send (then use `S3Store.put`). */
export interface Lean {
  head: HeadFn;
  putSmall: PutSmallFn | null;
  close(): void;
}

/** RFC 3986 encoding of one key segment, as SigV4 wants it (`encodeURIComponent` leaves `!'()*`). */
const encodeSegment = (s: string) => encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);

/**
 * The lean requests for `store`, or its own `head` (and no `putSmall`) when a request cannot be
 * built here (a user's client, credentials or region left to the SDK's default chain).
 */
export function leanRequests(store: S3Store, config: StoreConfig, sockets: number): Lean {
  const sdk: Lean = { head: (path, o) => store.head(path, { signal: o?.signal }), putSmall: null, close: () => undefined };
  const { credentials } = config;
  if (config.client !== null || credentials === null || (config.endpoint === null && config.region === null)) return sdk;
  const region = config.region ?? 'us-east-1';
  const base = new URL(config.endpoint ?? `https://s3.${region}.amazonaws.com`);
  const secure = base.protocol === 'https:';
  // Virtual-hosted unless asked otherwise, as the SDK does (a bucket with dots cannot be a TLS host name).
  const pathStyle = config.pathStyle || (secure && config.bucket.includes('.'));
  const host = pathStyle ? base.host : `${config.bucket}.${base.host}`;
  const agent = new (secure ? https : http).Agent({ keepAlive: true, maxSockets: sockets });
  const request = secure ? https.request : http.request;

  /** Sends one signed request; resolves with the status and headers (404 is an answer), else ERR_STORE with the S3 code. */
  const send = (method: 'HEAD' | 'PUT', path: string, headers: Record<string, string | number>, body: Buffer | null, signal: AbortSignal | undefined) => {
    const key = store.key(path);
    const signed = aws4.sign(
      {
        host,
        method,
        path: `${pathStyle ? `/${config.bucket}` : ''}/${key.split('/').map(encodeSegment).join('/')}`,
        service: 's3',
        region,
        headers: { ...headers, 'X-Amz-Content-Sha256': 'UNSIGNED-PAYLOAD' },
      },
      credentials,
    );
    return new Promise<http.IncomingMessage>((resolve, reject) => {
      const req = request({ ...signed, hostname: base.hostname, port: base.port, agent, signal }, (res) => {
        const status = res.statusCode ?? 0;
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (text += text.length < 4096 ? chunk : ''));
        res.on('end', () => {
          if (status === 200 || status === 404) return resolve(res);
          const code = /<Code>([^<]*)<\/Code>/.exec(text)?.[1] ?? header(res.headers['x-amz-error-code']) ?? (status === 403 ? 'AccessDenied' : 'Error');
          reject(new UploadSyncError('ERR_STORE', `Bucket ${config.bucket}, key ${key}: ${code} (HTTP ${status}) on ${method}`));
        });
      });
      req.on('error', (err) => {
        reject(signal?.aborted ? new UploadSyncError('ERR_ABORTED', 'The request to the bucket was aborted', { cause: err }) : new UploadSyncError('ERR_STORE', `Bucket ${config.bucket}, key ${key}: ${err.message}`, { cause: err }));
      });
      req.end(body ?? undefined);
    });
  };

  const head: HeadFn = async (path, options = {}) => {
    const res = await send('HEAD', path, {}, null, options.signal);
    if (res.statusCode === 404) return null;
    const lastModified = header(res.headers['last-modified']);
    return {
      size: Number(res.headers['content-length'] ?? 0),
      mtimeMs: parseMtime(header(res.headers['x-amz-meta-mtime'])),
      etag: header(res.headers.etag) ?? '',
      contentType: header(res.headers['content-type']) ?? null,
      lastModified: lastModified === undefined ? null : new Date(lastModified),
    };
  };

  const putSmall: PutSmallFn = async (path, body, options) => {
    const headers = { 'Content-Length': body.length, 'Content-Type': options.contentType, 'X-Amz-Meta-Mtime': formatMtime(options.mtimeMs) };
    const res = await send('PUT', path, headers, body, options.signal);
    if (res.statusCode === 404) throw new UploadSyncError('ERR_STORE', `Bucket ${config.bucket}: NoSuchBucket (HTTP 404) on PUT`);
  };
  return { head, putSmall, close: () => agent.destroy() };
}

const header = (v: string | string[] | undefined): string | undefined => (Array.isArray(v) ? v[0] : v);
