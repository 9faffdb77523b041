/**
 * The executor of a push: puts each file (its mtime in `x-amz-meta-mtime`, its content type from
 * the extension), `concurrency` at a time: a file under 1 MiB with the lean PUT of src/store/lean.ts
 * where the store allows it (a quarter of the SDK's CPU per request: most of an initial push), any
 * other with `S3Store.put` (streamed, multipart past a part). Deletes go through the bucket guard in
 * batches. A file that changes while it is read is never written torn: its size and mtime are
 * checked after the last byte is read and before the object is completed (a single PutObject is
 * not sent; a multipart upload is aborted), then it is read again (3 tries, as on disk).
 */
import { closeSync, openSync, readSync, statSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import type { CopyJob, FileInfo } from '../engine/plan-types.js';
import type { Report } from '../engine/report.js';
import { fileInfo } from '../engine/walk.js';
import { contentTypeOf } from '../next/mime.js';
import { UploadSyncError, errorCode } from '../shared/errors.js';
import type { PutSmallFn } from '../store/lean.js';
import type { S3Store } from '../store/s3-store.js';
import { executeBatches } from './execute.js';
import type { BucketGuard } from './guard.js';
import type { BucketBatch } from './plan.js';

const ATTEMPTS = 3;
const RETRY_PAUSE_MS = 50;
/** Files up to this size are read in one synchronous read: most uploads of a tree, and a promise per read costs more than the read. */
const SMALL = 1 << 20;
const CHUNK = 1 << 20;

export interface PushDeps {
  store: S3Store;
  /** The lean PUT of src/store/lean.ts for files under 1 MiB; `null`: every file through `S3Store.put`. */
  putSmall: PutSmallFn | null;
  source: string;
  guard: BucketGuard;
  report: Report;
  concurrency: number;
  dryRun: boolean;
  signal: AbortSignal | undefined;
}

export async function executePush(d: PushDeps, batches: AsyncIterable<BucketBatch>): Promise<void> {
  const side = { report: d.report, concurrency: d.concurrency, dryRun: d.dryRun, signal: d.signal };
  await executeBatches({ ...side, remove: (rel) => admit(d, rel), transfer: (job) => putFile(d, job) }, batches);
  await flush(d);
}

async function admit(d: PushDeps, rel: string): Promise<void> {
  try {
    const outcome = d.guard.admit(rel);
    if (outcome === 'capped') d.report.fail(rel, new UploadSyncError('ERR_MAX_DELETE', 'Not deleted: the run reached its cap of deletions (maxDelete)'));
  } catch (err) {
    d.report.fail(rel, err);
  }
  if (d.guard.full) await flush(d);
}

async function flush(d: PushDeps): Promise<void> {
  try {
    const { deleted, errors } = await d.guard.flush(d.signal);
    for (const rel of deleted) d.report.deleted(rel);
    for (const e of errors) d.report.fail(e.path, Object.assign(new Error(e.message), { code: e.code }));
  } catch (err) {
    d.report.fail('', err); // a whole DeleteObjects request failed: the run says so, the objects stay
  }
}

/** Puts one file; never throws: the report says how it went. */
async function putFile(d: PushDeps, job: CopyJob): Promise<void> {
  const abs = join(d.source, job.rel);
  let expected = job.src;
  for (let attempt = 1; ; attempt++) {
    try {
      const contentType = contentTypeOf(job.rel);
      if (d.putSmall !== null && expected.size < SMALL) await d.putSmall(job.rel, readWhole(abs, expected), { mtimeMs: expected.mtimeMs, contentType, signal: d.signal });
      else await d.store.put(job.rel, fileBytes(abs, expected), { mtimeMs: expected.mtimeMs, size: expected.size, contentType, signal: d.signal });
      job.src = expected;
      d.report.copied(job);
      return;
    } catch (err) {
      if (errorCode(err) === 'ENOENT' || errorCode(err) === 'ENOTDIR') return d.report.gone(job);
      if (errorCode(err) !== 'ERR_CHANGED' || attempt >= ATTEMPTS) return d.report.copyFailed(job, err);
      await delay(RETRY_PAUSE_MS * attempt);
      const st = statSync(abs, { throwIfNoEntry: false });
      if (st === undefined) return d.report.gone(job);
      expected = fileInfo(st);
    }
  }
}

/** A small file's bytes, read whole, then checked as `fileBytes` checks them (before anything is sent). */
function readWhole(abs: string, expected: FileInfo): Buffer {
  const fd = openSync(abs, 'r');
  let buffer: Buffer;
  let read: number;
  try {
    buffer = Buffer.allocUnsafe(expected.size + 1); // one byte more tells a grown file
    read = readSync(fd, buffer, 0, buffer.length, 0);
  } finally {
    closeSync(fd);
  }
  checkUnchanged(abs, expected, read);
  return buffer.subarray(0, read);
}

function checkUnchanged(abs: string, expected: FileInfo, read: number): void {
  const after = statSync(abs);
  if (read !== expected.size || after.size !== expected.size || after.mtimeMs !== expected.mtimeMs) {
    throw new UploadSyncError('ERR_CHANGED', `${abs} changed while it was read; it will be pushed once it is stable`, { path: abs });
  }
}

/**
 * The bytes of `abs` as the run saw it (`expected`): after the last byte, the file must still have
 * that size and mtime, and have given exactly that many bytes, or the body ends in `ERR_CHANGED`,
 * before `put` sends or completes anything.
 */
async function* fileBytes(abs: string, expected: FileInfo): AsyncGenerator<Uint8Array> {
  let read = 0;
  if (expected.size < SMALL) {
    const fd = openSync(abs, 'r');
    try {
      const buffer = Buffer.allocUnsafe(expected.size + 1); // one byte more tells a grown file
      read = readSync(fd, buffer, 0, buffer.length, 0);
      if (read > 0) yield buffer.subarray(0, read);
    } finally {
      closeSync(fd);
    }
  } else {
    const handle = await open(abs, 'r');
    try {
      const buffer = Buffer.allocUnsafe(CHUNK); // the store copies each chunk into its part before asking for the next
      while (read <= expected.size) {
        const { bytesRead } = await handle.read(buffer, 0, buffer.length, read);
        if (bytesRead === 0) break;
        read += bytesRead;
        yield buffer.subarray(0, bytesRead);
      }
    } finally {
      await handle.close();
    }
  }
  checkUnchanged(abs, expected, read);
}
