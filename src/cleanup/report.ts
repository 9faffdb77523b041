/**
 * The result of one cleanup and its log lines, accounted as the run goes. The status is decided
 * once, at the end: `ok` without errors; `failed` when the run as a whole failed or nothing at all
 * could be handled; else `partial`.
 */
import { performance } from 'node:perf_hooks';
import { elapsed, toEntry } from '../engine/report.js';
import { permissionAdvice } from '../shared/advice.js';
import { withCode } from '../shared/errors.js';
import { formatBytes, type RunLog } from '../shared/log.js';
import type { CleanupResult } from '../shared/options.js';

export const DAY_MS = 24 * 60 * 60 * 1000;

export const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;

/** `3 h`, `45 days`: the age of a removed file, for the log. */
export const formatAge = (ms: number) => (ms < DAY_MS ? `${Math.floor(ms / 3_600_000)} h` : plural(Math.floor(ms / DAY_MS), 'day'));

export function emptyCleanupResult(dryRun: boolean): CleanupResult {
  return { status: 'ok', dryRun, removed: [], removedFromSource: [], kept: 0, bytesFreed: 0, errors: [], durationMs: 0 };
}

export class CleanupReport {
  readonly result: CleanupResult;
  private readonly started = performance.now();
  /** Files looked at without error (kept or removed): decides `partial` vs `failed`. */
  private handled = 0;
  private fatal = false;

  constructor(
    readonly log: RunLog,
    private readonly paths: { source: string; dest: string },
    dryRun: boolean,
  ) {
    this.result = emptyCleanupResult(dryRun);
  }

  /** Files looked at and left in place. */
  keep(count = 1): void {
    this.result.kept += count;
    this.handled += count;
  }

  /** Files left in place without a look (the run stopped before them). */
  leave(count: number): void {
    this.result.kept += count;
  }

  /** A file of dest removed (or that would be, in a dry run); `line` says what it was, for the log. */
  removed(rel: string, size: number, line: string): void {
    this.handled++;
    this.result.removed.push(rel);
    this.result.bytesFreed += size;
    this.log.info(line);
  }

  /** A temp file of a dead upload removed from the source. */
  removedFromSource(rel: string, size: number, line: string): void {
    this.handled++;
    this.result.removedFromSource.push(rel);
    this.result.bytesFreed += size;
    this.log.info(line);
  }

  /** A path (or the run, `''`) that failed; a permission error carries what to do. */
  fail(path: string, err: unknown): void {
    const entry = toEntry(path, err);
    const advice = permissionAdvice(entry.code, entry.message, this.paths.source, this.paths.dest);
    if (advice !== null) entry.message = `${entry.message} (${advice})`;
    this.result.errors.push(entry);
    this.log.error(`${path === '' ? 'Cleanup failed' : `Failed ${path}`}: ${withCode(entry.code, entry.message)}`);
  }

  /** The run as a whole failed: status `failed` whatever else was done. */
  failRun(err: unknown): void {
    this.fatal = true;
    this.fail('', err);
  }

  /** Files not removed because the run reached `maxDelete`: kept, each an error saying a later run removes it. */
  capped(rels: readonly string[], maxDelete: number): void {
    this.result.kept += rels.length;
    for (const rel of rels) {
      this.result.errors.push({ path: rel, code: 'ERR_MAX_DELETE', message: `Not removed: this run stopped at maxDelete (${maxDelete}); a later run removes it` });
    }
    this.log.error(`Stopped at maxDelete (${maxDelete}): ${plural(rels.length, 'more file')} left for a later run (first: ${rels[0]})`);
  }

  async finish(aborted: boolean): Promise<CleanupResult> {
    const r = this.result;
    if (aborted && !r.errors.some((e) => e.code === 'ERR_ABORTED')) {
      r.errors.push({ path: '', code: 'ERR_ABORTED', message: 'Cleanup aborted; what was not yet removed is left for the next run' });
    }
    r.removed.sort();
    r.errors.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
    r.status = r.errors.length === 0 ? 'ok' : this.fatal || this.handled === 0 ? 'failed' : 'partial';
    r.durationMs = elapsed(this.started);
    const summary = `Cleanup ${r.status}${r.dryRun ? ' (dry run)' : ''}: ${r.removed.length} removed (${formatBytes(r.bytesFreed)}), ${r.kept} kept, ${plural(r.errors.length, 'error')} in ${Math.round(r.durationMs)} ms`;
    if (r.status === 'ok') this.log.info(summary);
    else this.log.error(summary);
    await this.log.flush();
    return r;
  }
}
