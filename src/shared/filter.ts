import { extname, sep } from 'node:path';

/** Every temp file this library writes starts with this (a dotfile, so it is never synced or served). */
export const TEMP_PREFIX = '.upload-sync-';

const PARTIAL_SUFFIXES = ['.part', '.partial', '.crdownload', '.tmp', '~'];
/** The last character of each suffix, ASCII letters folded to lower case (`| 0x20`). */
const PARTIAL_LAST = new Set(PARTIAL_SUFFIXES.map((suffix) => suffix.charCodeAt(suffix.length - 1) | 0x20));

/** A temp file of ours (from an interrupted sync or upload). */
export function isTempName(name: string): boolean {
  return name.startsWith(TEMP_PREFIX);
}

/** An upload still being written by a browser or a tool: `.part`, `.partial`, `.crdownload`, `.tmp`, `~`. */
export function isPartialName(name: string): boolean {
  // Most names are out on their last character alone (no lower-cased copy of each name in a walk).
  if (!PARTIAL_LAST.has(name.charCodeAt(name.length - 1) | 0x20)) return false;
  const lower = name.toLowerCase();
  return PARTIAL_SUFFIXES.some((suffix) => lower.endsWith(suffix));
}

/** Names never synced, served or removed as orphans: dotfiles (ours among them) and partial uploads. */
export function isIgnoredName(name: string): boolean {
  return name.startsWith('.') || isPartialName(name);
}

/** Whether a file name passes the extension filter (`null`: every name). */
export function matchesExtensions(name: string, extensions: ReadonlySet<string> | null): boolean {
  if (extensions === null) return true;
  return extensions.has(extname(name).slice(1).toLowerCase());
}

/** Whether a `/`-separated relative file path is one the sync handles: no ignored component, an allowed extension. */
export function isSyncablePath(rel: string, extensions: ReadonlySet<string> | null): boolean {
  const parts = rel.split('/');
  if (parts.some((part) => part === '' || isIgnoredName(part))) return false;
  return matchesExtensions(parts[parts.length - 1]!, extensions);
}

/** A native relative path as a `/`-separated one (results always use `/`). */
export function toPosix(rel: string): string {
  return sep === '/' ? rel : rel.split(sep).join('/');
}
