import { lstatSync, realpathSync, unlinkSync } from 'node:fs';
import { lstat, realpath, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { permissionAdvice } from '../shared/advice.js';
import { resolveCleanupConfig, type CleanupConfig } from '../config/config.js';
import { UploadSyncError, errorCode, errorMessage, withCode } from '../shared/errors.js';
import { acquireLock, type Release } from '../shared/lock.js';
import { createLog, formatBytes, type RunLog } from '../shared/log.js';
import type { CleanupOptions, CleanupResult } from '../shared/options.js';
import { elapsed, parentOf, toEntry } from '../engine/sync.js';
import { walk, type Listing } from '../engine/walk.js';
import { canonical, isInside } from '../config/paths.js';
import { deadTempOwner } from '../engine/publish.js';
import { DeleteGuard } from '../shared/delete-guard.js';

/**
 * A temp file of ours older than this was left by an interrupted sync. A running sync renames its
 * temp files within moments, and it holds the lock that cleanup takes, so it is never in the way.
 */
export const STALE_TEMP_MS = 60 * 60 * 1000;
const DAY_MS = 24 * 60 * 60 * 1000;

/**
 * Removes from dest what no longer belongs there: orphans (files whose source is gone) older than
 * `olderThanDays`, or, with `orphansOnly: false`, every file that old; our temp files left by an
 * interrupted sync (older than an hour); then folders left empty (never dest itself). In the
 * source, only our temp files whose writer died (an upload killed mid-write).
 *
 * Safe first: it refuses orphan cleanup when the source is missing or holds no syncable file (an
 * unmounted disk must not empty the mirror), never follows a symlink, only touches files the
 * extension filter allows, checks each path again at the moment of deletion, stops at `maxDelete`,
 * and takes the same cross-process lock as `syncUploads`. Never rejects.
 */
export async function cleanupOld(options: CleanupOptions = {}): Promise<CleanupResult> {
  const started = performance.now();
  let config: CleanupConfig;
  try {
    config = resolveCleanupConfig(options);
  } catch (err) {
    return { ...emptyResult(Boolean(options?.dryRun)), status: 'failed', errors: [toEntry('', err)], durationMs: elapsed(started) };
  }
  const signal = options?.signal;
  if (signal !== undefined && !(signal instanceof AbortSignal)) {
    const err = new UploadSyncError('ERR_CONFIG', 'Invalid option `signal`: expected an AbortSignal');
    return { ...emptyResult(config.dryRun), status: 'failed', errors: [toEntry('', err)], durationMs: elapsed(started) };
  }
  if (!config.enabled && !config.force) {
    createLog('cleanup', null, null).info('Cleanup disabled by the environment (set NODE_ENV=production or ENABLE_UPLOAD_SYNC=true, or pass force)');
    return { ...emptyResult(config.dryRun), status: 'disabled', durationMs: elapsed(started) };
  }
  return new CleanupRun(config, signal).run();
}

function emptyResult(dryRun: boolean): CleanupResult {
  return { status: 'ok', dryRun, removed: [], removedFromSource: [], kept: 0, bytesFreed: 0, errors: [], durationMs: 0 };
}

/** `temp`: a stale temp file of ours; `orphan`: its source is gone; `old`: old enough (`orphansOnly: false`). */
type Kind = 'temp' | 'orphan' | 'old';

interface Candidate {
  rel: string;
  kind: Kind;
}

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;

/** `3 h`, `45 days`: the age of a removed file, for the log. */
const formatAge = (ms: number) => (ms < DAY_MS ? `${Math.floor(ms / 3_600_000)} h` : plural(Math.floor(ms / DAY_MS), 'day'));

class CleanupRun {
  private readonly result: CleanupResult;
  private readonly log: RunLog;
  private readonly started = performance.now();
  /** A file whose mtime is before this is old enough to go. */
  private readonly cutoffMs: number;
  private readonly tempCutoffMs: number;
  /** Files looked at without error (kept or removed): decides `partial` vs `failed`. */
  private handled = 0;
  private fatal = false;
  /** Real path of dest: every deletion is checked to be under it, through no symlink. */
  private destReal = '';
  /** Orphan mode: the source as listed, and the identity of its folder (it must not change under us). */
  private source: Listing | null = null;
  private sourceId = '';

  constructor(
    private readonly config: CleanupConfig,
    private readonly signal: AbortSignal | undefined,
  ) {
    this.result = emptyResult(config.dryRun);
    this.log = createLog('cleanup', config.logFile, config.logger);
    const now = Date.now();
    // 0 days means every orphan: a file written this very millisecond (or stamped a little ahead of Date.now()) too.
    this.cutoffMs = config.olderThanDays === 0 ? Infinity : now - config.olderThanDays * DAY_MS;
    this.tempCutoffMs = now - STALE_TEMP_MS;
  }

  async run(): Promise<CleanupResult> {
    const { config, log } = this;
    const what = config.orphansOnly
      ? `orphans older than ${plural(config.olderThanDays, 'day')} (source ${config.source})`
      : `every file older than ${plural(config.olderThanDays, 'day')}, in the source or not`;
    const cap = Number.isFinite(config.maxDelete) ? `, at most ${plural(config.maxDelete, 'file')}` : '';
    log.info(`Cleanup started${config.dryRun ? ' (dry run)' : ''}: ${config.dest}: ${what}, stale temp files${cap}`);
    let release: Release | undefined;
    try {
      // Refuse before anything else: the lock, the walk of a big mirror.
      if (config.orphansOnly) await this.checkSource();
      if (await this.checkDest()) {
        const { signal } = this;
        this.stopIfAborted();
        if (!config.dryRun) {
          release = await acquireLock(config.lockDir, config.dest, config.lockTimeoutMs, {
            signal,
            onCompromised: (err) => log.warn(`Cleanup lock taken over by another process (${err.message}); finishing this run`),
            onWaited: (ms) => log.info(`Waited ${(ms / 1000).toFixed(1)} s for the sync lock (a full sync of this dest held it)`),
          });
        }
        const dest = await walk(config.dest, '', { extensions: config.extensions, temps: true, signal });
        for (const e of dest.errors) this.fail(e.path, Object.assign(new Error(e.message), { code: e.code }));
        if (config.orphansOnly) await this.listSource();
        // A walk cut short by an abort is a partial listing: a source file left out of it would look orphaned.
        this.stopIfAborted();
        await this.removeSourceTemps();
        await this.removeFiles(this.plan(dest));
        // Stopped: the folders this run emptied are left for the next one (cheap, and "stop" means stop).
        if (!signal?.aborted) await this.removeEmptyFolders(dest);
      } else {
        log.info(`Nothing to clean: dest ${config.dest} does not exist`);
      }
    } catch (err) {
      // An abort is not a failure of the run: what was removed before it counts (partial).
      if (errorCode(err) !== 'ERR_ABORTED') this.fatal = true;
      this.fail('', err);
    } finally {
      await release?.().catch((err) => log.warn(`Could not release the cleanup lock: ${errorMessage(err)}`));
    }
    return this.finish();
  }

  private stopIfAborted(): void {
    if (this.signal?.aborted) throw new UploadSyncError('ERR_ABORTED', 'Cleanup aborted; nothing more was removed');
  }

  private fail(path: string, err: unknown): void {
    const entry = toEntry(path, err);
    const advice = permissionAdvice(entry.code, entry.message, this.config.source, this.config.dest);
    if (advice !== null) entry.message = `${entry.message} (${advice})`;
    this.result.errors.push(entry);
    this.log.error(`${path === '' ? 'Cleanup failed' : `Failed ${path}`}: ${withCode(entry.code, entry.message)}`);
  }

  private async finish(): Promise<CleanupResult> {
    const r = this.result;
    if (this.signal?.aborted && !r.errors.some((e) => e.code === 'ERR_ABORTED')) {
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

  // -------------------------------------------------------------------------------------------
  // The two folders.

  private refuseSource(why: string): never {
    const { source } = this.config;
    throw new UploadSyncError(
      'ERR_SOURCE_EMPTY',
      `Source folder ${source} ${why}; refusing to remove orphans from dest (an unmounted or emptied source must not empty the mirror). Check UPLOAD_SYNC_SOURCE / \`source\``,
      { path: source },
    );
  }

  /** The source folder as it is now: `dev:ino`, or a refusal when it is missing. */
  private async sourceIdentity(): Promise<string> {
    const st = await stat(this.config.source).catch((err) => (['ENOENT', 'ENOTDIR'].includes(errorCode(err)) ? null : Promise.reject(err)));
    if (st === null) this.refuseSource('does not exist');
    if (!st.isDirectory()) this.refuseSource('is not a folder');
    return `${st.dev}:${st.ino}`;
  }

  private async checkSource(): Promise<void> {
    this.sourceId = await this.sourceIdentity();
  }

  private async listSource(): Promise<void> {
    const { config } = this;
    const sourceReal = await realpath(config.source);
    this.source = await walk(config.source, '', { extensions: config.extensions, sourceReal, temps: true });
    for (const e of this.source.errors) {
      this.fail(e.path, Object.assign(new Error(`In the source: ${e.message}; nothing under it is removed from dest`), { code: e.code }));
    }
    if (this.source.files.size === 0) this.refuseSource('holds no file that would be synced');
  }

  /** Whether there is a dest to clean; a dest that is a symlink or a file is refused (never followed). */
  private async checkDest(): Promise<boolean> {
    const { dest } = this.config;
    const st = await lstat(dest).catch((err) => (errorCode(err) === 'ENOENT' ? null : Promise.reject(err)));
    if (st === null) return false;
    if (st.isSymbolicLink()) throw new UploadSyncError('ERR_DEST_SYMLINK', `Dest ${dest} is a symlink; cleanup never follows one`, { path: dest });
    if (!st.isDirectory()) throw new UploadSyncError('ERR_TYPE_CONFLICT', `Dest ${dest} exists and is not a folder`, { path: dest });
    this.destReal = await realpath(dest);
    return true;
  }

  /** Whether nothing under `rel` may be judged an orphan: the source folder holding it could not be read. */
  private underUnreadable(rel: string): boolean {
    return this.source?.unreadable.some((dir) => dir === '' || rel === dir || rel.startsWith(`${dir}/`)) ?? false;
  }

  /**
   * Our temp files in the source whose writer died (an upload killed mid-write, `saveUpload`'s
   * `.upload-sync-<pid>-….tmp`): removed by the dead-pid rule of the sync (`deadTempOwner`),
   * checked again right before each unlink, as is the folder (still the real one under source).
   * Not counted by `maxDelete` (garbage, never an upload). A live process's temp file stays.
   */
  private async removeSourceTemps(): Promise<void> {
    const { config, log, result } = this;
    const listing = this.source ?? (await walk(config.source, '', { extensions: config.extensions, temps: true, signal: this.signal }).catch(() => null));
    if (listing === null || listing.temps.size === 0) return;
    let sourceReal: string;
    try {
      sourceReal = realpathSync(config.source);
    } catch {
      return; // gone since the walk
    }
    for (const rel of [...listing.temps.keys()].sort()) {
      const pid = deadTempOwner(basename(rel));
      if (pid === null) continue; // its upload is still being written (or the name is not one of ours)
      const abs = join(config.source, rel);
      try {
        const st = lstatSync(abs);
        const folder = realpathSync(dirname(abs));
        if (!st.isFile() || (folder !== sourceReal && !isInside(folder, sourceReal))) continue;
        if (!config.dryRun) unlinkSync(abs);
        this.handled++;
        result.removedFromSource.push(rel);
        result.bytesFreed += st.size;
        log.info(`${config.dryRun ? 'Would remove' : 'Removed'} ${rel} from the source, a temp file of an upload that died (pid ${pid}, ${formatBytes(st.size)})`);
      } catch (err) {
        if (errorCode(err) !== 'ENOENT') this.fail(rel, Object.assign(new Error(`In the source: ${errorMessage(err)}`), { code: errorCode(err) }));
      }
    }
  }

  // -------------------------------------------------------------------------------------------
  // Files.

  /** What would go, in order: stale temp files first (garbage whatever the cap), then the rest, each sorted. */
  private plan(dest: Listing): Candidate[] {
    const temps: Candidate[] = [];
    const files: Candidate[] = [];
    for (const [rel, info] of dest.temps) {
      if (info.mtimeMs < this.tempCutoffMs) temps.push({ rel, kind: 'temp' });
      else this.keep();
    }
    const kind: Kind = this.config.orphansOnly ? 'orphan' : 'old';
    for (const [rel, info] of dest.files) {
      const wanted = kind === 'orphan' && (this.source!.files.has(rel) || this.underUnreadable(rel));
      if (wanted || info.mtimeMs >= this.cutoffMs) this.keep();
      else files.push({ rel, kind });
    }
    const byPath = (a: Candidate, b: Candidate) => (a.rel < b.rel ? -1 : a.rel > b.rel ? 1 : 0);
    return [...temps.sort(byPath), ...files.sort(byPath)];
  }

  private keep(): void {
    this.result.kept++;
    this.handled++;
  }

  private async removeFiles(candidates: Candidate[]): Promise<void> {
    const { maxDelete, dryRun } = this.config;
    let i = 0;
    for (; i < candidates.length; i++) {
      if (this.signal?.aborted) {
        this.result.kept += candidates.length - i; // left in place for the next run
        return;
      }
      const c = candidates[i]!;
      // The source folder must still be the one listed: one unmounted mid-run makes everything look orphaned.
      if (c.kind === 'orphan' && (await this.sourceIdentity()) !== this.sourceId) this.refuseSource('changed during the cleanup');
      try {
        const removed = this.removeOne(c);
        if (removed === 'capped') break;
        if (removed === null) {
          this.keep();
          continue;
        }
        this.handled++;
        this.result.removed.push(c.rel);
        this.result.bytesFreed += removed.size;
        const what = c.kind === 'temp' ? 'stale temp file ' : c.kind === 'orphan' ? 'orphan ' : '';
        this.log.info(`${dryRun ? 'Would remove' : 'Removed'} ${what}${c.rel} (${formatBytes(removed.size)}, ${formatAge(Date.now() - removed.mtimeMs)} old)`);
      } catch (err) {
        this.result.kept++;
        this.fail(c.rel, err);
      }
    }
    const rest = candidates.slice(i);
    if (rest.length === 0) return;
    this.result.kept += rest.length;
    for (const c of rest) {
      this.result.errors.push({ path: c.rel, code: 'ERR_MAX_DELETE', message: `Not removed: this run stopped at maxDelete (${maxDelete}); a later run removes it` });
    }
    this.log.error(`Stopped at maxDelete (${maxDelete}): ${plural(rest.length, 'more file')} left for a later run (first: ${rest[0]!.rel})`);
  }

  /**
   * Removes one file through the delete guard, which checks it again, right now: still under dest
   * through no symlink, still a regular file, (orphans) still gone from the source; and, here, still
   * old. `'capped'` once `maxDelete` files went.
   * @returns what was removed, `null` when the file is no longer to be removed, or `'capped'`.
   */
  private removeOne(c: Candidate): { size: number; mtimeMs: number } | null | 'capped' {
    if (c.kind === 'orphan' && this.underUnreadable(c.rel)) return null;
    const cutoff = c.kind === 'temp' ? this.tempCutoffMs : this.cutoffMs;
    const outcome = this.guard().removeFile(c.rel, c.kind === 'orphan' ? 'exists' : 'never', {
      accept: (st) => st.mtimeMs < cutoff, // written to since the listing: not old any more
      anyName: c.kind === 'temp',
    });
    if (outcome === 'capped') return 'capped';
    if (outcome === 'kept') return null;
    const st = this.guard().removed!;
    return { size: st.size, mtimeMs: st.mtimeMs };
  }

  private deleteGuard: DeleteGuard | null = null;

  /** The one delete guard of the library (sync's `delete` uses it too), made once dest and source are checked. */
  private guard(): DeleteGuard {
    const { config } = this;
    this.deleteGuard ??= new DeleteGuard({
      source: config.source,
      sourceReal: canonical(config.source),
      dest: config.dest,
      destReal: this.destReal,
      extensions: config.extensions,
      dryRun: config.dryRun,
      maxDelete: config.maxDelete,
    });
    return this.deleteGuard;
  }

  // -------------------------------------------------------------------------------------------
  // Folders.

  /**
   * Removes, deepest first, the folders left empty: those this run emptied and, in orphan mode, the
   * folders the source no longer has. A folder the source still has stays (a sync would make it
   * again), and so does dest itself. `rmdir` only removes an empty folder, so a folder holding
   * anything (a dotfile, a fresh temp file, a symlink) is kept.
   */
  private async removeEmptyFolders(dest: Listing): Promise<void> {
    if (this.config.dryRun) return;
    if (this.source !== null && (await this.sourceIdentity()) !== this.sourceId) this.refuseSource('changed during the cleanup');
    const folders = new Set<string>();
    if (this.source !== null) {
      for (const rel of dest.dirs.keys()) if (rel !== '' && !this.source.dirs.has(rel) && !this.underUnreadable(rel)) folders.add(rel);
    }
    for (const rel of this.result.removed) {
      for (let dir = parentOf(rel); dir !== ''; dir = parentOf(dir)) folders.add(dir);
    }
    const deepestFirst = [...folders].sort((a, b) => b.split('/').length - a.split('/').length || (a < b ? -1 : 1));
    for (const rel of deepestFirst) {
      try {
        // Not empty, gone, or in the source still: kept quietly.
        if (this.guard().removeEmptyFolder(rel)) this.log.info(`Removed empty folder ${rel}`);
      } catch (err) {
        this.fail(rel, err);
      }
    }
  }
}
