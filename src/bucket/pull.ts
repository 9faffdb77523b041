/**
 * The executor of a pull: fetches each object into dest as the engine publishes a file (a hidden
 * temp name of publish.ts beside the target, the object's mtime set on it, then a rename), so a
 * reader never sees a partial file and an interrupted pull leaves none (the temp file is removed;
 * one of a killed process is removed by the next run, by the engine's dead-pid rule). Local
 * deletions go through the engine's `DeleteGuard`; folders left empty are removed at the end.
 */
import { closeSync, createWriteStream, mkdirSync, openSync, realpathSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { chmod, utimes } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { CopyJob } from '../engine/plan-types.js';
import { deadTempOwner, tempPathFor, timeArg } from '../engine/publish.js';
import type { Report } from '../engine/report.js';
import type { DeleteGuard } from '../shared/delete-guard.js';
import { UploadSyncError, errorCode } from '../shared/errors.js';
import { parseMtime } from '../store/keys.js';
import type { GetFn } from '../store/lean.js';
import { executeBatches } from './execute.js';
import { objectInfo, type BucketBatch } from './plan.js';
import type { PullLeftovers } from './plan-pull.js';

export interface PullDeps {
  /** The lean GET of src/store/lean.ts, or `S3Store.get`. */
  get: GetFn;
  dest: string;
  destReal: string;
  guard: DeleteGuard;
  report: Report;
  concurrency: number;
  fileMode: number | null;
  dirMode: number | null;
  dryRun: boolean;
  signal: AbortSignal | undefined;
  /** Folders of dest made and checked in this run. */
  checked: Set<string>;
}

export async function executePull(d: PullDeps, batches: AsyncIterable<BucketBatch>, leftovers: PullLeftovers): Promise<void> {
  const side = { report: d.report, concurrency: d.concurrency, dryRun: d.dryRun, signal: d.signal };
  await executeBatches(
    {
      ...side,
      found: (found) => {
        if (!d.dryRun) removeDeadTemps(d, found.temps);
      },
      remove: (rel) => remove(d, rel),
      transfer: (job) => getObject(d, job),
    },
    batches,
  );
  if (d.signal?.aborted) return;
  // Deepest first, so a folder emptied by the removal of its subfolders goes too.
  for (const rel of [...leftovers.prune].sort((a, b) => b.split('/').length - a.split('/').length)) {
    try {
      if (d.guard.removeEmptyFolder(rel, 'never')) d.report.note(`${d.dryRun ? 'Would remove' : 'Removed'} empty folder ${rel}`);
    } catch (err) {
      d.report.fail(rel, err);
    }
  }
}

function remove(d: PullDeps, rel: string): void {
  try {
    // 'never': the source is the bucket, whose listing said the object is gone.
    const outcome = d.guard.removeFile(rel, 'never');
    if (outcome === 'removed') d.report.deleted(rel);
    else if (outcome === 'capped') d.report.fail(rel, new UploadSyncError('ERR_MAX_DELETE', 'Not deleted: the run reached its cap of deletions (maxDelete)'));
  } catch (err) {
    d.report.fail(rel, err);
  }
}

function removeDeadTemps(d: PullDeps, rels: readonly string[]): void {
  for (const rel of rels) {
    const pid = deadTempOwner(rel.slice(rel.lastIndexOf('/') + 1));
    if (pid === null) continue;
    try {
      unlinkSync(join(d.dest, rel));
      d.report.note(`Removed ${rel}, a temp file of a sync that died (pid ${pid})`);
    } catch {
      // gone meanwhile
    }
  }
}

/**
 * The folder of `rel` in dest, made if missing (`dirMode`, else the umask's), and checked to be
 * where it should be: no folder on the way is a symlink (a pull never writes through one).
 */
function folderOf(d: PullDeps, rel: string): string {
  const parent = dirname(join(d.dest, rel));
  // Once per folder and run: a mkdir and a realpath per object were most of a pull's system time.
  if (d.checked.has(parent)) return parent;
  mkdirSync(parent, { recursive: true, ...(d.dirMode === null ? {} : { mode: d.dirMode }) });
  const at = dirname(rel);
  const expected = at === '.' ? d.destReal : join(d.destReal, at);
  const real = realpathSync.native(parent);
  if (real !== expected) throw new UploadSyncError('ERR_DEST_SYMLINK', `A folder on the way to ${rel} is a symlink (to ${real}); a pull never writes through one`, { path: parent });
  d.checked.add(parent);
  return parent;
}

/** Objects under this size are read into memory and written in one call. */
const SMALL = 1 << 20;

/** Writes all of `bytes` into the new file `path` (a short write is never taken as complete). */
function writeNew(path: string, bytes: Buffer, mode: number): void {
  const fd = openSync(path, 'wx', mode);
  try {
    let done = 0;
    while (done < bytes.length) {
      const n = writeSync(fd, bytes, done, bytes.length - done);
      if (n <= 0) throw Object.assign(new Error(`ENOSPC: no space left on device, write '${path}' (a write made no progress)`), { code: 'ENOSPC' });
      done += n;
    }
  } finally {
    closeSync(fd);
  }
}

/** Fetches one object into dest, atomically; never throws: the report says how it went. */
async function getObject(d: PullDeps, job: CopyJob): Promise<void> {
  let tmp: string | null = null;
  try {
    const parent = folderOf(d, job.rel);
    const target = join(parent, job.rel.slice(job.rel.lastIndexOf('/') + 1));
    const got = await d.get(job.rel, { signal: d.signal });
    if (got.status === 404 || got.body === null) {
      got.body?.destroy();
      return got.status === 404 ? d.report.gone(job) : d.report.copyFailed(job, new UploadSyncError('ERR_STORE', `GET ${job.rel}: HTTP ${got.status}`));
    }
    const size = Number(got.headers['content-length']);
    tmp = tempPathFor(target);
    let bytes = 0;
    if (size < SMALL) {
      // A small object in one write: a stream pipeline per file cost more than the bytes.
      const chunks: Buffer[] = [];
      for await (const chunk of got.body) {
        chunks.push(chunk as Buffer);
        bytes += (chunk as Buffer).length;
      }
      writeNew(tmp, Buffer.concat(chunks, bytes), d.fileMode ?? 0o666);
    } else {
      const count = new Transform({
        transform(chunk: Buffer, _enc, done) {
          bytes += chunk.length;
          done(null, chunk);
        },
      });
      await pipeline(got.body, count, createWriteStream(tmp, { flags: 'wx', mode: d.fileMode ?? 0o666 }), { signal: d.signal });
    }
    if (Number.isFinite(size) && bytes !== size) {
      throw Object.assign(new Error(`EIO: ${bytes} of the object's ${size} bytes arrived; not published`), { code: 'EIO' });
    }
    if (d.fileMode !== null) await chmod(tmp, d.fileMode); // the umask narrowed the open's mode
    const lastModified = Date.parse(got.headers['last-modified'] ?? '');
    const mtimeMs = parseMtime(got.headers['x-amz-meta-mtime']) ?? (Number.isFinite(lastModified) ? lastModified : Date.now());
    await utimes(tmp, timeArg(Date.now()), timeArg(mtimeMs));
    renameSync(tmp, target);
    tmp = null;
    job.src = objectInfo(bytes, mtimeMs);
    d.report.copied(job);
  } catch (err) {
    if (d.signal?.aborted && errorCode(err) === 'ABORT_ERR') return d.report.copyFailed(job, new UploadSyncError('ERR_ABORTED', 'Aborted while it was fetched; nothing was left'));
    d.report.copyFailed(job, err);
  } finally {
    if (tmp !== null) {
      try {
        unlinkSync(tmp);
      } catch {
        // never created
      }
    }
  }
}
