import { performance } from 'node:perf_hooks';
import { resolveSyncConfig, type SyncConfig } from '../config/config.js';
import { canonical } from '../config/paths.js';
import { UploadSyncError } from '../shared/errors.js';
import { createLog } from '../shared/log.js';
import type { SyncOptions, SyncProgress, SyncResult } from '../shared/options.js';
import { workerHelper } from './helper.js';
import { elapsed, emptyResult, toEntry } from './report.js';
import { runOnce, type RunDeps } from './run.js';

export { elapsed, toEntry } from './report.js';
export { parentOf } from './local-dest.js';

/** How runs are made by default: with the built package's helper thread. */
const DEFAULT_DEPS: RunDeps = { helper: workerHelper };

/**
 * Mirrors the canonical uploads folder into the standalone output: the whole tree, or only
 * `files` (targeted). Never rejects: every failure is in the result.
 *
 * Calls in one process coalesce: a call made while a run of its kind (full, or targeted) for the
 * same dest is going is served by one follow-up run (targeted calls merge their lists). Full runs
 * across processes are serialized by a lock file outside the public folders; a targeted run never
 * waits for a full one, in this process or another (each file is published by its own atomic rename).
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
    return failed(started, Boolean(options?.dryRun), err);
  }
  return runSync(config, request);
}

/**
 * Internal (`saveUpload`): a targeted sync of `files` with the configuration `resolve` gives (the
 * save's own, resolved with its paths); one that throws is the result's error, as in `syncUploads`.
 */
export async function syncFilesWith(resolve: () => SyncConfig, files: readonly string[]): Promise<SyncResult> {
  const started = performance.now();
  let config: SyncConfig;
  try {
    config = resolve();
  } catch (err) {
    return failed(started, false, err);
  }
  return runSync(config, { files });
}

const failed = (started: number, dryRun: boolean, err: unknown): SyncResult => ({ ...emptyResult(dryRun), status: 'failed', errors: [toEntry('', err)], durationMs: elapsed(started) });

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
export function runSync(config: SyncConfig, request: SyncRequest = {}, deps: RunDeps = DEFAULT_DEPS): Promise<SyncResult> {
  return start(config, request, null, deps);
}

/**
 * Internal (the watcher's reconcile; not exported by the package): a full run that leaves out the
 * files modified after `newerThan` (epoch ms), which may still be written, and hands them back as
 * `young` (source-relative) for the caller to sync once they are stable. Young files are neither
 * errors nor copies. The run is its own: no other call merges with it, nor it with another.
 */
export async function syncSettled(
  config: SyncConfig,
  newerThan: number,
  signal?: AbortSignal,
  onProgress?: (progress: SyncProgress) => void,
  deps: RunDeps = DEFAULT_DEPS,
): Promise<{ result: SyncResult; young: string[] }> {
  const leave: LeaveYoung = { newerThan, young: [] };
  const result = await start(config, { signal, onProgress }, leave, deps);
  return { result, young: leave.young };
}

/** What `syncSettled` asks of a run: files modified after `newerThan` are left, and listed in `young`. */
interface LeaveYoung {
  newerThan: number;
  young: string[];
}

async function start(config: SyncConfig, request: SyncRequest, leave: LeaveYoung | null, deps: RunDeps): Promise<SyncResult> {
  const started = performance.now();
  if (!config.enabled && !config.force) {
    createLog('sync', null, null).info('Sync disabled by the environment (set NODE_ENV=production or ENABLE_UPLOAD_SYNC=true, or pass force)');
    return { ...emptyResult(config.dryRun), status: 'disabled', durationMs: elapsed(started) };
  }
  return schedule(config, request.files ? [...request.files] : null, request.signal, request.onProgress, leave, deps);
}

function validateFiles(files: unknown): string[] | null {
  if (files === undefined) return null;
  if (!Array.isArray(files)) throw new UploadSyncError('ERR_CONFIG', `Invalid option \`files\`: expected an array of paths, got ${typeof files}`);
  return files as string[];
}

