import { accessSync, constants, statSync } from 'node:fs';
import { userInfo } from 'node:os';
import { isInside } from '../config/paths.js';

// Shared by the engine's one-line advice (below) and the CLI's fuller hints (cli/hints.ts).

/** The user's name, for a command to paste (`chown -R nobody …`); the uid when it has no name. */
export function userName(): string {
  try {
    return userInfo().username;
  } catch {
    return String(process.getuid?.() ?? 'this-user');
  }
}

/** `path` is `folder` or inside it. */
export const within = (path: string, folder: string) => path === folder || isInside(path, folder);

/** The absolute paths Node quotes in an error message (`copyfile 'a' -> 'b'`, `mkdir 'x'`). */
export const quotedPaths = (message: string) => [...message.matchAll(/'(\/[^']*)'/g)].map((m) => m[1]!);

/**
 * What to do about a permission error, for the result's own message (a route's or the watcher's
 * log shows nothing else): the old scripts' `chown`/`chmod` advice, for whichever side Node's
 * message names. `null` for other errors.
 */
export function permissionAdvice(code: string, message: string, source: string, dest: string): string | null {
  if (code !== 'EACCES' && code !== 'EPERM') return null;
  const paths = quotedPaths(message);
  const who = userName();
  // A copy's message names both sides (`copyfile 'src' -> 'dest'`): a source path this user
  // cannot read is the cause, whatever else the message names.
  if (paths.some((p) => within(p, source) && !canRead(p))) return sourceAdvice(who, source);
  // Then dest: an open of our temp file, a mkdir, a rename or a chmod there is a write into the mirror.
  if (paths.some((p) => within(p, dest) || isInside(dest, p))) {
    return `hint: the mirror must be writable by ${who}: chown -R ${who} ${dest} (install -d -o ${who} ${dest} if it is missing), or a shared group with chmod -R g+rwX and UPLOAD_SYNC_DIR_MODE=775 UPLOAD_SYNC_FILE_MODE=664`;
  }
  if (paths.some((p) => within(p, source))) return sourceAdvice(who, source);
  return null;
}

/**
 * What to do about an error, for the result's own message (one line): `permissionAdvice`, a full
 * disk, a read-only filesystem. `null` when there is nothing to add.
 */
export function adviceFor(code: string, message: string, source: string, dest: string): string | null {
  if (code === 'ENOSPC' && !message.includes('max_user_watches')) {
    return `hint: the filesystem is full: free space (df -h ${dest}), then sync again; nothing half-written was left`;
  }
  if (code === 'EROFS') {
    const side = quotedPaths(message).some((p) => within(p, source)) && !quotedPaths(message).some((p) => within(p, dest)) ? source : dest;
    return `hint: ${side} is on a read-only filesystem: remount it read-write (mount -o remount,rw <mount point>; check dmesg for disk errors), then sync again`;
  }
  return permissionAdvice(code, message, source, dest);
}

const sourceAdvice = (who: string, source: string) => `hint: the uploads must be readable by ${who}: chmod -R a+rX ${source}`;

/**
 * Whether this process can read `path` now (a folder: list and enter it). Synchronous: it runs only
 * for a permission error, once per error entry. Anything but a permission error (gone since) is "yes".
 */
export function canRead(path: string): boolean {
  try {
    accessSync(path, statSync(path).isDirectory() ? constants.R_OK | constants.X_OK : constants.R_OK);
    return true;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return code !== 'EACCES' && code !== 'EPERM';
  }
}
