import { EventEmitter } from 'node:events';
import type { Stats } from 'node:fs';
import { lstat, readdir, realpath, stat } from 'node:fs/promises';
import { basename, isAbsolute, join, relative, sep } from 'node:path';
// Types only: chokidar itself is loaded with `import()` when a watcher starts, so the main entry
// (and `require('upload-sync')`) never loads it.
import type { FSWatcher } from 'chokidar';
import { resolveWatchConfig, type WatchConfig } from '../config/config.js';
import { errorCode, errorMessage } from '../shared/errors.js';
import { FolderWatch, folderIdentity } from './folder-watch.js';
import { isIgnoredName, isSyncablePath, matchesExtensions, toPosix } from '../shared/filter.js';
import { createLog, type RunLog } from '../shared/log.js';
import type { SyncErrorEntry, SyncOptions, SyncResult, WatcherOptions } from '../shared/options.js';
import { runSync, syncSettled } from '../engine/sync.js';

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
  /** Source-relative paths seen changing and not synced yet (waiting to be stable, or for their batch), sorted. */
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

/** How often the source folder itself is checked (gone, back, replaced): one `stat`. */
const SOURCE_CHECK_MS = 1000;
/** Longest wait before a sync that failed as a whole (lock not obtained, dest unwritable) is tried again. */
const MAX_RETRY_MS = 60_000;

/**
 * `usePolling` after `CHOKIDAR_USEPOLLING`, which chokidar applies over every instance's option
 * (the README documents it as the variable for this option): native watching is ours, so it is
 * read here too.
 */
function pollingFromEnv(usePolling: boolean, env: NodeJS.ProcessEnv = process.env): boolean {
  const value = env.CHOKIDAR_USEPOLLING;
  if (value === undefined) return usePolling;
  const lower = value.toLowerCase();
  if (lower === 'false' || lower === '0') return false;
  if (lower === 'true' || lower === '1') return true;
  return lower !== '';
}

/**
 * Watches the uploads folder and mirrors each change into dest with targeted syncs. Returns a
 * started watcher: it watches first, then runs a full reconcile (so nothing created during start-up
 * is lost), then a reconcile every `reconcileMs`. A path is synced once its size and mtime have been
 * stable for `stableMs`; stable paths are batched by `debounceMs`, for at most `maxWaitMs`.
 *
 * chokidar is imported here, lazily, and nowhere else.
 * @throws UploadSyncError `ERR_CONFIG` for a bad option or environment variable.
 * @example
 * const watcher = createWatcher({ stableMs: 1000 });
 * watcher.on('sync', (r) => console.log(r.status, r.copied));
 * await watcher.ready;
 */
export function createWatcher(options: WatcherOptions = {}): UploadWatcher {
  return new Watcher(resolveWatchConfig(options));
}

function emptyResult(status: SyncResult['status'] = 'ok'): SyncResult {
  return { status, dryRun: false, copied: [], updated: [], deleted: [], unchanged: 0, errors: [], bytes: 0, durationMs: 0 };
}

/** `dev:ino` of the source folder, or `null` when it is missing (or not a folder). */
async function folderId(path: string): Promise<string | null> {
  try {
    const st = await stat(path);
    return st.isDirectory() ? `${st.dev}:${st.ino}` : null;
  } catch {
    return null;
  }
}

/** What a pending path looks like now; the same string twice means no write in between. */
async function stateOf(path: string): Promise<{ key: string; mtimeMs: number }> {
  try {
    const st = await stat(path);
    if (st.isDirectory()) return { key: 'dir', mtimeMs: NaN };
    return st.isFile() ? { key: `${st.size}:${st.mtimeMs}:${st.ino}`, mtimeMs: st.mtimeMs } : { key: 'other', mtimeMs: NaN };
  } catch (err) {
    const code = errorCode(err);
    return { key: code === 'ENOENT' || code === 'ENOTDIR' ? 'gone' : `error:${code}`, mtimeMs: NaN };
  }
}

