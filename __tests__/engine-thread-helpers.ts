/**
 * For helper-thread.test.ts: stand-in `Helper`s around the real built worker (a counting proxy, and
 * one that fails at a chosen task), a seeded tree of many small files, seeded changes to it, and an
 * exact snapshot of a tree (bytes, size, mtime to the microsecond, mode; folders with their modes).
 */
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { Answer, Helper, HelperData, HelperFactory, Task } from '../src/engine/helper.js';
import { workerHelper } from '../src/engine/helper.js';
import { ROOT } from './helpers.js';
import { randomTools } from './reliability-helpers.js';

/** The built worker (`npm test` builds before jest runs). */
export const WORKER_FILE = join(ROOT, 'dist', 'diff-worker.js');
export const WORKER_URL = pathToFileURL(WORKER_FILE);

type Tools = ReturnType<typeof randomTools>;

// ---------------------------------------------------------------------------------------------
// Helpers.

export interface TaskRecord {
  /** 1-based, over all tasks this helper was given. */
  n: number;
  type: Task['type'];
  /** Folders (compare) or files (publish). */
  size: number;
  /** Publish tasks: the files of the share. */
  rels: string[];
  settled: 'answered' | 'rejected' | null;
}

/**
 * The real worker thread of the build: its `Helper`, and a promise that resolves once its thread
 * has really exited (`stop()` only asks for it: a terminated thread may run a little longer).
 */
export function realWorker(data: HelperData): { helper: Helper; exited: Promise<void> } {
  const helper = workerHelper(data, WORKER_URL);
  if (helper === null) throw new Error(`the built worker ${WORKER_FILE} could not be started`);
  const thread = (helper as unknown as { worker?: unknown }).worker;
  // The thread is private to WorkerHelper; the tests need to know when it is really gone.
  if (!(thread instanceof Worker)) throw new Error('WorkerHelper no longer keeps its thread in `worker`: update realWorker()');
  const exited = new Promise<void>((resolve) => thread.once('exit', () => resolve()));
  return { helper, exited };
}

/** What a stand-in helper does wrong, at its `at`-th task of type `of`. */
export type Fault =
  /** (a) rejects the task without running it. */
  | { kind: 'reject-before'; of: Task['type']; at: number }
  /** (b) lets the real worker do it, then rejects (died after the work, before answering). */
  | { kind: 'reject-after'; of: Task['type']; at: number }
  /** (c) never idle: no task is ever given. */
  | { kind: 'never-idle' }
  /** (d) terminates the real worker while its `at`-th publish task is in flight, once `afterFiles` of the share are in dest. */
  | { kind: 'stop-in-publish'; of: 'publish'; at: number; afterFiles: number };

export const describeFault = (f: Fault) =>
  f.kind === 'never-idle' ? 'never idle' : f.kind === 'stop-in-publish' ? `stop() during publish task #${f.at} after ${f.afterFiles} file(s)` : `${f.kind} at ${f.of} task #${f.at}`;

/**
 * A helper over the real worker that records every task (type, size) and can fail once as `fault`
 * says. `fired` tells whether the fault happened; `stopInfo` whether a stop hit a task still in
 * flight, and how many files of that share were in dest by then.
 *
 * `eager`: idle from the start and while working, tasks queued and given to the real worker one at
 * a time (a valid `Helper`: `run` may be called whenever it says idle). The planner then shares
 * folders from its first turns, so compare tasks happen in every run, not only when the real
 * worker's start and the planner's pace meet.
 */
export class ProxyHelper implements Helper {
  readonly tasks: TaskRecord[] = [];
  fired = false;
  stopInfo: { inFlight: boolean; published: number; share: number } | null = null;
  stopped = false;
  private readonly count = { compare: 0, publish: 0 };
  /** Eager: the tail of the queue of tasks for the real worker. */
  private queue: Promise<unknown> = Promise.resolve();
  /** The real worker was told to stop (by the fault), or its thread is gone. */
  private innerDead = false;

  constructor(
    readonly inner: Helper,
    readonly exited: Promise<void>,
    private readonly dest: string,
    private readonly fault: Fault | null = null,
    private readonly onTask?: (record: TaskRecord) => void,
    private readonly eager = false,
  ) {
    void exited.then(() => (this.innerDead = true));
  }

