import type { FileInfo } from './plan-types.js';

/**
 * Whether two mtimes (ms) are the same time as far as dest can tell: within 1 ms, or within dest's
 * real granularity (`windowMs`, probed on dest: 1000 on ext3, 2000 on FAT), since a filesystem that
 * keeps whole seconds stores a copied time rounded (down on Linux, up on some others).
 */
export function sameMtime(srcMs: number, destMs: number, windowMs = 1): boolean {
  const diff = Math.abs(srcMs - destMs);
  return diff <= 1 || diff < windowMs;
}

/** What the quick check reads: a `FileInfo`, or a `Stats` as it comes. */
export type QuickInfo = Pick<FileInfo, 'size' | 'mtimeMs' | 'ino' | 'dev'>;

/** The quick check: a dest file is current when it is the same inode, or has the same size and mtime. */
export function isCurrent(src: QuickInfo, dest: QuickInfo, windowMs = 1): boolean {
  if (src.ino === dest.ino && src.dev === dest.dev) return true;
  return src.size === dest.size && sameMtime(src.mtimeMs, dest.mtimeMs, windowMs);
}
