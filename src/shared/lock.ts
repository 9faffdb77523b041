import { createHash } from 'node:crypto';
import { chmod, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import lockfile from 'proper-lockfile';
import { canonical } from '../config/paths.js';
import { UploadSyncError, errorCode } from './errors.js';

/**
 * The cross-process lock (PM2 workers, the watcher, the CLI): proper-lockfile's `mkdir` lock, kept
 * fresh by an unref'd timer, and taken over once its holder has not refreshed it for `STALE_MS`
 * (a crashed holder). It lives in `lockDir`, never in a public folder, named after the dest path.
 */
export const STALE_MS = 10_000;

/**
 * The mode of a lock folder this library creates: writable by every user, and without the sticky
 * bit. Every user that syncs one dest must share its lock (the build's user and PM2's, say), and
 * must be able to take over the lock of a holder that died, which is removing another user's entry:
 * the sticky bit (1777, as /tmp) forbids exactly that. Nothing but lock entries lives here.
 */
export const LOCK_DIR_MODE = 0o777;

/**
 * Creates `lockDir` when it is missing, made writable by every user (`LOCK_DIR_MODE`, set after
 * `mkdir`, which the umask narrows). A folder that exists is left as it is: its owner chose its mode.
 */
export async function ensureLockDir(lockDir: string): Promise<void> {
  const created = await mkdir(lockDir, { recursive: true });
  // `created` is the first folder made; parents made on the way keep the umask's mode (traversable).
  if (created !== undefined) await chmod(lockDir, LOCK_DIR_MODE);
}

export type Release = () => Promise<void>;

/**
 * Named after dest's real path, so processes that reach one folder through different symlinks share
 * a lock; a bucket (`s3://bucket/prefix`, a push's dest) after its URL as it is.
 */
export function lockPath(lockDir: string, dest: string): string {
  const id = dest.startsWith('s3://') ? dest : canonical(dest);
  return join(lockDir, `${createHash('sha256').update(id).digest('hex').slice(0, 16)}.lock`);
}

/** A wait for the lock at least this long is told (`onWaited`): it explains a run that started late, and the burst of syncs after it. */
export const LOCK_WAIT_TOLD_MS = 1000;

/**
 * Takes the lock for `dest`, retrying until `timeoutMs`; `onWaited` hears of a wait of
 * `LOCK_WAIT_TOLD_MS` or more, once the lock is taken.
 * @throws UploadSyncError `ELOCKED` when another process holds it that long; `ERR_ABORTED` on abort.
 */
export async function acquireLock(
  lockDir: string,
  dest: string,
  timeoutMs: number,
  { signal, onCompromised, onWaited }: { signal?: AbortSignal | undefined; onCompromised: (err: Error) => void; onWaited?: (ms: number) => void },
): Promise<Release> {
  await ensureLockDir(lockDir);
  const path = lockPath(lockDir, dest);
  const started = Date.now();
  const deadline = started + timeoutMs;
  for (let attempt = 0; ; attempt++) {
    if (signal?.aborted) throw new UploadSyncError('ERR_ABORTED', 'Aborted while waiting for the sync lock');
    try {
      const release = await lockfile.lock(dest, {
        lockfilePath: path,
        realpath: false,
        stale: STALE_MS,
        retries: 0,
        onCompromised,
      });
      const waited = Date.now() - started;
      if (waited >= LOCK_WAIT_TOLD_MS) onWaited?.(waited);
      return async () => {
        try {
          await release();
        } catch (err) {
          // Already released or taken over (compromised): nothing of ours to remove.
          if (errorCode(err) !== 'ERELEASED' && errorCode(err) !== 'ENOTACQUIRED') throw err;
        }
      };
    } catch (err) {
      if (errorCode(err) !== 'ELOCKED') throw err;
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new UploadSyncError(
          'ELOCKED',
          `Another upload-sync run held the lock ${path} for more than ${timeoutMs} ms (a crashed holder is taken over after ${STALE_MS / 1000} s)`,
          { path, cause: err },
        );
      }
      // Short waits first (the usual holder is a millisecond-long targeted sync), then up to 250 ms.
      const wait = Math.min(left, 10 * 2 ** Math.min(attempt, 5), 250) * (0.75 + Math.random() / 2);
      await delay(wait, undefined, { signal }).catch(() => undefined);
    }
  }
}