  get threadId(): number {
    return this.inner.threadId;
  }

  get idle(): boolean {
    if (this.fault?.kind === 'never-idle') return false;
    return this.eager ? !this.stopped && !this.innerDead : this.inner.idle;
  }

  run<T extends Task>(task: T): Promise<Answer<T>> {
    const record: TaskRecord = {
      n: this.tasks.length + 1,
      type: task.type,
      size: task.type === 'compare' ? task.dirs.length : task.jobs.length,
      rels: task.type === 'publish' ? task.jobs.map((j) => j.rel) : [],
      settled: null,
    };
    this.tasks.push(record);
    const nth = ++this.count[task.type];
    const f = this.fault;
    const hit = f !== null && f.kind !== 'never-idle' && f.of === task.type && f.at === nth && !this.fired;
    let answer: Promise<Answer<T>>;
    if (hit && f.kind === 'reject-before') {
      this.fired = true;
      answer = Promise.reject(new Error(`stand-in: ${task.type} task #${nth} rejected before it ran`));
    } else if (hit && f.kind === 'reject-after') {
      this.fired = true;
      answer = this.give(task).then(() => Promise.reject(new Error(`stand-in: ${task.type} task #${nth} done, then the thread "died"`)));
    } else {
      answer = this.give(task);
      if (hit && f.kind === 'stop-in-publish') {
        this.fired = true;
        void this.stopWhen(record, f.afterFiles);
      }
    }
    this.onTask?.(record);
    return answer.then(
      (a) => {
        record.settled = 'answered';
        return a;
      },
      (err: unknown) => {
        record.settled = 'rejected';
        throw err;
      },
    );
  }

  poll(): boolean {
    return this.inner.poll();
  }

  stop(): void {
    this.stopped = true;
    this.inner.stop();
  }

  /** The task to the real worker: at once, or (eager) once the worker is up and done with the tasks before it. */
  private give<T extends Task>(task: T): Promise<Answer<T>> {
    if (!this.eager) return this.inner.run(task);
    const answer = this.queue.then(async () => {
      // The real worker says when it is idle (up, and done with the task before): wait a turn at a time.
      // A dead one never is: its `run` rejects the task at once.
      while (!this.inner.idle && !this.stopped && !this.innerDead) await new Promise((resolve) => setImmediate(resolve));
      return this.inner.run(task);
    });
    this.queue = answer.catch(() => undefined);
    return answer;
  }

  /** Waits (a turn of the event loop at a time, never a fixed time) until `files` of the share are in dest, or the task settled; then kills the thread. */
  private async stopWhen(record: TaskRecord, files: number): Promise<void> {
    const published = () => record.rels.filter((rel) => existsSync(join(this.dest, rel))).length;
    // Checked before the first turn: with `files` 0 the stop comes right after the task was posted.
    while (record.settled === null && published() < files) await new Promise((resolve) => setImmediate(resolve));
    this.stopInfo = { inFlight: record.settled === null, published: published(), share: record.rels.length };
    this.innerDead = true;
    this.inner.stop();
  }
}

/** A `HelperFactory` that wraps each helper it starts in a `ProxyHelper`; `made` lists them. */
export function proxyFactory(
  dest: string,
  { fault = null, onTask, eager = false }: { fault?: Fault | null; onTask?: (record: TaskRecord) => void; eager?: boolean } = {},
): { factory: HelperFactory; made: ProxyHelper[] } {
  const made: ProxyHelper[] = [];
  const factory: HelperFactory = (data) => {
    const { helper, exited } = realWorker(data);
    const proxy = new ProxyHelper(helper, exited, dest, fault, onTask, eager);
    made.push(proxy);
    return proxy;
  };
  return { factory, made };
}

// ---------------------------------------------------------------------------------------------
// Trees.

const FILE_MODES = [0o644, 0o644, 0o600, 0o640, 0o664, 0o444, 0o755];
const DIR_MODES = [0o755, 0o755, 0o750, 0o700, 0o775];
const EXTS = ['mp3', 'jpg', 'png', 'flac', 'txt', 'webp'];
/** 2019-01-01 .. 2024-01-01, in ms. */
const T0 = 1_546_300_800_000;
const SPAN = 5 * 365 * 86_400_000;

