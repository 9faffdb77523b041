import { Worker } from 'node:worker_threads';
import createDebug from 'debug';
import { emptyDiff, mergeDiff, type Diff, type DiffHelper, type DiffOptions, type DirItem } from './diff.js';
import type { Strategy } from '../shared/options.js';
import type { FileInfo } from './walk.js';

const debug = createDebug('upload-sync:diff');

/** The worker's file name beside this bundle, set by tsup per format; unset when running from source. */
declare const __DIFF_WORKER__: string | undefined;

/** What a worker needs of a run: plain data (a Set clones; functions and signals do not). */
export interface WorkerData {
  source: string;
  dest: string;
  opts: Pick<DiffOptions, 'extensions' | 'sourceReal' | 'delete' | 'dirMode' | 'fileMode' | 'newerThan'>;
  copy: { strategy: Strategy; fileMode: number | null };
}

/** A file to publish from source to dest (its `rel`), as the comparison saw it. */
export interface CopyJob {
  rel: string;
  src: FileInfo;
}

/** Main thread → worker: compare these folders, or publish these files. */
export type ShareMessage = { type: 'compare'; items: DirItem[] } | { type: 'copy'; jobs: CopyJob[] };

/**
 * How a copy job ended in the worker, in the order of the jobs: published, its source gone (not
 * an error), or failed (the caller does it again itself, and reports what fails then).
 */
export type CopyOutcome = 'copied' | 'gone' | 'failed';

/** Worker → main thread: `ready` once; per share, `part`s (compare) or `copied` batches (copy), then `done`. */
export type WorkerMessage = { type: 'ready' } | { type: 'part'; diff: Diff } | { type: 'copied'; outcomes: CopyOutcome[] } | { type: 'done' };

/** The helper thread of a run: compares shares of the tree, then publishes shares of the copies. */
export interface RunHelper extends DiffHelper {
  /** It died or was stopped: it takes no more shares (what it did not finish comes back by `collect*`). */
  readonly failed: boolean;
  /** Busy with a share of copies (not of the comparison). */
  readonly copying: boolean;
  giveCopies(jobs: CopyJob[]): void;
  /** Outcomes of copy jobs since the last call, and the jobs of a share it failed to finish (to do here). */
  collectCopies<J extends CopyJob>(): { done: Array<{ job: J; outcome: CopyOutcome }>; lost: J[] };
}

function workerUrl(): URL | null {
  // From source (the unit tests run src/ through swc) there is no built worker: all stays on one thread.
  if (typeof __DIFF_WORKER__ === 'undefined') return null;
  return new URL(`./${__DIFF_WORKER__}`, import.meta.url);
}

/**
 * A worker thread that takes shares of a run's work (see `diffTrees` and the sync's `execute`). It
 * starts while the caller already works, so a small tree never waits for it; it reports in parts,
 * so neither thread holds a second copy of a large diff. A share it cannot finish (it crashed,
 * could not start) is handed back to the caller: the worker is only ever a speed-up.
 */
class WorkerHelper implements RunHelper {
  private readonly worker: Worker;
  private state: 'starting' | 'idle' | 'busy' | 'failed' = 'starting';
  private compareShare: DirItem[] = [];
  /** What arrived of the compare share in progress: merged only once it is done. */
  private partial = emptyDiff();
  private readonly finished: Diff[] = [];
  private lostDirs: DirItem[] = [];
  /** The copy share in progress, and how many of its jobs have an outcome (they come in order). */
  private copyShare: CopyJob[] = [];
  private answered = 0;
  private copyDone: Array<{ job: CopyJob; outcome: CopyOutcome }> = [];
  private lostCopies: CopyJob[] = [];
  private folders = 0;
  private files = 0;
  private wakers: Array<() => void> = [];

