/**
 * `createUploadsRoute`: its options are checked at once, its serving code (route-serve.ts: the
 * folders, Range and conditionals, content-disposition, the bucket) is loaded at the first
 * request. A process that imports `upload-sync/next` only to save never loads it: range-parser,
 * content-disposition, debug and their code are ~5 MB of RSS, which a server saving 1 GB into a
 * bucket counts against its peak (issue 12: 100 MB).
 */
import type { UploadsRoute, UploadsRouteContext, UploadsRouteOptions } from '../shared/options.js';
import { checkRouteOptions } from './route-options.js';
import type { RouteHandler } from './route-serve.js';

/**
 * A Next.js App Router route handler pair that serves the uploads folder from disk, so a file
 * saved a moment ago plays at once (the standalone server lists `public/` only at startup).
 *
 * ```ts
 * // app/uploads/[...path]/route.ts
 * export const { GET, HEAD } = createUploadsRoute();
 * ```
 *
 * Order of checks, as in `send`: the path (bad encoding or NUL 400; `..`, encoded slashes and
 * backslashes 403; dotfiles, partial uploads, folders, FIFOs and other non-regular files, missing
 * files and symlinks leading out 404), then `stat`, 412, 304, `If-Range`, 416, 206, 200; HEAD stops
 * after the headers. The file comes from the source folder, else from its mirror, and is streamed
 * in 64 KiB reads, one at a time as the client takes them, so memory stays flat whatever the size.
 *
 * Safe by default: audio, video and raster images are inline; anything else (HTML, SVG, XML, JS,
 * PDF, unknown) is an attachment with `Content-Security-Policy: sandbox` (see `inlineTypes`);
 * `X-Content-Type-Options: nosniff` on every answer. ETag and Last-Modified are the values Next's
 * static handler (`send`) gives the same file, so they survive a restart.
 *
 * With a store (`store`, `UPLOAD_SYNC_STORE`), a file on neither disk folder comes from the bucket
 * (serve-store.ts): streamed with the same answers and headers (`delivery: 'proxy'`), or a 307 to a
 * presigned URL (`'redirect'`).
 * @throws UploadSyncError `ERR_CONFIG` at once for a bad route option; a bad environment shows as 500s.
 */
export function createUploadsRoute(options: UploadsRouteOptions = {}): UploadsRoute {
  const route = checkRouteOptions(options);
  let handler: Promise<RouteHandler> | undefined;
  const handle = async (request: Request, context: UploadsRouteContext | undefined, head: boolean): Promise<Response> => {
    handler ??= import('./route-serve.js').then((m) => m.routeHandler(options, route));
    return (await handler)(request, context, head);
  };
  return {
    GET: (request, context) => handle(request, context, false),
    HEAD: (request, context) => handle(request, context, true),
  };
}