// ---------------------------------------------------------------------------------------------
// Coalescing: one queue per dest in this process.

interface Pending {
  config: SyncConfig;
  /** `null`: a full run. */
  files: Set<unknown> | null;
  signal: AbortSignal | undefined;
  onProgress: ProgressFn | undefined;
  leave: LeaveYoung | null;
  deps: RunDeps;
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

/**
 * Dest's real path by its spelling, resolved once per spelling (a few, in any process): the queue
 * key is on every upload's path. A dest whose symlink is re-pointed while the process runs keeps
 * its first key, which only decides which calls of this process coalesce; the lock, which
 * serializes full runs across processes, resolves dest itself.
 */
const destKeys = new Map<string, string>();
const MAX_DEST_KEYS = 64;
function destKey(dest: string): string {
  let key = destKeys.get(dest);
  if (key === undefined) {
    if (destKeys.size >= MAX_DEST_KEYS) destKeys.clear();
    destKeys.set(dest, (key = canonical(dest)));
  }
  return key;
}

type ProgressFn = (progress: SyncProgress) => void;

function schedule(config: SyncConfig, files: unknown[] | null, signal: AbortSignal | undefined, onProgress: ProgressFn | undefined, leave: LeaveYoung | null, deps: RunDeps): Promise<SyncResult> {
  // Keyed by dest's real path: two spellings of one folder share a queue (as they share the lock).
  // Full and targeted runs have a queue each: an upload's sync never waits behind a full run (which
  // takes minutes on a fresh mirror); targeted runs take no lock (run.ts says why that is safe).
  // A push is keyed by its bucket and prefix (dest is the bucket's URL), a pull by the folder it writes.
  const written = config.bucket?.side === 'dest' ? config.dest : destKey(config.dest);
  const queueKey = `${files === null ? 'full' : 'files'}:${written}`;
  let queue = queues.get(queueKey);
  if (!queue) queues.set(queueKey, (queue = { running: false, waiting: [] }));
  const last = queue.waiting[queue.waiting.length - 1];
  // A caller with its own signal, logger or progress callback keeps its own run, so nothing crosses
  // callers; so does a run that leaves young files (a plain call must copy them, and it must not).
  const own = signal !== undefined || onProgress !== undefined || leave !== null;
  if (last && !own && last.signal === undefined && last.onProgress === undefined && last.leave === null && last.deps === deps && last.config.logger === config.logger && last.config.bucket?.store.client === config.bucket?.store.client && runKey(last.config) === runKey(config)) {
    if (files !== null && last.files !== null) for (const f of files) last.files.add(f);
    return last.promise;
  }
  let resolvePending!: (r: SyncResult) => void;
  const promise = new Promise<SyncResult>((r) => (resolvePending = r));
  queue.waiting.push({ config, files: files && new Set(files), signal, onProgress, leave, deps, promise, resolve: resolvePending });
  if (!queue.running) void drain(queueKey, queue);
  return promise;
}

/** A run with a bucket at one end (src/bucket/), loaded on first use: a folder-to-folder app never loads it. */
const runBucket: typeof runOnce = async (config, request) => (await import('../bucket/run.js')).runBucketOnce(config, request);

async function drain(queueKey: string, queue: Queue): Promise<void> {
  queue.running = true;
  while (queue.waiting.length > 0) {
    const next = queue.waiting.shift()!;
    const { result, young } = await (next.config.bucket === null ? runOnce : runBucket)(next.config, { files: next.files && [...next.files], signal: next.signal, onProgress: next.onProgress, newerThan: next.leave?.newerThan ?? null }, next.deps);
    if (next.leave) for (const rel of young) next.leave.young.push(rel);
    next.resolve(result);
  }
  queue.running = false;
  queues.delete(queueKey);
}

