import type { FileInfo } from './walk.js';

/**
 * Whether two mtimes (ms) are the same time as far as the filesystems can tell: within 1 ms, or,
 * when dest keeps whole seconds (ext3, HFS+, FAT's two) and source keeps finer times, within that
 * granularity. Two fine-grained times never get the wider window, so a quick edit is still seen.
 */
export function sameMtime(srcMs: number, destMs: number): boolean {
  const diff = Math.abs(srcMs - destMs);
  if (diff <= 1) return true;
  const destCoarse = destMs % 1000 === 0;
  const srcFine = srcMs % 1000 !== 0;
  return destCoarse && srcFine && diff < 2000;
}

/** What the quick check reads: a `FileInfo`, or a `Stats` as it comes (no copy of 20,000 of them for a no-op run). */
export type QuickInfo = Pick<FileInfo, 'size' | 'mtimeMs' | 'ino' | 'dev'>;

/** The quick check: a dest file is current when it is the same inode, or has the same size and mtime. */
export function isCurrent(src: QuickInfo, dest: QuickInfo): boolean {
  if (src.ino === dest.ino && src.dev === dest.dev) return true;
  return src.size === dest.size && sameMtime(src.mtimeMs, dest.mtimeMs);
}
