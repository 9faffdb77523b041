import { EventEmitter } from 'node:events';
import { resolveWatchConfig, type WatchConfig } from '../config/config.js';
import { runSync, syncSettled } from '../engine/sync.js';
import { UploadSyncError, errorCode, errorMessage, withCode } from '../shared/errors.js';
import { isSyncablePath } from '../shared/filter.js';
import { createLog, type RunLog } from '../shared/log.js';
import type { SyncErrorEntry, SyncProgress, SyncResult, WatcherOptions } from '../shared/options.js';
import { Batcher, emptyResult } from './batcher.js';
import { toWatcherError, type ChangeCause } from './events.js';
import { SerialQueue } from './queue.js';
import { SourceWatch } from './source-watch.js';
import { pollInterval, StabilityTracker } from './stability.js';

export { changedAt } from './stability.js';

/** What the `error` event carries: a stable `code` (Node's, such as `EACCES`, or ours) and, where one is involved, the `path`. */
export interface WatcherError extends Error {
  code: string;
  /** Source-relative, `/`-separated, when the error is about one path. */
  path?: string | undefined;
}

/** The events of an `UploadWatcher`. */
export interface WatcherEventMap {
  /** Watching has begun and the first full sync (the start reconcile) is done. Not emitted when disabled. */
  ready: [];
  /** A sync ran: a batch of changed paths, a reconcile, or a `flush()`. */
  sync: [result: SyncResult];
  /**
   * Something went wrong (a sync error, a folder that cannot be watched, the source folder gone);
   * the watcher goes on. Emitted only while someone listens, so it never crashes a process as an
   * unhandled `error` event; it is always logged.
   */
  error: [error: WatcherError];
}

/** A snapshot of what the watcher is doing (`stats()`). */
export interface WatcherStats {
  /** How the tree is watched: `native` (inotify, FSEvents: a watch per folder), `polling` (chokidar: a poll per file), or `off` (disabled, closed, polling wanted and chokidar unavailable). */
  mode: 'native' | 'polling' | 'off';
  /** Whether the source folder exists; while it does not, the watcher waits for it. */
  sourcePresent: boolean;
  /** Source-relative paths seen changing and not synced yet (waiting to be stable, for their batch, or for a retry after a failure), sorted. */
  pending: string[];
  /** A sync is running now. */
  syncing: boolean;
  /** Sync runs done: batches, reconciles and flushes. */
  syncs: number;
  /** Full reconciles done (the one at start included). */
  reconciles: number;
  /** Files copied, updated or deleted in dest. */
  filesSynced: number;
  /** Bytes copied. */
  bytes: number;
  /** Errors reported (each also an `error` event and a log line). */
  errors: number;
  /** When the last sync ended. */
  lastSyncAt: Date | null;
  lastError: { code: string; message: string; path?: string; at: Date } | null;
}

/** A running watcher (`createWatcher()`). */
export interface UploadWatcher extends EventEmitter<WatcherEventMap> {
  /** `false` when the environment disables sync and `force` was not given: nothing is watched. */
  readonly enabled: boolean;
  /** Resolves once watching has begun and the first full sync is done (at once when disabled). Never rejects. */
  readonly ready: Promise<void>;
  /**
   * Syncs every pending path now, without waiting for it to be stable; resolves with that run's
   * result (`ok` with empty lists when nothing is pending). Waits for `ready` and for a sync in flight.
   */
  flush(): Promise<SyncResult>;
  /**
   * Stops watching; resolves once the sync in flight has finished its copies (no new copy starts).
   * Pending paths are not synced (call `flush()` first for that); the next start's reconcile catches them.
   * Idempotent: every call returns the same promise.
   */
  close(): Promise<void>;
  stats(): WatcherStats;
}

/**
 * Watches the uploads folder and mirrors each change into dest with targeted syncs. Returns a
 * started watcher: it watches first, then runs a full reconcile (so nothing created during start-up
 * is lost), then a reconcile every `reconcileMs`. A path is synced once its size and mtime have been
 * stable for `stableMs`; stable paths are batched by `debounceMs`, for at most `maxWaitMs`. A file
 * that failed is retried after 1 s, then 2 s, 4 s … up to 1 min.
 *
 * chokidar is imported when a watcher starts (`loadChokidar`), never when the package is.
 * @throws UploadSyncError `ERR_CONFIG` for a bad option or environment variable.
 * @example
 * const watcher = createWatcher({ stableMs: 1000 });
 * watcher.on('sync', (r) => console.log(r.status, r.copied));
 * await watcher.ready;
 */
export function createWatcher(options: WatcherOptions = {}): UploadWatcher {
  const config = resolveWatchConfig(options);
  const { onProgress } = options;
  if (onProgress !== undefined && typeof onProgress !== 'function') {
    throw new UploadSyncError('ERR_CONFIG', `Invalid option \`onProgress\`: expected a function, got ${typeof onProgress}`);
  }
  return new Watcher(config, onProgress);
}


