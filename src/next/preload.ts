import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { envVar, parseBoolean, readEnv } from '../config/parse.js';
import { UploadSyncError, errorCode, errorMessage } from '../shared/errors.js';
import { createLog } from '../shared/log.js';
import type { UploadsRoute, UploadsRouteOptions } from '../shared/options.js';

/** What `upload-sync/preload` needs of the library, loaded at the first upload request. */
export type RouteFactory = (options: UploadsRouteOptions) => UploadsRoute;

type Listener = (req: IncomingMessage, res: ServerResponse) => void;

/** Bodies up to this size are read whole and sent with one `res.end` (a seek's 64 KiB range). */
const SMALL_BODY = 64 * 1024;

/** The route's default (`DEFAULT_URL_PREFIX` of route-options.ts, not imported: it would bring the mime table into every server at start). */
const DEFAULT_URL_PREFIX = '/uploads';

/**
 * Installs the uploads handler of `upload-sync/preload` in this process: every request listener
 * given to `http.createServer` afterwards (Next's standalone server.js passes its own) is wrapped
 * so that `GET`/`HEAD` under the uploads URL prefix are answered by `createUploadsRoute`'s handlers
 * before Next's request pipeline, which costs most of a ranged request's time; every other request
 * goes to the listener untouched. Returns whether it installed (false when the environment disables it).
 *
 * Environment: `UPLOAD_SYNC_PRELOAD=off` (a boolean as everywhere: false, 0, no) turns it off
 * (`DISABLE_UPLOAD_SYNC` does not: it is about the sync, and the route serves without it); `UPLOAD_SYNC_URL_PREFIX`
 * (default `/uploads`) is the URL path served, basePath included. The route reads the rest (source,
 * dest, extensions) from the environment at its first request, as in the app.
 * @throws UploadSyncError `ERR_CONFIG` for a bad `UPLOAD_SYNC_URL_PREFIX` or `UPLOAD_SYNC_PRELOAD` (the server does not start).
 */
export function installPreload(env: NodeJS.ProcessEnv, loadRoute: () => RouteFactory): boolean {
  const log = createLog('preload', null, null);
  const setting = readEnv(env, 'UPLOAD_SYNC_PRELOAD');
  if (setting !== undefined && !parseBoolean(setting, envVar('UPLOAD_SYNC_PRELOAD'))) {
    log.info(`off (UPLOAD_SYNC_PRELOAD=${env.UPLOAD_SYNC_PRELOAD}): Next serves every request`);
    return false;
  }
  const urlPrefix = parsePrefix(env.UPLOAD_SYNC_URL_PREFIX);
  let route: UploadsRoute | undefined;
  // The route's code (and its dependencies) is loaded at the first upload request only.
  const getRoute = () => (route ??= loadRoute()({ urlPrefix }));

  const createServer = http.createServer;
  const patched = function createServerServingUploads(this: unknown, ...args: unknown[]) {
    const i = args.findIndex((a) => typeof a === 'function');
    if (i !== -1) args[i] = wrapListener(args[i] as Listener, urlPrefix, getRoute, log);
    return (createServer as (...a: unknown[]) => http.Server).apply(this, args);
  };
  http.createServer = patched as typeof http.createServer;
  log.info(`serving GET/HEAD ${urlPrefix}/* with createUploadsRoute before Next's request listener (UPLOAD_SYNC_PRELOAD=off turns it off)`);
  return true;
}