/** A seeded pool of bytes that files take slices of (filling each file from the PRNG is slow). */
const pools = new WeakMap<Tools, Buffer>();
function pool(t: Tools): Buffer {
  let buf = pools.get(t);
  if (buf === undefined) {
    buf = Buffer.alloc(1 << 20);
    for (let i = 0; i < buf.length; i += 4) buf.writeUInt32LE(t.int(0, 2 ** 32 - 1), i);
    pools.set(t, buf);
  }
  return buf;
}

/** Seeded bytes, distinct per file: its name, then a slice of the pool. Mostly small, a few over 256 KiB (the streaming copy path). */
function content(t: Tools, tag: string): Buffer {
  const size = t.chance(0.004) ? t.int(256 * 1024 + 1, 600 * 1024) : t.chance(0.05) ? 0 : t.chance(0.8) ? t.int(1, 2048) : t.int(2049, 32 * 1024);
  const bytes = pool(t);
  const buf = Buffer.alloc(size);
  const head = Buffer.from(`${tag}\n`);
  head.copy(buf, 0, 0, Math.min(head.length, size));
  if (size > head.length) {
    const from = t.int(0, bytes.length - size);
    bytes.copy(buf, head.length, from, from + size - head.length);
  }
  return buf;
}

function writeFile(base: string, rel: string, t: Tools, mtimeMs?: number): void {
  const abs = join(base, rel);
  writeFileSync(abs, content(t, rel));
  chmodSync(abs, t.pick(FILE_MODES));
  const mtime = mtimeMs ?? T0 + t.int(0, SPAN);
  utimesSync(abs, new Date(mtime - t.int(0, 86_400_000)), new Date(mtime));
}

const fileName = (t: Tools, i: number) => `${t.pick(['track', 'cover', 'img', 'a b', 'Café', '曲', 'x-y'])}-${i}.${t.pick(EXTS)}`;

/**
 * A seeded tree at `base`: `folders` folders (nested up to 5 deep), `files` files spread over them and
 * the top, with seeded modes and mtimes, plus a few names the sync never takes (dotfiles, `.part`).
 * The same seed gives the same tree (bytes, modes, mtimes). Returns the folders made.
 */
export function buildTree(base: string, t: Tools, files: number, folders: number): string[] {
  mkdirSync(base, { recursive: true });
  const dirs: string[] = [''];
  for (let i = 0; i < folders; i++) {
    const parent = t.chance(0.35) ? '' : t.pick(dirs);
    const rel = parent.split('/').length >= 5 ? `d${i}` : parent === '' ? `d${i}` : `${parent}/d${i}`;
    mkdirSync(join(base, rel), { recursive: true });
    dirs.push(rel);
  }
  for (let i = 0; i < files; i++) {
    const dir = t.pick(dirs);
    writeFile(base, dir === '' ? fileName(t, i) : `${dir}/${fileName(t, i)}`, t);
  }
  for (let i = 0; i < 6; i++) {
    const dir = t.pick(dirs);
    const name = i % 2 === 0 ? `.hidden-${i}.mp3` : `upload-${i}.mp3.part`;
    writeFileSync(join(base, dir, name), `never synced ${i}`);
  }
  // Folder modes last (deepest first): as root they do not stop us writing, but keep it tidy.
  for (const rel of dirs.slice(1).reverse()) chmodSync(join(base, rel), t.pick(DIR_MODES));
  return dirs.slice(1);
}

/**
 * Seeded changes to a tree: new files (some in new, nested folders), rewrites (new bytes, a later
 * mtime; some of the same size), deletions of files and of whole folders, a file that becomes a
 * folder and a folder that becomes a file, chmods of files and folders. Deterministic for a seed.
 */
