import { UploadSyncError } from '../shared/errors.js';
import type { UploadsRouteOptions } from '../shared/options.js';
import { isTypePattern } from './mime.js';

/** `send`'s default: caches keep the file but revalidate it (a cheap 304 with the ETag). */
export const DEFAULT_CACHE_CONTROL = 'public, max-age=0';
export const DEFAULT_URL_PREFIX = '/uploads';
/** How long a presigned URL of `delivery: 'redirect'` stays valid, in seconds (see `presignExpiresIn`). */
export const DEFAULT_PRESIGN_EXPIRES_IN = 3600;
/** How long the route waits for the bucket to start answering (see `storeTimeoutMs`). */
export const DEFAULT_STORE_TIMEOUT_MS = 15_000;
/** S3's longest presigned URL (SigV4): 7 days. */
const MAX_PRESIGN_EXPIRES_IN = 7 * 24 * 3600;

/** A route's options, checked and normalized once, when the route is created. */
export interface RouteSettings {
  urlPrefix: string | undefined;
  cacheControl: string;
  fallbackToDest: boolean;
  contentTypes: Readonly<Record<string, string>> | undefined;
  headers: Readonly<Record<string, string>>;
  /** `inlineTypes`, lower case: served inline over the built-in audio, video and raster images. */
  inlineTypes: ReadonlySet<string>;
  /** How a file found only in the store is delivered. */
  delivery: 'proxy' | 'redirect';
  presignExpiresIn: number;
  storeTimeoutMs: number;
}

/** @throws UploadSyncError `ERR_CONFIG` naming the option, what it takes and what it got. */
export function checkRouteOptions(options: UploadsRouteOptions): RouteSettings {
  const bad = (name: string, expected: string, got: unknown): never => {
    throw new UploadSyncError('ERR_CONFIG', `Invalid option \`${name}\` of createUploadsRoute: expected ${expected}, got ${typeof got === 'string' ? JSON.stringify(got) : String(got)}`);
  };
  if (options === null || typeof options !== 'object') bad('options', 'an options object', options);
  const {
    urlPrefix, cacheControl = DEFAULT_CACHE_CONTROL, fallbackToDest = true, contentTypes, headers = {}, inlineTypes = [],
    delivery = 'proxy', presignExpiresIn = DEFAULT_PRESIGN_EXPIRES_IN, storeTimeoutMs = DEFAULT_STORE_TIMEOUT_MS,
  } = options;
  if (urlPrefix !== undefined && (typeof urlPrefix !== 'string' || !urlPrefix.startsWith('/') || /[?#\\]/.test(urlPrefix))) {
    bad('urlPrefix', 'a path starting with "/" such as "/uploads"', urlPrefix);
  }
  if (cacheControl !== false && (typeof cacheControl !== 'string' || /[\r\n]/.test(cacheControl))) bad('cacheControl', 'a header value or false', cacheControl);
  if (typeof fallbackToDest !== 'boolean') bad('fallbackToDest', 'true or false', fallbackToDest);
  for (const [name, value] of [['contentTypes', contentTypes ?? {}], ['headers', headers]] as const) {
    if (value === null || typeof value !== 'object' || Object.values(value).some((v) => typeof v !== 'string' || /[\r\n]/.test(v))) {
      bad(name, 'an object of header values', value);
    }
  }
  if (!Array.isArray(inlineTypes) || inlineTypes.some((t) => typeof t !== 'string' || !isTypePattern(t.trim().toLowerCase()))) {
    bad('inlineTypes', 'an array of media types ("application/pdf"), "type/*" patterns ("text/*") or "*/*"', Array.isArray(inlineTypes) ? JSON.stringify(inlineTypes) : inlineTypes);
  }
  if (delivery !== 'proxy' && delivery !== 'redirect') bad('delivery', '"proxy" or "redirect"', delivery);
  if (!Number.isInteger(presignExpiresIn) || presignExpiresIn < 1 || presignExpiresIn > MAX_PRESIGN_EXPIRES_IN) {
    bad('presignExpiresIn', `a whole number of seconds from 1 to ${MAX_PRESIGN_EXPIRES_IN} (7 days)`, presignExpiresIn);
  }
  if (!Number.isInteger(storeTimeoutMs) || storeTimeoutMs < 1) bad('storeTimeoutMs', 'a whole number of milliseconds, at least 1', storeTimeoutMs);
  const lowerTypes = contentTypes && Object.fromEntries(Object.entries(contentTypes).map(([ext, type]) => [ext.replace(/^\./, '').toLowerCase(), type]));
  return {
    // As the URL parser writes it (percent-encoded), without a trailing slash.
    urlPrefix: urlPrefix === undefined ? undefined : new URL(urlPrefix, 'http://x').pathname.replace(/\/+$/, ''),
    cacheControl: withNoTransform(cacheControl),
    fallbackToDest,
    contentTypes: lowerTypes,
    headers,
    inlineTypes: new Set((inlineTypes as readonly string[]).map((t) => t.trim().toLowerCase())),
    delivery,
    presignExpiresIn,
    storeTimeoutMs,
  };
}

/**
 * `no-transform` is always part of `Cache-Control`: Next's server gzips compressible responses
 * (text, JSON, SVG) when the client accepts it, a 206 included, whose `Content-Range` then counts
 * bytes the body no longer has, under a strong ETag. The `compression` middleware honours it.
 */
function withNoTransform(cacheControl: string | false): string {
  if (cacheControl === false || cacheControl.trim() === '') return 'no-transform';
  return /(?:^|,)\s*no-transform\s*(?:,|$)/i.test(cacheControl) ? cacheControl : `${cacheControl}, no-transform`;
}
