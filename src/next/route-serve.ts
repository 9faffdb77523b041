/**
 * What `createUploadsRoute` (route.ts) serves with, loaded at a route's first request: the file
 * from the source folder or its mirror, else from the bucket (serve-store.ts), with the answers of
 * Next's static handler.
 */
import type { FileHandle } from 'node:fs/promises';
import { resolveServeConfig, type ServeConfig } from '../config/config.js';
import { errorCode, errorMessage, withCode } from '../shared/errors.js';
import { isSyncablePath } from '../shared/filter.js';
import { createLog } from '../shared/log.js';
import { FileOpener, type OpenFile } from './open-file.js';
import type { UploadsRouteContext, UploadsRouteOptions } from '../shared/options.js';
import { validatorsOf } from './range.js';
import { decide, fileHeaders, plain, statusAnswer } from './respond.js';
import { DEFAULT_URL_PREFIX, type RouteSettings } from './route-options.js';
import { StoreServer } from './serve-store.js';

/** Bytes read per chunk of a response body. */
const CHUNK = 64 * 1024;

/** One route's GET (`head` false) and HEAD: never rejects (a failure is a 403 or 500, logged). */
export type RouteHandler = (request: Request, context: UploadsRouteContext | undefined, head: boolean) => Promise<Response>;

/** The handler of a route whose options `checkRouteOptions` gave `route`. */
export function routeHandler(options: UploadsRouteOptions, route: RouteSettings): RouteHandler {
  const opener = new FileOpener();
  let config: ServeConfig | undefined;
  let store: StoreServer | null | undefined;

  // The environment is read at the first request, not at import: `next build` imports route
  // modules with its own cwd and environment.
  const getConfig = () =>
    (config ??= resolveServeConfig({ root: options.root, source: options.source, dest: options.dest, extensions: options.extensions, logger: options.logger, logFile: options.logFile, store: options.store }));
  // The store (option or UPLOAD_SYNC_STORE) is served after the disk; its SDK loads at the first miss.
  const getStore = (c: ServeConfig) => (store ??= c.store === null ? null : new StoreServer(c.store, route, createLog('route', c.logFile, c.logger)));

  return async (request, context, head) => {
    try {
      const c = getConfig();
      return await serve(request, context, head, c, route, opener, getStore(c));
    } catch (err) {
      const code = errorCode(err);
      if (code === 'EACCES' || code === 'EPERM') return plain(403, head);
      createLog('route', config?.logFile ?? null, options.logger ?? null).error(`Cannot serve ${safeUrl(request)}: ${withCode(code, errorMessage(err))}`);
      return plain(500, head);
    }
  };
}

/**
 * The requested path as raw (still percent-encoded) segments, or `null` when the URL is not under
 * the route. With an explicit `urlPrefix`, what follows it. Otherwise the last N segments of the
 * URL, N being the length of Next's `params.path` (so the route works under any folder and any
 * `basePath`), when they decode to those params; else what follows `/uploads`.
 *
 * The raw URL is used rather than Next's params because Next decodes each segment once: `a%2Fb`
 * arrives as the one param `a/b` and `..%2fsecret` as `../secret`, which a join would follow.
 */
export async function requestSegments(url: string, context: UploadsRouteContext | undefined, urlPrefix: string | undefined): Promise<string[] | null> {
  const pathname = new URL(url).pathname; // the WHATWG parser has already resolved `.`/`..` (and `%2e`) segments
  const under = (prefix: string) => (pathname.startsWith(`${prefix}/`) ? pathname.slice(prefix.length + 1).split('/') : null);
  if (urlPrefix !== undefined) return under(urlPrefix);
  const params: unknown = await context?.params;
  const names = params !== null && typeof params === 'object' ? (params as Record<string, unknown>).path : undefined;
  if (Array.isArray(names) && names.length > 0 && names.every((n) => typeof n === 'string')) {
    const raw = pathname.split('/');
    const tail = raw.slice(-names.length);
    if (raw.length > names.length && tail.every((seg, i) => safeDecode(seg) === names[i])) return tail;
  }
  return under(DEFAULT_URL_PREFIX);
}

function safeDecode(segment: string): string | null {
  try {
    return decodeURIComponent(segment);
  } catch {
    return null;
  }
}