  constructor(url: URL, workerData: WorkerData) {
    // No inherited flags: some (`--input-type`) fail in a worker. A small young generation: what it
    // allocates is short-lived (parts sent on, buffers of one file), and a large one only adds RSS.
    this.worker = new Worker(url, { workerData, execArgv: [], resourceLimits: { maxYoungGenerationSizeMb: 4 } });
    this.worker.unref(); // kept alive only while it works for us (`give`)
    this.worker.on('message', (message: WorkerMessage) => {
      if (message.type === 'ready') this.state = 'idle';
      else if (message.type === 'part') mergeDiff(this.partial, message.diff);
      else if (message.type === 'copied') for (const outcome of message.outcomes) this.copyDone.push({ job: this.copyShare[this.answered++]!, outcome });
      else this.shareDone();
      this.notify();
    });
    this.worker.on('error', (err) => {
      debug('worker failed, doing its share here: %s', err.message);
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

  get failed(): boolean {
    return this.state === 'failed';
  }

  get copying(): boolean {
    return this.state === 'busy' && this.copyShare.length > 0;
  }

  give(items: DirItem[]): void {
    this.compareShare = items;
    this.send({ type: 'compare', items });
  }

  giveCopies(jobs: CopyJob[]): void {
    this.copyShare = jobs;
    this.answered = 0;
    this.send({ type: 'copy', jobs });
  }

  collect(into: Diff): DirItem[] {
    for (const diff of this.finished.splice(0)) mergeDiff(into, diff);
    return this.lostDirs.splice(0);
  }

  collectCopies<J extends CopyJob>(): { done: Array<{ job: J; outcome: CopyOutcome }>; lost: J[] } {
    return { done: this.copyDone.splice(0) as Array<{ job: J; outcome: CopyOutcome }>, lost: this.lostCopies.splice(0) as J[] };
  }

  changed(): Promise<void> {
    return new Promise((resolve) => this.wakers.push(resolve));
  }

  stop(): void {
    if (this.folders + this.files > 0) debug('worker compared %d folders and copied %d files', this.folders, this.files);
    this.state = 'failed';
    void this.worker.terminate();
  }

  private send(message: ShareMessage): void {
    this.state = 'busy';
    this.worker.ref(); // the caller may wait on it alone: keep the process up until it answers
    this.worker.postMessage(message);
  }

  private shareDone(): void {
    this.folders += this.compareShare.length;
    this.files += this.answered;
    this.finished.push(this.partial);
    this.partial = emptyDiff();
    this.compareShare = [];
    this.copyShare = [];
    this.answered = 0;
    this.state = 'idle';
    this.worker.unref();
  }

  private fail(): void {
    if (this.state === 'failed') return;
    if (this.state === 'busy') {
      // What it did not report is done again by the caller: a comparison only reads, and
      // publishing a file again gives the same file.
      this.lostDirs = this.compareShare;
      this.lostCopies = this.copyShare.slice(this.answered);
    }
    this.state = 'failed';
    this.compareShare = [];
    this.copyShare = [];
    this.partial = emptyDiff();
    this.notify();
  }

  private notify(): void {
    for (const wake of this.wakers.splice(0)) wake();
  }
}

/**
 * Starts the helper thread of a run, or `null` when there is none (not built, cannot start).
 * `url`: the worker's script (the tests, which run from source, give the built one).
 */
export function startRunHelper(data: WorkerData, url: URL | null = workerUrl()): RunHelper | null {
  if (url === null) return null;
  try {
    return new WorkerHelper(url, data);
  } catch (err) {
    debug('no worker (%s): all on one thread', (err as Error).message);
    return null;
  }
}

let runHelperFactory: (data: WorkerData) => RunHelper | null = (data) => startRunHelper(data);

/** The helper thread a sync run starts (see `setRunHelperFactory`). */
export const createRunHelper = (data: WorkerData): RunHelper | null => runHelperFactory(data);

/**
 * For tests, which run from source (no built worker): which helper a sync run starts. Not part of
 * the package's API. Returns a function that restores the default.
 */
export function setRunHelperFactory(factory: (data: WorkerData) => RunHelper | null): () => void {
  const previous = runHelperFactory;
  runHelperFactory = factory;
  return () => {
    runHelperFactory = previous;
  };
}
