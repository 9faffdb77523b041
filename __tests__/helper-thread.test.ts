// A sync run shares its copies with a helper thread (src/threads.ts, src/diff-worker.ts): this
// thread takes copies from the front, the helper takes shares from the back once it is up. These
// tests run from source, where no worker is built, so they give the run the built worker script
// (`setRunHelperFactory`), made eager (it takes a share at the first chance, whether or not it
// has started) so the sharing happens whatever the machine's speed; and fault-injecting scripts
// that wrap it, for a helper that fails or dies: a real thread, real failures.
import { cpSync } from 'node:fs';
import { lstat, mkdir, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, afterEach, expect, test } from '@jest/globals';
import { syncUploads, type SyncResult } from '../src/index.js';
import { setRunHelperFactory, startRunHelper, type CopyJob, type CopyOutcome, type WorkerData } from '../src/engine/threads.js';
import { DIST_ESM, readTree, tempFiles, tempProject, writeTree } from './helpers.js';
import { eager } from './thread-helpers.js';

const BUILT_WORKER = join(DIST_ESM, '..', 'diff-worker.js');

const projects: Array<ReturnType<typeof tempProject>> = [];
let restore: (() => void) | null = null;
afterEach(() => {
  restore?.();
  restore = null;
});
afterAll(async () => {
  await Promise.all(projects.map((p) => p.cleanup()));
});

/** 1,200 small files in 4 folders (below the frontier that shares the comparison) and 2 large ones. */
async function project(): Promise<ReturnType<typeof tempProject>> {
  const p = tempProject('upload-sync-helper-');
  projects.push(p);
  const files: Record<string, string | Buffer> = {};
  for (let i = 0; i < 1200; i++) files[`album-${i % 4}/track-${i}.mp3`] = `track ${i} `.repeat(1 + (i % 50));
  files['album-0/big-1.wav'] = Buffer.alloc(1_500_000, 1);
  files['album-3/disc 2/big-2.wav'] = Buffer.alloc(700_000, 2);
  await writeTree(p.source, files);
  return p;
}

/** A twin of `p` (same files, modes and times), for the one-thread run to compare with. */
function twin(p: ReturnType<typeof tempProject>): ReturnType<typeof tempProject> {
  const t = tempProject('upload-sync-helper-');
  projects.push(t);
  cpSync(p.root, t.root, { recursive: true, preserveTimestamps: true, force: true });
  return t;
}

const run = (p: ReturnType<typeof tempProject>, extra = {}) =>
  syncUploads({ source: p.source, dest: p.dest, force: true, lockDir: join(p.root, 'locks'), ...extra });

/** Every dest file has its source's bytes, mode and mtime (to 10 µs); no temp file. */
async function expectExactMirror(p: ReturnType<typeof tempProject>): Promise<void> {
  expect(await readTree(p.dest)).toEqual(await readTree(p.source));
  for (const rel of Object.keys(await readTree(p.source))) {
    const [s, d] = await Promise.all([lstat(join(p.source, rel)), lstat(join(p.dest, rel))]);
    // Node's utimes takes seconds as a double: about a microsecond of the source's nanoseconds is lost.
    expect([rel, d.mode, Math.abs(d.mtimeMs - s.mtimeMs) < 0.01 ? 'same' : [d.mtimeMs, s.mtimeMs]]).toEqual([rel, s.mode, 'same']);
  }
  expect(await tempFiles(p.dest)).toEqual([]);
}

const comparable = (r: SyncResult) => ({ ...r, durationMs: 0 });

/** Runs with the built worker script `script` as the helper, made eager; returns what it was given. */
function useHelper(script: string): { copyShares: CopyJob[][]; outcomes: Array<[string, CopyOutcome]>; started: number } {
  const seen = { copyShares: [] as CopyJob[][], outcomes: [] as Array<[string, CopyOutcome]>, started: 0 };
  restore = setRunHelperFactory((data: WorkerData) => {
    const inner = startRunHelper(data, pathToFileURL(script));
    if (inner === null) throw new Error(`the helper script ${script} did not start`);
    seen.started++;
    const helper = eager(inner);
    seen.copyShares = helper.copyShares;
    seen.outcomes = helper.outcomes;
    return helper;
  });
  return seen;
}

