/**
 * Configuration per subsystem. One environment serves them all, but each resolver reads only the
 * options and variables of its own subsystem, so a typo in a watcher variable never breaks the
 * route, and a cleanup variable never breaks a sync. Each returns a frozen object, resolved once;
 * inside the library it is passed on as it is, never turned back into options.
 */
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { Logger, Strategy, UploadSyncOptions } from '../shared/options.js';
import {
  envVar, fail, isSyncEnabled, option, parseBoolean, parseExtensions, parseInteger, parseMode, parseNonNegative,
  parsePath, parseStrategy, readEnv, type Env, type Origin,
} from './parse.js';
import { checkDestFolder, checkFolders, checkLockDir, realPaths, resolveRoot } from './paths.js';
import { isBucketValue, resolveBucket, resolveStore, storeUrl, type StoreConfig } from './store.js';

export type { Env } from './parse.js';
export type { StoreConfig } from './store.js';

/** Where the uploads are, and which of them the library handles: what every subsystem reads. */
export interface PathsConfig {
  readonly root: string;
  readonly source: string;
  readonly dest: string;
  /** Lower-case extensions without the dot; `null` means every extension. */
  readonly extensions: ReadonlySet<string> | null;
  readonly logFile: string | null;
  readonly logger: Logger | null;
  /** The shared store in a bucket (`store`, `UPLOAD_SYNC_STORE`), `null` without one (or with `store: false`). */
  readonly store: StoreConfig | null;
}

/** What `createUploadsRoute` and the saving part of `saveUpload` read. */
export type ServeConfig = PathsConfig;

/** What every run that writes to dest reads (sync, watcher, cleanup): the enable rule and the lock. */
export interface RunConfig extends PathsConfig {
  /** What the enable rule says for this environment (before `force`). */
  readonly enabled: boolean;
  readonly force: boolean;
  readonly dryRun: boolean;
  readonly lockDir: string;
  readonly lockTimeoutMs: number;
}

/**
 * A sync whose `dest` is a bucket (a push: the uploads folder into the bucket) or whose `source` is
 * one (a pull: the bucket into a local folder). That side's path in the config is then the bucket's
 * URL, `s3://bucket/prefix`, for logs and results.
 */
export interface BucketEnd {
  readonly side: 'source' | 'dest';
  readonly store: StoreConfig;
}

/** What `syncUploads` reads. */
export interface SyncConfig extends RunConfig {
  /** `source` or `dest` is a bucket (`s3://…` or `{ bucket, prefix?, client? }`); `null`: two local folders. */
  readonly bucket: BucketEnd | null;
  readonly strategy: Strategy;
  readonly delete: boolean;
  readonly fileMode: number | null;
  readonly dirMode: number | null;
  readonly concurrency: number;
  /** fsync each published file before its rename and its folder after. */
  readonly fsync: boolean;
}

/** What `createWatcher` reads: its timings, and the sync settings of the runs it starts. */
export interface WatchConfig extends SyncConfig {
  readonly stableMs: number;
  readonly debounceMs: number;
  readonly maxWaitMs: number;
  readonly reconcileMs: number;
  readonly usePolling: boolean;
}

/** What `cleanupOld` reads. */
export interface CleanupConfig extends RunConfig {
  readonly olderThanDays: number;
  readonly orphansOnly: boolean;
  /** `Infinity` when there is no cap. */
  readonly maxDelete: number;
}

/** Options and environment normalized once, every subsystem's settings together (`resolveConfig`). Frozen. */
export type ResolvedConfig = WatchConfig & CleanupConfig;

/**
 * The default lock folder's name, in the OS temp folder: one folder for every user, so two users
 * syncing the same dest share its lock (a per-user folder would let them run at once). The library
 * creates it writable by all (src/shared/lock.ts). Not `upload-sync`: earlier builds made that one
 * 0755, owned by whichever user came first, and a machine that ran them may still have it.
 */
export const DEFAULT_LOCK_DIR_NAME = 'upload-sync-locks';

