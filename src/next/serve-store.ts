/**
 * The route's second source: the store in a bucket (issue 12 point 4), asked only for a path the
 * route has already accepted and found on neither disk folder. The store is `uploadStore`'s (the
 * one saving uses): signed requests without the SDK for a store from the environment with its
 * keys, the SDK for a user's own client.
 *
 * `proxy` answers exactly as the disk route answers the same file: every decision (412, 304,
 * If-Range, 416, 206, 200) is made by respond.ts's `decide` on the object's size and validators,
 * so the gateway's own reading of a header never leaks through (Ceph answers `bytes=-0` and
 * `bytes=0-1,5-6` with a 206, `bytes=abc` with a 416, and a 304 with no ETag). What is passed to
 * the bucket is only what it evaluates as `decide` does: one plain range (`a-b`, `a-`, `-n`),
 * If-None-Match or If-Match with one strong tag (Ceph fails If-Match with a list). Such a request
 * takes one GET; its answer is checked by `decide` and, when it differs (If-Range not fresh), the
 * body is dropped and the right bytes asked again, pinned with `If-Match`. Any other conditional request starts with a
 * HEAD (a revalidation then costs one request and no body). 416 from the bucket has no size: a HEAD
 * gives it.
 *
 * Validators of an object: ETag, the object's own (strong: S3 changes it with the bytes); Last-
 * Modified, the file's mtime kept in `x-amz-meta-mtime` (rounded to the ms as Node rounds `Stats.mtime`,
 * so it equals the disk copy's), else the object's LastModified (the upload time).
 */
import type { Readable } from 'node:stream';
import type { StoreConfig } from '../config/store.js';
import { errorCode, errorMessage } from '../shared/errors.js';
import type { RunLog } from '../shared/log.js';
import { parseMtime } from '../store/keys.js';
import { storeStatusOf } from '../store/sdk-errors.js';
import type { GetResult, ReadableStore, StoreHead } from '../store/types.js';
import { parseEtagList, type Validators } from './range.js';
import { baseHeaders, decide, fileHeaders, plain, statusAnswer, typeOf, type Decision } from './respond.js';
import type { RouteSettings } from './route-options.js';

type Bytes = Extract<Decision, { kind: 'bytes' }>;

/** One plain range the gateway reads as range-parser does (`-0` is not: Ceph serves it whole). */
const PLAIN_RANGE = /^bytes=(?:\d+-\d*|-0*[1-9]\d*)$/;
const STRONG_TAG = /^"[^"]*"$/;
const isOneStrongTag = (header: string) => {
  const tags = parseEtagList(header);
  return tags.length === 1 && STRONG_TAG.test(tags[0]!);
};

/** Validators of an object: its ETag; the source mtime (ms, rounded as `Stats.mtime`) floored to the second, else the upload time. */
export function objectValidators(etag: string, mtimeMs: number | null, lastModifiedMs: number): Validators {
  const ms = mtimeMs !== null ? Math.round(mtimeMs) : lastModifiedMs;
  return { etag, lastModified: Number.isFinite(ms) ? Math.floor(ms / 1000) * 1000 : NaN };
}

/** `null`: the request needs a HEAD first. Else the headers a single GET may pass to the bucket. */
export function passThrough(request: Headers): { range?: string; ifNoneMatch?: string; ifMatch?: string } | null {
  const range = request.get('range');
  const ifMatch = request.get('if-match');
  const noCache = /(?:^|,)\s*no-cache\s*(?:,|$)/i.test(request.get('cache-control') ?? '');
  const ifNoneMatch = noCache ? null : request.get('if-none-match');
  if (range !== null && !PLAIN_RANGE.test(range.trim())) return null;
  // One tag only, for both: Ceph answers If-Match: "x", "<its tag>" with a 412.
  if (ifMatch !== null && !isOneStrongTag(ifMatch)) return null;
  if (ifMatch === null && request.get('if-unmodified-since') !== null) return null;
  if (ifNoneMatch !== null) {
    if (!isOneStrongTag(ifNoneMatch)) return null;
  } else if (!noCache && request.get('if-modified-since') !== null) return null;
  return {
    ...(range === null ? {} : { range: range.trim() }),
    ...(ifNoneMatch === null ? {} : { ifNoneMatch: parseEtagList(ifNoneMatch)[0] }),
    ...(ifMatch === null ? {} : { ifMatch: parseEtagList(ifMatch)[0] }),
  };
}

/** The size and the bytes a 200/206 of the bucket holds, from its headers; `null` when they do not say. */
function servedOf(got: GetResult): { size: number; start: number; end: number } | null {
  const h = got.headers;
  if (got.status === 206) {
    const m = /^bytes (\d+)-(\d+)\/(\d+)$/.exec(h['content-range'] ?? '');
    return m === null ? null : { start: Number(m[1]), end: Number(m[2]), size: Number(m[3]) };
  }
  const size = Number(h['content-length']);
  return got.status === 200 && Number.isSafeInteger(size) ? { size, start: 0, end: size - 1 } : null;
}