/**
 * The policy: what each event means, what to sync, what to tell. How events arrive is
 * `SourceWatch`'s business; when a path is stable, the `StabilityTracker`'s; when a sync runs (and
 * runs again after a failure), the `Batcher`'s. Data flows one way: source events, then pending
 * paths, then stable paths, then syncs, then `sync` and `error` events.
 */
class Watcher extends EventEmitter<WatcherEventMap> implements UploadWatcher {
  readonly enabled: boolean;
  readonly ready: Promise<void>;

  private readonly config: WatchConfig;
  /** The config of its syncs: resolved once, with `force` (the watcher applied the enable rule when it was created). */
  private readonly syncConfig: WatchConfig;
  private readonly log: RunLog;
  /** Aborted by `close()`: a sync in flight finishes its copies and starts no new one. */
  private readonly abort = new AbortController();
  private readonly queue = new SerialQueue((err) => this.report(err));
  private readonly sources: SourceWatch;
  private readonly tracker: StabilityTracker;
  private readonly batcher: Batcher;
  private resolveReady!: () => void;
  private starting: Promise<void> = Promise.resolve();
  private closing: Promise<void> | null = null;
  private closed = false;

  private counts = { syncs: 0, reconciles: 0, filesSynced: 0, bytes: 0, errors: 0 };
  private lastSyncAt: Date | null = null;
  private lastError: WatcherStats['lastError'] = null;

  constructor(
    config: WatchConfig,
    /** The start reconcile's progress (`WatcherOptions.onProgress`). */
    private readonly onStartProgress?: (progress: SyncProgress) => void,
  ) {
    super();
    this.config = config;
    this.syncConfig = Object.freeze({ ...config, force: true });
    this.enabled = config.enabled || config.force;
    this.log = createLog('watch', config.logFile, config.logger);
    this.ready = new Promise((resolve) => (this.resolveReady = resolve));
    const pollMs = pollInterval(config.stableMs);
    this.tracker = new StabilityTracker({ stableMs: config.stableMs, pollMs, keepGone: config.delete }, (rels) => this.batcher.add(rels), (err) => this.report(err));
    this.batcher = new Batcher(config, this.queue, { targeted: (paths) => this.runTargeted(paths), full: (atStart) => this.runFull(atStart) }, this.log);
    this.sources = new SourceWatch(config, { pollMs }, this.log, {
      changed: (rel, cause) => this.onChanged(rel, cause),
      // A new folder holds the batch back as an event does: its files are on their way.
      folderAdded: () => {
        if (!this.closed) this.batcher.activity();
      },
      // With `delete`, a folder gone is synced as one path: its files in dest go with it.
      folderRemoved: (rel) => {
        if (!this.closed && config.delete) this.touch(rel);
      },
      error: (err) => this.report(err),
      reset: (root) => {
        this.tracker.reset(root);
        this.batcher.clear();
      },
      restarted: async () => {
        if (this.sources.present) await this.batcher.reconcile();
      },
    });
    if (!this.enabled) {
      this.log.info('Watcher disabled by the environment (set NODE_ENV=production or ENABLE_UPLOAD_SYNC=true, or pass force); not watching');
      this.resolveReady();
      return;
    }
    this.starting = this.start();
  }

  // -------------------------------------------------------------------------------------------
  // Public API.

  async flush(): Promise<SyncResult> {
    if (!this.enabled) return emptyResult('disabled');
    await this.ready;
    // A last look at new folders first, so a file not reported yet is flushed too.
    return this.batcher.flush(async () => {
      await this.sources.rescan();
      return this.tracker.takeAll();
    });
  }

  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  stats(): WatcherStats {
    return {
      mode: this.closed ? 'off' : this.sources.mode,
      sourcePresent: this.sources.present,
      pending: [...new Set([...this.tracker.paths, ...this.batcher.pending])].sort(),
      syncing: this.queue.busy,
      ...this.counts,
      lastSyncAt: this.lastSyncAt,
      lastError: this.lastError && { ...this.lastError },
    };
  }

  // -------------------------------------------------------------------------------------------
  // Start and stop.

  private async start(): Promise<void> {
    try {
      // Watch first, then reconcile: a file created in between is seen by one or the other.
      await this.sources.start();
      if (this.closed) return;
      await this.batcher.reconcile(true);
      if (this.closed) return;
      this.batcher.startReconciling();
      this.log.info(`Watching ${this.config.source} -> ${this.config.dest} (${this.stats().mode}, stable ${this.config.stableMs} ms)`);
      this.emitSafe('ready');
    } catch (err) {
      this.report(err);
    } finally {
      this.resolveReady();
    }
  }

