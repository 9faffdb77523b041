import { realpath, stat } from 'node:fs/promises';
import type { WatchConfig } from '../config/config.js';
import { errorCode, errorMessage } from '../shared/errors.js';
import type { RunLog } from '../shared/log.js';
import { relOf, toWatcherError, type EventSource, type SourceEvents } from './events.js';
import { NativeSource } from './native-source.js';
import { loadChokidar, PollingSource, type Chokidar } from './polling-source.js';

/** How often the source folder itself is checked (gone, back, replaced): one `stat`. */
const SOURCE_CHECK_MS = 1000;

/** What a `SourceWatch` tells its owner: the events of its source, and its restarts. */
export interface SourceWatchEvents extends SourceEvents {
  /**
   * About to watch `root` (the source's real path; `null` while it is missing), at start or on a
   * restart: what was pending is forgotten, the reconcile after the restart finds it again.
   */
  reset(root: string | null): void;
  /** A restart is done; awaited, so restarts run one at a time, each with what follows it (a reconcile). */
  restarted(): Promise<void>;
}

/**
 * `usePolling` after `CHOKIDAR_USEPOLLING`, which chokidar applies over every instance's option
 * (the README documents it as the variable for this option): native watching is ours, so it is
 * read here too.
 */
export function pollingFromEnv(usePolling: boolean, env: NodeJS.ProcessEnv = process.env): boolean {
  const value = env.CHOKIDAR_USEPOLLING;
  if (value === undefined) return usePolling;
  const lower = value.toLowerCase();
  if (lower === 'false' || lower === '0') return false;
  if (lower === 'true' || lower === '1') return true;
  return lower !== '';
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

/**
 * Keeps one event source on the source folder: native events, or polling when asked or when the
 * inotify limit is reached. Starts it again when the source folder goes, comes back, or is
 * replaced by another folder (no source recovers from that by itself).
 */
export class SourceWatch {
  private usePolling: boolean;
  private chokidar: Chokidar | null = null;
  private source: EventSource | null = null;
  /** `dev:ino` of the watched source folder; `null` while it is missing. */
  private sourceId: string | null = null;
  private sourceReal: string | null = null;
  private timer: NodeJS.Timeout | null = null;
  /** Restarts, one at a time. */
  private restarts: Promise<void> = Promise.resolve();
  private restarting = false;
  private checking = false;
  private closed = false;

  constructor(
    private readonly config: WatchConfig,
    private readonly timing: { pollMs: number },
    private readonly log: RunLog,
    private readonly out: SourceWatchEvents,
  ) {
    this.usePolling = pollingFromEnv(config.usePolling);
  }

  /** `off` while polling is wanted and chokidar could not be loaded, and once closed. */
  get mode(): 'native' | 'polling' | 'off' {
    return this.closed ? 'off' : (this.source?.mode ?? 'off');
  }

  get present(): boolean {
    return this.sourceId !== null;
  }

  /** Resolves once the tree is watched, and any restart begun meanwhile (a fall back to polling) is done. */
  async start(): Promise<void> {
    try {
      // Loaded at start even for native events, which do without it: the fall back to polling at
      // the inotify limit must not find it missing then.
      this.chokidar = await loadChokidar();
    } catch (err) {
      const what = this.usePolling ? 'only the reconcile every reconcileMs runs' : 'native events go on, but there is no fall back to polling';
      this.out.error(toWatcherError(errorCode(err), `Cannot load chokidar (${errorMessage(err)}); ${what}`, undefined, err));
    }
    if (this.closed) return;
    this.timer = setInterval(() => void this.check(), SOURCE_CHECK_MS).unref();
    await this.watch();
    await this.restarts;
  }

  async rescan(): Promise<void> {
    await this.source?.rescan();
  }

  /** Stops watching; resolves once a restart under way has ended. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    await this.unwatch();
    await this.restarts;
    await this.unwatch();
  }

  /** The source folder gone, back, or replaced by another folder: watched again. */
  async check(): Promise<void> {
    if (this.closed || this.restarting || this.checking) return;
    this.checking = true;
    try {
      const id = await folderId(this.config.source);
      if (id === this.sourceId || this.closed || this.restarting) return;
      if (id === null) this.out.error(toWatcherError('ERR_SOURCE_MISSING', `Source folder ${this.config.source} is gone; waiting for it to come back`));
      else this.log.info(`Source folder ${this.config.source} ${this.sourceId === null ? 'is there now' : 'was replaced'}; watching it again`);
      await this.restart();
    } finally {
      this.checking = false;
    }
  }

  /** (Re)starts watching; resolves once every folder is watched (native) or chokidar's first scan is done (polling). */
  private async watch(): Promise<void> {
    await this.unwatch();
    this.sourceId = await folderId(this.config.source);
    this.sourceReal = this.sourceId === null ? null : await realpath(this.config.source).catch(() => null);
    this.out.reset(this.sourceReal);
    if (this.sourceId === null) this.log.warn(`Source folder ${this.config.source} does not exist; waiting for it (checked every ${SOURCE_CHECK_MS / 1000} s)`);
    // While the source is missing, nothing is watched: the source check keeps the process alive, as the watches do otherwise.
    if (this.sourceReal === null) this.timer?.ref();
    else this.timer?.unref();
    if (this.closed) return;
    const source = this.create();
    this.source = source; // while the source is missing too: the mode stays what it is
    await source?.start();
  }

  /** The source for the mode wanted; `null` when polling is wanted and chokidar is not there. */
  private create(): EventSource | null {
    const { source, dest, extensions, stableMs } = this.config;
    const options = { root: this.sourceReal, source, dest, extensions, stableMs, pollMs: this.timing.pollMs };
    const out: SourceEvents = {
      changed: (rel, cause) => (rel === '' ? void this.check() : this.out.changed(rel, cause)),
      folderAdded: (rel) => this.out.folderAdded(rel),
      folderRemoved: (rel) => this.out.folderRemoved(rel),
      error: (err) => this.onError(err),
    };
    if (!this.usePolling) return new NativeSource(options, out);
    return this.chokidar === null ? null : new PollingSource(this.chokidar, options, out);
  }

  private async unwatch(): Promise<void> {
    const source = this.source;
    this.source = null;
    await source?.close().catch((err: unknown) => this.out.error(err));
  }

  /** Restarts watching (one restart at a time), then lets the owner reconcile what happened meanwhile. */
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
        await this.out.restarted();
      })
      .catch((err: unknown) => this.out.error(err));
    return this.restarts;
  }

  /** At the inotify limit, polling instead; any other error is reported, and the rest of the tree is still watched. */
  private onError(err: unknown): void {
    const code = errorCode(err);
    if ((code === 'ENOSPC' || code === 'EMFILE') && !this.usePolling) {
      this.usePolling = true;
      this.out.error(watchLimitError(code, this.config.source, err));
      void this.restart();
      return;
    }
    const path = (err as { path?: unknown }).path;
    const rel = typeof path === 'string' ? (relOf(this.sourceReal ?? this.config.source, path) ?? path) : undefined;
    this.out.error(toWatcherError(code, `Watch error${rel ? ` on ${rel}` : ''}: ${errorMessage(err)}; the rest of the tree is still watched`, rel, err));
  }
}

/** ENOSPC or EMFILE from `fs.watch`: which limit, and how to raise it. */
function watchLimitError(code: 'ENOSPC' | 'EMFILE', source: string, cause: unknown) {
  const limit = code === 'ENOSPC' ? 'fs.inotify.max_user_watches' : 'fs.inotify.max_user_instances (or the open file limit, ulimit -n)';
  const setting = code === 'ENOSPC' ? 'fs.inotify.max_user_watches=524288' : 'fs.inotify.max_user_instances=1024';
  return toWatcherError(
    code,
    `Cannot watch ${source} with native events: the system limit on inotify watches was reached (${code}). ` +
      `Raise ${limit}, e.g. 'echo ${setting} | sudo tee /etc/sysctl.d/60-upload-sync.conf && sudo sysctl --system', then restart. ` +
      'Falling back to polling meanwhile (it polls and holds state for every file: CPU and memory grow with the tree).',
    undefined,
    cause,
  );
}
