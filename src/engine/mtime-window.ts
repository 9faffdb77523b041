/**
 * The mtime granularity of a destination, probed once per folder and process: a temp file gets a
 * time with a fraction of a second and an odd second, and what the filesystem keeps of it says its
 * granularity (ext4 and tmpfs: ns; ext3: 1 s; FAT: 2 s). Never guessed from one file's time: a file
 * made by `tar` or `curl -R` has a whole-second mtime on any filesystem.
 */
import { closeSync, fstatSync, futimesSync, openSync, unlinkSync } from 'node:fs';
import { tempPathFor } from './publish.js';
import { join } from 'node:path';

const probed = new Map<string, number>();

/** An odd second with a fraction: a filesystem of 2-second times rounds it to an even one. */
const PROBE_MS = 1_000_000_001_987.654;

/** The window within which two mtimes are the same time in `dest` (ms, at least 1). Writes a temp file the first time. */
export function mtimeWindow(dest: string): number {
  let window = probed.get(dest);
  if (window === undefined) {
    try {
      window = probe(dest);
    } catch {
      return 1; // dest not writable (its files fail and say why), or full: probed by a later run
    }
    probed.set(dest, window);
  }
  return window;
}

/** The window already probed for `dest` in this process, else 1 ms (a dry run writes nothing, so it does not probe). */
export function knownMtimeWindow(dest: string): number {
  return probed.get(dest) ?? 1;
}

function probe(dest: string): number {
  const tmp = tempPathFor(join(dest, 'mtime-probe'));
  const fd = openSync(tmp, 'wx', 0o600);
  try {
    futimesSync(fd, (PROBE_MS / 1000).toFixed(6), (PROBE_MS / 1000).toFixed(6));
    const kept = fstatSync(fd).mtimeMs;
    const lost = PROBE_MS - kept;
    if (lost < 1) return 1;
    if (kept % 1000 === 0) return (kept / 1000) % 2 === 0 ? 2000 : 1000;
    return 10 ** Math.ceil(Math.log10(lost)); // e.g. 10 ms, 100 ms
  } finally {
    closeSync(fd);
    unlinkSync(tmp);
  }
}
