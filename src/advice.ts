import { userInfo } from 'node:os';
import { isInside } from './config.js';

/** `nobody` (or `uid 65534` when the user has no name): who the sync runs as. */
function user(): string {
  try {
    return userInfo().username;
  } catch {
    return `uid ${process.getuid?.() ?? '?'}`;
  }
}

const within = (path: string, folder: string) => path === folder || isInside(path, folder);

/**
 * What to do about a permission error, for the result's own message (a route's or the watcher's
 * log shows nothing else): the old scripts' `chown`/`chmod` advice, for whichever side Node's
 * message names. `null` for other errors.
 */
export function permissionAdvice(code: string, message: string, source: string, dest: string): string | null {
  if (code !== 'EACCES' && code !== 'EPERM') return null;
  const paths = [...message.matchAll(/'([^']+)'/g)].map((m) => m[1]!);
  const who = user();
  // Dest first: an open of our temp file, a mkdir, a rename or a chmod there is a write into the mirror.
  if (paths.some((p) => within(p, dest) || isInside(dest, p))) {
    return `hint: the mirror must be writable by ${who}: chown -R ${who} ${dest} (install -d -o ${who} ${dest} if it is missing), or a shared group with chmod -R g+rwX and UPLOAD_SYNC_DIR_MODE=775 UPLOAD_SYNC_FILE_MODE=664`;
  }
  if (paths.some((p) => within(p, source))) return `hint: the uploads must be readable by ${who}: chmod -R a+rX ${source}`;
  return null;
}
