import { realpathSync } from 'node:fs';
import { homedir } from 'node:os';
import { basename, dirname, isAbsolute, join, parse, relative, resolve, sep } from 'node:path';
import { UploadSyncError } from '../shared/errors.js';

/**
 * The project root: `UPLOAD_SYNC_ROOT`, else the cwd, except that a cwd of `<x>/.next/standalone`
 * (where the standalone server runs) means `<x>`, so the mirror never becomes the source.
 */
export function resolveRoot(cwd: string, envRoot?: string): string {
  if (envRoot !== undefined) return resolve(cwd, envRoot);
  const abs = resolve(cwd);
  if (basename(abs) === 'standalone' && basename(dirname(abs)) === '.next') return dirname(dirname(abs));
  return abs;
}

/** The path with symlinks of its existing part resolved, so aliases of one folder compare equal. */
export function canonical(p: string): string {
  let existing = p;
  const rest: string[] = [];
  for (;;) {
    try {
      return join(realpathSync.native(existing), ...rest);
    } catch {
      const parent = dirname(existing);
      if (parent === existing) return p;
      rest.unshift(basename(existing));
      existing = parent;
    }
  }
}

/** True when `child` is strictly inside `parent` (both absolute). */
export function isInside(child: string, parent: string): boolean {
  const rel = relative(parent, child);
  return rel !== '' && rel !== '..' && !rel.startsWith(`..${sep}`) && !isAbsolute(rel);
}

const refuse = (message: string): never => {
  throw new UploadSyncError('ERR_CONFIG', message);
};

/** Resolves a path to its `canonical` form. */
export type RealPath = (p: string) => string;

/**
 * `canonical`, each path resolved once: the checks of one configuration name source and dest
 * several times, and on a `saveUpload` every resolution is on the upload's path.
 */
export function realPaths(): RealPath {
  const seen = new Map<string, string>();
  return (p) => {
    let real = seen.get(p);
    if (real === undefined) seen.set(p, (real = canonical(p)));
    return real;
  };
}

/** The home folder's canonical path, resolved once per value of `homedir()` in this process. */
let home: { dir: string; real: string } | null = null;
function realHome(): string {
  const dir = homedir();
  if (home?.dir !== dir) home = { dir, real: canonical(dir) };
  return home.real;
}

/** Refuses a source and dest that would overwrite or delete each other, or a dest that is no mirror folder. */
export function checkFolders(source: string, dest: string, real: RealPath = realPaths()): void {
  const [src, dst] = [real(source), real(dest)];
  checkDestFolder(dest, real);
  if (src === dst) refuse(`Refusing to sync: source and dest are the same folder (${source})`);
  if (isInside(dst, src)) refuse(`Refusing to sync: dest (${dest}) is inside source (${source}); it would copy itself`);
  if (isInside(src, dst)) refuse(`Refusing to sync: source (${source}) is inside dest (${dest}); deletions would reach it`);
}

/** Refuses a dest that is no mirror folder: a filesystem root, the home folder (a pull's dest is checked alone: its source is a bucket). */
export function checkDestFolder(dest: string, real: RealPath = realPaths()): void {
  const dst = real(dest);
  if (parse(dst).root === dst) refuse(`Refusing to use a filesystem root as dest (${dest}); set UPLOAD_SYNC_DEST or \`dest\` to the mirror folder`);
  if (dst === realHome()) refuse(`Refusing to use the home folder as dest (${dest}); set UPLOAD_SYNC_DEST or \`dest\` to the mirror folder`);
}

/** Refuses a lock folder inside the public folders (anyone could read or break the lock there). */
export function checkLockDir(source: string, dest: string, lockDir: string, real: RealPath = realPaths()): void {
  const lock = real(lockDir);
  for (const [name, folder] of [['source', real(source)], ['dest', real(dest)]] as const) {
    if (lock === folder || isInside(lock, folder)) {
      refuse(`Refusing a lock folder inside ${name} (${lockDir}): set \`lockDir\` or UPLOAD_SYNC_LOCK_DIR outside the uploads folders`);
    }
  }
}
