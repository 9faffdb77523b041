/**
 * Lean requests for push and pull, where a run makes one request per file or per page: the
 * listing (pages of 1,000), the quick check's HEAD, a pull's GET, and the PUT of a file smaller
 * than 1 MiB. Each
 * is one signed `node:http(s)` request on a keep-alive agent. The SDK's commands cost about 1.1 ms
 * (HEAD) and 1.4 ms (PUT of 16 KB) of CPU per request (its middleware stack), and its listing
 * parses each page's XML into objects; these cost 0.11 and 0.35 ms. A no-op push of 10,000 files
 * is 10 pages and 10,000 HEADs, an initial push 10,000 PUTs, on a machine whose CPU the gateway may
 * share (bench/s3-push.mjs). Signing is `aws4`'s (a small, dependency-free SigV4 signer). Used only
 * for a store built from the environment (endpoint, region and keys known); a user's own `client`
 * (or the SDK's default credential chain) gets `S3Store`'s own list, head and put, which do the same.
 */
import http from 'node:http';
import https from 'node:https';
import { setTimeout as delay } from 'node:timers/promises';
import aws4 from 'aws4';
import type { StoreConfig } from '../config/store.js';
import { UploadSyncError } from '../shared/errors.js';
import { formatMtime, listPrefixOf, parseMtime, pathOfKey } from './keys.js';
import type { GetResult, S3Store, StoreEntry, StoreHead } from './s3-store.js';

export type HeadFn = (path: string, options?: { signal?: AbortSignal | undefined }) => Promise<StoreHead | null>;

/** `S3Store.list`: every object under a prefix relative to the store's, a page of up to 1,000 at a time, in key order. */
export type ListFn = (prefix: string, options?: { signal?: AbortSignal | undefined }) => AsyncGenerator<StoreEntry[]>;

/** One PUT of a whole small body: its mtime in `x-amz-meta-mtime`, like `S3Store.put`'s single PutObject. */
export type PutSmallFn = (path: string, body: Buffer, options: { mtimeMs: number; contentType: string; signal?: AbortSignal | undefined }) => Promise<void>;

/** `S3Store.get` without Range or conditions: 200 with the body (consume or destroy it), or 404. */
export type GetFn = (path: string, options?: { signal?: AbortSignal | undefined }) => Promise<GetResult>;

/** The lean requests of a run, and what to close after it. `putSmall` is `null` where only the SDK can send (then use `S3Store.put`). */
export interface Lean {
  list: ListFn;
  head: HeadFn;
  get: GetFn;
  putSmall: PutSmallFn | null;
  close(): void;
}

/** Attempts of one request, as the SDK's standard retry mode. */
const ATTEMPTS = 3;
const LIST_PAGE = 1000;

/** RFC 3986 encoding (`encodeURIComponent` leaves `!'()*`), as SigV4 wants it. */
const encode = (s: string) => encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
}

/**
 * The lean requests for `store`, or its own list and head (and no `putSmall`) when a request
 * cannot be built here (a user's client, credentials or region left to the SDK's default chain).
 */
