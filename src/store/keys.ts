/**
 * Object keys: the store's prefix, `/`, then the upload's path relative to the uploads folder,
 * `/`-separated, byte for byte as given (no Unicode normalization, no percent decoding: a name in
 * NFD stays NFD, `a%20b` stays `a%20b`). The SDK escapes keys in URLs, so spaces, `+`, `%`, `#`
 * and `?` round-trip (s3-store.test.ts).
 */
import { UploadSyncError } from '../shared/errors.js';

/** S3's limit on a key, in UTF-8 bytes. */
export const MAX_KEY_BYTES = 1024;

/**
 * The key of a relative path.
 * @throws UploadSyncError `ERR_INVALID_NAME` for an empty path, a leading `/`, an empty, `.` or
 * `..` segment, a control character (S3 lists them only URL-encoded), or a key over 1024 bytes.
 */
export function keyOf(prefix: string, path: string): string {
  if (typeof path !== 'string' || path === '') throw new UploadSyncError('ERR_INVALID_NAME', 'An object path must be a non-empty string');
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(path)) throw new UploadSyncError('ERR_INVALID_NAME', `Control characters are not allowed in an object path: ${JSON.stringify(path)}`, { path });
  if (path.split('/').some((s) => s === '' || s === '.' || s === '..')) {
    throw new UploadSyncError('ERR_INVALID_NAME', `An object path is relative, made of non-empty names other than "." and "..": ${JSON.stringify(path)}`, { path });
  }
  const key = prefix === '' ? path : `${prefix}/${path}`;
  if (Buffer.byteLength(key) > MAX_KEY_BYTES) throw new UploadSyncError('ERR_INVALID_NAME', `Object key over ${MAX_KEY_BYTES} bytes: ${JSON.stringify(key)}`, { path });
  return key;
}

/** The listing prefix of a folder-like prefix relative to the store (`''`: everything in the store). */
export function listPrefixOf(prefix: string, relative: string): string {
  if (prefix === '') return relative;
  return `${prefix}/${relative}`;
}

/** A key's path relative to the store prefix (the key itself when the prefix is empty). */
export function pathOfKey(prefix: string, key: string): string {
  return prefix === '' ? key : key.slice(prefix.length + 1);
}

/**
 * `x-amz-meta-mtime`: the source file's mtime in milliseconds since the epoch, as a decimal with up
 * to three fraction digits (microseconds, what the local mirror keeps), e.g. `1764385476123.456`.
 * `LastModified` cannot serve: it is the time of the upload, not of the file.
 */
export function formatMtime(mtimeMs: number): string {
  if (!Number.isFinite(mtimeMs)) throw new UploadSyncError('ERR_STORE', `mtimeMs must be a finite number, got ${mtimeMs}`);
  return (Math.round(mtimeMs * 1000) / 1000).toFixed(3).replace(/\.?0+$/, '');
}

/** The mtime of `x-amz-meta-mtime`, `null` when missing or not in {@link formatMtime}'s format. */
export function parseMtime(value: string | undefined): number | null {
  if (value === undefined || !/^-?\d{1,16}(\.\d{1,3})?$/.test(value)) return null;
  return Number(value);
}