/** The kernel stamps mtimes from a coarse clock, a tick or so behind the time of the write. */
const MTIME_SLACK_MS = 20;

/**
 * When a file seen in a new state last changed. Its mtime says so exactly when it falls after the
 * previous look (which did not see this state) and not in the future; otherwise (a writer that sets
 * mtimes, a clock step) the change is taken to be now. Never before `since` (the last event).
 */
export function changedAt(mtimeMs: number, since: number, previousLook: number, now: number): number {
  const at = mtimeMs + MTIME_SLACK_MS;
  return Number.isFinite(at) && mtimeMs > previousLook && at <= now ? Math.max(since, at) : now;
}

/** Drops paths inside a folder that is also listed (the folder's run covers them) and duplicates. */
export function collapse(paths: Iterable<string>): string[] {
  const set = new Set(paths);
  return [...set]
    .filter((p) => {
      for (let i = p.indexOf('/'); i !== -1; i = p.indexOf('/', i + 1)) if (set.has(p.slice(0, i))) return false;
      return true;
    })
    .sort();
}

function toWatcherError(code: string, message: string, path?: string, cause?: unknown): WatcherError {
  const err = new Error(message, cause === undefined ? undefined : { cause }) as WatcherError;
  err.code = code;
  if (path !== undefined) err.path = path;
  return err;
}

interface PendingPath {
  /** `stateOf` at the last look ('' before the first). */
  state: string;
  /** When the path last changed, as far as we know (its last event, or its mtime): stable once this is `stableMs` old. */
  since: number;
  /** When it was last looked at (-Infinity before the first look: any mtime is then after it). */
  lookedAt: number;
}

interface NewFolder {
  /** Names seen at the last listing (`/`-suffixed for folders). */
  names: Set<string> | null;
  key: string;
  since: number;
}

class Watcher extends EventEmitter<WatcherEventMap> implements UploadWatcher {
  readonly enabled: boolean;
  readonly ready: Promise<void>;

  private readonly config: WatchConfig;
  /** The config of its syncs: resolved once, with `force` (the watcher applied the enable rule when it was created). */
  private readonly syncConfig: WatchConfig;
  private readonly log: RunLog;
  /** How often pending paths are looked at: a tenth of `stableMs`, within 10–100 ms. */
  private readonly pollMs: number;
  /** Aborted by `close()`: a sync in flight finishes its copies and starts no new one. */
  private readonly abort = new AbortController();
  private resolveReady!: () => void;
  private starting: Promise<void> = Promise.resolve();
  private closing: Promise<void> | null = null;
  private closed = false;

  private chokidar: typeof import('chokidar') | null = null;
  /** Native events: a watch per folder, none per file. */
  private folders: FolderWatch | null = null;
  /** Polling (chokidar): what native events cannot do (network filesystems, the inotify limit reached). */
  private fsw: FSWatcher | null = null;
  /** Resolves the wait for the current chokidar instance's `ready` (when it is closed first). */
  private stopWaiting: (() => void) | null = null;
  private usePolling: boolean;
  /** Restarts of chokidar (source back, replaced, or a fall back to polling), one at a time. */
  private restarts: Promise<void> = Promise.resolve();
  private restarting = false;
  private checking = false;
  /** `dev:ino` of the watched source folder; `null` while it is missing. */
  private sourceId: string | null = null;
  private sourceReal: string | null = null;

  /** Paths seen changing, waiting to be stable. */
  private readonly pending = new Map<string, PendingPath>();
  /** Stable paths waiting for their batch, with the time each became stable (oldest first). */
  private readonly stable = new Map<string, number>();
  /** Folders created since the start: listed on each poll until their listing is stable (chokidar can miss a file written into a folder it has just read). */
  private readonly newFolders = new Map<string, NewFolder>();
  /** Last event (or new folder): a batch waits until `debounceMs` passed without one, or `maxWaitMs`. */
  private lastActivity = 0;
  /** A sync failed as a whole: no batch before this time. */
  private retryAt = 0;
  private retryMs = 0;

