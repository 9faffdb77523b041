import { Worker } from 'node:worker_threads';
import createDebug from 'debug';
import type { Diff, DiffOptions, DiffWorker, DirItem } from './diff.js';

const debug = createDebug('upload-sync:diff');

/** The worker's file name beside this bundle, set by tsup per format; unset when running from source. */
declare const __DIFF_WORKER__: string | undefined;

/** What a worker needs of the options: plain data (a Set clones; functions and signals do not). */
export interface WorkerData {
  source: string;
  dest: string;
  items: DirItem[];
  opts: Pick<DiffOptions, 'extensions' | 'sourceReal' | 'delete' | 'dirMode' | 'fileMode' | 'newerThan'>;
}

function workerUrl(): URL | null {
  // From source (the unit tests run src/ through swc) there is no built worker: diffs stay on one thread.
  if (typeof __DIFF_WORKER__ === 'undefined') return null;
  return new URL(`./${__DIFF_WORKER__}`, import.meta.url);
}

/**
 * Compares `items` in a worker thread. Resolves `null` when no worker could do it (not built,
 * could not start, crashed, aborted): the caller then does that part itself, so a worker is only
 * ever a speed-up. It only reads, so doing its part again is always safe.
 */
export const diffInWorker: DiffWorker = (source, dest, items, opts) =>
  new Promise<Diff | null>((resolve) => {
    const url = workerUrl();
    if (url === null || opts.signal?.aborted) return resolve(null);
    const { extensions, sourceReal, delete: del, dirMode, fileMode, newerThan } = opts;
    const workerData: WorkerData = { source, dest, items, opts: { extensions, sourceReal, delete: del, dirMode, fileMode, newerThan } };
    let worker: Worker;
    try {
      // No inherited flags: the worker only reads the disk, and some flags (`--input-type`) fail in a worker.
      worker = new Worker(url, { workerData, execArgv: [] });
    } catch {
      return resolve(null);
    }
    const stop = () => void worker.terminate();
    opts.signal?.addEventListener('abort', stop, { once: true });
    const settle = (diff: Diff | null) => {
      opts.signal?.removeEventListener('abort', stop);
      resolve(diff);
    };
    worker.once('message', (diff: Diff) => {
      debug('worker compared %d folders: %d to copy, %d unchanged', items.length, diff.copies.length, diff.unchanged);
      settle(diff);
    });
    worker.once('error', (err) => {
      debug('worker failed, comparing its folders here: %s', err.message);
      settle(null);
    });
    worker.once('exit', () => settle(null)); // after 'message' this is a no-op: a promise settles once
  });
