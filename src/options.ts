/**
 * Public option and result types. Every option falls back to its environment variable, then to
 * its default; an explicit option always wins over the environment.
 */

/** Where messages go besides `debug` and the log file: pass your app's logger (console works). */
export interface Logger {
  info(message: string): void;
  warn(message: string): void;
  error(message: string): void;
}

/** `'*'` (everything), `'audio'` (a preset), a list such as `['mp3', 'flac']`, or a comma list `'mp3,flac'`. */
export type ExtensionsOption = '*' | 'audio' | string | readonly string[];

/** How a file reaches the mirror. */
export type Strategy = 'copy' | 'hardlink';

/** Options every part of the library shares (`syncUploads`, `createWatcher`, `cleanupOld`). */
export interface CommonOptions {
  /**
   * Project root that relative `source`/`dest` resolve against.
   * @default env `UPLOAD_SYNC_ROOT`, else the cwd; when the cwd is `<x>/.next/standalone`, `<x>`
   */
  root?: string;
  /**
   * The canonical uploads folder.
   * @default env `UPLOAD_SYNC_SOURCE`, else `<root>/public/uploads`
   */
  source?: string;
  /**
   * The mirror inside the standalone output.
   * @default env `UPLOAD_SYNC_DEST`, else `<root>/.next/standalone/public/uploads`
   */
  dest?: string;
  /**
   * Run even when the environment turns sync off (`DISABLE_UPLOAD_SYNC`, no `NODE_ENV=production`).
   * @default false
   */
  force?: boolean;
  /**
   * Which files are synced (and, so, which files `delete` and cleanup may touch in dest).
   * @default env `UPLOAD_SYNC_EXTENSIONS`, else `'*'`
   * @example ['mp3', 'flac']  'audio'  'audio,jpg'
   */
  extensions?: ExtensionsOption;
  /** Also send messages to this logger. */
  logger?: Logger;
  /**
   * Append timestamped lines here (`false` turns the env's file off).
   * @default env `UPLOAD_SYNC_LOG_FILE`, else none
   */
  logFile?: string | false;
  /**
   * Folder for the cross-process lock; never inside source or dest.
   * @default env `UPLOAD_SYNC_LOCK_DIR`, else `<os tmpdir>/upload-sync`
   */
  lockDir?: string;
  /**
   * How long a run waits for another process's lock before it fails with `ELOCKED`.
   * @default 30000
   */
  lockTimeoutMs?: number;
}

/** Options of `syncUploads`. */
export interface SyncOptions extends CommonOptions {
  /**
   * Targeted mode: sync only these paths (source-relative, or absolute inside source); no tree walk.
   * A folder syncs its whole subtree.
   */
  files?: readonly string[];
  /** Report what would change, write nothing. @default false */
  dryRun?: boolean;
  /**
   * Mirror deletions: remove from dest what is gone from source (only files the extension filter allows).
   * @default env `UPLOAD_SYNC_DELETE`, else false
   */
  delete?: boolean;
  /**
   * `'copy'` tries a reflink first and falls back to a plain copy; `'hardlink'` links, and copies across filesystems.
   * @default env `UPLOAD_SYNC_STRATEGY`, else `'copy'`
   */
  strategy?: Strategy;
  /**
   * Mode of published files, a number or an octal string (`0o664`, `'664'`).
   * @default env `UPLOAD_SYNC_FILE_MODE`, else the source file's mode
   */
  fileMode?: number | string;
  /**
   * Mode of folders created or kept in dest (the old script's `chmod 775`).
   * @default env `UPLOAD_SYNC_DIR_MODE`, else the source folder's mode
   */
  dirMode?: number | string;
  /** Files copied at once. @default 4 */
  concurrency?: number;
  /** Stops starting new copies; the run resolves with what was done and an `ERR_ABORTED` error entry. */
  signal?: AbortSignal;
}

/** Options of `createWatcher` (all of `SyncOptions` but `files`, `dryRun` and `signal`). */
export interface WatcherOptions extends Omit<SyncOptions, 'files' | 'dryRun' | 'signal'> {
  /** A path is synced once its size and mtime have been stable this long. @default env `UPLOAD_SYNC_STABLE_MS`, else 1000 */
  stableMs?: number;
  /** Batch the changes of this window into one targeted sync. @default env `UPLOAD_SYNC_DEBOUNCE_MS`, else 200 */
  debounceMs?: number;
  /** A stable path waits at most this long for its batch while events keep coming. @default env `UPLOAD_SYNC_MAX_WAIT_MS`, else 5000 */
  maxWaitMs?: number;
  /** Full reconcile every this many ms (0: only at start). @default env `UPLOAD_SYNC_RECONCILE_MS`, else 600000 */
  reconcileMs?: number;
  /** Use polling instead of native events (network filesystems). @default false */
  usePolling?: boolean;
}

/** Options of `cleanupOld`. */
export interface CleanupOptions extends CommonOptions {
  /** Remove orphans older than this many days. @default env `UPLOAD_SYNC_CLEANUP_DAYS`, else 30 */
  olderThanDays?: number;
  /** `false` prunes by age alone, as the old `find -mtime +30 -delete` did. @default true */
  orphansOnly?: boolean;
  /** List what would go, remove nothing. @default false */
  dryRun?: boolean;
  /** Remove at most this many files in one run. @default env `UPLOAD_SYNC_MAX_DELETE`, else no cap */
  maxDelete?: number;
}

/** Everything `resolveConfig` accepts. */
export type UploadSyncOptions = SyncOptions & WatcherOptions & CleanupOptions;

/** One file (or the run itself, `path: ''`) that could not be handled. */
export interface SyncErrorEntry {
  /** Relative to dest (or source), `/`-separated; `''` for the run as a whole. */
  path: string;
  /** A stable code: Node's (`EACCES`, `ENOSPC`, …) or ours (`ERR_OUTSIDE`, `ELOCKED`, …). */
  code: string;
  message: string;
}

/** What `syncUploads` did. It never rejects: every failure is in here. */
export interface SyncResult {
  /** `partial`: some files failed; `failed`: nothing could be done; `disabled`: the env turns sync off. */
  status: 'ok' | 'partial' | 'failed' | 'disabled';
  dryRun: boolean;
  /** Paths relative to dest, `/`-separated, sorted. */
  copied: string[];
  updated: string[];
  deleted: string[];
  unchanged: number;
  errors: SyncErrorEntry[];
  /** Bytes written (or that would be written, in a dry run). */
  bytes: number;
  durationMs: number;
}
