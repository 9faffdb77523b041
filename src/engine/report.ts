/**
 * The result of one run and its log lines: what the executor did, accounted as it happens. The
 * status is decided once, at the end: `ok` without errors; `failed` when the run as a whole failed
 * or nothing at all could be handled; else `partial`.
 */
import { performance } from 'node:perf_hooks';
import { adviceFor } from '../shared/advice.js';
import { errorCode, errorMessage, withCode } from '../shared/errors.js';
import { formatBytes, type RunLog } from '../shared/log.js';
import type { SyncErrorEntry, SyncProgress, SyncResult } from '../shared/options.js';
import type { CopyJob, Findings } from './plan-types.js';

/** Milliseconds since `since` (a `performance.now()`), to 0.01 ms. */
export const elapsed = (since: number) => Math.round((performance.now() - since) * 100) / 100;

export function emptyResult(dryRun: boolean): SyncResult {
  return { status: 'ok', dryRun, copied: [], updated: [], deleted: [], unchanged: 0, filtered: 0, errors: [], bytes: 0, durationMs: 0 };
}

/** An error result entry from anything thrown. */
export function toEntry(path: string, err: unknown): SyncErrorEntry {
  return { path, code: errorCode(err), message: errorMessage(err) };
}

export class Report {
  readonly result: SyncResult;
  /** Files left for later as too young (the watcher's reconcile syncs them once stable). */
  readonly young: string[] = [];
  private readonly started = performance.now();
  /** Paths handled without error but not in the lists: skipped by design, gone meanwhile. */
  private handled = 0;
  private fatal = false;
  private readonly progress: SyncProgress = { filesDone: 0, filesTotal: 0, bytesDone: 0, bytesTotal: 0 };

  constructor(
    private readonly log: RunLog,
    private readonly paths: { source: string; dest: string },
    dryRun: boolean,
    private readonly onProgress?: (progress: SyncProgress) => void,
  ) {
    this.result = emptyResult(dryRun);
  }

  /** What a comparison found besides its actions. */
  absorb(found: Findings): void {
    this.result.unchanged += found.unchanged;
    this.result.filtered += found.filtered;
    this.handled += found.skipped + found.filtered;
    for (const { rel, reason } of found.skippedLinks) this.log.warn(`Skipped symlink ${rel}: ${reason}`);
    for (const e of found.errors) this.fail(e.path, Object.assign(new Error(e.message), { code: e.code }));
    if (found.young.length > 0) {
      for (const rel of found.young) this.young.push(rel);
      this.handled += found.young.length;
      const shown = found.young.slice(0, 5).join(', ') + (found.young.length > 5 ? ` and ${found.young.length - 5} more` : '');
      // Not an event of its own: these files are copied (and told) once stable.
      this.log.debug(`Left ${found.young.length} file${found.young.length === 1 ? '' : 's'} for later, modified too recently (may still be written): ${shown}`);
    }
  }

  planned(jobs: readonly CopyJob[]): void {
    for (const job of jobs) {
      this.progress.filesTotal++;
      this.progress.bytesTotal += job.src.size;
    }
    this.report();
  }

  copied(job: CopyJob): void {
    (job.update ? this.result.updated : this.result.copied).push(job.rel);
    this.result.bytes += job.src.size;
    if (this.log.verbose) this.log.info(`${this.result.dryRun ? (job.update ? 'Would update' : 'Would copy') : job.update ? 'Updated' : 'Copied'} ${job.rel} (${formatBytes(job.src.size)})`);
    this.done(job);
  }

  gone(job: CopyJob): void {
    this.handled++;
    this.log.info(`Skipped ${job.rel}: removed from the source during the sync`);
    this.done(job);
  }

  copyFailed(job: CopyJob, err: unknown): void {
    this.fail(job.rel, err);
    this.done(job);
  }

  deleted(rel: string): void {
    this.result.deleted.push(rel);
    this.log.info(`${this.result.dryRun ? 'Would delete' : 'Deleted'} ${rel}`);
  }

  note(message: string): void {
    this.log.info(message);
  }

  warn(message: string): void {
    this.log.warn(message);
  }

  /** A path (or the run, `''`) that failed; permission errors, a full or read-only disk carry what to do (one line). */
  fail(path: string, err: unknown): void {
    const entry = toEntry(path, err);
    const advice = adviceFor(entry.code, entry.message, this.paths.source, this.paths.dest);
    if (advice !== null) entry.message = `${entry.message} (${advice})`;
    this.result.errors.push(entry);
    this.log.error(`${path === '' ? 'Sync failed' : `Failed ${path}`}: ${withCode(entry.code, entry.message)}`);
  }

  /** The run as a whole failed: status `failed` whatever else was done. */
  failRun(err: unknown): void {
    this.fatal = true;
    this.fail('', err);
  }

  async finish(aborted: boolean): Promise<SyncResult> {
    const r = this.result;
    if (aborted && !r.errors.some((e) => e.code === 'ERR_ABORTED')) {
      r.errors.push({ path: '', code: 'ERR_ABORTED', message: 'Sync aborted; files not yet started were left for the next run' });
    }
    r.copied.sort();
    r.updated.sort();
    r.deleted.sort();
    r.errors.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
    const handled = this.handled + r.unchanged + r.copied.length + r.updated.length + r.deleted.length;
    r.status = r.errors.length === 0 ? 'ok' : this.fatal || handled === 0 ? 'failed' : 'partial';
    r.durationMs = elapsed(this.started);
    const summary = `Sync ${r.status}${r.dryRun ? ' (dry run)' : ''}: ${r.copied.length} copied, ${r.updated.length} updated, ${r.deleted.length} deleted, ${r.unchanged} unchanged, ${r.filtered > 0 ? `${r.filtered} left out by the extension filter, ` : ''}${r.errors.length} error${r.errors.length === 1 ? '' : 's'}, ${formatBytes(r.bytes)} in ${Math.round(r.durationMs)} ms`;
    // A run that changed nothing and told nothing (an upload the route had synced already, a
    // reconcile of a mirror in sync) is left to DEBUG: the log file says what happened, not what did not.
    const changed = r.copied.length + r.updated.length + r.deleted.length > 0;
    if (r.status === 'ok' && !changed && !this.log.told) this.log.debug(summary);
    else if (r.status === 'ok') this.log.info(summary);
    else this.log.error(summary);
    await this.log.flush();
    return r;
  }

  private done(job: CopyJob): void {
    this.progress.filesDone++;
    this.progress.bytesDone += job.src.size;
    this.report();
  }

  private report(): void {
    try {
      this.onProgress?.({ ...this.progress });
    } catch {
      // A progress bar that throws must not break a sync.
    }
  }
}