export function changeTree(base: string, t: Tools): { summary: string } {
  const { files, dirs } = listSource(base);
  const counts = { added: 0, rewritten: 0, deleted: 0, chmod: 0, foldersGone: 0, swapped: 0 };
  const taken = new Set<string>();
  const pickFile = () => {
    for (;;) {
      const rel = t.pick(files);
      if (!taken.has(rel)) {
        taken.add(rel);
        return rel;
      }
    }
  };
  for (let i = 0; i < 120; i++) {
    const rel = pickFile();
    const abs = join(base, rel);
    const st = statSync(abs);
    const sameSize = t.chance(0.3) && st.size > 0;
    const next = sameSize ? Buffer.alloc(st.size, 0x61 + (i % 26)) : content(t, `${rel} v2`);
    writeFileSync(abs, next);
    utimesSync(abs, new Date(st.atimeMs), new Date(Math.floor(st.mtimeMs) + t.int(1_000, 86_400_000)));
    counts.rewritten++;
  }
  for (let i = 0; i < 100; i++) {
    const rel = pickFile();
    const abs = join(base, rel);
    const st = statSync(abs);
    chmodSync(abs, ((st.mode & 0o7777) ^ t.pick([0o020, 0o004, 0o040, 0o100])) | 0o400);
    counts.chmod++;
  }
  for (let i = 0; i < 120; i++) {
    rmSync(join(base, pickFile()));
    counts.deleted++;
  }
  // Whole folders gone (leaves only: the picked folder and what is under it).
  const live = dirs.filter((d) => existsSync(join(base, d)));
  for (let i = 0; i < 3; i++) {
    const rel = t.pick(live);
    if (!existsSync(join(base, rel))) continue;
    rmSync(join(base, rel), { recursive: true });
    counts.foldersGone++;
  }
  // A file becomes a folder, a folder becomes a file (`delete: true` replaces them in dest).
  const still = listSource(base);
  const asFolder = still.files.find((f) => !taken.has(f) && f.includes('/'));
  if (asFolder !== undefined) {
    rmSync(join(base, asFolder));
    mkdirSync(join(base, asFolder));
    writeFile(base, `${asFolder}/inside.mp3`, t);
    counts.swapped++;
  }
  const asFile = still.dirs.filter((d) => d !== asFolder && !asFolder?.startsWith(`${d}/`)).sort((a, b) => b.length - a.length)[0];
  if (asFile !== undefined) {
    rmSync(join(base, asFile), { recursive: true });
    writeFile(base, asFile, t);
    counts.swapped++;
  }
  // New files, a third of them in new folders.
  const where = listSource(base).dirs;
  const fresh: string[] = [];
  for (let i = 0; i < 6; i++) {
    const parent = t.chance(0.5) || where.length === 0 ? '' : t.pick(where);
    const rel = parent === '' ? `new${i}` : `${parent}/new${i}`;
    mkdirSync(join(base, rel), { recursive: true });
    if (t.chance(0.5)) mkdirSync(join(base, rel, 'deeper'));
    fresh.push(rel);
    if (existsSync(join(base, rel, 'deeper'))) fresh.push(`${rel}/deeper`);
  }
  for (let i = 0; i < 150; i++) {
    const dir = t.chance(0.33) ? t.pick(fresh) : t.chance(0.2) ? '' : t.pick(where.length > 0 ? where : ['']);
    writeFile(base, dir === '' ? `added-${fileName(t, i)}` : `${dir}/added-${fileName(t, i)}`, t);
    counts.added++;
  }
  for (let i = 0; i < 4 && where.length > 0; i++) {
    const rel = t.pick(where);
    if (existsSync(join(base, rel))) chmodSync(join(base, rel), t.pick(DIR_MODES));
  }
  // A rename (a delete and an add of the same bytes and mtime).
  const one = listSource(base).files.find((f) => !taken.has(f));
  if (one !== undefined) renameSync(join(base, one), join(base, `${one}-renamed.mp3`));
  return { summary: JSON.stringify(counts) };
}

/** Files and folders of a source tree that the sync takes (no dotfiles, no partial uploads). */
function listSource(base: string): { files: string[]; dirs: string[] } {
  const files: string[] = [];
  const dirs: string[] = [];
  const visit = (rel: string) => {
    for (const e of readdirSync(join(base, rel), { withFileTypes: true })) {
      if (e.name.startsWith('.') || e.name.endsWith('.part')) continue;
      const child = rel === '' ? e.name : `${rel}/${e.name}`;
      if (e.isDirectory()) {
        dirs.push(child);
        visit(child);
      } else if (e.isFile()) files.push(child);
    }
  };
  visit('');
  return { files: files.sort(), dirs: dirs.sort() };
}

// ---------------------------------------------------------------------------------------------
// Snapshots.

