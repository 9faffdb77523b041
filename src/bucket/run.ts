/**
 * One sync run with a bucket at one end, as a one-way pipeline: configuration (resolved by the
 * caller) → plan (batches: a page of the bucket's listing at a time) → execute (puts or gets,
 * `concurrency` at a time; deletions through a guard) → report (the engine's `SyncResult`).
 * A push (`dest` is a bucket) and a pull (`source` is one) share the shape; this module wires
 * them and owns what spans the run: the lock, the store's client, the guards.
 */
import { setMaxListeners } from 'node:events';
import { mkdirSync, realpathSync, statSync } from 'node:fs';
import type { SyncConfig } from '../config/config.js';
import { Report } from '../engine/report.js';
import type { RunRequest } from '../engine/run.js';
import { DeleteGuard } from '../shared/delete-guard.js';
import { UploadSyncError, errorMessage } from '../shared/errors.js';
import { acquireLock, type Release } from '../shared/lock.js';
import { createLog } from '../shared/log.js';
import type { SyncResult } from '../shared/options.js';
import { leanRequests, type Lean } from '../store/lean.js';
import { storeFromConfig } from '../store/open.js';
import type { S3Store } from '../store/s3-store.js';
import { BucketGuard } from './guard.js';
import type { PlanContext } from './plan.js';
import { planPullFiles, planPullTree, type PullLeftovers } from './plan-pull.js';
import { planPushFiles, planPushTree } from './plan-push.js';
import { executePull } from './pull.js';
import { executePush } from './push.js';

export async function runBucketOnce(config: SyncConfig, request: RunRequest): Promise<{ result: SyncResult; young: string[] }> {
  const bucket = config.bucket!;
  const push = bucket.side === 'dest';
  const log = createLog('sync', config.logFile, config.logger);
  const report = new Report(log, config, config.dryRun, request.onProgress);
  const what = request.files === null ? 'full' : `${request.files.length} path${request.files.length === 1 ? '' : 's'}`;
  // Held, as a local run's start: told only before the run's first line, so a push or pull that changes nothing writes nothing.
  log.hold(`${push ? 'Push' : 'Pull'} started${config.dryRun ? ' (dry run)' : ''}: ${config.source} -> ${config.dest} (${what})`);
  // The caller's signal gets one listener; the run's own gets one per request in flight (the
  // pools' and each request's), more than EventTarget's default warning of 10.
  const inner = new AbortController();
  setMaxListeners(4 * config.concurrency + 16, inner.signal);
  const forward = () => inner.abort(request.signal?.reason);
  if (request.signal?.aborted) forward();
  request.signal?.addEventListener('abort', forward, { once: true });
  const signal = request.signal === undefined ? undefined : inner.signal;
  let release: Release | undefined;
  let store: S3Store | undefined;
  let lean: Lean | undefined;
  try {
    if (signal?.aborted) throw new UploadSyncError('ERR_ABORTED', 'Sync aborted before it started');
    const local = push ? config.source : config.dest;
    const localReal = push ? checkSource(local) : ensureDest(local, config.dryRun, config.dirMode);
    // As a local run: only a full run takes the cross-process lock, named after what it writes
    // (a push: the bucket's URL; a pull: dest, the lock of a local full run into the same folder).
    if (!config.dryRun && request.files === null) {
      release = await acquireLock(config.lockDir, config.dest, config.lockTimeoutMs, {
        signal,
        onCompromised: (err) => log.warn(`Sync lock taken over by another process (${err.message}); finishing this run`),
        onWaited: (ms) => log.info(`Waited ${(ms / 1000).toFixed(1)} s for the sync lock (another full run of this ${push ? 'bucket' : 'dest'} held it)`),
      });
    }
    store = await storeFromConfig(bucket.store);
    lean = leanRequests(store, bucket.store, config.concurrency);
    const ctx: PlanContext = { config, store, list: lean.list, head: lean.head, local, localReal, newerThan: request.newerThan, signal };
    if (push) {
      const guard = new BucketGuard({ store, url: config.dest, source: local, sourceReal: localReal, extensions: config.extensions, dryRun: config.dryRun, maxDelete: Infinity });
      const plan = request.files === null ? planPushTree(ctx, '') : planPushFiles(ctx, request.files);
      await executePush({ store, putSmall: lean.putSmall, source: local, guard, report, concurrency: config.concurrency, dryRun: config.dryRun, signal }, plan);
    } else {
      const leftovers: PullLeftovers = { prune: new Set() };
      // Every check is 'never': the source is the bucket, and its listing is what the plan compared.
      const guard = new DeleteGuard({ source: local, sourceReal: localReal, dest: local, destReal: localReal, extensions: config.extensions, dryRun: config.dryRun, maxDelete: Infinity });
      const plan = request.files === null ? planPullTree(ctx, '', leftovers) : planPullFiles(ctx, request.files, leftovers);
      await executePull(
        { get: lean.get, dest: local, destReal: localReal, guard, report, concurrency: config.concurrency, fileMode: config.fileMode, dirMode: config.dirMode, dryRun: config.dryRun, signal, checked: new Set() },
        plan,
        leftovers,
      );
    }
  } catch (err) {
    report.failRun(err);
  } finally {
    request.signal?.removeEventListener('abort', forward);
    lean?.close();
    store?.destroy();
    await release?.().catch((err) => log.warn(`Could not release the sync lock: ${errorMessage(err)}`));
  }
  return { result: await report.finish(signal?.aborted ?? false), young: report.young };
}

function checkSource(source: string): string {
  const st = statSync(source, { throwIfNoEntry: false });
  if (!st?.isDirectory()) {
    throw new UploadSyncError('ERR_SOURCE_MISSING', `Source folder ${source} ${st ? 'is not a folder' : 'does not exist'}; create it, or set UPLOAD_SYNC_SOURCE / \`source\``, { path: source });
  }
  return realpathSync.native(source);
}

/** A pull's dest: made if missing (not in a dry run), and its real path (dest itself while it does not exist). */
function ensureDest(dest: string, dryRun: boolean, dirMode: number | null): string {
  const st = statSync(dest, { throwIfNoEntry: false });
  if (st !== undefined && !st.isDirectory()) throw new UploadSyncError('ERR_TYPE_CONFLICT', `Dest ${dest} exists and is not a folder`, { path: dest });
  if (st === undefined) {
    if (dryRun) return dest;
    mkdirSync(dest, { recursive: true, ...(dirMode === null ? {} : { mode: dirMode }) });
  }
  return realpathSync.native(dest);
}
