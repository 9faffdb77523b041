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
import type { IncomingHttpHeaders } from 'node:http';
import type { StoreConfig } from '../config/store.js';
import { formatMtime, listPrefixOf, pathOfKey } from './keys.js';
import { canSign, encode, signer, tag, unescapeXml, type Request } from './lean-http.js';
import { getObject, headObject } from './lean-read.js';
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

const LIST_PAGE = 1000;

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
  if (!canSign(config)) return sdk;
  const http = signer(config, sockets);
  const storeError = (method: Request['method'], what: string, status: number, text: string, headers: IncomingHttpHeaders) =>
    http.storeError({ method, resource: '', what }, status, text, headers);

  const objectResource = (path: string) => {
    const key = store.key(path);
    return { key, resource: http.resource(key) };
  };

  const list: ListFn = async function* (prefix, options = {}) {
    const Prefix = listPrefixOf(config.prefix === '' ? '' : config.prefix, prefix);
    const keyPrefix = config.prefix === '' ? '' : `${config.prefix}/`;
    let token: string | undefined;
    do {
      const query = [`list-type=2`, `max-keys=${LIST_PAGE}`, ...(Prefix === '' ? [] : [`prefix=${encode(Prefix)}`]), ...(token === undefined ? [] : [`continuation-token=${encode(token)}`])];
      const answer = await http.send({ method: 'GET', resource: `${http.root}/?${query.join('&')}`, what: '', signal: options.signal });
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

  const head: HeadFn = async (path, options = {}) => await headObject(http, store.key(path), options.signal);

  /** Tried again like the others until the answer starts; the body itself is not (the caller checks its length). */
  const get: GetFn = async (path, options = {}) => await getObject(http, store.key(path), { signal: options.signal });

  const putSmall: PutSmallFn = async (path, body, options) => {
    const { key, resource } = objectResource(path);
    const headers = { 'Content-Length': body.length, 'Content-Type': options.contentType, 'X-Amz-Meta-Mtime': formatMtime(options.mtimeMs) };
    const answer = await http.send({ method: 'PUT', resource, what: `, key ${key}`, headers, body, signal: options.signal });
    if (answer.status === 404) throw storeError('PUT', `, key ${key}`, 404, answer.text, answer.headers); // NoSuchBucket
  };
  return { list, head, get, putSmall, close: () => http.close() };
}