/**
 * A worker script that runs the built worker with `patch` applied to what it sends: a helper that
 * says it failed, or dies mid-share. (The built worker took `parentPort` before; its
 * `postMessage` is the one patched.)
 */
async function faultyWorker(dir: string, patch: string): Promise<string> {
  const script = join(dir, `faulty-${projects.length}.mjs`);
  await writeFile(script, `
    import { parentPort } from 'node:worker_threads';
    const post = parentPort.postMessage.bind(parentPort);
    let outcomesSent = 0;
    parentPort.postMessage = (message) => { ${patch} };
    await import(${JSON.stringify(pathToFileURL(BUILT_WORKER).href)});
  `);
  return script;
}

test('a run shares its copies with the helper thread: the same result and mirror as on one thread', async () => {
  const p = await project();
  const one = await run(twin(p)); // from source: no helper
  const seen = useHelper(BUILT_WORKER);
  const two = await run(p);
  expect(seen.started).toBe(1);
  const shared = seen.copyShares.flat().map((j) => j.rel);
  expect(shared.length).toBeGreaterThan(0);
  expect(new Set(shared).size).toBe(shared.length); // no file given twice
  // Into an empty mirror: the helper finds each share's folders made (folders are this thread's
  // work), so none of its copies fails and comes back to be done again.
  expect(seen.outcomes.length).toBe(shared.length);
  expect(seen.outcomes.filter(([, outcome]) => outcome !== 'copied')).toEqual([]);
  expect(comparable(two)).toEqual(comparable(one));
  expect(two.status).toBe('ok');
  expect(two.copied.length).toBe(1202);
  await expectExactMirror(p);
});

test('copies handed on while the comparison runs: the helper finds the folders of its shares made, none of its copies fails', async () => {
  // Over 2,000 copies: they go out in batches while the tree is compared, before the run has made
  // the dest folders it found; a share's folders are made before the helper gets it.
  const p = tempProject('upload-sync-helper-');
  projects.push(p);
  const files: Record<string, string> = {};
  for (let i = 0; i < 2400; i++) files[`album-${i % 24}/disc ${i % 3}/t-${i}.mp3`] = `t ${i}`;
  await writeTree(p.source, files);
  const seen = useHelper(BUILT_WORKER);
  const result = await run(p);
  expect(result.status).toBe('ok');
  expect(result.copied.length).toBe(2400);
  const shared = seen.copyShares.flat().map((j) => j.rel);
  expect(shared.length).toBeGreaterThan(0);
  expect(seen.outcomes.length).toBe(shared.length);
  expect(seen.outcomes.filter(([, outcome]) => outcome !== 'copied')).toEqual([]);
  await expectExactMirror(p);
});

test('a helper that dies while its share\'s folders are made is given nothing: the run does the share itself', async () => {
  const p = await project();
  // A stand-in helper, no thread: idle when the run decides to give it a share, dead by the time
  // the share's folders are made. A share given to it then would be lost.
  let looks = 0;
  const given: CopyJob[][] = [];
  restore = setRunHelperFactory(() => ({
    get idle() {
      return looks++ === 0;
    },
    busy: false,
    get failed() {
      return looks > 1;
    },
    copying: false,
    give: () => {
      throw new Error('no share of the comparison was expected (4 folders)');
    },
    giveCopies: (jobs: CopyJob[]) => void given.push(jobs),
    collect: () => [],
    collectCopies: () => ({ done: [], lost: [] }),
    changed: () => new Promise<void>(() => undefined), // it died: no change will come
    stop: () => undefined,
  }));
  const result = await run(p);
  expect(looks).toBeGreaterThanOrEqual(2); // it was looked at, and found dead when the folders were made
  expect(given).toEqual([]);
  expect(result.status).toBe('ok');
  expect(result.copied.length).toBe(1202);
  await expectExactMirror(p);
});

