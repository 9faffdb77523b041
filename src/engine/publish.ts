import { randomBytes } from 'node:crypto';
import { closeSync, constants, fchmodSync, fsyncSync, futimesSync, openSync, readSync, renameSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { chmod, copyFile, link, open, rename, stat, unlink, utimes, type FileHandle } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { threadId } from 'node:worker_threads';
import { setTimeout as delay } from 'node:timers/promises';
import { UploadSyncError, errorCode } from '../shared/errors.js';
import { TEMP_PREFIX } from '../shared/filter.js';
import type { Strategy } from '../shared/options.js';
import type { FileInfo } from './plan-types.js';
import { fileInfo } from './walk.js';

/** Temp names of this process: its pid, then a counter from a random start (unique here, unlikely elsewhere). */
let tempSeq = randomBytes(6).readUIntBE(0, 6);
let tempPid = -1;
let tempPrefix = '';

/** A temp name in the target's own folder (same filesystem, so the rename is atomic). Short: names may be 255 bytes. */
export function tempPathFor(target: string): string {
  // Not randomBytes per file, nor process.pid (a getpid call) per file: both show in the profile of 10,000 copies.
  if (tempPid === -1) {
    tempPid = process.pid;
    // A helper thread marks its temp files with its thread id: if it dies mid-copy, the run knows
    // which temp files of this (live) process are its, and removes them.
    tempPrefix = `${TEMP_PREFIX}${tempPid.toString(36)}${threadId === 0 ? '' : `_${threadId}`}-`;
  }
  tempSeq = (tempSeq + 1) % 2 ** 48;
  return join(dirname(target), `${tempPrefix}${tempSeq.toString(16).padStart(12, '0')}.tmp`);
}

/** What `tempPathFor` makes: TEMP_PREFIX, the pid in base 36 (and `_` and a helper thread's id), 12 hex digits. */
const TEMP_NAME = /^\.upload-sync-([0-9a-z]+)(?:_(\d+))?-[0-9a-f]{12}\.tmp$/;

/** Whether `name` is a temp file written by thread `thread` of this process (a helper thread that died). */
export function isTempOfThread(name: string, thread: number): boolean {
  const m = TEMP_NAME.exec(name);
  return m !== null && parseInt(m[1]!, 36) === process.pid && Number(m[2] ?? 0) === thread;
}

/** The pid in one of our temp names, or `null` for a name we did not make this way. */
export function tempOwnerPid(name: string): number | null {
  const m = TEMP_NAME.exec(name);
  if (!m?.[1]) return null;
  const pid = parseInt(m[1], 36);
  return Number.isSafeInteger(pid) && pid > 0 ? pid : null;
}

/**
 * The dead-pid rule, for our temp files in dest and in source alike: the pid of the process that
 * wrote the temp file `name` when that process is gone (it died mid-copy or mid-upload), else
 * `null`: a live process's temp file (this one's included) is never touched, nor a name we did
 * not make. Pids are per machine (and per pid namespace): see the README.
 */
export function deadTempOwner(name: string): number | null {
  const pid = tempOwnerPid(name);
  return pid === null || pid === process.pid || isAlive(pid) ? null : pid;
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
  /** fsync the temp file before its rename and the folder after (the sync option `fsync`). */
  fsync?: boolean;
}

/** How many times a file that changes while it is copied is tried again before it is reported. */
const ATTEMPTS = 3;

/** Pause before copying a changed source again (times the attempt). */
const RETRY_PAUSE_MS = 50;

/** The largest read of a copy: big files go through in 1 MiB steps, small ones in one read. */
const CHUNK = 1 << 20;

/** Errors of a forced reflink on a filesystem that has none (ext4, tmpfs, across devices): copy instead, from then on. */
const NO_REFLINK = new Set(['ENOTSUP', 'EOPNOTSUPP', 'EXDEV', 'EINVAL', 'ENOSYS', 'ENOTTY', 'EPERM', 'EBADF']);
let reflinkUnsupported = false;

/**
 * The source vanished before or during its copy (deleted, or renamed away): not an error. The run
 * skips the file; the next run or the watcher sees what is there then.
 */
export class SourceGone extends Error {
  constructor(readonly path: string) {
    super(`${path} was removed from the source during the sync`);
  }
}

const isGone = (err: unknown) => errorCode(err) === 'ENOENT' || errorCode(err) === 'ENOTDIR';

/**
 * A time for `utimes` that keeps what a number loses: Node turns a negative number of seconds (a
 * date before 1970) into "now", but takes a numeric string as it is, to the microsecond.
 */
export function timeArg(ms: number): string {
  // libuv keeps microseconds by truncating toward zero, and the decimal string becomes a double a
  // hair under or over it: half a microsecond away from zero makes the truncation land on it.
  const micros = Math.round(ms * 1000);
  const nudged = micros + (micros < 0 ? -0.5 : 0.5);
  const sign = nudged < 0 ? '-' : '';
  const abs = Math.abs(nudged);
  const whole = Math.floor(abs / 1e6);
  return `${sign}${whole}.${String(abs - whole * 1e6).replace('.', '').padStart(7, '0')}`;
}

/** A write that wrote less than asked and then nothing: the disk is full (how ENOSPC first shows). */
function noProgress(path: string): Error {
  return Object.assign(new Error(`ENOSPC: no space left on device, write '${path}' (a write made no progress)`), { code: 'ENOSPC', path });
}

/** Writes all of `buffer[0, length)` at `position`, or throws: a short write is never taken as complete. */
function writeAllSync(fd: number, buffer: Buffer, length: number, position: number, path: string): void {
  let done = 0;
  while (done < length) {
    const n = writeSync(fd, buffer, done, length - done, position + done);
    if (n <= 0) throw noProgress(path);
    done += n;
  }
}

async function writeAll(handle: FileHandle, buffer: Buffer, length: number, position: number, path: string): Promise<void> {
  let done = 0;
  while (done < length) {
    const { bytesWritten } = await handle.write(buffer, done, length - done, position + done);
    if (bytesWritten <= 0) throw noProgress(path);
    done += bytesWritten;
  }
}

/**
 * Copies the bytes of `src` into the new file `tmp`: a reflink where the filesystem can make one,
 * else a read/write loop that stops at the size the run saw (or at an earlier end of file).
 * Not `fs.copyFile`: libuv's copy loops forever on a source that shrinks while it is copied, and
 * truncates first, which makes ext4 flush the file at close (PERF-NOTES.md).
 * @returns the bytes copied (another count than `expected.size` means the source changed).
 */
async function copyBytes(src: string, tmp: string, expected: FileInfo, mode: number, fsync: boolean): Promise<number> {
  if (!reflinkUnsupported) {
    try {
      await copyFile(src, tmp, constants.COPYFILE_EXCL | constants.COPYFILE_FICLONE_FORCE);
      await chmod(tmp, mode);
      await utimes(tmp, timeArg(expected.atimeMs), timeArg(expected.mtimeMs));
      if (fsync) await syncPath(tmp);
      return expected.size;
    } catch (err) {
      if (!NO_REFLINK.has(errorCode(err))) throw err;
      reflinkUnsupported = true;
      await removeQuietly(tmp);
    }
  }
  if (expected.size <= SMALL) return copySmallSync(src, tmp, expected, mode, fsync);
  const input = await open(src, 'r');
  try {
    const output = await open(tmp, 'wx', expected.mode & 0o777);
    try {
      const buffer = Buffer.allocUnsafe(Math.max(1, Math.min(CHUNK, expected.size + 1)));
      let copied = 0;
      // One byte past the expected size tells a grown file from a complete one.
      while (copied <= expected.size) {
        const { bytesRead } = await input.read(buffer, 0, buffer.length, copied);
        if (bytesRead === 0) break;
        await writeAll(output, buffer, bytesRead, copied, tmp);
        copied += bytesRead;
        if (bytesRead < buffer.length) break; // a short read of a regular file is its end: no extra read
      }
      await output.chmod(mode); // open() applied the umask
      await output.utimes(timeArg(expected.atimeMs), timeArg(expected.mtimeMs)); // after the last write
      if (fsync) await output.sync();
      return copied;
    } finally {
      await output.close();
    }
  } finally {
    await input.close();
  }
}

/** Files up to this size are copied with synchronous calls: one read and one write, no promise per call. */
const SMALL = 256 * 1024;

let small: Buffer | null = null;
/**
 * One buffer for every small copy of this thread (they are synchronous, so never two at once): a
 * buffer per file made 300,000 small copies churn through the allocator and grew the young
 * generation, and with it the peak RSS.
 */
function smallBuffer(): Buffer {
  small ??= Buffer.allocUnsafeSlow(SMALL + 1);
  return small;
}

/**
 * A small file in one go. A promise per fs call costs more than the call itself (PERF-NOTES.md):
 * for the thousands of small files of an initial copy, this is most of the time; a 256 KiB read
 * and write blocks the event loop well under a millisecond.
 */
function copySmallSync(src: string, tmp: string, expected: FileInfo, mode: number, fsync = false): number {
  const input = openSync(src, 'r');
  try {
    const output = openSync(tmp, 'wx', expected.mode & 0o777);
    try {
      const buffer = smallBuffer(); // one byte more than the file tells a grown file
      const bytesRead = readSync(input, buffer, 0, expected.size + 1, 0);
      writeAllSync(output, buffer, bytesRead, 0, tmp);
      fchmodSync(output, mode);
      futimesSync(output, timeArg(expected.atimeMs), timeArg(expected.mtimeMs));
      if (fsync) fsyncSync(output);
      return bytesRead;
    } finally {
      closeSync(output);
    }
  } finally {
    closeSync(input);
  }
}

/**
 * Publishes `src` at `target` atomically: write a hidden temp file beside the target, give it the
 * source's mtime (and mode), rename it over the target. A reader sees the old file or the new one,
 * never a part. The temp file is removed on every failure. A source that changes during the copy
 * is copied again, then reported (`ERR_CHANGED`) rather than published torn; one that vanishes
 * throws `SourceGone`.
 * @returns how the file got there, and the source as it was copied.
 */
export async function publish(src: string, target: string, opts: PublishOptions): Promise<{ method: 'copy' | 'link'; info: FileInfo }> {
  if (opts.strategy === 'hardlink') {
    const tmp = tempPathFor(target);
    try {
      await link(src, tmp);
      await rename(tmp, target);
      if (opts.fsync === true) await syncPath(dirname(target));
      return { method: 'link', info: opts.expected };
    } catch (err) {
      if (isGone(err) && !(await exists(src))) throw new SourceGone(src);
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
      let copied: number;
      let after: { size: number; mtimeMs: number };
      try {
        // The source's mode (or `fileMode`) and times are set on the temp file before it is published.
        copied = await copyBytes(src, tmp, expected, opts.fileMode ?? expected.mode, opts.fsync === true);
        after = expected.size <= SMALL ? statSync(src) : await stat(src);
      } catch (err) {
        if (isGone(err) && !(await exists(src))) throw new SourceGone(src);
        throw err;
      }
      if (copied !== expected.size || after.size !== expected.size || after.mtimeMs !== expected.mtimeMs) {
        if (attempt >= ATTEMPTS) {
          throw new UploadSyncError('ERR_CHANGED', `Source kept changing while it was copied (${ATTEMPTS} tries); it will be synced once it is stable`, { path: src });
        }
        // Give the writer a moment (a rewrite is a truncate, then writes), then take the source as it is.
        await delay(RETRY_PAUSE_MS * attempt);
        expected = fileInfo(await stat(src).catch((err) => Promise.reject(isGone(err) ? new SourceGone(src) : err)));
        continue;
      }
      // The last word before the rename of a streamed copy: the temp file holds every byte. (A
      // small copy is one write checked by writeAllSync; a reflink is whole or an error.)
      const written = expected.size <= SMALL ? expected.size : (await stat(tmp)).size;
      if (written !== expected.size) {
        throw Object.assign(new Error(`EIO: the copy of ${src} holds ${written} of its ${expected.size} bytes; not published`), { code: 'EIO', path: tmp });
      }
      if (expected.size <= SMALL) renameSync(tmp, target);
      else await rename(tmp, target);
      published = true;
      if (opts.fsync === true) await syncPath(dirname(target));
      return { method: 'copy', info: expected };
    } finally {
      if (!published) await removeQuietly(tmp);
    }
  }
}

const exists = (path: string) => stat(path).then(() => true, () => false);

/** fsync of a file or folder by path (a folder: its entries, so a rename in it, reach the disk). */
async function syncPath(path: string): Promise<void> {
  const handle = await open(path, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

function syncPathSync(path: string): void {
  const fd = openSync(path, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/**
 * The publish of a small file with synchronous calls only, no promise: most of an initial sync is
 * thousands of these, and a promise chain per file was most of their cost (and garbage). Taken only
 * once this process knows dest cannot reflink (the first copy, async, found out).
 * @returns `true` when published; `false` when it must go the async way instead (not a small
 *   plain copy, or the source changed during the copy: `publish` retries with pauses).
 * @throws `SourceGone`, or the error of the copy (its temp file removed).
 */
export function publishSmallSync(src: string, target: string, opts: PublishOptions): boolean {
  const { expected } = opts;
  if (opts.strategy !== 'copy' || !reflinkUnsupported || expected.size > SMALL) return false;
  const tmp = tempPathFor(target);
  let published = false;
  try {
    let copied: number;
    let after: { size: number; mtimeMs: number };
    try {
      copied = copySmallSync(src, tmp, expected, opts.fileMode ?? expected.mode, opts.fsync === true);
      after = statSync(src);
    } catch (err) {
      if (isGone(err) && statSync(src, { throwIfNoEntry: false }) === undefined) throw new SourceGone(src);
      throw err;
    }
    if (copied !== expected.size || after.size !== expected.size || after.mtimeMs !== expected.mtimeMs) return false;
    renameSync(tmp, target);
    published = true;
    if (opts.fsync === true) syncPathSync(dirname(target));
    return true;
  } finally {
    if (!published) {
      try {
        unlinkSync(tmp);
      } catch {
        // never created, or gone
      }
    }
  }
}



/** How one copy job ended: published, its source gone meanwhile (not an error), or failed. */
export type PublishOutcome = { status: 'copied' | 'gone' } | { status: 'failed'; code: string; message: string };

/** Publishes one job of a run (here or in the helper thread): never throws, the outcome says. */

const COPIED: PublishOutcome = Object.freeze({ status: 'copied' });

/** `publishJob` without a promise where it can (a small plain copy); `null`: call `publishJob`, which takes it from the start. */
export function publishJobSync(source: string, dest: string, job: { rel: string; src: FileInfo }, opts: Omit<PublishOptions, 'expected'>): PublishOutcome | null {
  try {
    return publishSmallSync(`${source}/${job.rel}`, `${dest}/${job.rel}`, { ...opts, expected: job.src }) ? COPIED : null;
  } catch (err) {
    if (err instanceof SourceGone) return { status: 'gone' };
    return { status: 'failed', code: errorCode(err), message: err instanceof Error ? err.message : String(err) };
  }
}

export async function publishJob(source: string, dest: string, job: { rel: string; src: FileInfo }, opts: Omit<PublishOptions, 'expected'>): Promise<PublishOutcome> {
  try {
    await publish(join(source, job.rel), join(dest, job.rel), { ...opts, expected: job.src });
    return COPIED;
  } catch (err) {
    if (err instanceof SourceGone) return { status: 'gone' };
    return { status: 'failed', code: errorCode(err), message: err instanceof Error ? err.message : String(err) };
  }
}
