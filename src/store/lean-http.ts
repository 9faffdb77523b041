/**
 * Signed `node:http(s)` requests to a bucket without the AWS SDK (SigV4 by `aws4`, a small,
 * dependency-free signer), on one keep-alive agent: what lean.ts (push and pull) and
 * lean-write.ts (saving into the bucket) send. Possible only for a store built from the
 * environment with its keys and an endpoint or a region ({@link canSign}); a user's own `client`,
 * or credentials left to the SDK's default chain, go through the SDK.
 *
 * Failures are `UploadSyncError`s with the codes and messages of the SDK path (sdk-errors.ts):
 * `ERR_EXISTS` for a write's 412, `ERR_ABORTED` for the signal, `ERR_STORE` with the S3 code and
 * status for the rest.
 */
import http from 'node:http';
import https from 'node:https';
import { setTimeout as delay } from 'node:timers/promises';
import aws4 from 'aws4';
import type { StoreConfig } from '../config/store.js';
import { UploadSyncError } from '../shared/errors.js';

/** Attempts of one request, as the SDK's standard retry mode. */
const ATTEMPTS = 3;

export type Method = 'GET' | 'HEAD' | 'PUT' | 'POST' | 'DELETE';
export type Headers = Record<string, string | number>;

/** An answer read whole (2xx, 404 or one of `answers`), or a 200/206 whose body the caller reads (`stream`). */
export interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
  body?: http.IncomingMessage;
}

/** One request: `what` names the object in messages (`, key a/b.mp3`); `key` set makes a 412 `ERR_EXISTS`. */
export interface Request {
  method: Method;
  resource: string;
  what: string;
  key?: string;
  headers?: Headers;
  body?: Buffer | string | null;
  signal?: AbortSignal | undefined;
  stream?: boolean;
  /** Statuses that are answers here, not errors (a conditional GET's 304, 412, 416). */
  answers?: readonly number[];
}

export interface Signer {
  readonly bucket: string;
  /** The request path of an object key (`/bucket/key` path-style, `/key` virtual-hosted), RFC 3986-encoded. */
  resource(key: string): string;
  /** The bucket's own path (`/bucket` path-style, `''` virtual-hosted), for `?list-type=2`, `?delete`… */
  readonly root: string;
  /** Sends once, then again after a network error or a 5xx/429 (3 attempts, jittered backoff from 100 ms). */
  send(r: Request): Promise<Answer>;
  /** Sends once (a retry would be the caller's). */
  sendOnce(r: Request): Promise<Answer>;
  /** The `ERR_STORE` of an S3 error answer (its `status` set: the route answers a bucket's 503 with 503). */
  storeError(r: Request, status: number, text: string, headers: http.IncomingHttpHeaders): UploadSyncError;
  /** A GET of `resource` signed in its query (`signQuery`), valid `expiresIn` seconds from now: a URL anyone can open. */
  presign(resource: string, query: Readonly<Record<string, string>>, expiresIn: number): string;
  close(): void;
}

/** Whether requests can be signed here, without the SDK (its default credential chain is not read here). */
export function canSign(config: StoreConfig): boolean {
  return config.client === null && config.credentials !== null && (config.endpoint !== null || config.region !== null);
}

/** RFC 3986 encoding (`encodeURIComponent` leaves `!'()*`), as SigV4 wants it. */
export const encode = (s: string) => encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);

/** Where `config`'s requests go: the endpoint, the signed host, the bucket's root path, the region. */
function addressOf(config: StoreConfig): { base: URL; host: string; root: string; region: string } {
  const region = config.region ?? 'us-east-1';
  const base = new URL(config.endpoint ?? `https://s3.${region}.amazonaws.com`);
  // Virtual-hosted unless asked otherwise, as the SDK does (a bucket with dots cannot be a TLS host name).
  const pathStyle = config.pathStyle || (base.protocol === 'https:' && config.bucket.includes('.'));
  return { base, region, host: pathStyle ? base.host : `${config.bucket}.${base.host}`, root: pathStyle ? `/${config.bucket}` : '' };
}

/** The error of an S3 error answer to `r`: `ERR_EXISTS` for a write's 412, else `ERR_STORE` with the S3 code, message and `status`. */
function storeErrorOf(bucket: string, r: Request, status: number, text: string, headers: http.IncomingHttpHeaders): UploadSyncError {
  if (status === 412 && r.key !== undefined) return new UploadSyncError('ERR_EXISTS', `The object ${r.key} already exists`);
  const code = tag(text, 'Code') ?? header(headers['x-amz-error-code']) ?? (status === 403 ? 'AccessDenied' : status === 404 ? 'NotFound' : 'Error');
  const message = tag(text, 'Message');
  const err = new UploadSyncError('ERR_STORE', `Bucket ${bucket}${r.what}: ${code} (HTTP ${status}) on ${r.method}${message === undefined ? '' : `: ${unescapeXml(message)}`}`);
  return Object.assign(err, { status });
}

