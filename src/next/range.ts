import parseRange from 'range-parser';

/**
 * Pure functions for a file response's validators and conditional headers (RFC 9110 §8.8, §13, §14),
 * in the shape `send` uses. Each is tested by a table of one-line cases.
 */

/** What to send for a `Range` header. */
export type RangeChoice =
  | { kind: 'whole' } // no Range, one the server ignores (malformed, another unit), or several ranges
  | { kind: 'unsatisfiable' } // 416 with `Content-Range: bytes */size`
  | { kind: 'partial'; start: number; end: number }; // 206; `end` inclusive

const WHOLE: RangeChoice = Object.freeze({ kind: 'whole' });

/**
 * Chooses what a `Range` header asks of a file of `size` bytes. One range (overlapping ones are
 * combined first) gives a 206; several disjoint ranges give the whole file (a 200, as `send` does,
 * rather than a multipart/byteranges body); a malformed header or a unit other than `bytes` is
 * ignored (RFC 9110 §14.2 lets a server ignore Range).
 */
export function chooseRange(size: number, header: string | null | undefined): RangeChoice {
  if (header === null || header === undefined) return WHOLE;
  const eq = header.indexOf('=');
  if (eq === -1 || header.slice(0, eq).trim().toLowerCase() !== 'bytes') return WHOLE;
  // range-parser (1.3) refuses a suffix longer than the file; RFC 9110 §14.1.3 says such a suffix
  // selects the whole file (`bytes=-1000` of a 100-byte file is bytes 0-99).
  const specs = header
    .slice(eq + 1)
    .split(',')
    .map((spec) => {
      const suffix = /^\s*-\s*(\d+)\s*$/.exec(spec);
      return suffix !== null && Number(suffix[1]) > size && size > 0 ? '0-' : spec;
    });
  const ranges = parseRange(size, `bytes=${specs.join(',')}`, { combine: true });
  if (ranges === -2) return WHOLE;
  if (ranges === -1) return { kind: 'unsatisfiable' };
  if (ranges.length !== 1) return WHOLE;
  const [range] = ranges;
  return { kind: 'partial', start: range!.start, end: range!.end };
}

/** A file's validators: a strong ETag and the Last-Modified time. */
export interface Validators {
  /**
   * `"<size hex>-<mtime ms hex>"`: strong, as nginx's. Files are published whole (atomic rename),
   * so equal size and mtime mean equal bytes, and the mirror copy (same size, same mtime) has the
   * same tag as its source. Its value is the one `send` (Next's static handler) puts in its weak
   * `W/"…"` tag, so a browser's cached tag still matches after a restart hands the file to Next.
   */
  etag: string;
  /** Milliseconds, floored to the second (HTTP dates have no finer precision), as `Date#toUTCString` does. */
  lastModified: number;
}

/**
 * Validators of a file from its size and `mtime`, the whole milliseconds of Node's `Stats.mtime`
 * (`stats.mtime.getTime()`: Node *rounds* the nanosecond time to the nearest ms; flooring
 * `mtimeMs` instead gives another tag for about half of all files, and another Last-Modified for
 * those within half a millisecond of the next second).
 */
export function validatorsOf(size: number, mtime: number): Validators {
  return {
    etag: `"${size.toString(16)}-${mtime.toString(16)}"`,
    lastModified: Math.floor(mtime / 1000) * 1000,
  };
}

/** The entity tags of an `If-Match` / `If-None-Match` list; `'*'` stays `'*'`. */
export function parseEtagList(header: string): string[] {
  const tags: string[] = [];
  for (const m of header.matchAll(/\s*(\*|(?:W\/)?"[^"]*")\s*(?:,|$)/g)) tags.push(m[1]!);
  return tags;
}

const weak = (tag: string) => (tag.startsWith('W/') ? tag.slice(2) : tag);

/** An HTTP date in ms, or `null` when absent or not a date. */
function parseDate(value: string | null): number | null {
  if (value === null) return null;
  const ms = Date.parse(value);
  return Number.isNaN(ms) ? null : ms;
}

type HeaderGetter = { get(name: string): string | null };

/**
 * 412 Precondition Failed: `If-Match` with no strongly matching tag, or (without `If-Match`)
 * `If-Unmodified-Since` older than the file (RFC 9110 §13.2.2 steps 1 and 2).
 */
export function isPreconditionFailure(headers: HeaderGetter, v: Validators): boolean {
  const ifMatch = headers.get('if-match');
  if (ifMatch !== null) {
    const tags = parseEtagList(ifMatch);
    return !tags.some((tag) => tag === '*' || tag === v.etag);
  }
  const since = parseDate(headers.get('if-unmodified-since'));
  return since !== null && v.lastModified > since;
}

/**
 * 304 Not Modified: `If-None-Match` matches (weak comparison), or (without it) `If-Modified-Since`
 * is not older than the file. A request that says `Cache-Control: no-cache` is never answered 304,
 * as in `fresh`, which `send` uses.
 */
export function isNotModified(headers: HeaderGetter, v: Validators): boolean {
  const noneMatch = headers.get('if-none-match');
  const modifiedSince = headers.get('if-modified-since');
  if (noneMatch === null && modifiedSince === null) return false;
  if (/(?:^|,)\s*no-cache\s*(?:,|$)/i.test(headers.get('cache-control') ?? '')) return false;
  if (noneMatch !== null) {
    const tags = parseEtagList(noneMatch);
    return tags.some((tag) => tag === '*' || weak(tag) === weak(v.etag));
  }
  const since = parseDate(modifiedSince);
  return since !== null && v.lastModified <= since;
}

/**
 * Whether a `Range` may be honoured under `If-Range` (RFC 9110 §13.1.5): no `If-Range`, an entity
 * tag that matches strongly, or a date equal to Last-Modified. Otherwise the whole file is sent.
 */
export function isRangeFresh(ifRange: string | null, v: Validators): boolean {
  if (ifRange === null) return true;
  const value = ifRange.trim();
  if (value.startsWith('"') || value.startsWith('W/')) return value === v.etag;
  const date = parseDate(value);
  return date !== null && date === v.lastModified;
}