  private async shutdown(): Promise<void> {
    this.closed = true;
    this.abort.abort();
    this.batcher.close();
    this.tracker.close();
    // The start, a restart and the sync in flight see `closed` and the abort, and end soon.
    await Promise.allSettled([this.sources.close(), this.starting, this.queue.idle()]);
    await this.log.flush();
    this.resolveReady();
  }

  // -------------------------------------------------------------------------------------------
  // What events mean.

  /** A path the source reported: synced once stable, if it is one the sync handles. */
  private onChanged(rel: string, cause: ChangeCause): void {
    if (this.closed || !isSyncablePath(rel, this.config.extensions)) return;
    if (cause === 'listed') this.track(rel);
    // Without `delete` a removal needs nothing (a pending path that is gone is dropped by the tracker).
    else if (cause === 'event' || this.config.delete) this.touch(rel);
  }

  /** `rel` changed: its stability clock starts again; stable already, it is pending again. */
  private touch(rel: string): void {
    this.batcher.drop(rel);
    this.tracker.touch(rel);
    this.batcher.activity();
  }

  /** `rel` found by a listing (or left by a reconcile as young): pending unless it is already. */
  private track(rel: string): void {
    if (this.batcher.has(rel)) return;
    this.batcher.drop(rel); // (a retry of it waits for it to be stable)
    this.tracker.track(rel);
  }

  // -------------------------------------------------------------------------------------------
  // Syncs, and what they tell.

  private async runTargeted(paths: string[]): Promise<SyncResult> {
    const result = await runSync(this.syncConfig, { files: paths, signal: this.abort.signal });
    if (result.errors.find((e) => e.path === '')?.code === 'ERR_SOURCE_MISSING') void this.sources.check();
    this.afterSync(result);
    return result;
  }

  /**
   * One full sync of the whole tree (deletions too, with `delete`; and the temp files a killed
   * predecessor left in dest). A file modified less than `stableMs` ago may still be written: the
   * run leaves it, and it becomes pending like a changed path, synced once stable.
   */
  private async runFull(atStart: boolean): Promise<{ result: SyncResult; young: string[] } | null> {
    // While the source is missing, it was reported once; the source check resumes when it is back.
    if (!atStart && !this.sources.present) return null;
    this.counts.reconciles++;
    // Taken now: a wait for the lock only leaves more files for later, never copies one too young.
    const { result, young } = await syncSettled(this.syncConfig, Date.now() - this.config.stableMs, this.abort.signal, atStart ? this.onStartProgress : undefined);
    if (this.closed) {
      // close() came first and nothing was written: nothing to tell. Else the copies done before
      // the abort are told, as for a batch.
      if (result.copied.length + result.updated.length + result.deleted.length === 0) return null;
    } else {
      for (const rel of young) this.track(rel); // (one already pending or stable is on its way)
    }
    this.afterSync(result);
    return { result, young };
  }

  private afterSync(result: SyncResult): void {
    this.counts.syncs++;
    this.counts.filesSynced += result.copied.length + result.updated.length + result.deleted.length;
    this.counts.bytes += result.bytes;
    this.lastSyncAt = new Date();
    for (const entry of result.errors) {
      if (entry.code === 'ERR_ABORTED') continue; // close() stopped it: not a failure
      if (entry.code === 'ERR_CHANGED' && entry.path !== '' && !this.closed) {
        this.touch(entry.path); // still being written: synced once stable
        continue;
      }
      // The sync engine has logged it already.
      this.report(entryError(entry), false);
    }
    this.emitSafe('sync', result);
  }

  /** Counts, logs and emits an error. Never throws. */
  private report(err: unknown, log = true): void {
    const error: WatcherError =
      err instanceof Error && typeof (err as WatcherError).code === 'string' ? (err as WatcherError) : toWatcherError(errorCode(err), errorMessage(err), undefined, err);
    this.counts.errors++;
    this.lastError = { code: error.code, message: error.message, ...(typeof error.path === 'string' ? { path: error.path } : {}), at: new Date() };
    if (log) this.log.error(withCode(error.code, error.message));
    if (this.listenerCount('error') > 0) this.emitSafe('error', error);
  }

  /** A listener that throws must not stop the watcher. */
  private emitSafe<K extends keyof WatcherEventMap>(event: K, ...args: WatcherEventMap[K]): void {
    try {
      (this.emit as (event: K, ...args: WatcherEventMap[K]) => boolean)(event, ...args);
    } catch (err) {
      this.log.error(`A '${event}' listener threw: ${errorMessage(err)}`);
    }
  }
}

function entryError(e: SyncErrorEntry): WatcherError {
  return toWatcherError(e.code, e.path === '' ? e.message : `${e.path}: ${e.message}`, e.path === '' ? undefined : e.path);
}
