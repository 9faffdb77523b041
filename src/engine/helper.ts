/**
 * The helper thread of a run, behind one small interface: it takes a task (compare these folders,
 * or publish these files), answers with its result, and is otherwise invisible. Every task is a
 * promise: the caller keeps it until it settles, so no answer can be dropped; a task whose thread
 * died rejects, and the caller does it itself (comparing only reads; publishing a file again gives
 * the same file). The helper is injected into a run (`HelperFactory`), so tests choose it too.
 */
import { MessageChannel, receiveMessageOnPort, Worker, type MessagePort } from 'node:worker_threads';
import createDebug from 'debug';
import type { CompareOptions, CopyJob, DirItem, FolderResult } from './plan-types.js';
import type { PublishOutcome, PublishOptions } from './publish.js';

const debug = createDebug('upload-sync:helper');

export type Task = { type: 'compare'; dirs: DirItem[] } | { type: 'publish'; jobs: CopyJob[] };
export type Answer<T extends Task> = T extends { type: 'compare' } ? FolderResult[] : PublishOutcome[];

/** What the helper thread is started with: plain data (functions and signals do not cross). */
export interface HelperData {
  compare: CompareOptions;
  publish: Omit<PublishOptions, 'expected'>;
}

export interface Helper {
  /** Up, and not working on a task: `run` may be called. */
  readonly idle: boolean;
  /** Its thread id: the mark on its temp files (a thread that died mid-copy leaves one, which the run removes). */
  readonly threadId: number;
  run<T extends Task>(task: T): Promise<Answer<T>>;
  /**
   * Takes the thread's messages that have arrived without waiting for the event loop, so a long
   * synchronous stretch of comparing sees the helper ready, or done with its share, at once (a
   * helper that waits for the next turn of the loop sits idle for up to that stretch). `true` when
   * one came: a task's promise may then be settled, and its callbacks run at the caller's next `await`.
   */
  poll(): boolean;
  /** Ends the thread (after the caller has waited for every task it gave). */
  stop(): void;
}

/** Starts a run's helper, or `null`: the run then stays on one thread. */
export type HelperFactory = (data: HelperData) => Helper | null;

/** What the worker is started with: the run's data, and the port it answers on. */
export interface WorkerData extends HelperData {
  port: MessagePort;
}

/** Worker → main thread messages (on `WorkerData.port`). */
export type HelperMessage = { type: 'ready' } | { type: 'answer'; answer: FolderResult[] | PublishOutcome[] };

/** The worker's file name beside this bundle, set by tsup per format; unset when running from source. */
declare const __DIFF_WORKER__: string | undefined;

function builtWorkerUrl(): URL | null {
  // From source (the unit tests run src/ through swc) there is no built worker.
  if (typeof __DIFF_WORKER__ === 'undefined') return null;
  return new URL(`./${__DIFF_WORKER__}`, import.meta.url);
}

/** The helper thread's old generation, at most (see the constructor of `WorkerHelper`). */
const HELPER_OLD_GENERATION_MB = 64;

class WorkerHelper implements Helper {
  private readonly worker: Worker;
  private readonly port: MessagePort;
  private state: 'starting' | 'idle' | 'busy' | 'dead' = 'starting';
  private pending: { resolve: (answer: never) => void; reject: (err: Error) => void } | null = null;
  private tasks = 0;

  constructor(url: URL, data: HelperData) {
    // Answers come on a port of their own, which `poll` can read synchronously between folders.
    const { port1, port2 } = new MessageChannel();
    this.port = port1;
    // No inherited flags: some (`--input-type`) fail in a worker. A small young generation: what it
    // allocates is short-lived, and a large one only adds RSS. A bounded old generation: under
    // 128 MB, V8 lets it grow to 1.3 times what is live before collecting it, not 4 times (the
    // thread held ~4 MB live in a 30 MB heap on an initial sync of 300,000 files; 17 MB now). A
    // share that would not fit (a share of folders of ~200,000 files) ends the thread with
    // ERR_WORKER_OUT_OF_MEMORY, and the run does that share on its own thread, as for any helper that died.
    const workerData: WorkerData = { ...data, port: port2 };
    this.worker = new Worker(url, { workerData, transferList: [port2], execArgv: [], resourceLimits: { maxYoungGenerationSizeMb: 4, maxOldGenerationSizeMb: HELPER_OLD_GENERATION_MB } });
    this.worker.unref(); // kept alive only while it works for us
    this.port.on('message', (message: HelperMessage) => this.receive(message));
    this.port.unref();
    this.worker.on('error', (err) => this.die(err));
    this.worker.on('exit', (code) => this.die(new Error(`helper thread exited (code ${code})`)));
  }

  poll(): boolean {
    let got = false;
    for (let m = receiveMessageOnPort(this.port); m !== undefined; m = receiveMessageOnPort(this.port)) {
      this.receive(m.message as HelperMessage);
      got = true;
    }
    return got;
  }

  private receive(message: HelperMessage): void {
    if (message.type === 'ready') {
      if (this.state === 'starting') this.state = 'idle';
      return;
    }
    if (this.state === 'dead') return; // stopped meanwhile: the task was rejected already
    const pending = this.pending;
    this.pending = null;
    this.state = 'idle';
    this.worker.unref();
    this.port.unref();
    pending?.resolve(message.answer as never);
  }

  get idle(): boolean {
    return this.state === 'idle';
  }

  get threadId(): number {
    return this.worker.threadId;
  }

  run<T extends Task>(task: T): Promise<Answer<T>> {
    if (this.state !== 'idle') return Promise.reject(new Error(`helper thread is ${this.state}`));
    this.state = 'busy';
    this.tasks++;
    // The caller may wait on it alone: keep the process up until it answers.
    this.worker.ref();
    this.port.ref();
    return new Promise<Answer<T>>((resolve, reject) => {
      this.pending = { resolve: resolve as (answer: never) => void, reject };
      this.port.postMessage(task);
    });
  }

  stop(): void {
    if (this.tasks > 0) debug('helper thread did %d tasks', this.tasks);
    this.die(new Error('helper thread stopped'));
    this.port.close();
    void this.worker.terminate();
  }

  private die(err: Error): void {
    if (this.state === 'dead') return;
    if (this.state !== 'starting' || this.tasks > 0) debug('helper thread ended: %s', err.message);
    this.state = 'dead';
    const pending = this.pending;
    this.pending = null;
    pending?.reject(err);
  }
}

/** The helper thread of the built package (`null` from source, or when it cannot start). `url`: another worker script (tests). */
export function workerHelper(data: HelperData, url: URL | null = builtWorkerUrl()): Helper | null {
  if (url === null) return null;
  try {
    return new WorkerHelper(url, data);
  } catch (err) {
    debug('no helper thread (%s): all on one thread', (err as Error).message);
    return null;
  }
}
