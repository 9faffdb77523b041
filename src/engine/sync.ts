import { chmod, lstat, mkdir, realpath, rmdir, stat, unlink } from 'node:fs/promises';
import { chmodSync, lstatSync, mkdirSync, statSync } from 'node:fs';
import { basename, dirname, isAbsolute, join, relative, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { isCurrent } from './compare.js';
import { resolveSyncConfig, type SyncConfig } from '../config/config.js';
import { canonical, isInside } from '../config/paths.js';
import { UploadSyncError, errorCode, errorMessage } from '../shared/errors.js';
import { isSyncablePath, toPosix } from '../shared/filter.js';
import { acquireLock, type Release } from '../shared/lock.js';
import { createLog, formatBytes, type RunLog } from '../shared/log.js';
import type { SyncErrorEntry, SyncOptions, SyncProgress, SyncResult } from '../shared/options.js';
import { SourceGone, isAlive, publish, tempOwnerPid } from './publish.js';
import { permissionAdvice } from '../shared/advice.js';
import { diffTrees, type Diff } from './diff.js';
import { createRunHelper, type CopyOutcome, type RunHelper, type WorkerData } from './threads.js';
import { fileInfo, type FileInfo } from './walk.js';

/**
 * Mirrors the canonical uploads folder into the standalone output: the whole tree, or only
 * `files` (targeted). Never rejects: every failure is in the result.
 *
 * Calls in one process coalesce: a call made while a run for the same dest is going is served by
 * one follow-up run (targeted calls merge their lists). Runs across processes are serialized by a
 * lock file outside the public folders.
 */
export async function syncUploads(options: SyncOptions = {}): Promise<SyncResult> {
  const started = performance.now();
  let config: SyncConfig;
  let request: SyncRequest;
  try {
    config = resolveSyncConfig(options);
    request = { files: validateFiles(options.files), signal: options.signal, onProgress: options.onProgress };
    if (options.signal !== undefined && !(options.signal instanceof AbortSignal)) {
      throw new UploadSyncError('ERR_CONFIG', 'Invalid option `signal`: expected an AbortSignal');
    }
    if (options.onProgress !== undefined && typeof options.onProgress !== 'function') {
      throw new UploadSyncError('ERR_CONFIG', `Invalid option \`onProgress\`: expected a function, got ${typeof options.onProgress}`);
    }
  } catch (err) {
    return { ...emptyResult(Boolean(options?.dryRun)), status: 'failed', errors: [toEntry('', err)], durationMs: elapsed(started) };
  }
  return runSync(config, request);
}

/** What one sync is asked to do besides its configuration. */
export interface SyncRequest {
  /** Targeted: only these paths (source-relative, or absolute inside source). `null`/absent: the whole tree. */
  files?: readonly unknown[] | null;
  signal?: AbortSignal | undefined;
  onProgress?: ((progress: SyncProgress) => void) | undefined;
}

/**
 * Internal entry (the watcher, `saveUpload`): a sync with a configuration resolved once by the
 * caller. Follows the enable rule (`force` in the config overrides it). Never rejects.
 */
export function runSync(config: SyncConfig, request: SyncRequest = {}): Promise<SyncResult> {
  return start(config, request, null);
}

/**
 * Internal (the watcher's reconcile; not exported by the package): a full run that leaves out the
 * files modified after `newerThan` (epoch ms), which may still be written, and hands them back as
 * `young` (source-relative) for the caller to sync once they are stable. Young files are neither
 * errors nor copies. The run is its own: no other call merges with it, nor it with another.
 */
export async function syncSettled(config: SyncConfig, newerThan: number, signal?: AbortSignal): Promise<{ result: SyncResult; young: string[] }> {
  const leave: LeaveYoung = { newerThan, young: [] };
  const result = await start(config, { signal }, leave);
  return { result, young: leave.young };
}

/** What `syncSettled` asks of a run: files modified after `newerThan` are left, and listed in `young`. */
interface LeaveYoung {
  newerThan: number;
  young: string[];
}

async function start(config: SyncConfig, request: SyncRequest, leave: LeaveYoung | null): Promise<SyncResult> {
  const started = performance.now();
  if (!config.enabled && !config.force) {
    createLog('sync', null, null).info('Sync disabled by the environment (set NODE_ENV=production or ENABLE_UPLOAD_SYNC=true, or pass force)');
    return { ...emptyResult(config.dryRun), status: 'disabled', durationMs: elapsed(started) };
  }
  return schedule(config, request.files ? [...request.files] as string[] : null, request.signal, request.onProgress, leave);
}

function validateFiles(files: unknown): string[] | null {
  if (files === undefined) return null;
  if (!Array.isArray(files)) throw new UploadSyncError('ERR_CONFIG', `Invalid option \`files\`: expected an array of paths, got ${typeof files}`);
  return files as string[];
}

// ---------------------------------------------------------------------------------------------
// Coalescing: one queue per dest in this process.

interface Pending {
  key: string;
  config: SyncConfig;
  /** `null`: a full run. */
  files: Set<unknown> | null;
  signal: AbortSignal | undefined;
  onProgress: ProgressFn | undefined;
  leave: LeaveYoung | null;
  promise: Promise<SyncResult>;
  resolve: (result: SyncResult) => void;
}

interface Queue {
  running: boolean;
  waiting: Pending[];
}

const queues = new Map<string, Queue>();

/** Everything that changes what a run does, but the file list. Runs with equal keys can merge. */
function runKey(c: SyncConfig): string {
  return JSON.stringify([c.source, c.dest, c.extensions && [...c.extensions], c.strategy, c.delete, c.dryRun, c.fileMode, c.dirMode, c.concurrency, c.logFile, c.lockDir, c.lockTimeoutMs]);
}

type ProgressFn = (progress: SyncProgress) => void;

function schedule(config: SyncConfig, files: string[] | null, signal: AbortSignal | undefined, onProgress: ProgressFn | undefined, leave: LeaveYoung | null): Promise<SyncResult> {
  // Keyed by dest's real path: two spellings of one folder share a queue (as they share the lock).
  const destKey = canonical(config.dest);
  let queue = queues.get(destKey);
  if (!queue) queues.set(destKey, (queue = { running: false, waiting: [] }));
  const key = runKey(config);
  const last = queue.waiting[queue.waiting.length - 1];
  // A caller with its own signal, logger or progress callback keeps its own run, so nothing crosses
  // callers; so does a run that leaves young files (a plain call must copy them, and it must not).
  const own = signal !== undefined || onProgress !== undefined || leave !== null;
  if (last && last.key === key && last.config.logger === config.logger && last.signal === undefined && last.onProgress === undefined && last.leave === null && !own) {
    if (files === null) last.files = null;
    else if (last.files !== null) for (const f of files) last.files.add(f);
    return last.promise;
  }
  let resolvePending!: (r: SyncResult) => void;
  const promise = new Promise<SyncResult>((r) => (resolvePending = r));
  queue.waiting.push({ key, config, files: files && new Set(files), signal, onProgress, leave, promise, resolve: resolvePending });
  if (!queue.running) void drain(destKey, queue);
  return promise;
}

async function drain(dest: string, queue: Queue): Promise<void> {
  queue.running = true;
  while (queue.waiting.length > 0) {
    const next = queue.waiting.shift()!;
    next.resolve(await new SyncRun(next.config, next.files && [...next.files], next.signal, next.onProgress, next.leave).run());
  }
  queue.running = false;
  queues.delete(dest);
}

// ---------------------------------------------------------------------------------------------
// One run.

function emptyResult(dryRun: boolean): SyncResult {
  return { status: 'ok', dryRun, copied: [], updated: [], deleted: [], unchanged: 0, errors: [], bytes: 0, durationMs: 0 };
}

/** Milliseconds since `since` (a `performance.now()`), to 0.01 ms. */
export const elapsed = (since: number) => Math.round((performance.now() - since) * 100) / 100;

/** An error result entry from anything thrown. */
export function toEntry(path: string, err: unknown): SyncErrorEntry {
  return { path, code: errorCode(err), message: errorMessage(err) };
}

type CopyOp = Diff['copies'][number];
type Op = CopyOp | { kind: 'delete'; rel: string };

/** Copies from which a run starts its helper thread (it takes ~30 ms to start) if the comparison did not. */
const HELPER_MIN_COPIES = 1000;
/** Copies the helper thread takes at a time: few enough that both threads end close together. */
const MIN_COPY_SHARE = 16;
const MAX_COPY_SHARE = 256;
/** Longest run of synchronous copies between two yields to the event loop. */
const YIELD_MS = 10;
const tick = () => new Promise<void>((resolve) => setImmediate(resolve));

class SyncRun {
  private readonly result: SyncResult;
  private readonly log: RunLog;
  private readonly started = performance.now();
  /** Files handled without error (synced, unchanged, or skipped as gone): decides `partial` vs `failed`. */
  private done = 0;
  private fatal = false;
  /** Dest folders checked or created in this run (a promise each, so concurrent copies share one mkdir). */
  private readonly destDirs = new Map<string, Promise<void>>();
  /** Source folder modes, for folders the run creates in dest. */
  private readonly sourceDirModes = new Map<string, number>();
  private sourceReal = '';
  /** The run's helper thread: started by a large comparison (or many copies), stopped at the end. */
  private helper: RunHelper | null | undefined = undefined;

  constructor(
    private readonly config: SyncConfig,
    private readonly files: unknown[] | null,
    private readonly signal: AbortSignal | undefined,
    private readonly onProgress: ProgressFn | undefined = undefined,
    private readonly leave: LeaveYoung | null = null,
  ) {
    this.result = emptyResult(config.dryRun);
    this.log = createLog('sync', config.logFile, config.logger);
  }

  async run(): Promise<SyncResult> {
    const { config, log } = this;
    const what = this.files === null ? 'full' : `${this.files.length} path${this.files.length === 1 ? '' : 's'}`;
    log.info(`Sync started${config.dryRun ? ' (dry run)' : ''}: ${config.source} -> ${config.dest} (${what})`);
    let release: Release | undefined;
    try {
      if (this.signal?.aborted) throw new UploadSyncError('ERR_ABORTED', 'Sync aborted before it started');
      this.sourceReal = await this.checkSource();
      if (!config.dryRun) {
        release = await acquireLock(config.lockDir, config.dest, config.lockTimeoutMs, {
          signal: this.signal,
          onCompromised: (err) => log.warn(`Sync lock taken over by another process (${err.message}); finishing this run`),
        });
        await this.ensureDestRoot();
      }
      const ops = this.files === null ? await this.planSubtree('') : await this.planTargeted(this.files);
      await this.execute(ops);
    } catch (err) {
      this.fatal = true;
      this.fail('', err);
    } finally {
      await this.stopHelper();
      await release?.().catch((err) => log.warn(`Could not release the sync lock: ${errorMessage(err)}`));
    }
    return this.finish();
  }

  private fail(path: string, err: unknown): void {
    const entry = toEntry(path, err);
    const advice = permissionAdvice(entry.code, entry.message, this.config.source, this.config.dest);
    if (advice !== null) entry.message = `${entry.message} (${advice})`;
    this.result.errors.push(entry);
    this.log.error(`${path === '' ? 'Sync failed' : `Failed ${path}`}: ${entry.code}: ${entry.message}`);
  }

  private async finish(): Promise<SyncResult> {
    const r = this.result;
    if (this.signal?.aborted && !r.errors.some((e) => e.code === 'ERR_ABORTED')) {
      r.errors.push({ path: '', code: 'ERR_ABORTED', message: 'Sync aborted; files not yet started were left for the next run' });
    }
    r.copied.sort();
    r.updated.sort();
    r.deleted.sort();
    r.errors.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
    const handled = this.done + r.unchanged + r.copied.length + r.updated.length + r.deleted.length;
    r.status = r.errors.length === 0 ? 'ok' : this.fatal || handled === 0 ? 'failed' : 'partial';
    r.durationMs = elapsed(this.started);
    const summary = `Sync ${r.status}${r.dryRun ? ' (dry run)' : ''}: ${r.copied.length} copied, ${r.updated.length} updated, ${r.deleted.length} deleted, ${r.unchanged} unchanged, ${r.errors.length} error${r.errors.length === 1 ? '' : 's'}, ${formatBytes(r.bytes)} in ${Math.round(r.durationMs)} ms`;
    if (r.status === 'ok') this.log.info(summary);
    else this.log.error(summary);
    await this.log.flush();
    return r;
  }

  private async checkSource(): Promise<string> {
    const { source } = this.config;
    let st;
    try {
      st = await stat(source);
    } catch (err) {
      if (errorCode(err) !== 'ENOENT') throw err;
    }
    if (!st?.isDirectory()) {
      throw new UploadSyncError('ERR_SOURCE_MISSING', `Source folder ${source} ${st ? 'is not a folder' : 'does not exist'}; create it, or set UPLOAD_SYNC_SOURCE / \`source\``, { path: source });
    }
    return realpath(source);
  }

  private async ensureDestRoot(): Promise<void> {
    const { dest, dirMode } = this.config;
    const st = await lstat(dest).catch((err) => (errorCode(err) === 'ENOENT' ? null : Promise.reject(err)));
    if (st === null) {
      await mkdir(dest, { recursive: true });
      await chmod(dest, dirMode ?? (await stat(this.config.source)).mode & 0o7777);
    } else if (!st.isDirectory()) {
      throw new UploadSyncError('ERR_TYPE_CONFLICT', `Dest ${dest} exists and is not a folder`, { path: dest });
    } else if (dirMode !== null && (st.mode & 0o7777) !== dirMode) {
      await chmod(dest, dirMode);
    }
    this.destDirs.set('', Promise.resolve());
  }

  // -------------------------------------------------------------------------------------------
  // Planning: compare source and dest, decide what to copy and what to delete.

  /** Compares a subtree ('' for the whole tree) of both sides. */
  private async planSubtree(prefix: string): Promise<Op[]> {
    const { config } = this;
    const diff = await diffTrees(config.source, config.dest, prefix, {
      ...this.diffOptions(),
      signal: this.signal,
      helper: () => this.startHelper(),
      // Copies are done as they are found: a tree of 100,000 new files is never planned at once.
      onCopies: (copies) => this.executeCopies(copies),
    });
    for (const { rel, reason } of diff.skippedLinks) this.log.warn(`Skipped symlink ${rel}: ${reason}`);
    if (diff.young.length > 0) this.leaveYoung(diff.young);
    for (const e of diff.errors) this.fail(e.path, Object.assign(new Error(e.message), { code: e.code }));
    this.result.unchanged += diff.unchanged;
    if (!config.dryRun) {
      await removeDeadTemps(config.dest, diff.temps, this.log);
      for (const rel of diff.modeFixes) await chmod(join(config.dest, rel), config.fileMode!).catch((err) => this.fail(rel, err));
      // Folders of the source (empty ones too) exist in the mirror, as `rsync -a` leaves them.
      for (const { rel, mode } of diff.dirs) {
        this.sourceDirModes.set(rel, mode);
        await this.ensureDestDir(rel).catch((err) => this.fail(rel, err));
      }
    }
    for (const rel of diff.destOnlyDirs) this.emptyDirsToRemove.push(rel);
    // The diff's copies are the operations already: 100,000 of them are not made twice.
    const ops: Op[] = diff.copies;
    for (const rel of diff.deletes) ops.push({ kind: 'delete', rel });
    return ops;
  }

  /** What a comparison of this run needs (plain data: the helper thread gets it too). */
  private diffOptions(): WorkerData['opts'] {
    const { config } = this;
    return {
      extensions: config.extensions,
      sourceReal: this.sourceReal,
      delete: config.delete,
      dirMode: config.dirMode,
      fileMode: config.strategy === 'copy' ? config.fileMode : null, // a link's mode is the source's own
      newerThan: this.leave?.newerThan ?? null,
    };
  }

  /** Files that differ but may still be written: handed to the caller, left out of this run (not a failure). */
  private leaveYoung(young: string[]): void {
    for (const rel of young) this.leave!.young.push(rel);
    this.done += young.length;
    const shown = young.slice(0, 5).join(', ') + (young.length > 5 ? ` and ${young.length - 5} more` : '');
    this.log.info(`Left ${young.length} file${young.length === 1 ? '' : 's'} for later, modified too recently (may still be written): ${shown}`);
  }

  /** Dest folders the source no longer has: removed after the deletions if they are then empty. */
  private emptyDirsToRemove: string[] = [];

  private refuseDestSymlink(rel: string): void {
    this.fail(rel, new UploadSyncError('ERR_DEST_SYMLINK', 'Dest holds a symlink at this path; symlinks in dest are never followed or replaced, remove it to sync this file'));
  }

  /** An unchanged file: counted, and its mode corrected when `fileMode` asks for another. */
  private async keep(rel: string, existing: FileInfo): Promise<void> {
    this.result.unchanged++;
    const { fileMode, dryRun, strategy } = this.config;
    if (fileMode !== null && !dryRun && strategy === 'copy' && existing.mode !== fileMode) {
      await chmod(join(this.config.dest, rel), fileMode).catch((err) => this.fail(rel, err));
    }
  }

  /** Targeted mode: only the given paths, no walk (but of a folder that is given). */
  private async planTargeted(entries: unknown[]): Promise<Op[]> {
    const ops: Op[] = [];
    const seen = new Set<string>();
    for (const entry of entries) {
      const rel = this.targetRel(entry);
      if (rel === null || seen.has(rel)) continue;
      seen.add(rel);
      if (rel === '') {
        for (const op of await this.planSubtree('')) ops.push(op); // not push(...): a large tree would overflow the stack
        continue;
      }
      try {
        for (const op of await this.planOne(rel)) ops.push(op);
      } catch (err) {
        this.fail(rel, err);
      }
    }
    return ops;
  }

  /** A `files` entry as a `/`-separated path relative to source, or `null` after reporting why not. */
  private targetRel(entry: unknown): string | null {
    const shown = typeof entry === 'string' ? entry : String(entry);
    if (typeof entry !== 'string' || entry === '' || entry.includes('\0')) {
      this.fail(shown, new UploadSyncError('ERR_INVALID_PATH', `Invalid entry in \`files\`: expected a non-empty path without NUL bytes, got ${JSON.stringify(entry) ?? shown}`));
      return null;
    }
    const { source } = this.config;
    const abs = isAbsolute(entry) ? resolve(entry) : resolve(source, entry);
    if (abs === source || isInside(abs, source)) return toPosix(relative(source, abs));
    // An absolute path may name the source through another spelling (a symlinked deploy folder).
    const real = isAbsolute(entry) ? join(canonical(dirname(abs)), basename(abs)) : '';
    if (real !== '' && (real === this.sourceReal || isInside(real, this.sourceReal))) return toPosix(relative(this.sourceReal, real));
    this.fail(entry, new UploadSyncError('ERR_OUTSIDE', `Path resolves outside the source folder ${source}; nothing was written for it`));
    return null;
  }

  private async planOne(rel: string): Promise<Op[]> {
    const { config } = this;
    const srcPath = join(config.source, rel);
    let st;
    try {
      st = await lstat(srcPath);
    } catch (err) {
      if (errorCode(err) !== 'ENOENT' && errorCode(err) !== 'ENOTDIR') throw err;
    }
    if (st?.isDirectory()) {
      if (!isSyncablePath(rel, null)) return [];
      await this.checkInsideSource(rel, srcPath);
      return this.planSubtree(rel);
    }
    if (!isSyncablePath(rel, config.extensions)) {
      this.done++; // filtered out: skipped by design, not refused
      return [];
    }
    if (st === undefined) return this.planGone(rel);
    await this.checkInsideSource(rel, srcPath);
    if (st.isSymbolicLink()) {
      const target = await stat(srcPath).catch(() => null);
      if (!target?.isFile()) {
        this.log.warn(`Skipped symlink ${rel}: it does not point to a file`);
        this.done++;
        return [];
      }
      st = target;
    } else if (!st.isFile()) {
      this.done++;
      return [];
    }
    const info = fileInfo(st);
    const destPath = join(config.dest, rel);
    const existing = await lstat(destPath).catch((err) => (errorCode(err) === 'ENOENT' || errorCode(err) === 'ENOTDIR' ? null : Promise.reject(err)));
    if (existing === null) return [{ kind: 'copy', rel, src: info, update: false }];
    if (existing.isSymbolicLink()) {
      this.refuseDestSymlink(rel);
      return [];
    }
    if (!existing.isFile()) throw new UploadSyncError('ERR_TYPE_CONFLICT', 'A folder in dest has this file\'s name; remove or rename it');
    const current = fileInfo(existing);
    if (isCurrent(info, current)) {
      await this.keep(rel, current);
      return [];
    }
    return [{ kind: 'copy', rel, src: info, update: true }];
  }

  /** A targeted path that no longer exists in source: mirrored as a deletion with `delete`, else skipped. */
  private async planGone(rel: string): Promise<Op[]> {
    this.done++;
    if (!this.config.delete) return [];
    const existing = await lstat(join(this.config.dest, rel)).catch(() => null);
    if (existing?.isFile()) return [{ kind: 'delete', rel }];
    if (existing?.isDirectory()) return this.planSubtree(rel);
    return [];
  }

  /** Refuses a path whose real location (after symlinked folders) is outside the source. */
  private async checkInsideSource(rel: string, srcPath: string): Promise<void> {
    const real = await realpath(srcPath);
    if (real !== this.sourceReal && !isInside(real, this.sourceReal)) {
      throw new UploadSyncError('ERR_OUTSIDE', `${rel} resolves through a symlink to ${real}, outside the source folder; nothing was written for it`);
    }
  }

  // -------------------------------------------------------------------------------------------
  // Execution.

  /** Files and bytes of the run so far: the totals grow while a long comparison hands copies on. */
  private readonly progress: SyncProgress = { filesDone: 0, filesTotal: 0, bytesDone: 0, bytesTotal: 0 };

  private async execute(ops: Op[]): Promise<void> {
    const copies: CopyOp[] = [];
    const deletes: string[] = [];
    for (const op of ops) {
      if (op.kind === 'delete') deletes.push(op.rel);
      else copies.push(op);
    }
    await this.executeCopies(copies);
    let nextDelete = 0;
    const deleter = async () => {
      while (nextDelete < deletes.length && !this.signal?.aborted) {
        const rel = deletes[nextDelete++]!;
        await this.remove(rel).catch((err) => this.fail(rel, err));
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.config.concurrency, deletes.length) }, deleter));
    if (!this.signal?.aborted) await this.removeEmptyDirs();
  }

  /**
   * Does `copies`: this thread takes them from the front; the helper thread, once up, takes shares
   * from the back. What the helper could not do comes back here.
   */
  private async executeCopies(copies: CopyOp[]): Promise<void> {
    const { progress } = this;
    for (const op of copies) {
      progress.filesTotal++;
      progress.bytesTotal += op.src.size;
    }
    this.reportProgress(progress);
    const counted = (op: CopyOp) => {
      progress.filesDone++;
      progress.bytesDone += op.src.size;
      this.reportProgress(progress);
    };
    const helper = this.config.dryRun ? null : copies.length >= HELPER_MIN_COPIES ? this.startHelper() : (this.helper ?? null);
    const again: CopyOp[] = [];
    let next = 0;
    let end = copies.length;
    /** A share on its way to the helper: its dest folders being made. */
    let giving: Promise<void> | null = null;
    const share = () => {
      if (helper === null) return;
      const { done, lost } = helper.collectCopies<CopyOp>();
      for (const { job, outcome } of done) {
        if (outcome === 'failed') again.push(job);
        else {
          this.published(job, outcome);
          counted(job);
        }
      }
      for (const job of lost) again.push(job);
      const left = end - next;
      if (giving === null && helper.idle && left >= 2 * MIN_COPY_SHARE && !this.signal?.aborted) {
        const n = Math.min(MAX_COPY_SHARE, Math.ceil(left / 4));
        const jobs = copies.slice(end - n, end);
        end -= n;
        giving = this.foldersFor(jobs).then(({ ready, blocked }) => {
          giving = null;
          // A folder that could not be made: its files are done here, which reports why.
          for (const job of blocked) again.push(job);
          // (Still idle: a helper that failed meanwhile is given nothing.)
          if (this.signal?.aborted || !helper.idle) for (const job of ready) again.push(job);
          else if (ready.length > 0) helper.giveCopies(ready);
        });
      }
    };
    let lastYield = performance.now();
    const take = () => again.pop() ?? (next < end ? copies[next++] : undefined);
    const copier = async () => {
      for (let op = take(); op !== undefined && !this.signal?.aborted; op = take()) {
        try {
          await this.copy(op);
        } catch (err) {
          this.fail(op.rel, err);
        }
        counted(op);
        // Small files copy with synchronous calls: let timers (the lock's refresh, a server's
        // requests) and the helper's messages in now and then.
        if (performance.now() - lastYield >= YIELD_MS) {
          await tick();
          lastYield = performance.now();
          share();
        }
      }
    };
    for (;;) {
      await Promise.all(Array.from({ length: Math.min(this.config.concurrency, Math.max(1, end - next + again.length)) }, copier));
      share();
      if (giving !== null) {
        await giving;
        continue;
      }
      if (again.length > 0 && !this.signal?.aborted) continue;
      // (A share of the comparison it may be busy with is the comparison's to wait for.)
      if (helper === null || !helper.copying) break;
      await helper.changed(); // its share is not stopped halfway, even when aborted: no half-done temp file
    }
  }

  /**
   * Makes the dest folders of a share for the helper thread (which only publishes files: folders,
   * their modes and the checks on them are this thread's): the jobs whose folder is ready, and those
   * whose folder could not be made.
   */
  private async foldersFor(jobs: CopyOp[]): Promise<{ ready: CopyOp[]; blocked: CopyOp[] }> {
    const made = new Map<string, boolean>();
    for (const job of jobs) made.set(parentOf(job.rel), false);
    await Promise.all([...made.keys()].map((rel) => this.ensureDestDir(rel).then(() => void made.set(rel, true), () => undefined)));
    const ready: CopyOp[] = [];
    const blocked: CopyOp[] = [];
    for (const job of jobs) (made.get(parentOf(job.rel)) ? ready : blocked).push(job);
    return { ready, blocked };
  }

  /** The run's helper thread, started on first use (`null`: none, the run stays on this thread). */
  private startHelper(): RunHelper | null {
    if (this.helper === undefined) {
      const { config } = this;
      this.helper = createRunHelper({
        source: config.source,
        dest: config.dest,
        opts: this.diffOptions(),
        copy: { strategy: config.strategy, fileMode: config.fileMode },
      });
    }
    return this.helper;
  }

  /** Stops the helper once it has finished what it does (a copy is never cut off: no temp file left). */
  private async stopHelper(): Promise<void> {
    const helper = this.helper;
    if (!helper) return;
    while (helper.busy) await helper.changed();
    helper.stop();
  }

  private reportProgress(progress: SyncProgress): void {
    try {
      this.onProgress?.({ ...progress });
    } catch {
      // A progress bar that throws must not break a sync.
    }
  }

  private async copy(op: CopyOp): Promise<void> {
    const { config } = this;
    let outcome: CopyOutcome = 'copied';
    if (!config.dryRun) {
      await this.ensureDestDir(parentOf(op.rel));
      try {
        await publish(join(config.source, op.rel), join(config.dest, op.rel), { strategy: config.strategy, fileMode: config.fileMode, expected: op.src });
      } catch (err) {
        if (!(err instanceof SourceGone)) throw err;
        outcome = 'gone';
      }
    }
    this.published(op, outcome);
  }

  /** Accounts for a file published (here or by the helper thread), or skipped as gone from the source. */
  private published({ rel, src, update }: CopyOp, outcome: Exclude<CopyOutcome, 'failed'>): void {
    if (outcome === 'gone') {
      this.done++;
      this.log.info(`Skipped ${rel}: removed from the source during the sync`);
      return;
    }
    (update ? this.result.updated : this.result.copied).push(rel);
    this.result.bytes += src.size;
    this.log.info(`${update ? 'Updated' : 'Copied'} ${rel} (${formatBytes(src.size)})`);
  }

  /** Removes one mirrored file, checking it again at the moment of deletion. */
  private async remove(rel: string): Promise<void> {
    const { config } = this;
    // Back in source since the listing (a fresh upload with that name)? Then it is not an orphan.
    const back = await lstat(join(config.source, rel)).then(() => true, () => false);
    if (back) return;
    const destPath = join(config.dest, rel);
    const st = await lstat(destPath).catch(() => null);
    if (!st?.isFile()) return; // gone already, or now a symlink or folder: never ours to remove
    if (!config.dryRun) await unlink(destPath).catch((err) => (errorCode(err) === 'ENOENT' ? undefined : Promise.reject(err)));
    this.result.deleted.push(rel);
    this.log.info(`Deleted ${rel}`);
  }

  private async removeEmptyDirs(): Promise<void> {
    if (this.config.dryRun) return;
    // Deepest first, so a folder emptied by its children's removal goes too.
    const dirs = this.emptyDirsToRemove.sort((a, b) => b.split('/').length - a.split('/').length);
    for (const rel of dirs) {
      if (await lstat(join(this.config.source, rel)).then(() => true, () => false)) continue;
      try {
        await rmdir(join(this.config.dest, rel));
        this.log.info(`Removed empty folder ${rel}`);
      } catch (err) {
        // Not empty (it holds files the filter keeps out, dotfiles or symlinks), or gone: keep it.
        if (!['ENOTEMPTY', 'EEXIST', 'ENOENT', 'ENOTDIR'].includes(errorCode(err))) this.fail(rel, err);
      }
    }
  }

  /**
   * Makes sure dest/rel is a real folder, creating it (and its parents) with the source's or the
   * configured mode. Synchronous calls, as for small files: a promise per call made a first copy
   * of 200 folders wait on the thread pool for tens of ms.
   */
  private ensureDestDir(rel: string): Promise<void> {
    let pending = this.destDirs.get(rel);
    if (!pending) {
      pending = (async () => {
        if (rel !== '') await this.ensureDestDir(parentOf(rel));
        const abs = join(this.config.dest, rel);
        const st = lstatSync(abs, { throwIfNoEntry: false });
        const { dirMode } = this.config;
        if (st === undefined) {
          try {
            mkdirSync(abs);
          } catch (err) {
            if (errorCode(err) !== 'EEXIST') throw err;
          }
          chmodSync(abs, dirMode ?? this.sourceDirMode(rel));
        } else if (st.isSymbolicLink()) {
          throw new UploadSyncError('ERR_DEST_SYMLINK', `Dest folder ${rel} is a symlink; symlinks in dest are never followed, remove it to sync into it`);
        } else if (!st.isDirectory()) {
          throw new UploadSyncError('ERR_TYPE_CONFLICT', `Dest has a file where the source has the folder ${rel}; remove or rename it`);
        } else if (dirMode !== null && (st.mode & 0o7777) !== dirMode) {
          chmodSync(abs, dirMode);
        }
      })();
      this.destDirs.set(rel, pending);
    }
    return pending;
  }

  private sourceDirMode(rel: string): number {
    return this.sourceDirModes.get(rel) ?? statSync(join(this.config.source, rel)).mode & 0o7777;
  }
}

/** The parent of a `/`-separated relative path ('' at the top). */
export const parentOf = (rel: string) => {
  const i = rel.lastIndexOf('/');
  return i === -1 ? '' : rel.slice(0, i);
};

/**
 * Temp files left by a process that died mid-copy (SIGKILL, OOM, power): its pid is in the name.
 * Called with the lock held, so no live sync is writing them; a live pid (ours, or reused) is left
 * to cleanupOld.
 */
async function removeDeadTemps(dest: string, temps: Iterable<string>, log: RunLog): Promise<void> {
  for (const rel of temps) {
    const pid = tempOwnerPid(basename(rel));
    if (pid === null || pid === process.pid || isAlive(pid)) continue;
    await unlink(join(dest, rel)).then(
      () => log.info(`Removed ${rel}, a temp file of a sync that died (pid ${pid})`),
      (err) => errorCode(err) === 'ENOENT' || log.warn(`Could not remove the stale temp file ${rel}: ${errorMessage(err)}`),
    );
  }
}
