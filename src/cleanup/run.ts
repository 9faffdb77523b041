/**
 * One cleanup run: check the source (orphan mode) and dest, take the lock, list, plan, then remove
 * each candidate through the delete guard, then the folders left empty. The source side is
 * `CleanupSource`, the choice `planCleanup`, the accounting `CleanupReport`; this class holds the
 * order of the steps and what only deletion needs (dest's real path, the guard).
 */
import { lstat, realpath } from 'node:fs/promises';
import type { CleanupConfig } from '../config/config.js';
import { canonical } from '../config/paths.js';
import { parentOf } from '../engine/local-dest.js';
import { walk, type Listing } from '../engine/walk.js';
import { DeleteGuard } from '../shared/delete-guard.js';
import { UploadSyncError, errorCode, errorMessage } from '../shared/errors.js';
import { acquireLock, type Release } from '../shared/lock.js';
import { createLog, formatBytes } from '../shared/log.js';
import type { CleanupResult } from '../shared/options.js';
import { planCleanup, type Candidate } from './plan.js';
import { CleanupReport, DAY_MS, formatAge, plural } from './report.js';
import { CleanupSource } from './source.js';

/**
 * A temp file of ours older than this was left by an interrupted sync. A running sync renames its
 * temp files within moments, and it holds the lock that cleanup takes, so it is never in the way.
 */
export const STALE_TEMP_MS = 60 * 60 * 1000;

export class CleanupRun {
  private readonly report: CleanupReport;
  private readonly source: CleanupSource;
  /** A file whose mtime is before this is old enough to go. */
  private readonly cutoffMs: number;
  private readonly tempCutoffMs: number;
  /** Made once dest is checked: every deletion goes through it. */
  private guard: DeleteGuard | null = null;

  constructor(
    private readonly config: CleanupConfig,
    private readonly signal: AbortSignal | undefined,
  ) {
    this.report = new CleanupReport(createLog('cleanup', config.logFile, config.logger), config, config.dryRun);
    this.source = new CleanupSource(config);
    const now = Date.now();
    // 0 days means every orphan: a file written this very millisecond (or stamped a little ahead of Date.now()) too.
    this.cutoffMs = config.olderThanDays === 0 ? Infinity : now - config.olderThanDays * DAY_MS;
    this.tempCutoffMs = now - STALE_TEMP_MS;
  }

  async run(): Promise<CleanupResult> {
    const { config, report, signal } = this;
    const { log } = report;
    const what = config.orphansOnly
      ? `orphans older than ${plural(config.olderThanDays, 'day')} (source ${config.source})`
      : `every file older than ${plural(config.olderThanDays, 'day')}, in the source or not`;
    const cap = Number.isFinite(config.maxDelete) ? `, at most ${plural(config.maxDelete, 'file')}` : '';
    log.info(`Cleanup started${config.dryRun ? ' (dry run)' : ''}: ${config.dest}: ${what}, stale temp files${cap}`);
    let release: Release | undefined;
    try {
      // Refuse before anything else: the lock, the walk of a big mirror.
      if (config.orphansOnly) await this.source.check();
      const destReal = await this.checkDest();
      if (destReal !== null) {
        this.stopIfAborted();
        if (!config.dryRun) {
          release = await acquireLock(config.lockDir, config.dest, config.lockTimeoutMs, {
            signal,
            onCompromised: (err) => log.warn(`Cleanup lock taken over by another process (${err.message}); finishing this run`),
            onWaited: (ms) => log.info(`Waited ${(ms / 1000).toFixed(1)} s for the sync lock (a full sync of this dest held it)`),
          });
        }
        this.guard = new DeleteGuard({
          source: config.source,
          sourceReal: canonical(config.source),
          dest: config.dest,
          destReal,
          extensions: config.extensions,
          dryRun: config.dryRun,
          maxDelete: config.maxDelete,
        });
        const dest = await walk(config.dest, '', { extensions: config.extensions, temps: true, signal });
        for (const e of dest.errors) report.fail(e.path, Object.assign(new Error(e.message), { code: e.code }));
        if (config.orphansOnly) await this.source.list(report);
        // A walk cut short by an abort is a partial listing: a source file left out of it would look orphaned.
        this.stopIfAborted();
        await this.source.removeDeadTemps(report, signal);
        await this.removeFiles(this.plan(dest));
        // Stopped: the folders this run emptied are left for the next one (cheap, and "stop" means stop).
        if (!signal?.aborted) await this.removeEmptyFolders(dest);
      } else {
        log.info(`Nothing to clean: dest ${config.dest} does not exist`);
      }
    } catch (err) {
      // An abort is not a failure of the run: what was removed before it counts (partial).
      if (errorCode(err) === 'ERR_ABORTED') report.fail('', err);
      else report.failRun(err);
    } finally {
      await release?.().catch((err) => log.warn(`Could not release the cleanup lock: ${errorMessage(err)}`));
    }
    return report.finish(signal?.aborted ?? false);
  }

