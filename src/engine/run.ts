/**
 * One sync run, as a one-way pipeline: configuration (resolved by the caller) → plan (batches of
 * actions) → execute (each published atomically) → report (the result). This module only wires
 * them together and owns what spans the run: the lock, the dest root, the helper thread. A
 * targeted plan of one file into a folder that is there (an upload's) is published without the
 * executor's machinery (`publishAlone`).
 */
import { chmodSync, lstatSync, mkdirSync, realpathSync, statSync } from 'node:fs';
import type { SyncConfig } from '../config/config.js';
import { canonical } from '../config/paths.js';
import { DeleteGuard } from '../shared/delete-guard.js';
import { UploadSyncError, errorMessage } from '../shared/errors.js';
import { acquireLock, type Release } from '../shared/lock.js';
import { createLog } from '../shared/log.js';
import type { SyncProgress, SyncResult } from '../shared/options.js';
import { Executor, isAlone, publishAlone } from './execute.js';
import type { Helper, HelperFactory } from './helper.js';
import { LocalDest } from './local-dest.js';
import { knownMtimeWindow, mtimeWindow } from './mtime-window.js';
import { planTargets } from './plan-files.js';
import { planTree, type TreePlanContext } from './plan-tree.js';
import { emptyFindings, type CompareOptions, type DirItem, type Findings } from './plan-types.js';
import { publishJob, publishJobSync } from './publish.js';
import { Report } from './report.js';

/** Folders waiting to be compared from which the helper thread is started (it takes ~30 ms to start). */
const HELPER_FROM_FOLDERS = 16;
/** Copies in a run from which the helper thread is started for copying alone. */
const HELPER_FROM_COPIES = 1000;
const OWNER_WX = 0o300;

export interface RunRequest {
  /** Targeted: these paths; `null`: the whole tree. */
  files: readonly unknown[] | null;
  signal: AbortSignal | undefined;
  onProgress: ((progress: SyncProgress) => void) | undefined;
  /** Files modified after this (epoch ms) are left out and returned as `young`. */
  newerThan: number | null;
}

export interface RunDeps {
  helper: HelperFactory;
}

export async function runOnce(config: SyncConfig, request: RunRequest, deps: RunDeps): Promise<{ result: SyncResult; young: string[] }> {
  const log = createLog('sync', config.logFile, config.logger);
  const report = new Report(log, config, config.dryRun, request.onProgress);
  const what = request.files === null ? 'full' : `${request.files.length} path${request.files.length === 1 ? '' : 's'}`;
  // Held: told only before the run's first line (a copy, an error…), so a run that changes nothing writes nothing.
  log.hold(`Sync started${config.dryRun ? ' (dry run)' : ''}: ${config.source} -> ${config.dest} (${what})`);
  const { signal } = request;
  let release: Release | undefined;
  let helper: Helper | null | undefined;
  try {
    if (signal?.aborted) throw new UploadSyncError('ERR_ABORTED', 'Sync aborted before it started');
    const sourceMode = checkSource(config.source);
    // Real paths, resolved when first needed: an upload's run (a plain path, no symlink, no
    // deletion) needs neither, and each is a realpath on every upload's way.
    let sourceReal: string | undefined;
    let destReal: string | undefined;
    const realSource = () => (sourceReal ??= realpathSync.native(config.source));
    // Only a full run takes the cross-process lock. A targeted run (an upload, a watcher batch)
    // never waits behind a full run or a big copy: each of its files lands by its own atomic
    // rename, a file another run publishes meanwhile is the same whole file, and what a full run
    // deletes is re-checked against the source at that moment (DeleteGuard), so it never removes
    // a file an upload has just published.
    if (!config.dryRun && request.files === null) {
      release = await acquireLock(config.lockDir, config.dest, config.lockTimeoutMs, {
        signal,
        onCompromised: (err) => log.warn(`Sync lock taken over by another process (${err.message}); finishing this run`),
        onWaited: (ms) => log.info(`Waited ${(ms / 1000).toFixed(1)} s for the sync lock (another full run or a cleanup of this dest held it)`),
      });
    }
    const openDirs = process.getuid?.() !== 0;
    const root = config.dryRun ? emptyFindings() : ensureDestRoot(config, sourceMode, openDirs, request.files === null);
    const compare: CompareOptions = {
      source: config.source,
      dest: config.dest,
      get sourceReal() {
        return realSource();
      },
      extensions: config.extensions,
      delete: config.delete,
      fileMode: config.strategy === 'copy' ? config.fileMode : null, // a link's mode is the source's own
      dirMode: config.dirMode,
      newerThan: request.newerThan,
      mtimeWindowMs: config.dryRun ? knownMtimeWindow(config.dest) : mtimeWindow(config.dest),
      openDirs,
    };
    const publish = { strategy: config.strategy, fileMode: compare.fileMode, fsync: config.fsync };
    const helperOf = (start: boolean) => {
      if (helper === undefined && start && !config.dryRun) helper = deps.helper({ compare, publish });
      return helper ?? null;
    };
    const plan: TreePlanContext = { compare, helper: helperOf, helperFrom: HELPER_FROM_FOLDERS, signal };
    /** The executor, into dest as a `LocalDest` (with the delete guard): every plan but the one-file one. */
    const execute = async (batches: AsyncIterable<Findings>) => {
      const dest = new LocalDest({
        source: config.source,
        dest: config.dest,
        publish,
        concurrency: config.concurrency,
        guard: new DeleteGuard({
          source: config.source,
          get sourceReal() {
            return realSource();
          },
          dest: config.dest,
          get destReal() {
            return (destReal ??= canonical(config.dest));
          },
          extensions: config.extensions,
          dryRun: config.dryRun,
          maxDelete: Infinity,
        }),
        dryRun: config.dryRun,
        helper: helperOf,
        helperFrom: HELPER_FROM_COPIES,
        signal,
      });
      await new Executor(dest, report, config.dryRun, signal).run(prepend(root, batches));
    };
    if (request.files === null) await execute(planTree(plan, [{ rel: '', inSrc: true, inDst: exists(config.dest) }]));
    else {
      const { found, subtrees } = planTargets(plan, request.files);
      // An upload's run: one file into a folder that is there, nothing else (execute.ts says why).
      if (!config.dryRun && subtrees.length === 0 && isAlone(root, found)) {
        await publishAlone(found, report, (job) => publishJobSync(config.source, config.dest, job, publish), (job) => publishJob(config.source, config.dest, job, publish));
      } else {
        await execute(thenTrees(found, plan, subtrees));
      }
    }
  } catch (err) {
    report.failRun(err);
  } finally {
    helper?.stop();
    await release?.().catch((err) => log.warn(`Could not release the sync lock: ${errorMessage(err)}`));
  }
  return { result: await report.finish(signal?.aborted ?? false), young: report.young };
}