export interface FileState {
  bytes: Buffer;
  size: number;
  /** mtime in microseconds (what the engine keeps). */
  mtimeUs: bigint;
  mode: number;
}

export interface TreeState {
  files: Map<string, FileState>;
  /** Folders below the top, with their modes. */
  dirs: Map<string, number>;
  /** Our temp files (`.upload-sync-*`), anywhere. */
  temps: string[];
}

/** Every file and folder under `base` as it is on disk; with `asSource`, only what the sync takes. */
export function snapshot(base: string, asSource = false): TreeState {
  const state: TreeState = { files: new Map(), dirs: new Map(), temps: [] };
  const visit = (rel: string) => {
    let entries;
    try {
      entries = readdirSync(join(base, rel), { withFileTypes: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw err;
    }
    for (const e of entries) {
      const child = rel === '' ? e.name : `${rel}/${e.name}`;
      if (e.name.startsWith('.upload-sync-')) state.temps.push(child);
      if (asSource && (e.name.startsWith('.') || e.name.endsWith('.part'))) continue;
      const abs = join(base, child);
      if (e.isDirectory()) {
        state.dirs.set(child, statSync(abs).mode & 0o7777);
        visit(child);
      } else if (e.isFile()) {
        const st = statSync(abs, { bigint: true });
        state.files.set(child, { bytes: readFileSync(abs), size: Number(st.size), mtimeUs: st.mtimeNs / 1000n, mode: Number(st.mode & 0o7777n) });
      }
    }
  };
  visit('');
  return state;
}

/**
 * Where `actual` (a dest) is not an exact mirror of `expected` (a source): missing, extra or other
 * files (bytes, size, mtime within 1 µs, mode), missing, extra or other folders (mode), temp files.
 */
export function mirrorProblems(expected: TreeState, actual: TreeState, limit = 20): string[] {
  const problems: string[] = [];
  for (const [rel, want] of expected.files) {
    const got = actual.files.get(rel);
    if (got === undefined) problems.push(`missing file ${rel}`);
    else {
      if (!got.bytes.equals(want.bytes)) problems.push(`other bytes ${rel} (${got.size}, expected ${want.size})`);
      const dt = got.mtimeUs - want.mtimeUs;
      if (dt > 1n || dt < -1n) problems.push(`other mtime ${rel} (${got.mtimeUs} µs, expected ${want.mtimeUs})`);
      if (got.mode !== want.mode) problems.push(`other mode ${rel} (${got.mode.toString(8)}, expected ${want.mode.toString(8)})`);
    }
  }
  for (const rel of actual.files.keys()) if (!expected.files.has(rel) && !rel.split('/').some((p) => p.startsWith('.upload-sync-'))) problems.push(`extra file ${rel}`);
  for (const [rel, mode] of expected.dirs) {
    const got = actual.dirs.get(rel);
    if (got === undefined) problems.push(`missing folder ${rel}`);
    else if (got !== mode) problems.push(`other folder mode ${rel} (${got.toString(8)}, expected ${mode.toString(8)})`);
  }
  for (const rel of actual.dirs.keys()) if (!expected.dirs.has(rel)) problems.push(`extra folder ${rel}`);
  for (const rel of actual.temps) problems.push(`temp file left ${rel}`);
  return problems.length > limit ? [...problems.slice(0, limit), `... and ${problems.length - limit} more`] : problems;
}

/** Files of `actual` that exist in `expected` but differ from it (a partial mirror: every file there must be right). */
export function wrongFiles(expected: TreeState, actual: TreeState): string[] {
  const problems: string[] = [];
  for (const [rel, got] of actual.files) {
    const want = expected.files.get(rel);
    if (want === undefined) problems.push(`extra file ${rel}`);
    else if (!got.bytes.equals(want.bytes) || got.mode !== want.mode || got.mtimeUs - want.mtimeUs > 1n || want.mtimeUs - got.mtimeUs > 1n) problems.push(`differs ${rel}`);
  }
  return problems;
}

/** Duplicates in a list (a file reported twice). */
export function duplicates(list: readonly string[]): string[] {
  const seen = new Set<string>();
  const dup = new Set<string>();
  for (const x of list) (seen.has(x) ? dup : seen).add(x);
  return [...dup];
}