/**
 * `<os.tmpdir()>/upload-sync-locks`, computed again only when the variables `os.tmpdir()` reads
 * change: `os.tmpdir()` checks the process's credentials on each call (a dozen system calls),
 * and the default lock folder is resolved on every upload's sync.
 */
let defaultLock: { vars: string; dir: string } | null = null;
function defaultLockDir(): string {
  const { TMPDIR, TMP, TEMP } = process.env;
  const vars = `${TMPDIR}\0${TMP}\0${TEMP}`;
  if (defaultLock?.vars !== vars) defaultLock = { vars, dir: join(tmpdir(), DEFAULT_LOCK_DIR_NAME) };
  return defaultLock.dir;
}

export const DEFAULTS = Object.freeze({
  strategy: 'copy' as Strategy,
  concurrency: 4,
  /** Requests to a bucket at once (HEADs of the quick check, PUTs, GETs): they wait on the network, not the disk. */
  bucketConcurrency: 16,
  lockTimeoutMs: 30_000,
  stableMs: 1000,
  debounceMs: 200,
  maxWaitMs: 5000,
  reconcileMs: 600_000,
  olderThanDays: 30,
});

/** Reads one setting: the option if given, else the env variable if set, else the default. */
class Settings {
  constructor(
    private readonly options: UploadSyncOptions,
    readonly env: Env,
  ) {
    if (options === null || typeof options !== 'object') fail(option('options'), 'an options object', options);
  }

  get<T>(key: keyof UploadSyncOptions, variable: string | undefined, parse: (v: unknown, o: Origin) => T, dflt: T): T {
    if (this.options[key] !== undefined) return parse(this.options[key], option(key));
    const raw = variable === undefined ? undefined : readEnv(this.env, variable);
    return raw === undefined ? dflt : parse(raw, envVar(variable!));
  }

  /** A path: an empty one is refused (it would resolve to the cwd), so paths do not go through readEnv. */
  path(key: 'root' | 'source' | 'dest' | 'lockDir', variable: string): string | undefined {
    if (this.options[key] !== undefined) return parsePath(this.options[key], option(key));
    const raw = this.env[variable];
    return raw === undefined ? undefined : parsePath(raw, envVar(variable));
  }

  option<K extends keyof UploadSyncOptions>(key: K): UploadSyncOptions[K] {
    return this.options[key];
  }

  /** Canonical paths, each resolved once in this resolution. */
  readonly real = realPaths();
}

const int = (opts?: Parameters<typeof parseInteger>[2]) => (v: unknown, o: Origin) => parseInteger(v, o, opts);
const ms = int({ unit: ' of milliseconds' });

/**
 * The bucket that `source` or `dest` names (`s3://…`, or `{ bucket, prefix?, client? }` as an
 * option), for the subsystems that take one (sync, watcher); elsewhere a bucket there is `ERR_CONFIG`.
 */
function bucketOf(s: Settings, allowed: boolean): BucketEnd | null {
  let found: BucketEnd | null = null;
  for (const [side, variable] of [['source', 'UPLOAD_SYNC_SOURCE'], ['dest', 'UPLOAD_SYNC_DEST']] as const) {
    const given = s.option(side);
    const fromEnv = given === undefined && isBucketValue(s.env[variable] ?? '');
    if (!(given !== undefined ? isBucketValue(given) : fromEnv)) continue;
    const origin = given !== undefined ? option(side) : envVar(variable);
    if (!allowed) fail(origin, 'a folder (a bucket as source or dest is for syncUploads, createWatcher and `upload-sync sync`; the route and saveUpload reach a bucket through `store`)', given ?? s.env[variable]);
    if (found !== null) fail(origin, 'a folder: source and dest cannot both be buckets (push from a folder, or pull into one)', given ?? s.env[variable]);
    found = { side, store: resolveBucket(given, s.env, side, given === undefined ? variable : null)! };
  }
  return found;
}

/** The paths and what reads and writes them; `bucket`: the end that is a bucket (sync and watcher only). */
type Paths = PathsConfig & { bucket: BucketEnd | null };