async function* prepend(first: Findings, rest: AsyncIterable<Findings>): AsyncGenerator<Findings> {
  yield first;
  yield* rest;
}

/** A targeted run's batches: its paths' findings, then the folders among them, walked. */
async function* thenTrees(found: Findings, plan: TreePlanContext, subtrees: DirItem[]): AsyncGenerator<Findings> {
  yield found;
  if (subtrees.length > 0) yield* planTree(plan, subtrees);
}

const exists = (path: string) => lstatSync(path, { throwIfNoEntry: false })?.isDirectory() ?? false;

/** The source folder's mode (its permission bits); refuses a source that is no folder. */
function checkSource(source: string): number {
  const st = statSync(source, { throwIfNoEntry: false });
  if (!st?.isDirectory()) {
    throw new UploadSyncError('ERR_SOURCE_MISSING', `Source folder ${source} ${st ? 'is not a folder' : 'does not exist'}; create it, or set UPLOAD_SYNC_SOURCE / \`source\``, { path: source });
  }
  return st.mode & 0o7777;
}

/**
 * Makes dest (and its parents) if missing, writable by us while the run fills it; its mode follows
 * the source's (or `dirMode`): set at the end, by the action returned, on a full run or when made.
 */
function ensureDestRoot(config: SyncConfig, sourceMode: number, openDirs: boolean, full: boolean): Findings {
  const found = emptyFindings();
  const { dest } = config;
  const mode = config.dirMode ?? sourceMode;
  const st = lstatSync(dest, { throwIfNoEntry: false });
  if (st === undefined) {
    mkdirSync(dest, { recursive: true });
    chmodSync(dest, mode | 0o700);
    if ((mode | 0o700) !== mode) found.actions.push({ type: 'dirmode', rel: '', mode });
  } else if (!st.isDirectory()) {
    throw new UploadSyncError('ERR_TYPE_CONFLICT', `Dest ${dest} exists and is not a folder`, { path: dest });
  } else {
    const have = st.mode & 0o7777;
    const want = full || config.dirMode !== null ? mode : have;
    if (openDirs && (have & OWNER_WX) !== OWNER_WX) found.actions.push({ type: 'open', rel: '', mode: want, have });
    else if (have !== want) found.actions.push({ type: 'dirmode', rel: '', mode: want });
  }
  return found;
}