const getValidators = (got: GetResult) =>
  objectValidators(got.headers.etag ?? '', parseMtime(got.headers['x-amz-meta-mtime']), Date.parse(got.headers['last-modified'] ?? ''));
const headValidators = (head: StoreHead) => objectValidators(head.etag, head.mtimeMs, head.lastModified?.getTime() ?? NaN);

/** The bucket answered something the route cannot serve (a bad Content-Range, an ignored range): a 502. */
class BadAnswer extends Error {}
/** The object changed between the HEAD (or first GET) and the pinned GET. */
class Changed extends Error {}

/**
 * The signal of one request's calls to the bucket: aborted when the client goes away (which also
 * closes an object stream being sent), or when the bucket has not answered a HEAD, or a GET's
 * headers, within `timeoutMs` (a bucket that accepts connections and never answers would
 * otherwise hold the request forever: the SDK sets no timeout of its own).
 */
class Asking {
  readonly #controller = new AbortController();
  #timedOut = false;

  constructor(
    private readonly client: AbortSignal,
    private readonly timeoutMs: number,
  ) {
    if (client.aborted) this.#controller.abort(client.reason);
    else client.addEventListener('abort', () => this.#controller.abort(client.reason), { once: true });
  }

  get timedOut(): boolean {
    return this.#timedOut;
  }

  get clientLeft(): boolean {
    return this.client.aborted;
  }

  /** Runs one call to the bucket with the signal, allowing it `timeoutMs` to answer (a body then streams without limit). */
  async within<T>(call: (signal: AbortSignal) => Promise<T>): Promise<T> {
    const timer = setTimeout(() => {
      this.#timedOut = true;
      this.#controller.abort(new Error(`No answer from the bucket within ${this.timeoutMs} ms`));
    }, this.timeoutMs);
    try {
      return await call(this.#controller.signal);
    } finally {
      clearTimeout(timer);
    }
  }
}

/**
 * Serves paths from the store: `uploadStore`'s, shared with saving (no SDK for a store from the
 * environment with its keys; the SDK loaded at the first request for a user's own client).
 */
export class StoreServer {
  constructor(
    private readonly config: StoreConfig,
    private readonly route: RouteSettings,
    private readonly log: RunLog,
  ) {}

  /**
   * The answer for the accepted path `segments`. A bucket error is a 502 (503 when the bucket says
   * 503) with a short text, logged; a missing object the route's 404.
   * @throws UploadSyncError `ERR_CONFIG` when the SDK is not installed (the route answers 500 and logs it).
   */
  async serve(request: Request, segments: readonly string[], head: boolean): Promise<Response> {
    // Loaded at the first request the bucket must answer: a worker serving from disk never loads it.
    // A failed open (the SDK needed and missing) is not kept: installed later, it works.
    const store = await (await import('./store-save.js')).uploadStore(this.config);
    const path = segments.join('/');
    const name = segments[segments.length - 1]!;
    const ask = new Asking(request.signal, this.route.storeTimeoutMs);
    try {
      if (head) return await this.#fromHead(store, request, ask, path, name, true);
      if (this.route.delivery === 'redirect') return await this.#redirect(store, path, name);
      try {
        return await this.#proxy(store, request, ask, path, name);
      } catch (err) {
        if (!(err instanceof Changed)) throw err;
        // Replaced while we asked: once more from a HEAD, then give up.
        try {
          return await this.#fromHead(store, request, ask, path, name, false);
        } catch (again) {
          if (again instanceof Changed) return plain(503, false);
          throw again;
        }
      }
    } catch (err) {
      return this.#failed(err, ask, path, head);
    }
  }

  /** One GET with what the bucket evaluates as we do, checked by `decide`; else from a HEAD. */
  async #proxy(store: ReadableStore, request: Request, ask: Asking, path: string, name: string): Promise<Response> {
    const pass = passThrough(request.headers);
    if (pass === null) return await this.#fromHead(store, request, ask, path, name, false);
    const got = await ask.within((signal) => store.get(path, { ...pass, signal }));
    if (got.status === 404) return plain(404, false);
    if (got.status === 412) return plain(412, false);
    if (got.status === 304) {
      // Only If-None-Match with one strong tag was passed: that tag is the object's ETag. Ceph's 304
      // carries neither ETag nor metadata, so Last-Modified is left out (a 304 may omit it).
      return new Response(null, { status: 304, headers: baseHeaders(this.route, { etag: pass.ifNoneMatch!, lastModified: NaN }) });
    }
    if (got.status === 416) return await this.#fromHead(store, request, ask, path, name, false);
    const served = servedOf(got);
    if (served === null) {
      got.body?.destroy();
      throw new BadAnswer(`GET ${path} answered ${got.status} with Content-Range ${got.headers['content-range'] ?? '(none)'}`);
    }
    const v = getValidators(got);
    const decision = decide(request.headers, served.size, v);
    if (decision.kind === 'status') {
      got.body?.destroy();
      return statusAnswer(this.route, v, served.size, decision.status, false);
    }
    const headers = fileHeaders(this.route, v, name, served.size, decision);
    if (decision.start === served.start && decision.end === served.end) return this.#respond(got, decision, headers);
    got.body?.destroy(); // e.g. If-Range not fresh: the whole object, not the range the bucket sent
    return await this.#pinned(store, ask, path, v, decision, headers);
  }

  /** Decides from a HEAD of the object; then, for bytes, a GET of exactly them, pinned to the ETag. */
  async #fromHead(store: ReadableStore, request: Request, ask: Asking, path: string, name: string, head: boolean): Promise<Response> {
    const meta = await ask.within((signal) => store.head(path, { signal }));
    if (meta === null) return plain(404, head);
    const v = headValidators(meta);
    const decision = decide(request.headers, meta.size, v);
    if (decision.kind === 'status') return statusAnswer(this.route, v, meta.size, decision.status, head);
    const headers = fileHeaders(this.route, v, name, meta.size, decision);
    if (head || decision.end < decision.start) return new Response(null, { status: decision.status, headers });
    return await this.#pinned(store, ask, path, v, decision, headers);
  }