  private pollTimer: NodeJS.Timeout | null = null;
  private polling = false;
  private batchTimer: NodeJS.Timeout | null = null;
  private reconcileTimer: NodeJS.Timeout | null = null;
  private sourceTimer: NodeJS.Timeout | null = null;

  /** Every sync (batch, reconcile, flush) runs through this queue, one at a time. */
  private queue: Promise<unknown> = Promise.resolve();
  private running = 0;
  private batchQueued = false;
  private reconcileQueued: Promise<void> | null = null;

  private counts = { syncs: 0, reconciles: 0, filesSynced: 0, bytes: 0, errors: 0 };
  private lastSyncAt: Date | null = null;
  private lastError: WatcherStats['lastError'] = null;

  constructor(config: WatchConfig) {
    super();
    this.config = config;
    this.syncConfig = Object.freeze({ ...config, force: true });
    this.enabled = config.enabled || config.force;
    this.usePolling = pollingFromEnv(config.usePolling);
    this.pollMs = Math.min(100, Math.max(10, Math.round(config.stableMs / 10)));
    this.log = createLog('watch', config.logFile, config.logger);
    this.ready = new Promise((resolve) => (this.resolveReady = resolve));
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
    return this.enqueue(async () => {
      if (this.closed) return emptyResult();
      // A last look at new folders, so a file chokidar has not reported yet is flushed too.
      await Promise.all([...this.newFolders].map(([rel, f]) => this.rescan(rel, f)));
      const paths = [...this.pending.keys(), ...this.stable.keys()];
      this.pending.clear();
      this.stable.clear();
      if (paths.length === 0) return emptyResult();
      return this.runBatch(paths);
    }, (err) => ({ ...emptyResult('failed'), errors: [{ path: '', code: errorCode(err), message: errorMessage(err) }] }));
  }

  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  stats(): WatcherStats {
    return {
      mode: this.closed ? 'off' : this.folders ? 'native' : this.fsw ? 'polling' : 'off',
      sourcePresent: this.sourceId !== null,
      pending: [...new Set([...this.pending.keys(), ...this.stable.keys()])].sort(),
      syncing: this.running > 0,
      ...this.counts,
      lastSyncAt: this.lastSyncAt,
      lastError: this.lastError && { ...this.lastError },
    };
  }

  // -------------------------------------------------------------------------------------------
  // Start and stop.