function parsePrefix(value: string | undefined): string {
  const raw = value === undefined || value.trim() === '' ? DEFAULT_URL_PREFIX : value.trim();
  if (!raw.startsWith('/') || /[?#\\]/.test(raw)) {
    throw new UploadSyncError('ERR_CONFIG', `Invalid UPLOAD_SYNC_URL_PREFIX ${JSON.stringify(raw)}: expected a path starting with "/" such as "/uploads"`);
  }
  // As the URL parser writes it (percent-encoded), without a trailing slash: what the route compares.
  const prefix = new URL(raw, 'http://x').pathname.replace(/\/+$/, '');
  if (prefix === '') throw new UploadSyncError('ERR_CONFIG', 'Invalid UPLOAD_SYNC_URL_PREFIX "/": the uploads need a folder of their own, such as "/uploads"');
  return prefix;
}

/** The request's URL, absolute for the web `Request` (the route reads only its path), when it is one the preload serves. */
export function servedUrl(req: IncomingMessage, urlPrefix: string): string | null {
  if (req.method !== 'GET' && req.method !== 'HEAD') return null;
  const path = req.url;
  // Origin-form only (`/uploads/a.mp3`): an absolute-form or `*` target goes to Next as it is.
  if (path === undefined || !path.startsWith('/') || path.startsWith('//')) return null;
  let url: URL;
  try {
    url = new URL(path, 'http://localhost');
  } catch {
    return null;
  }
  // Decided on the path as the route sees it (`..` and `%2e%2e` resolved): `/uploads/../api/x`
  // is Next's. Exactly the URLs Next would give the route: at least one segment after the prefix.
  return url.pathname.length > urlPrefix.length + 1 && url.pathname.startsWith(`${urlPrefix}/`) ? url.href : null;
}

function wrapListener(listener: Listener, urlPrefix: string, getRoute: () => UploadsRoute, log: ReturnType<typeof createLog>): Listener {
  return function uploadsFirst(this: unknown, req, res) {
    const url = servedUrl(req, urlPrefix);
    if (url === null) return listener.call(this, req, res);
    let request: Request;
    let route: UploadsRoute;
    try {
      request = new Request(url, { method: req.method, headers: headersOf(req) });
      route = getRoute();
    } catch (err) {
      // Nothing is sent yet: Next's own route answers (a header the web API refuses, say).
      log.warn(`${req.method} ${url}: left to Next: ${errorMessage(err)}`);
      return listener.call(this, req, res);
    }
    const head = req.method === 'HEAD';
    void (head ? route.HEAD : route.GET)(request).then(
      (response) => writeResponse(response, res, head),
      (err: unknown) => {
        log.error(`Cannot serve ${new URL(url).pathname}: ${errorCode(err) ?? 'error'}: ${errorMessage(err)}`);
        if (res.headersSent) res.destroy();
        else if (!res.destroyed) {
          res.statusCode = 500;
          res.setHeader('Content-Type', 'text/plain; charset=utf-8');
          res.end(head ? undefined : 'Internal Server Error\n');
        }
      },
    );
  };
}

function headersOf(req: IncomingMessage): Headers {
  const headers = new Headers();
  const raw = req.rawHeaders;
  for (let i = 0; i + 1 < raw.length; i += 2) headers.append(raw[i]!, raw[i + 1]!);
  return headers;
}

/**
 * Writes a web `Response` to Node's `res`: the status and headers, then the body, small ones in one
 * write, others streamed with backpressure. A client that goes away cancels the body (the route
 * closes its file); a body that fails after the headers cuts the connection rather than end it short.
 */
export async function writeResponse(response: Response, res: ServerResponse, head: boolean): Promise<void> {
  const body = response.body;
  if (res.destroyed) {
    await body?.cancel().catch(() => undefined);
    return;
  }
  // One writeHead with a flat [name, value, …] list: no per-header setHeader bookkeeping, and each
  // Set-Cookie stays its own line.
  const flat: string[] = [];
  for (const [name, value] of response.headers) if (name !== 'set-cookie') flat.push(name, value);
  for (const cookie of response.headers.getSetCookie()) flat.push('set-cookie', cookie);
  res.writeHead(response.status, flat);
  if (head || body === null) {
    await body?.cancel().catch(() => undefined);
    res.end();
    return;
  }
  const length = Number(response.headers.get('content-length') ?? NaN);
  try {
    if (length <= SMALL_BODY) res.end(Buffer.from(await response.arrayBuffer()));
    else await pipeline(Readable.fromWeb(body as import('node:stream/web').ReadableStream<Uint8Array>), res);
  } catch {
    // The client went away (pipeline has cancelled the body), or the file failed mid-body.
    if (!res.destroyed) res.destroy();
  }
}