test('copies the helper reports as failed are done again here, and counted once', async () => {
  const p = await project();
  const seen = useHelper(await faultyWorker(p.root, `
    if (message.type === 'copied') message = { ...message, outcomes: message.outcomes.map(() => 'failed') };
    post(message);`));
  const result = await run(p);
  expect(result.status).toBe('ok');
  expect(result.errors).toEqual([]);
  expect(result.copied.length).toBe(1202);
  expect(new Set(result.copied).size).toBe(1202);
  expect(seen.copyShares.length).toBeGreaterThan(0);
  await expectExactMirror(p);
});

test('a helper that dies mid-share: what it did not report is done here; the mirror is exact', async () => {
  const p = await project();
  const seen = useHelper(await faultyWorker(p.root, `
    post(message);
    if (message.type === 'copied' && (outcomesSent += message.outcomes.length) >= 32) process.exit(3);`));
  const result = await run(p);
  expect(seen.copyShares.length).toBe(1); // it died in its first share
  expect(result.status).toBe('ok');
  expect(result.copied.length).toBe(1202);
  expect(new Set(result.copied).size).toBe(1202);
  await expectExactMirror(p);
});

test('aborted while the helper copies: it finishes its share, no temp file is left, nothing in dest is partial', async () => {
  const p = await project();
  useHelper(BUILT_WORKER);
  const abort = new AbortController();
  const result = await run(p, { signal: abort.signal, onProgress: (pr: { filesDone: number }) => pr.filesDone >= 100 && abort.abort() });
  expect(result.errors.map((e) => e.code)).toContain('ERR_ABORTED');
  expect(result.copied.length).toBeLessThan(1202);
  expect(await tempFiles(p.dest)).toEqual([]);
  const source = await readTree(p.source);
  const dest = await readTree(p.dest);
  expect(Object.keys(dest).sort()).toEqual([...result.copied].sort()); // what it reports is what is there
  for (const [rel, content] of Object.entries(dest)) expect([rel, content]).toEqual([rel, source[rel]]);
  // The next run completes the mirror.
  expect((await run(p)).status).toBe('ok');
  await expectExactMirror(p);
});

test('timers keep running during a long run of small synchronous copies', async () => {
  const p = await project();
  await mkdir(join(p.source, 'more'), { recursive: true });
  for (let i = 0; i < 1500; i++) await writeFile(join(p.source, 'more', `x-${i}.mp3`), `x ${i}`);
  let ticks = 0;
  const timer = setInterval(() => ticks++, 5);
  const started = performance.now();
  const result = await run(p); // from source: one thread, every small copy synchronous
  const took = performance.now() - started;
  clearInterval(timer);
  expect(result.copied.length).toBe(2702);
  // Without yields, a timer due in 5 ms waits for the whole copy phase; with them, for ~10 ms at most.
  expect(ticks).toBeGreaterThanOrEqual(Math.floor(took / 100));
  expect((await readdir(join(p.dest, 'more'))).length).toBe(1500);
});

test('a long comparison hands its copies on as it goes: progress totals grow, the mirror is exact', async () => {
  const p = tempProject('upload-sync-helper-');
  projects.push(p);
  const files: Record<string, string> = {};
  for (let i = 0; i < 5000; i++) files[`album-${i % 5}/t-${i}.mp3`] = `t ${i}`;
  await writeTree(p.source, files);
  const totals: number[] = [];
  const result = await run(p, { onProgress: (pr: { filesTotal: number }) => void (totals.at(-1) !== pr.filesTotal && totals.push(pr.filesTotal)) });
  expect(result.copied.length).toBe(5000);
  // Copies went out in batches while the tree was still being compared, not as one plan of 5,000.
  expect(totals.length).toBeGreaterThan(1);
  expect(totals[0]).toBeLessThan(5000);
  expect(totals.at(-1)).toBe(5000);
  expect(await readTree(p.dest)).toEqual(files);
  expect(await tempFiles(p.dest)).toEqual([]);
});
