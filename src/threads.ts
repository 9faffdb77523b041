import { Worker } from 'node:worker_threads';
import createDebug from 'debug';
import { emptyDiff, mergeDiff, type Diff, type DiffHelper, type DiffOptions, type DirItem } from './diff.js';

const debug = createDebug('upload-sync:diff');

/** The worker's file name beside this bundle, set by tsup per format; unset when running from source. */
declare const __DIFF_WORKER__: string | undefined;

/** What a worker needs of the options: plain data (a Set clones; functions and signals do not). */
export interface WorkerData {
  source: string;
  dest: string;
  opts: Pick<DiffOptions, 'extensions' | 'sourceReal' | 'delete' | 'dirMode' | 'fileMode' | 'newerThan'>;
}

/** Main thread → worker: compare these folders. */
export interface ShareMessage {
  items: DirItem[];
}

/** Worker → main thread, in this order: `ready` once; per share, `part`s then `done`. */
export type WorkerMessage = { type: 'ready' } | { type: 'part'; diff: Diff } | { type: 'done' };

function workerUrl(): URL | null {
  // From source (the unit tests run src/ through swc) there is no built worker: diffs stay on one thread.
  if (typeof __DIFF_WORKER__ === 'undefined') return null;
  return new URL(`./${__DIFF_WORKER__}`, import.meta.url);
}

/**
 * A worker thread that takes shares of a tree comparison (see `diffTrees`). It starts while the
 * caller already compares, so a small tree never waits for it; it sends its findings in parts,
 * so neither thread holds a second copy of a large diff. A share it cannot finish (it crashed,
 * could not start) is handed back to the caller: the worker is only ever a speed-up.
 */
class WorkerHelper implements DiffHelper {
  private readonly worker: Worker;
  private state: 'starting' | 'idle' | 'busy' | 'failed' = 'starting';
  private share: DirItem[] = [];
  /** What arrived of the share in progress: merged only once it is done. */
  private partial = emptyDiff();
  private readonly finished: Diff[] = [];
  private lost: DirItem[] = [];
  private folders = 0;
  private wakers: Array<() => void> = [];

  constructor(url: URL, workerData: WorkerData) {
    // No inherited flags: the worker only reads the disk, and some flags (`--input-type`) fail in a worker.
    this.worker = new Worker(url, { workerData, execArgv: [] });
    this.worker.unref(); // kept alive only while it works for us (`give`)
    this.worker.on('message', (message: WorkerMessage) => {
      if (message.type === 'ready') this.state = 'idle';
      else if (message.type === 'part') mergeDiff(this.partial, message.diff);
      else {
        this.folders += this.share.length;
        this.finished.push(this.partial);
        this.partial = emptyDiff();
        this.share = [];
        this.state = 'idle';
        this.worker.unref();
      }
      this.notify();
    });
    this.worker.on('error', (err) => {
      debug('worker failed, comparing its share here: %s', err.message);
      this.fail();
    });
    this.worker.on('exit', () => this.fail());
  }

  get idle(): boolean {
    return this.state === 'idle';
  }

  get busy(): boolean {
    return this.state === 'busy';
  }

  give(items: DirItem[]): void {
    this.state = 'busy';
    this.share = items;
    this.worker.ref(); // the caller may wait on it alone: keep the process up until it answers
    this.worker.postMessage({ items } satisfies ShareMessage);
  }

  collect(into: Diff): DirItem[] {
    for (const diff of this.finished.splice(0)) mergeDiff(into, diff);
    return this.lost.splice(0);
  }

  changed(): Promise<void> {
    return new Promise((resolve) => this.wakers.push(resolve));
  }

  stop(): void {
    if (this.folders > 0) debug('worker compared %d folders', this.folders);
    this.state = 'failed';
    void this.worker.terminate();
  }

  private fail(): void {
    if (this.state === 'failed') return;
    if (this.state === 'busy') this.lost = this.share; // its part arrived in vain: the caller does it again
    this.state = 'failed';
    this.share = [];
    this.partial = emptyDiff();
    this.notify();
  }

  private notify(): void {
    for (const wake of this.wakers.splice(0)) wake();
  }
}

/**
 * Starts a worker for a tree comparison, or `null` when there is none (not built, cannot start).
 * `url`: the worker's script (the tests, which run from source, give the built one).
 */
export function startDiffHelper(source: string, dest: string, opts: DiffOptions, url: URL | null = workerUrl()): DiffHelper | null {
  if (url === null) return null;
  const { extensions, sourceReal, delete: del, dirMode, fileMode, newerThan } = opts;
  try {
    return new WorkerHelper(url, { source, dest, opts: { extensions, sourceReal, delete: del, dirMode, fileMode, newerThan } });
  } catch (err) {
    debug('no worker (%s): comparing on one thread', (err as Error).message);
    return null;
  }
}