  private stopIfAborted(): void {
    if (this.signal?.aborted) throw new UploadSyncError('ERR_ABORTED', 'Cleanup aborted; nothing more was removed');
  }

  /** Dest's real path, or `null` when there is no dest to clean; a dest that is a symlink or a file is refused (never followed). */
  private async checkDest(): Promise<string | null> {
    const { dest } = this.config;
    const st = await lstat(dest).catch((err) => (errorCode(err) === 'ENOENT' ? null : Promise.reject(err)));
    if (st === null) return null;
    if (st.isSymbolicLink()) throw new UploadSyncError('ERR_DEST_SYMLINK', `Dest ${dest} is a symlink; cleanup never follows one`, { path: dest });
    if (!st.isDirectory()) throw new UploadSyncError('ERR_TYPE_CONFLICT', `Dest ${dest} exists and is not a folder`, { path: dest });
    return realpath(dest);
  }

  private plan(dest: Listing): Candidate[] {
    const { source } = this;
    const wanted = this.config.orphansOnly ? (rel: string) => source.listing!.files.has(rel) || source.underUnreadable(rel) : null;
    const { candidates, kept } = planCleanup({ dest, wanted, cutoffMs: this.cutoffMs, tempCutoffMs: this.tempCutoffMs });
    this.report.keep(kept);
    return candidates;
  }

  private async removeFiles(candidates: Candidate[]): Promise<void> {
    const { report } = this;
    let i = 0;
    for (; i < candidates.length; i++) {
      if (this.signal?.aborted) return report.leave(candidates.length - i); // left in place for the next run
      const c = candidates[i]!;
      // The source folder must still be the one listed: one unmounted mid-run makes everything look orphaned.
      if (c.kind === 'orphan') await this.source.assertUnchanged();
      try {
        const removed = this.removeOne(c);
        if (removed === 'capped') break;
        if (removed === null) {
          report.keep();
          continue;
        }
        const what = c.kind === 'temp' ? 'stale temp file ' : c.kind === 'orphan' ? 'orphan ' : '';
        const verb = this.config.dryRun ? 'Would remove' : 'Removed';
        report.removed(c.rel, removed.size, `${verb} ${what}${c.rel} (${formatBytes(removed.size)}, ${formatAge(Date.now() - removed.mtimeMs)} old)`);
      } catch (err) {
        report.leave(1);
        report.fail(c.rel, err);
      }
    }
    const rest = candidates.slice(i);
    if (rest.length > 0) report.capped(rest.map((c) => c.rel), this.config.maxDelete);
  }

  /**
   * Removes one file through the delete guard, which checks it again, right now: still under dest
   * through no symlink, still a regular file, (orphans) still gone from the source; and, here, still
   * old. `'capped'` once `maxDelete` files went.
   * @returns what was removed, `null` when the file is no longer to be removed, or `'capped'`.
   */
  private removeOne(c: Candidate): { size: number; mtimeMs: number } | null | 'capped' {
    if (c.kind === 'orphan' && this.source.underUnreadable(c.rel)) return null;
    const guard = this.guard!;
    const cutoff = c.kind === 'temp' ? this.tempCutoffMs : this.cutoffMs;
    const outcome = guard.removeFile(c.rel, c.kind === 'orphan' ? 'exists' : 'never', {
      accept: (st) => st.mtimeMs < cutoff, // written to since the listing: not old any more
      anyName: c.kind === 'temp',
    });
    if (outcome === 'capped') return 'capped';
    if (outcome === 'kept') return null;
    const st = guard.removed!;
    return { size: st.size, mtimeMs: st.mtimeMs };
  }

  /**
   * Removes, deepest first, the folders left empty: those this run emptied and, in orphan mode, the
   * folders the source no longer has. A folder the source still has stays (a sync would make it
   * again), and so does dest itself. `rmdir` only removes an empty folder, so a folder holding
   * anything (a dotfile, a fresh temp file, a symlink) is kept.
   */
  private async removeEmptyFolders(dest: Listing): Promise<void> {
    if (this.config.dryRun) return;
    const { listing } = this.source;
    if (listing !== null) await this.source.assertUnchanged();
    const folders = new Set<string>();
    if (listing !== null) {
      for (const rel of dest.dirs.keys()) if (rel !== '' && !listing.dirs.has(rel) && !this.source.underUnreadable(rel)) folders.add(rel);
    }
    for (const rel of this.report.result.removed) {
      for (let dir = parentOf(rel); dir !== ''; dir = parentOf(dir)) folders.add(dir);
    }
    const deepestFirst = [...folders].sort((a, b) => b.split('/').length - a.split('/').length || (a < b ? -1 : 1));
    for (const rel of deepestFirst) {
      try {
        // Not empty, gone, or in the source still: kept quietly.
        if (this.guard!.removeEmptyFolder(rel)) this.report.log.info(`Removed empty folder ${rel}`);
      } catch (err) {
        this.report.fail(rel, err);
      }
    }
  }
}