  async #pinned(store: ReadableStore, ask: Asking, path: string, v: Validators, decision: Bytes, headers: Headers): Promise<Response> {
    const range = decision.status === 206 ? `bytes=${decision.start}-${decision.end}` : undefined;
    const got = await ask.within((signal) => store.get(path, { range, ifMatch: v.etag === '' ? undefined : v.etag, signal }));
    if (got.status === 404 || got.status === 412) throw new Changed();
    const served = servedOf(got);
    const wanted = decision.status === 206 ? got.status === 206 : got.status === 200;
    if (served === null || !wanted || served.start !== decision.start || served.end !== decision.end) {
      got.body?.destroy();
      throw new BadAnswer(`GET ${path} (${range ?? 'whole'}) answered ${got.status} ${got.headers['content-range'] ?? ''}`);
    }
    return this.#respond(got, decision, headers);
  }

  #respond(got: GetResult, decision: Bytes, headers: Headers): Response {
    const length = decision.end - decision.start + 1;
    if (got.body === null || length === 0) {
      got.body?.resume(); // nothing to read: drained, so its socket goes back to the pool
      return new Response(null, { status: decision.status, headers });
    }
    return new Response(objectBody(got.body, length), { status: decision.status, headers });
  }

  /** 307 to a presigned GET whose answer carries our type, disposition and caching (signed response-* parameters). */
  async #redirect(store: ReadableStore, path: string, name: string): Promise<Response> {
    const { contentType, disposition } = typeOf(this.route, name);
    const url = await store.presignGet(path, this.route.presignExpiresIn, {
      contentType,
      cacheControl: this.route.cacheControl,
      ...(disposition === null ? {} : { contentDisposition: disposition }),
    });
    // Never cached: the URL expires, and each one is signed anew.
    return new Response(null, { status: 307, headers: { Location: url, 'Cache-Control': 'private, no-store', 'X-Content-Type-Options': 'nosniff' } });
  }

  #failed(err: unknown, ask: Asking, path: string, head: boolean): Response {
    const code = errorCode(err);
    if (code === 'ERR_INVALID_NAME') return plain(404, head); // a path no object can have (a control character, over 1024 bytes)
    if (ask.timedOut) {
      this.log.error(`Cannot serve ${path} from the bucket ${this.config.bucket}: no answer within ${this.route.storeTimeoutMs} ms (storeTimeoutMs)`);
      return plain(504, head);
    }
    if (ask.clientLeft || code === 'ERR_ABORTED') return plain(502, head); // the client went away: nobody reads it
    if (code !== 'ERR_STORE' && !(err instanceof BadAnswer)) throw err;
    const status = storeStatusOf(err) === 503 ? 503 : 502;
    this.log.error(`Cannot serve ${path} from the bucket ${this.config.bucket}: ${errorMessage(err)}`);
    return plain(status, head);
  }
}

/**
 * The object's bytes as a web stream, pulled one chunk at a time as the client takes them (memory
 * stays flat whatever the size). The object stream is destroyed (its socket closed) when the client
 * goes away (cancel), on error, and when it brings more or fewer bytes than announced.
 */
export function objectBody(body: Readable, length: number): ReadableStream<Uint8Array> {
  const chunks = body[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  let sent = 0;
  return new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        try {
          const { value, done } = await chunks.next();
          if (done === true) {
            if (sent !== length) throw new Error(`The object ended at byte ${sent} of the ${length} announced`);
            controller.close();
            return;
          }
          sent += value.length;
          if (sent > length) throw new Error(`The object sent more than the ${length} bytes announced`);
          controller.enqueue(new Uint8Array(value.buffer, value.byteOffset, value.byteLength));
        } catch (err) {
          body.destroy();
          controller.error(err);
        }
      },
      cancel() {
        body.destroy();
      },
    },
    { highWaterMark: 1 },
  );
}