export function leanRequests(store: S3Store, config: StoreConfig, sockets: number): Lean {
  const sdk: Lean = {
    list: (prefix, o) => store.list(prefix, { signal: o?.signal }),
    head: (path, o) => store.head(path, { signal: o?.signal }),
    get: (path, o) => store.get(path, { signal: o?.signal }),
    putSmall: null,
    close: () => undefined,
  };
  const { credentials } = config;
  if (config.client !== null || credentials === null || (config.endpoint === null && config.region === null)) return sdk;
  const region = config.region ?? 'us-east-1';
  const base = new URL(config.endpoint ?? `https://s3.${region}.amazonaws.com`);
  const secure = base.protocol === 'https:';
  // Virtual-hosted unless asked otherwise, as the SDK does (a bucket with dots cannot be a TLS host name).
  const pathStyle = config.pathStyle || (secure && config.bucket.includes('.'));
  const host = pathStyle ? base.host : `${config.bucket}.${base.host}`;
  const root = pathStyle ? `/${config.bucket}` : '';
  const agent = new (secure ? https : http).Agent({ keepAlive: true, maxSockets: sockets });
  const request = secure ? https.request : http.request;

  /**
   * Sends a signed request, tried again (as the SDK's standard retry: 3 attempts, jittered backoff
   * from 100 ms) after a network error (a keep-alive socket the server closed) or a 5xx/429 answer.
   * Resolves with a 200 or a 404 (an answer); anything else is ERR_STORE with the S3 code.
   */
  const send = async (method: 'GET' | 'HEAD' | 'PUT', resource: string, what: string, headers: Record<string, string | number>, body: Buffer | null, signal: AbortSignal | undefined) => {
    for (let attempt = 1; ; attempt++) {
      try {
        return await sendOnce(method, resource, what, headers, body, signal);
      } catch (err) {
        if (!(err as { retryable?: boolean }).retryable || attempt >= ATTEMPTS || signal?.aborted) throw err;
        await delay(Math.random() * 100 * 2 ** attempt, undefined, { signal }).catch(() => undefined);
      }
    }
  };

  const sendOnce = (method: string, resource: string, what: string, headers: Record<string, string | number>, body: Buffer | null, signal: AbortSignal | undefined, stream = false) => {
    const signed = aws4.sign({ host, method, path: resource, service: 's3', region, headers: { ...headers, 'X-Amz-Content-Sha256': 'UNSIGNED-PAYLOAD' } }, credentials);
    return new Promise<Answer & { body?: http.IncomingMessage }>((resolve, reject) => {
      const req = request({ ...signed, hostname: base.hostname, port: base.port, agent, signal }, (res) => {
        const status = res.statusCode ?? 0;
        if (stream && status === 200) return resolve({ status, headers: res.headers, text: '', body: res }); // the caller reads it
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          if (status === 200 || status === 404) return resolve({ status, headers: res.headers, text });
          reject(Object.assign(storeError(method, what, status, text, res.headers), { retryable: status >= 500 || status === 429 }));
        });
        res.on('error', reject);
      });
      req.on('error', (err) => {
        if (signal?.aborted) return reject(new UploadSyncError('ERR_ABORTED', 'The request to the bucket was aborted', { cause: err }));
        reject(Object.assign(new UploadSyncError('ERR_STORE', `Bucket ${config.bucket}${what}: ${err.message}`, { cause: err }), { retryable: true }));
      });
      req.end(body ?? undefined);
    });
  };

  const storeError = (method: string, what: string, status: number, text: string, headers: http.IncomingHttpHeaders) => {
    const code = tag(text, 'Code') ?? header(headers['x-amz-error-code']) ?? (status === 403 ? 'AccessDenied' : status === 404 ? 'NotFound' : 'Error');
    return new UploadSyncError('ERR_STORE', `Bucket ${config.bucket}${what}: ${code} (HTTP ${status}) on ${method}`);
  };

  const objectResource = (path: string) => {
    const key = store.key(path);
    return { key, resource: `${root}/${key.split('/').map(encode).join('/')}` };
  };

  const list: ListFn = async function* (prefix, options = {}) {
    const Prefix = listPrefixOf(config.prefix === '' ? '' : config.prefix, prefix);
    const keyPrefix = config.prefix === '' ? '' : `${config.prefix}/`;
    let token: string | undefined;
    do {
      const query = [`list-type=2`, `max-keys=${LIST_PAGE}`, ...(Prefix === '' ? [] : [`prefix=${encode(Prefix)}`]), ...(token === undefined ? [] : [`continuation-token=${encode(token)}`])];
      const answer = await send('GET', `${root}/?${query.join('&')}`, '', {}, null, options.signal);
      if (answer.status === 404) throw storeError('GET', '', 404, answer.text, answer.headers); // NoSuchBucket
      const page: StoreEntry[] = [];
      for (const m of answer.text.matchAll(/<Contents>([\s\S]*?)<\/Contents>/g)) {
        const c = m[1]!;
        const key = unescapeXml(tag(c, 'Key') ?? '');
        if (key === '' || !key.startsWith(keyPrefix)) continue;
        page.push({ key, path: pathOfKey(config.prefix, key), size: Number(tag(c, 'Size') ?? 0), lastModified: new Date(tag(c, 'LastModified') ?? 0), etag: unescapeXml(tag(c, 'ETag') ?? '') });
      }
      yield page;
      const next = tag(answer.text, 'NextContinuationToken');
      token = tag(answer.text, 'IsTruncated') === 'true' && next !== undefined ? unescapeXml(next) : undefined;
    } while (token !== undefined);
  };

  const head: HeadFn = async (path, options = {}) => {
    const { key, resource } = objectResource(path);
    const answer = await send('HEAD', resource, `, key ${key}`, {}, null, options.signal);
    if (answer.status === 404) return null;
    const lastModified = header(answer.headers['last-modified']);
    return {
      size: Number(answer.headers['content-length'] ?? 0),
      mtimeMs: parseMtime(header(answer.headers['x-amz-meta-mtime'])),
      etag: header(answer.headers.etag) ?? '',
      contentType: header(answer.headers['content-type']) ?? null,
      lastModified: lastModified === undefined ? null : new Date(lastModified),
    };
  };

  /** Tried again like the others until the answer starts; the body itself is not (the caller checks its length). */
  const get: GetFn = async (path, options = {}) => {
    const { key, resource } = objectResource(path);
    for (let attempt = 1; ; attempt++) {
      try {
        const answer = await sendOnce('GET', resource, `, key ${key}`, {}, null, options.signal, true);
        const headers: Record<string, string> = {};
        for (const name of ['content-length', 'content-type', 'etag', 'last-modified', 'accept-ranges', 'x-amz-meta-mtime']) {
          const v = header(answer.headers[name]);
          if (v !== undefined) headers[name] = v;
        }
        return { status: answer.status, headers, body: answer.body ?? null };
      } catch (err) {
        if (!(err as { retryable?: boolean }).retryable || attempt >= ATTEMPTS || options.signal?.aborted) throw err;
        await delay(Math.random() * 100 * 2 ** attempt, undefined, { signal: options.signal }).catch(() => undefined);
      }
    }
  };

  const putSmall: PutSmallFn = async (path, body, options) => {
    const { key, resource } = objectResource(path);
    const headers = { 'Content-Length': body.length, 'Content-Type': options.contentType, 'X-Amz-Meta-Mtime': formatMtime(options.mtimeMs) };
    const answer = await send('PUT', resource, `, key ${key}`, headers, body, options.signal);
    if (answer.status === 404) throw storeError('PUT', `, key ${key}`, 404, answer.text, answer.headers); // NoSuchBucket
  };
  return { list, head, get, putSmall, close: () => agent.destroy() };
}

const header = (v: string | string[] | undefined): string | undefined => (Array.isArray(v) ? v[0] : v);

/** The text of the first `<name>…</name>` in `xml` (S3's answers are flat enough for this). */
function tag(xml: string, name: string): string | undefined {
  const open = xml.indexOf(`<${name}>`);
  if (open < 0) return undefined;
  const close = xml.indexOf(`</${name}>`, open);
  return close < 0 ? undefined : xml.slice(open + name.length + 2, close);
}

const ENTITIES: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };

/** XML's five entities and numeric references (a key may hold `&`, `<`, quotes). */
function unescapeXml(text: string): string {
  if (!text.includes('&')) return text;
  return text.replace(/&(#x[0-9a-fA-F]+|#\d+|amp|lt|gt|quot|apos);/g, (_, e: string) =>
    e[0] === '#' ? String.fromCodePoint(e[1] === 'x' ? parseInt(e.slice(2), 16) : parseInt(e.slice(1), 10)) : ENTITIES[e]!,
  );
}