  private async start(): Promise<void> {
    try {
      try {
        // Loaded at start even for native events, which do without it: the fall back to polling at
        // the inotify limit must not find it missing then.
        this.chokidar = await import('chokidar');
      } catch (err) {
        const what = this.usePolling ? 'only the reconcile every reconcileMs runs' : 'native events go on, but there is no fall back to polling';
        this.report(toWatcherError(errorCode(err), `Cannot load chokidar (${errorMessage(err)}); ${what}`, undefined, err));
      }
      if (this.closed) return;
      this.sourceTimer = setInterval(() => void this.checkSource(), SOURCE_CHECK_MS).unref();
      // Watch first, then reconcile: a file created in between is seen by one or the other.
      await this.watch();
      await this.restarts;
      if (this.closed) return;
      await this.requestReconcile(true);
      if (this.closed) return;
      this.scheduleReconcile();
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
    for (const timer of [this.pollTimer, this.batchTimer, this.reconcileTimer]) if (timer) clearTimeout(timer);
    if (this.sourceTimer) clearInterval(this.sourceTimer);
    await this.unwatch();
    // The start, a restart and the sync in flight see `closed` and the abort, and end soon.
    await Promise.allSettled([this.starting, this.restarts, this.queue]);
    await this.unwatch();
    this.pending.clear();
    this.stable.clear();
    this.newFolders.clear();
    await this.log.flush();
    this.resolveReady();
  }

  /** (Re)starts watching the source folder; resolves once every folder is watched (native) or chokidar's first scan is done (polling). */
  private async watch(): Promise<void> {
    await this.unwatch();
    this.sourceId = await folderId(this.config.source);
    this.sourceReal = this.sourceId === null ? null : await realpath(this.config.source).catch(() => null);
    // A restart forgets what was pending: the reconcile that follows finds it again.
    this.pending.clear();
    this.stable.clear();
    this.newFolders.clear();
    if (this.sourceId === null) this.log.warn(`Source folder ${this.config.source} does not exist; waiting for it (checked every ${SOURCE_CHECK_MS / 1000} s)`);
    // While the source is missing, nothing is watched: the source check keeps the process alive, as the watches do otherwise.
    if (this.sourceReal === null) this.sourceTimer?.ref();
    else this.sourceTimer?.unref();
    if (this.closed) return;
    if (!this.usePolling) {
      const folders = new FolderWatch(this.sourceReal ?? this.config.source, {
        onEvent: (dir, event, name) => {
          if (this.folders === folders) this.onFolderEvent(dir, event, name);
        },
        onError: (err) => {
          if (this.folders === folders) this.onWatchError(err);
        },
      });
      this.folders = folders; // while the source is missing too (nothing to watch yet): the mode stays native
      if (this.sourceReal !== null) await folders.addTree('');
      return;
    }
    if (this.chokidar === null) return;
    // Polling has no folder events for a file's content: chokidar polls every file (and holds state for each).
    const fsw = new this.chokidar.FSWatcher({
      ignoreInitial: true, // the reconcile covers what is already there
      followSymlinks: false, // symlinks are synced (or refused) by the engine, never followed out
      usePolling: this.usePolling,
      persistent: true, // an open watcher keeps its process alive
      ignored: (path: string, stats?: Stats) => this.isIgnored(path, stats),
    });
    this.fsw = fsw;
    fsw.on('all', (event, path) => {
      if (this.fsw === fsw) this.onEvent(event, path);
    });
    fsw.on('error', (err: unknown) => {
      if (this.fsw === fsw) this.onWatchError(err);
    });
    let stop!: () => void;
    await new Promise<void>((resolve) => {
      this.stopWaiting = stop = resolve;
      fsw.once('ready', resolve);
      // A missing source is watched too: chokidar then watches its parent, which keeps the process alive.
      fsw.add(this.sourceReal ?? this.config.source);
    });
    if (this.stopWaiting === stop) this.stopWaiting = null;
  }

  private async unwatch(): Promise<void> {
    this.folders?.close();
    this.folders = null;
    const fsw = this.fsw;
    this.fsw = null;
    this.stopWaiting?.();
    this.stopWaiting = null;
    if (fsw) await fsw.close().catch((err) => this.report(err));
  }

  /** Restarts watching (one restart at a time), then reconciles what happened meanwhile. */
  private restart(): Promise<void> {
    this.restarts = this.restarts
      .then(async () => {
        if (this.closed) return;
        this.restarting = true;
        try {
          await this.watch();
        } finally {
          this.restarting = false;
        }
        // (During the start too: the start's own reconcile may have run before this watch began.)
        if (this.sourceId !== null) await this.requestReconcile(false);
      })
      .catch((err) => this.report(err));
    return this.restarts;
  }

  /** The source folder gone, back, or replaced by another folder (chokidar does not recover from that by itself). */
  private async checkSource(): Promise<void> {
    if (this.closed || this.restarting || this.checking) return;
    this.checking = true;
    try {
      const id = await folderId(this.config.source);
      if (id === this.sourceId || this.closed || this.restarting) return;
      if (id === null) this.report(toWatcherError('ERR_SOURCE_MISSING', `Source folder ${this.config.source} is gone; waiting for it to come back`));
      else this.log.info(`Source folder ${this.config.source} ${this.sourceId === null ? 'is there now' : 'was replaced'}; watching it again`);
      await this.restart();
    } finally {
      this.checking = false;
    }
  }

  // -------------------------------------------------------------------------------------------
  // Events.

  /** Source-relative `/`-path of an absolute one; `null` outside the source. */
  private relOf(abs: string): string | null {
    const rel = relative(this.sourceReal ?? this.config.source, abs);
    if (rel === '..' || rel.startsWith(`..${sep}`) || isAbsolute(rel)) return null;
    return toPosix(rel);
  }

  /** Dotfiles (our temp files among them), partial uploads, and files the extension filter excludes. */
  private isIgnored(path: string, stats?: Stats): boolean {
    const rel = this.relOf(path);
    if (rel === null || rel === '') return false;
    if (rel.split('/').some(isIgnoredName)) return true;
    return stats?.isFile() === true && !matchesExtensions(basename(path), this.config.extensions);
  }

  /**
   * A native event: `name` changed in the watched folder `dir`. A file is pending at once (the
   * stability poll stats it: written, gone, or not a file after all); a `rename` may also be a
   * folder created, removed, moved or replaced, which `onRename` looks at.
   */
  private onFolderEvent(dir: string, event: string, name: string | null): void {
    if (this.closed) return;
    if (name === null) {
      // The platform did not say which entry: list the folder, as a new one is.
      this.addNewFolder(dir);
      return;
    }
    // A watched folder's own events (its removal; a chmod or utimes of it) come named after the
    // folder itself: the same as an event of an entry of that name inside it.
    const own = basename(dir === '' ? (this.sourceReal ?? this.config.source) : dir);
    if (dir === '' && name === own) void this.checkSource();
    if (isIgnoredName(name)) return; // `dir` passed already: dot folders are not watched
    const rel = dir === '' ? name : `${dir}/${name}`;
    if (name === own) void this.onOwnName(rel, event);
    else this.onEntry(rel, event);
  }

  private onEntry(rel: string, event: string): void {
    if (isSyncablePath(rel, this.config.extensions)) this.touch(rel);
    if (event === 'rename') void this.onRename(rel);
  }

  /**
   * An event named after its own folder (`a/a`): an entry of that name only when one is there, in
   * the source or in dest, or watched; else it was the folder's own, and a sync would find nothing.
   */
  private async onOwnName(rel: string, event: string): Promise<void> {
    const base = this.sourceReal;
    if (base === null) return;
    const there = (root: string) => lstat(join(root, rel)).then(() => true, () => false);
    const entry = this.folders?.identity(rel) !== undefined || (await there(base)) || (await there(this.config.dest));
    if (entry && !this.closed && this.sourceReal === base) this.onEntry(rel, event);
  }

  /** A folder appeared (watched and listed like any new one), went (no longer watched; with `delete`, mirrored as one path), or was replaced. */
  private async onRename(rel: string): Promise<void> {
    const folders = this.folders;
    if (folders === null || this.sourceReal === null) return;
    const st = await lstat(join(this.sourceReal, rel)).catch(() => null);
    if (this.folders !== folders || this.closed) return;
    const watched = folders.identity(rel);
    if (st?.isDirectory()) {
      if (watched === folderIdentity(st)) return;
      if (watched !== undefined) this.forgetFolder(rel); // replaced: its watch is on the old folder
      this.addNewFolder(rel);
    } else if (watched !== undefined) {
      this.forgetFolder(rel);
      if (this.config.delete) this.touch(rel);
    }
  }

  /** A folder gone: no watch and no rescan for it or anything under it. */
  private forgetFolder(rel: string): void {
    this.folders?.remove(rel);
    for (const dir of this.newFolders.keys()) if (dir === rel || dir.startsWith(`${rel}/`)) this.newFolders.delete(dir);
  }

  /** A polling event (chokidar). */
  private onEvent(event: string, abs: string): void {
    if (this.closed) return;
    const rel = this.relOf(abs);
    if (rel === null) return;
    if (rel === '') {
      // The source folder itself was removed or created.
      void this.checkSource();
      return;
    }
    if (rel.split('/').some(isIgnoredName)) return;
    switch (event) {
      case 'add':
      case 'change':
        if (isSyncablePath(rel, this.config.extensions)) this.touch(rel);
        break;
      case 'unlink':
        // Without `delete` a removal needs nothing; a pending path that is gone is dropped by the poll.
        if (this.config.delete && isSyncablePath(rel, this.config.extensions)) this.touch(rel);
        break;
      case 'addDir':
        this.addNewFolder(rel);
        break;
      case 'unlinkDir':
        this.newFolders.delete(rel);
        if (this.config.delete) this.touch(rel);
        break;
    }
  }

  private onWatchError(err: unknown): void {
    const code = errorCode(err);
    if ((code === 'ENOSPC' || code === 'EMFILE') && !this.usePolling) {
      this.usePolling = true;
      const limit = code === 'ENOSPC' ? 'fs.inotify.max_user_watches' : 'fs.inotify.max_user_instances (or the open file limit, ulimit -n)';
      this.report(
        toWatcherError(
          code,
          `Cannot watch ${this.config.source} with native events: the system limit on inotify watches was reached (${code}). ` +
            `Raise ${limit}, e.g. 'echo ${code === 'ENOSPC' ? 'fs.inotify.max_user_watches=524288' : 'fs.inotify.max_user_instances=1024'} | sudo tee /etc/sysctl.d/60-upload-sync.conf && sudo sysctl --system', then restart. ` +
            'Falling back to polling meanwhile (it polls and holds state for every file: CPU and memory grow with the tree).',
          undefined,
          err,
        ),
      );
      void this.restart();
      return;
    }
    const path = (err as { path?: unknown }).path;
    const rel = typeof path === 'string' ? (this.relOf(path) ?? path) : undefined;
    this.report(toWatcherError(code, `Watch error${rel ? ` on ${rel}` : ''}: ${errorMessage(err)}; the rest of the tree is still watched`, rel, err));
  }

  /** A path changed: (re)start its stability clock. A stable path that changes again is pending again. */
  private touch(rel: string): void {
    const now = Date.now();
    this.stable.delete(rel);
    const p = this.pending.get(rel);
    if (p) p.since = now;
    else this.pending.set(rel, { state: '', since: now, lookedAt: -Infinity });
    this.lastActivity = now;
    this.schedulePoll();
  }

  /** A path found by a listing: pending unless it is already. */
  private track(rel: string): void {
    if (this.pending.has(rel) || this.stable.has(rel)) return;
    this.pending.set(rel, { state: '', since: Date.now(), lookedAt: -Infinity });
    this.schedulePoll();
  }

  /** A folder created (or to be listed again): watched (native events), then listed on each poll until its listing is stable. */
  private addNewFolder(rel: string): void {
    // Watched before its first listing: an entry created in between is in an event or in that listing.
    if (this.folders !== null && !this.folders.add(rel)) return; // gone already, or reported
    if (this.newFolders.has(rel)) return;
    this.newFolders.set(rel, { names: null, key: '', since: Date.now() });
    this.lastActivity = Date.now();
    this.schedulePoll();
  }

  // -------------------------------------------------------------------------------------------
  // Write-finish detection: only pending paths are looked at, never the tree.

  private schedulePoll(): void {
    if (this.pollTimer || this.polling || this.closed) return;
    if (this.pending.size === 0 && this.newFolders.size === 0) return;
    // Every `pollMs`, or sooner when a path that was looked at becomes stable: no wait for the next tick.
    let wait = this.pollMs;
    const now = Date.now();
    for (const p of this.pending.values()) if (p.state !== '') wait = Math.min(wait, p.since + this.config.stableMs - now);
    this.pollTimer = setTimeout(() => void this.poll(), Math.max(1, Math.ceil(wait))).unref();
  }

  private async poll(): Promise<void> {
    this.pollTimer = null;
    if (this.closed || this.sourceReal === null) return;
    this.polling = true;
    try {
      const base = this.sourceReal;
      const { stableMs } = this.config;
      await Promise.all(
        [...this.pending].map(async ([rel, p]) => {
          const { key: state, mtimeMs } = await stateOf(join(base, rel));
          if (this.pending.get(rel) !== p) return; // flushed meanwhile
          const now = Date.now();
          const previousLook = p.lookedAt;
          p.lookedAt = now;
          // A folder is not synced as a whole (it may hold files being written): its files are, one by one.
          if (state === 'dir' || state === 'other' || (state === 'gone' && !this.config.delete)) {
            this.pending.delete(rel);
            return;
          }
          if (state !== p.state) {
            p.state = state;
            p.since = changedAt(mtimeMs, p.since, previousLook, now);
          }
          // No `lastActivity` here: the batch waits for quiet after events, not after this poll (latency).
          if (now - p.since >= stableMs) {
            this.pending.delete(rel);
            this.stable.set(rel, now);
          }
        }),
      );
      await Promise.all([...this.newFolders].map(([rel, f]) => this.rescan(rel, f)));
    } catch (err) {
      this.report(err);
    } finally {
      this.polling = false;
    }
    this.schedulePoll();
    this.scheduleBatch();
  }

  /** Lists a new folder: names not seen before are tracked. Done with it once the listing is stable. */
  private async rescan(rel: string, folder: NewFolder): Promise<void> {
    if (this.sourceReal === null) return;
    let entries;
    try {
      entries = await readdir(join(this.sourceReal, rel), { withFileTypes: true });
    } catch {
      this.newFolders.delete(rel); // gone, or unreadable (reported by the reconcile)
      return;
    }
    if (this.newFolders.get(rel) !== folder) return;
    const names = new Set<string>();
    for (const e of entries) {
      if (isIgnoredName(e.name)) continue;
      const name = e.isDirectory() ? `${e.name}/` : e.name;
      names.add(name);
      if (folder.names?.has(name)) continue;
      const childRel = rel === '' ? e.name : `${rel}/${e.name}`;
      if (e.isDirectory()) this.addNewFolder(childRel);
      else if ((e.isFile() || e.isSymbolicLink()) && isSyncablePath(childRel, this.config.extensions)) this.track(childRel);
    }
    const key = [...names].sort().join('\0');
    const now = Date.now();
    if (folder.names === null || key !== folder.key) {
      folder.names = names;
      folder.key = key;
      folder.since = now;
    } else if (now - folder.since >= this.config.stableMs) {
      this.newFolders.delete(rel);
    }
  }

  // -------------------------------------------------------------------------------------------
  // Batches.

  /** Runs the batch `debounceMs` after the last activity, or `maxWaitMs` after its oldest path became stable. */
  private scheduleBatch(): void {
    if (this.batchTimer) clearTimeout(this.batchTimer);
    this.batchTimer = null;
    if (this.closed || this.stable.size === 0) return;
    const oldest = this.stable.values().next().value!;
    const due = Math.max(Math.min(this.lastActivity + this.config.debounceMs, oldest + this.config.maxWaitMs), this.retryAt);
    const wait = due - Date.now();
    if (wait > 0) {
      this.batchTimer = setTimeout(() => this.scheduleBatch(), wait).unref();
      return;
    }
    if (this.batchQueued) return;
    this.batchQueued = true;
    void this.enqueue(async () => {
      this.batchQueued = false;
      const paths = [...this.stable.keys()];
      this.stable.clear();
      if (paths.length > 0 && !this.closed) await this.runBatch(paths);
    }, () => undefined);
  }

  /** A targeted sync of these source-relative paths. */
  private async runBatch(paths: string[]): Promise<SyncResult> {
    const result = await runSync(this.syncConfig, { files: collapse(paths), signal: this.abort.signal });
    const runError = result.errors.find((e) => e.path === '');
    if (result.status === 'failed' && runError && !['ERR_ABORTED', 'ERR_SOURCE_MISSING'].includes(runError.code) && !this.closed) {
      // The lock not obtained, dest not writable…: the same paths again, later.
      this.retryMs = Math.min(MAX_RETRY_MS, Math.max(1000, this.retryMs * 2));
      this.retryAt = Date.now() + this.retryMs;
      const now = Date.now();
      for (const p of paths) if (!this.pending.has(p) && !this.stable.has(p)) this.stable.set(p, now);
    } else {
      this.retryMs = 0;
      this.retryAt = 0;
    }
    if (runError?.code === 'ERR_SOURCE_MISSING') void this.checkSource();
    this.afterSync(result);
    this.scheduleBatch();
    return result;
  }

  // -------------------------------------------------------------------------------------------
  // Reconcile: the whole tree, at start and every `reconcileMs`.

  private scheduleReconcile(): void {
    if (this.closed || this.config.reconcileMs === 0) return;
    this.reconcileTimer = setTimeout(() => {
      void this.requestReconcile(false).finally(() => this.scheduleReconcile());
    }, this.config.reconcileMs).unref();
  }

  private requestReconcile(atStart: boolean): Promise<void> {
    this.reconcileQueued ??= this.enqueue(async () => {
      this.reconcileQueued = null;
      // While the source is missing, it was reported once; the source check resumes when it is back.
      if (!this.closed && (atStart || this.sourceId !== null)) await this.reconcile();
    }, () => undefined);
    return this.reconcileQueued;
  }

  /**
   * One full sync of the whole tree (deletions too, with `delete`; and the temp files a killed
   * predecessor left in dest). A file modified less than `stableMs` ago may still be written: the
   * run leaves it, and it becomes pending like a changed path, synced once stable.
   */
  private async reconcile(): Promise<void> {
    this.counts.reconciles++;
    // Taken now: a wait for the lock only leaves more files for later, never copies one too young.
    const { result, young } = await syncSettled(this.syncConfig, Date.now() - this.config.stableMs, this.abort.signal);
    if (this.closed) {
      // close() came first and nothing was written: nothing to tell. Else the copies done before
      // the abort are told, as for a batch.
      if (result.copied.length + result.updated.length + result.deleted.length === 0) return;
    } else {
      for (const rel of young) this.track(rel); // (one already pending or stable is on its way)
    }
    this.afterSync(result);
  }

  // -------------------------------------------------------------------------------------------
  // Shared plumbing.

  /** Runs sync jobs one at a time. A job that throws (a bug) is reported, and resolves with `fallback()`: nothing here rejects. */
  private enqueue<T>(job: () => Promise<T>, fallback: (err: unknown) => T): Promise<T> {
    const run = this.queue.then(async () => {
      this.running++;
      try {
        return await job();
      } catch (err) {
        this.report(err);
        return fallback(err);
      } finally {
        this.running--;
      }
    });
    this.queue = run;
    return run;
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
      this.report(this.entryError(entry), false);
    }
    this.emitSafe('sync', result);
  }

  private entryError(e: SyncErrorEntry): WatcherError {
    return toWatcherError(e.code, e.path === '' ? e.message : `${e.path}: ${e.message}`, e.path === '' ? undefined : e.path);
  }

  /** Counts, logs and emits an error. Never throws. */
  private report(err: unknown, log = true): void {
    const error: WatcherError =
      err instanceof Error && typeof (err as WatcherError).code === 'string' ? (err as WatcherError) : toWatcherError(errorCode(err), errorMessage(err), undefined, err);
    this.counts.errors++;
    this.lastError = { code: error.code, message: error.message, ...(typeof error.path === 'string' ? { path: error.path } : {}), at: new Date() };
    if (log) this.log.error(`${error.code}: ${error.message}`);
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