function pathsOf(s: Settings, buckets = false): Paths {
  const root = resolveRoot(process.cwd(), s.path('root', 'UPLOAD_SYNC_ROOT'));
  const bucket = bucketOf(s, buckets);
  const local = (side: 'source' | 'dest', variable: string, dflt: string) =>
    bucket?.side === side ? storeUrl(bucket.store) : resolve(root, s.path(side, variable) ?? dflt);
  const source = local('source', 'UPLOAD_SYNC_SOURCE', join('public', 'uploads'));
  const dest = local('dest', 'UPLOAD_SYNC_DEST', join('.next', 'standalone', 'public', 'uploads'));
  if (bucket === null) checkFolders(source, dest, s.real);
  else if (bucket.side === 'source') checkDestFolder(dest, s.real);
  const logOption = s.option('logFile');
  let logFile: string | null = null;
  if (logOption === false) logFile = null;
  else if (logOption !== undefined) logFile = resolve(root, parsePath(logOption, option('logFile')));
  else if (readEnv(s.env, 'UPLOAD_SYNC_LOG_FILE') !== undefined) {
    logFile = resolve(root, parsePath(readEnv(s.env, 'UPLOAD_SYNC_LOG_FILE'), envVar('UPLOAD_SYNC_LOG_FILE')));
  }
  const logger = s.option('logger') ?? null;
  if (logger !== null && !['info', 'warn', 'error'].every((m) => typeof (logger as unknown as Record<string, unknown>)[m] === 'function')) {
    fail(option('logger'), 'an object with info, warn and error functions', logger);
  }
  const store = resolveStore(s.option('store'), s.env);
  return { root, source, dest, extensions: s.get('extensions', 'UPLOAD_SYNC_EXTENSIONS', parseExtensions, null), logFile, logger, store, bucket };
}

function runOf(s: Settings, buckets = false, paths: Paths = pathsOf(s, buckets)): RunConfig & { bucket: BucketEnd | null } {
  const lockDir = resolve(paths.root, s.path('lockDir', 'UPLOAD_SYNC_LOCK_DIR') ?? defaultLockDir());
  // A bucket side has no folder to keep the lock out of: the local side is checked twice.
  const local = paths.bucket?.side === 'source' ? paths.dest : paths.source;
  checkLockDir(paths.bucket === null ? paths.source : local, paths.bucket === null ? paths.dest : local, lockDir, s.real);
  return {
    ...paths,
    enabled: isSyncEnabled(s.env),
    force: s.get('force', undefined, parseBoolean, false),
    dryRun: s.get('dryRun', undefined, parseBoolean, false),
    lockDir,
    lockTimeoutMs: s.get('lockTimeoutMs', undefined, ms, DEFAULTS.lockTimeoutMs),
  };
}

function syncOf(s: Settings, paths?: Paths): SyncConfig {
  const run = runOf(s, true, paths);
  return {
    ...run,
    strategy: s.get('strategy', 'UPLOAD_SYNC_STRATEGY', parseStrategy, DEFAULTS.strategy),
    delete: s.get('delete', 'UPLOAD_SYNC_DELETE', parseBoolean, false),
    fileMode: s.get('fileMode', 'UPLOAD_SYNC_FILE_MODE', parseMode, null),
    dirMode: s.get('dirMode', 'UPLOAD_SYNC_DIR_MODE', parseMode, null),
    concurrency: s.get('concurrency', undefined, int({ min: 1, max: 256 }), run.bucket === null ? DEFAULTS.concurrency : DEFAULTS.bucketConcurrency),
    fsync: s.get('fsync', 'UPLOAD_SYNC_FSYNC', parseBoolean, false),
  };
}

function watchOf(s: Settings): Omit<WatchConfig, keyof SyncConfig> {
  return {
    stableMs: s.get('stableMs', 'UPLOAD_SYNC_STABLE_MS', ms, DEFAULTS.stableMs),
    debounceMs: s.get('debounceMs', 'UPLOAD_SYNC_DEBOUNCE_MS', ms, DEFAULTS.debounceMs),
    maxWaitMs: s.get('maxWaitMs', 'UPLOAD_SYNC_MAX_WAIT_MS', ms, DEFAULTS.maxWaitMs),
    reconcileMs: s.get('reconcileMs', 'UPLOAD_SYNC_RECONCILE_MS', ms, DEFAULTS.reconcileMs),
    usePolling: s.get('usePolling', undefined, parseBoolean, false),
  };
}

