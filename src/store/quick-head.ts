/**
 * A HEAD for the quick check of push and pull: one signed `node:http(s)` request on a keep-alive
 * agent. The SDK's `HeadObjectCommand` costs about 1 ms of CPU per request (its middleware stack);
 * this costs about 0.1 ms, and a no-op push of 10,000 files is 10,000 HEADs, on a machine whose
 * CPU the gateway may share (measured in bench/s3-push.mjs). Signing is `aws4`'s (a small,
 * dependency-free SigV4 signer). Used only for a store built from the environment (endpoint,
 * region and keys known); a user's own `client` (or the SDK's default credential chain) gets the
 * SDK's HEAD, `S3Store.head`, which answers the same.
 */
import http from 'node:http';
import https from 'node:https';
import aws4 from 'aws4';
import type { StoreConfig } from '../config/store.js';
import { UploadSyncError } from '../shared/errors.js';
import { parseMtime } from './keys.js';
import type { S3Store, StoreHead } from './s3-store.js';

export type HeadFn = (path: string, options?: { signal?: AbortSignal | undefined }) => Promise<StoreHead | null>;

/** What a quick-check HEAD needs: the function, and what to close after the run. */
export interface QuickHead {
  head: HeadFn;
  close(): void;
}

/** RFC 3986 encoding of one key segment, as SigV4 wants it (`encodeURIComponent` leaves `!'()*`). */
const encodeSegment = (s: string) => encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);

/**
 * The fast HEAD for `store`, or its own `head` when the request cannot be built here (a user's
 * client, credentials or region left to the SDK's default chain).
 */
export function quickHead(store: S3Store, config: StoreConfig, sockets: number): QuickHead {
  const sdk: QuickHead = { head: (path, o) => store.head(path, { signal: o?.signal }), close: () => undefined };
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

  const head: HeadFn = (path, options = {}) => {
    const key = store.key(path);
    const signed = aws4.sign(
      {
        host,
        method: 'HEAD',
        path: `${pathStyle ? `/${config.bucket}` : ''}/${key.split('/').map(encodeSegment).join('/')}`,
        service: 's3',
        region,
        headers: { 'X-Amz-Content-Sha256': 'UNSIGNED-PAYLOAD' },
      },
      credentials,
    );
    return new Promise<StoreHead | null>((resolve, reject) => {
      const req = request({ ...signed, hostname: base.hostname, port: base.port, agent, signal: options.signal }, (res) => {
        res.resume();
        const status = res.statusCode ?? 0;
        if (status === 404) return resolve(null);
        if (status !== 200) {
          const code = String(res.headers['x-amz-error-code'] ?? (status === 403 ? 'AccessDenied' : 'Error'));
          return reject(new UploadSyncError('ERR_STORE', `Bucket ${config.bucket}, key ${key}: ${code} (HTTP ${status}) on HEAD`));
        }
        const lastModified = res.headers['last-modified'];
        resolve({
          size: Number(res.headers['content-length'] ?? 0),
          mtimeMs: parseMtime(header(res.headers['x-amz-meta-mtime'])),
          etag: header(res.headers.etag) ?? '',
          contentType: header(res.headers['content-type']) ?? null,
          lastModified: lastModified === undefined ? null : new Date(lastModified),
        });
      });
      req.on('error', (err) => {
        reject(options.signal?.aborted ? new UploadSyncError('ERR_ABORTED', 'The request to the bucket was aborted', { cause: err }) : new UploadSyncError('ERR_STORE', `Bucket ${config.bucket}, key ${key}: ${err.message}`, { cause: err }));
      });
      req.end();
    });
  };
  return { head, close: () => agent.destroy() };
}

const header = (v: string | string[] | undefined): string | undefined => (Array.isArray(v) ? v[0] : v);