/** A signer of `config`'s requests with up to `sockets` connections; `canSign(config)` must hold. */
export function signer(config: StoreConfig, sockets: number): Signer {
  const credentials = config.credentials!;
  const { base, host, root, region } = addressOf(config);
  const secure = base.protocol === 'https:';
  const agent = new (secure ? https : http).Agent({ keepAlive: true, maxSockets: sockets });
  const request = secure ? https.request : http.request;
  const storeError = (r: Request, status: number, text: string, headers: http.IncomingHttpHeaders) => storeErrorOf(config.bucket, r, status, text, headers);

  const sendOnce = (r: Request) => {
    const { signal } = r;
    const headers = { ...r.headers, 'X-Amz-Content-Sha256': 'UNSIGNED-PAYLOAD' };
    const signed = aws4.sign({ host, method: r.method, path: r.resource, service: 's3', region, headers }, credentials);
    return new Promise<Answer>((resolve, reject) => {
      const req = request({ ...signed, hostname: base.hostname, port: base.port, agent, signal }, (res) => {
        const status = res.statusCode ?? 0;
        if (r.stream === true && (status === 200 || status === 206)) return resolve({ status, headers: res.headers, text: '', body: res }); // the caller reads it
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          if ((status >= 200 && status < 300) || status === 404 || r.answers?.includes(status) === true) return resolve({ status, headers: res.headers, text });
          reject(Object.assign(storeError(r, status, text, res.headers), { retryable: status >= 500 || status === 429 }));
        });
        res.on('error', reject);
      });
      req.on('error', (err) => {
        if (signal?.aborted === true) return reject(new UploadSyncError('ERR_ABORTED', 'The request to the bucket was aborted', { cause: err }));
        reject(Object.assign(new UploadSyncError('ERR_STORE', `Bucket ${config.bucket}${r.what}: ${err.message}`, { cause: err }), { retryable: true }));
      });
      req.end(r.body ?? undefined);
    });
  };

  const send = async (r: Request) => {
    for (let attempt = 1; ; attempt++) {
      try {
        return await sendOnce(r);
      } catch (err) {
        if (!(err as { retryable?: boolean }).retryable || attempt >= ATTEMPTS || r.signal?.aborted === true) throw err;
        await delay(Math.random() * 100 * 2 ** attempt, undefined, { signal: r.signal }).catch(() => undefined);
      }
    }
  };

  return {
    bucket: config.bucket,
    root,
    presign: (resource, query, expiresIn) => presignWith(config, resource, query, expiresIn),
    resource: (key) => `${root}/${key.split('/').map(encode).join('/')}`,
    send,
    sendOnce,
    storeError,
    close: () => agent.destroy(),
  };
}

/** `Signer.presign`: signed for the host alone, the payload UNSIGNED-PAYLOAD (aws4's `signQuery` for s3), as the SDK's presigner does. */
function presignWith(config: StoreConfig, resource: string, query: Readonly<Record<string, string>>, expiresIn: number): string {
  const { base, host, region } = addressOf(config);
  const q = Object.entries({ ...query, 'X-Amz-Expires': String(expiresIn) }).map(([k, v]) => `${encode(k)}=${encode(v)}`);
  const signed = aws4.sign({ host, method: 'GET', path: `${resource}?${q.join('&')}`, service: 's3', region, signQuery: true }, config.credentials!);
  return `${base.protocol}//${host}${signed.path!}`;
}

export const header = (v: string | string[] | undefined): string | undefined => (Array.isArray(v) ? v[0] : v);

/** The text of the first `<name>…</name>` in `xml` (S3's answers are flat enough for this). */
export function tag(xml: string, name: string): string | undefined {
  const open = xml.indexOf(`<${name}>`);
  if (open < 0) return undefined;
  const close = xml.indexOf(`</${name}>`, open);
  return close < 0 ? undefined : xml.slice(open + name.length + 2, close);
}

const ENTITIES: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };

/** XML's five entities and numeric references (a key may hold `&`, `<`, quotes). */
export function unescapeXml(text: string): string {
  if (!text.includes('&')) return text;
  return text.replace(/&(#x[0-9a-fA-F]+|#\d+|amp|lt|gt|quot|apos);/g, (_, e: string) =>
    e[0] === '#' ? String.fromCodePoint(e[1] === 'x' ? parseInt(e.slice(2), 16) : parseInt(e.slice(1), 10)) : ENTITIES[e]!,
  );
}

export const escapeXml = (text: string) => text.replace(/[&<>"']/g, (c) => `&${({ '&': 'amp', '<': 'lt', '>': 'gt', '"': 'quot', "'": 'apos' } as Record<string, string>)[c]};`);