function cleanupOf(s: Settings): Omit<CleanupConfig, keyof RunConfig> {
  return {
    olderThanDays: s.get('olderThanDays', 'UPLOAD_SYNC_CLEANUP_DAYS', (v, o) => parseNonNegative(v, o, ' of days'), DEFAULTS.olderThanDays),
    orphansOnly: s.get('orphansOnly', undefined, parseBoolean, true),
    maxDelete: s.get('maxDelete', 'UPLOAD_SYNC_MAX_DELETE', int({ min: 1 }), Infinity),
  };
}

/**
 * The route's and `saveUpload`'s settings: paths, filter, log. No sync, watcher or cleanup variable is read.
 * @throws UploadSyncError `ERR_CONFIG`
 */
export function resolveServeConfig(options: UploadSyncOptions = {}, env: Env = process.env): ServeConfig {
  return resolveUploadConfig(options, env).serve;
}

/**
 * `saveUpload`'s settings, and its sync's from the same resolution (the paths are resolved and
 * checked once: both are on every upload's path). The sync's are resolved on first call, and a bad
 * sync setting throws only then: the upload is saved, and its sync result says what is wrong.
 * @throws UploadSyncError `ERR_CONFIG` (from the call, and from `sync()`)
 */
export function resolveUploadConfig(options: UploadSyncOptions = {}, env: Env = process.env): { serve: ServeConfig; sync: () => SyncConfig } {
  const s = new Settings(options, env);
  const resolved = pathsOf(s); // no bucket: it throws on one
  const { bucket: _none, ...paths } = resolved;
  return { serve: Object.freeze(paths), sync: () => Object.freeze(syncOf(s, resolved)) };
}

/**
 * `syncUploads`'s settings. No watcher or cleanup variable is read.
 * @throws UploadSyncError `ERR_CONFIG`
 */
export function resolveSyncConfig(options: UploadSyncOptions = {}, env: Env = process.env): SyncConfig {
  return Object.freeze(syncOf(new Settings(options, env)));
}

/**
 * `createWatcher`'s settings: its timings and the sync settings of its runs. No cleanup variable is read.
 * @throws UploadSyncError `ERR_CONFIG`
 */
export function resolveWatchConfig(options: UploadSyncOptions = {}, env: Env = process.env): WatchConfig {
  const s = new Settings(options, env);
  const sync = syncOf(s);
  if (sync.bucket?.side === 'source') {
    fail(s.option('source') !== undefined ? option('source') : envVar('UPLOAD_SYNC_SOURCE'), 'a folder: the watcher pushes a folder into a bucket (`dest`); pull a bucket with syncUploads or `upload-sync sync --source s3://…`', sync.source);
  }
  return Object.freeze({ ...sync, ...watchOf(s) });
}

/**
 * `cleanupOld`'s settings. No sync or watcher variable is read.
 * @throws UploadSyncError `ERR_CONFIG`
 */
export function resolveCleanupConfig(options: UploadSyncOptions = {}, env: Env = process.env): CleanupConfig {
  const s = new Settings(options, env);
  const { bucket: _none, ...run } = runOf(s);
  return Object.freeze({ ...run, ...cleanupOf(s) });
}

/**
 * Normalizes options and environment into one frozen config holding every subsystem's settings.
 * Options win over the environment, the environment over defaults. The library's own entry points
 * use the per-subsystem resolvers above, so a bad value breaks only its own subsystem.
 * @throws UploadSyncError `ERR_CONFIG`, naming the option or variable, the value and what is accepted.
 */
export function resolveConfig(options: UploadSyncOptions = {}, env: Env = process.env): ResolvedConfig {
  const s = new Settings(options, env);
  return Object.freeze({ ...syncOf(s), ...watchOf(s), ...cleanupOf(s) });
}
