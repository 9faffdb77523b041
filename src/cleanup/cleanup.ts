import { performance } from 'node:perf_hooks';
import { resolveCleanupConfig, type CleanupConfig } from '../config/config.js';
import { elapsed, toEntry } from '../engine/report.js';
import { UploadSyncError } from '../shared/errors.js';
import { createLog } from '../shared/log.js';
import type { CleanupOptions, CleanupResult } from '../shared/options.js';
import { emptyCleanupResult } from './report.js';
import { CleanupRun } from './run.js';

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
    return { ...emptyCleanupResult(Boolean(options?.dryRun)), status: 'failed', errors: [toEntry('', err)], durationMs: elapsed(started) };
  }
  const signal = options?.signal;
  if (signal !== undefined && !(signal instanceof AbortSignal)) {
    const err = new UploadSyncError('ERR_CONFIG', 'Invalid option `signal`: expected an AbortSignal');
    return { ...emptyCleanupResult(config.dryRun), status: 'failed', errors: [toEntry('', err)], durationMs: elapsed(started) };
  }
  if (!config.enabled && !config.force) {
    createLog('cleanup', null, null).info('Cleanup disabled by the environment (set NODE_ENV=production or ENABLE_UPLOAD_SYNC=true, or pass force)');
    return { ...emptyCleanupResult(config.dryRun), status: 'disabled', durationMs: elapsed(started) };
  }
  return new CleanupRun(config, signal).run();
}