/** A request path checked segment by segment: the decoded segments, or the status that refuses it. */
export function checkSegments(raw: readonly string[]): { ok: true; segments: string[] } | { ok: false; status: 400 | 403 | 404 } {
  const segments: string[] = [];
  for (const seg of raw) {
    const decoded = safeDecode(seg);
    if (decoded === null || decoded.includes('\0')) return { ok: false, status: 400 };
    segments.push(decoded);
  }
  // Traversal, however spelled: `..` (decoded from `%2e%2e` after the URL parser's own pass),
  // an encoded slash or a backslash inside a segment.
  if (segments.some((s) => s === '.' || s === '..' || s.includes('/') || s.includes('\\'))) return { ok: false, status: 403 };
  if (segments.length === 0 || segments.some((s) => s === '')) return { ok: false, status: 404 };
  return { ok: true, segments };
}

async function serve(request: Request, context: UploadsRouteContext | undefined, head: boolean, config: ServeConfig, route: RouteSettings, opener: FileOpener, store: StoreServer | null): Promise<Response> {
  const raw = await requestSegments(request.url, context, route.urlPrefix);
  if (raw === null) return plain(404, head);
  const checked = checkSegments(raw);
  if (!checked.ok) return plain(checked.status, head);
  // Served exactly when the sync would mirror it: no dotfiles (our temp files among them), no
  // partial uploads, only the extensions the filter allows. Hidden files answer 404, as in `send`.
  // Checked before any folder is opened or any request reaches the store.
  if (!isSyncablePath(checked.segments.join('/'), config.extensions)) return plain(404, head);

  const bases = route.fallbackToDest ? [config.source, config.dest] : [config.source];
  let file: OpenFile | null = null;
  for (const base of bases) {
    file = await opener.open(base, checked.segments);
    if (file !== null) break;
  }
  if (file === null) return store === null ? plain(404, head) : await store.serve(request, checked.segments, head);

  let keepOpen = false;
  try {
    const { size, mtime } = file;
    const v = validatorsOf(size, mtime);
    const decision = decide(request.headers, size, v);
    if (decision.kind === 'status') return statusAnswer(route, v, size, decision.status, head);
    const { status, start, end } = decision;
    const headers = fileHeaders(route, v, checked.segments[checked.segments.length - 1]!, size, decision);
    if (head || end < start) return new Response(null, { status, headers });
    // One chunk or less (a seek's 64 KiB range): read it now and close the file before answering,
    // which spares a stream and its pulls. A file that shrank meanwhile is then a 500, not a cut body.
    if (end - start < CHUNK) return new Response(await readExactly(file.handle, start, end - start + 1), { status, headers });
    keepOpen = true;
    return new Response(fileBody(file.handle, start, end), { status, headers });
  } finally {
    if (!keepOpen) await file.handle.close().catch(() => undefined);
  }
}

/**
 * Bytes `start..end` (inclusive) of an open file as a web stream. Pull-based: a read happens only
 * when the consumer asks for more, so a slow client holds at most a chunk or two in memory. The
 * file is closed at the end, on error, and when the client goes away (cancel).
 */
export function fileBody(handle: FileHandle, start: number, end: number): ReadableStream<Uint8Array> {
  let position = start;
  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    await handle.close().catch(() => undefined);
  };
  return new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        const length = Math.min(CHUNK, end + 1 - position);
        try {
          const chunk = new Uint8Array(length);
          const { bytesRead } = await handle.read(chunk, 0, length, position);
          // The file shrank while it was sent: cut the response rather than pad it.
          if (bytesRead === 0) throw new Error(`File ended at byte ${position}, before the ${end + 1} announced`);
          position += bytesRead;
          controller.enqueue(bytesRead === length ? chunk : chunk.subarray(0, bytesRead));
          if (position > end) {
            await close();
            controller.close();
          }
        } catch (err) {
          await close();
          controller.error(err);
        }
      },
      cancel: close,
    },
    { highWaterMark: 1 },
  );
}

async function readExactly(handle: FileHandle, position: number, length: number): Promise<Uint8Array> {
  const bytes = new Uint8Array(length);
  for (let offset = 0; offset < length; ) {
    const { bytesRead } = await handle.read(bytes, offset, length - offset, position + offset);
    if (bytesRead === 0) throw new Error(`File ended at byte ${position + offset}, before the ${position + length} announced`);
    offset += bytesRead;
  }
  return bytes;
}

function safeUrl(request: Request): string {
  try {
    return new URL(request.url).pathname;
  } catch {
    return '(bad url)';
  }
}
