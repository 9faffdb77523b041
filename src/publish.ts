import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { chmod, copyFile, link, rename, stat, unlink, utimes } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { UploadSyncError, errorCode } from './errors.js';
import { TEMP_PREFIX } from './filter.js';
import type { Strategy } from './options.js';
import { fileInfo, type FileInfo } from './walk.js';

/** A temp name in the target's own folder (same filesystem, so the rename is atomic). Short: names may be 255 bytes. */
export function tempPathFor(target: string): string {
  return join(dirname(target), `${TEMP_PREFIX}${process.pid.toString(36)}-${randomBytes(6).toString('hex')}.tmp`);
}

/** What `tempPathFor` makes: TEMP_PREFIX, the pid in base 36, 12 random hex digits. */
const TEMP_NAME = /^\.upload-sync-([0-9a-z]+)-[0-9a-f]{12}\.tmp$/;

/** The pid in one of our temp names, or `null` for a name we did not make this way. */
export function tempOwnerPid(name: string): number | null {
  const m = TEMP_NAME.exec(name);
  if (!m?.[1]) return null;
  const pid = parseInt(m[1], 36);
  return Number.isSafeInteger(pid) && pid > 0 ? pid : null;
}

/** Whether a process with this pid exists on this machine (EPERM: it exists, owned by another user). */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return errorCode(err) === 'EPERM';
  }
}

async function removeQuietly(path: string): Promise<void> {
  try {
    await unlink(path);
  } catch {
    // Already gone, or never created.
  }
}

/** Link errors after which a plain copy still works: another filesystem, or one without hard links. */
const LINK_FALLBACK = new Set(['EXDEV', 'EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'EMLINK', 'ENOSYS']);

export interface PublishOptions {
  strategy: Strategy;
  /** Mode for the published file; `null` keeps the source's (copy) or leaves the shared inode alone (hardlink). */
  fileMode: number | null;
  /** What the source looked like when the run decided to copy it. */
  expected: FileInfo;
}

/** How many times a file that changes while it is copied is tried again before it is reported. */
const ATTEMPTS = 3;

/**
 * Publishes `src` at `target` atomically: write a hidden temp file beside the target, give it the
 * source's mtime (and mode), rename it over the target. A reader sees the old file or the new one,
 * never a part. The temp file is removed on every failure. A source that changes during the copy
 * is copied again, then reported (`ERR_CHANGED`) rather than published torn.
 * @returns how the file got there, and the source as it was copied.
 */
export async function publish(src: string, target: string, opts: PublishOptions): Promise<{ method: 'copy' | 'link'; info: FileInfo }> {
  if (opts.strategy === 'hardlink') {
    const tmp = tempPathFor(target);
    try {
      await link(src, tmp);
      await rename(tmp, target);
      return { method: 'link', info: opts.expected };
    } catch (err) {
      if (!LINK_FALLBACK.has(errorCode(err))) throw err;
    } finally {
      // rename() of two links to one inode is a no-op that leaves tmp behind, so always try.
      await removeQuietly(tmp);
    }
  }

  let expected = opts.expected;
  for (let attempt = 1; ; attempt++) {
    const tmp = tempPathFor(target);
    let published = false;
    try {
      // FICLONE: a reflink where the filesystem can, a plain copy where it cannot. EXCL: never reuse a name.
      await copyFile(src, tmp, constants.COPYFILE_EXCL | constants.COPYFILE_FICLONE);
      const after = fileInfo(await stat(src));
      if (after.size !== expected.size || after.mtimeMs !== expected.mtimeMs) {
        if (attempt >= ATTEMPTS) {
          throw new UploadSyncError('ERR_CHANGED', `Source kept changing while it was copied (${ATTEMPTS} tries); it will be synced once it is stable`, { path: src });
        }
        expected = after;
        continue;
      }
      if (opts.fileMode !== null) await chmod(tmp, opts.fileMode);
      await utimes(tmp, expected.atimeMs / 1000, expected.mtimeMs / 1000);
      await rename(tmp, target);
      published = true;
      return { method: 'copy', info: expected };
    } finally {
      if (!published) await removeQuietly(tmp);
    }
  }
}
