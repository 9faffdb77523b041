/**
 * What a file answer is, wherever the bytes come from (a file on disk, an object in the store):
 * the decision (412, 304, 416, 206 or 200, in `send`'s order) and its headers. Both sources use
 * these, so they answer the same request the same way.
 */
import { create as contentDisposition } from 'content-disposition';
import { contentTypeOf, isInlineType } from './mime.js';
import { chooseRange, isNotModified, isPreconditionFailure, isRangeFresh, type Validators } from './range.js';
import type { RouteSettings } from './route-options.js';

type HeaderGetter = { get(name: string): string | null };

/** What to answer a request for a file of `size` bytes with validators `v`. */
export type Decision =
  | { kind: 'status'; status: 304 | 412 | 416 }
  /** The bytes `start..end` (inclusive; `end = start - 1` for an empty file). */
  | { kind: 'bytes'; status: 200 | 206; start: number; end: number };

/** `send`'s order: 412, 304, `If-Range`, 416, 206, 200. */
export function decide(request: HeaderGetter, size: number, v: Validators): Decision {
  if (isPreconditionFailure(request, v)) return { kind: 'status', status: 412 };
  if (isNotModified(request, v)) return { kind: 'status', status: 304 };
  let range = chooseRange(size, request.get('range'));
  if (range.kind !== 'whole' && !isRangeFresh(request.get('if-range'), v)) range = { kind: 'whole' };
  if (range.kind === 'unsatisfiable') return { kind: 'status', status: 416 };
  if (range.kind === 'partial') return { kind: 'bytes', status: 206, start: range.start, end: range.end };
  return { kind: 'bytes', status: 200, start: 0, end: size - 1 };
}

/** The headers of every answer about a file (and of its 304): validators, caching, `nosniff`. */
export function baseHeaders(route: RouteSettings, v: Validators): Headers {
  const headers = new Headers(route.headers);
  headers.set('Accept-Ranges', 'bytes');
  headers.set('Cache-Control', route.cacheControl);
  if (v.etag !== '') headers.set('ETag', v.etag);
  if (Number.isFinite(v.lastModified)) headers.set('Last-Modified', new Date(v.lastModified).toUTCString());
  headers.set('X-Content-Type-Options', 'nosniff');
  return headers;
}

/** The type and disposition of the file `name`: its `Content-Type` and, unless served inline, `Content-Disposition: attachment` (or `null`). */
export function typeOf(route: RouteSettings, name: string): { contentType: string; disposition: string | null } {
  const contentType = contentTypeOf(name, route.contentTypes);
  // Anything a browser could run as a page (HTML, SVG, XML, JS, PDF, unknown) is a download in a
  // sandbox: opened from the app's origin it would be stored XSS.
  const inline = isInlineType(contentType.split(';')[0]!.trim(), route.inlineTypes);
  return { contentType, disposition: inline ? null : contentDisposition(name, { type: 'attachment' }) };
}

/**
 * Every header of a 200 or 206 (or of a 416: `Content-Range: bytes *\/size`) about the file `name`
 * of `size` bytes.
 */
export function fileHeaders(route: RouteSettings, v: Validators, name: string, size: number, decision: Decision): Headers {
  const headers = baseHeaders(route, v);
  if (decision.kind === 'status') {
    if (decision.status === 416) headers.set('Content-Range', `bytes */${size}`);
    return headers;
  }
  const { contentType, disposition } = typeOf(route, name);
  headers.set('Content-Type', contentType);
  if (disposition !== null) {
    headers.set('Content-Disposition', disposition);
    // Appended: a policy of the caller's `headers` still applies (each policy is enforced).
    if (headers.get('Content-Security-Policy') !== 'sandbox') headers.append('Content-Security-Policy', 'sandbox');
  }
  headers.set('Content-Length', String(decision.end - decision.start + 1));
  if (decision.status === 206) headers.set('Content-Range', `bytes ${decision.start}-${decision.end}/${size}`);
  return headers;
}

/** The answer of a decision that sends no bytes: 304 (validators), 412, 416 (`bytes *\/size`). */
export function statusAnswer(route: RouteSettings, v: Validators, size: number, status: 304 | 412 | 416, head: boolean): Response {
  if (status === 304) return new Response(null, { status, headers: baseHeaders(route, v) });
  if (status === 412) return plain(412, head);
  return plain(416, head, fileHeaders(route, v, '', size, { kind: 'status', status }));
}

const REASONS: Record<number, string> = {
  400: 'Bad Request',
  403: 'Forbidden',
  404: 'Not Found',
  412: 'Precondition Failed',
  416: 'Range Not Satisfiable',
  500: 'Internal Server Error',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
  504: 'Gateway Timeout',
};

/** A short text answer for an error status (no body for HEAD). */
export function plain(status: number, head: boolean, headers = new Headers()): Response {
  const body = `${REASONS[status] ?? 'Error'}\n`;
  headers.set('Content-Type', 'text/plain; charset=utf-8');
  headers.set('Content-Length', String(Buffer.byteLength(body)));
  headers.set('X-Content-Type-Options', 'nosniff');
  if (!headers.has('Accept-Ranges')) headers.set('Accept-Ranges', 'bytes');
  return new Response(head ? null : body, { status, headers });
}
