/**
 * The first full sync into an EMPTY mirror is exact, every time.
 *
 * The helper worker thread that shares a large run's comparison and copies exists only in the
 * built package (dist/: from src/ there is no built worker), and a race between it and the main
 * thread can drop whole folders while the run still says `ok`, exit 0, in some runs only. So this
 * file runs the built package as users do, many times over: the CLI (`upload-sync sync --json`,
 * configured by the environment) and the library (a child process importing dist/index.js), by
 * turns, each time into a new empty dest, with another process keeping one of the two CPUs busy
 * (timings shift, as on a loaded server).
 *
 * Two seeded shapes: A1, 5,000 small files in 150 folders; A2, 10,000 files of 1-32 KiB in 200
 * folders; all with an mtime in the past. Each repetition checks the exit code, the status, the
 * count of `copied`, and the mirror: every file with its size and mtime, a seeded sample of ~200
 * byte for byte, no extra file or folder, no temp file. And the worker must have done work in at
 * least one repetition per shape, or these runs prove nothing about it.
 *
 * Replay: RELIABILITY_SEED=<seed printed> npm run jest -- __tests__/initial-sync-repeat.test.ts
 * (needs a build: npm run build).
 */
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { mkdirSync, readFileSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { capped, listTree, parentOf, randomPool, runBuiltCli, runBuiltLibrary, seededContent, startCpuHog, stopCpuHog, KiB, type ChildSync, type SyncPaths } from './engine-test-helpers.js';
import { tempProject } from './helpers.js';
import { isTempPath, prng, randomTools, seedFor, type Child } from './reliability-helpers.js';

const FILE = '__tests__/initial-sync-repeat.test.ts';
const seed = seedFor(FILE);

/** Repetitions per shape: the race shows in a fraction of runs, so one run proves little. */
const REPETITIONS = 20;
/** Files whose bytes are compared in each repetition (all are compared by size and mtime). */
const BYTE_SAMPLE = 200;

interface Shape {
  name: string;
  files: number;
  folders: number;
  minSize: number;
  maxSize: number;
}

const SHAPES: Shape[] = [
  { name: 'A1', files: 5_000, folders: 150, minSize: 200, maxSize: 4 * KiB },
  { name: 'A2', files: 10_000, folders: 200, minSize: 1 * KiB, maxSize: 32 * KiB },
];

interface SourceFile {
  rel: string;
  size: number;
  mtimeMs: number;
}

/** A generated source tree: what the mirror must hold. */
interface SourceTree {
  source: string;
  files: Map<string, SourceFile>;
  folders: Set<string>;
  /** The files whose bytes each repetition compares. */
  sample: string[];
}

type Tools = ReturnType<typeof randomTools>;

// ---------------------------------------------------------------------------------------------
// The worker thread, as its debug output shows it.

/** The debug namespace whose output says what the worker did. */
const WORKER_DEBUG = 'upload-sync:helper';

/**
 * Whether the built package's helper worker compared folders or copied files in a run, read from
 * its debug line (src/engine/helper.ts: "helper thread did %d tasks", printed when it did any).
 * The one place that knows that line: adapt it here when the engine changes.
 */
function workerDidWork(stderr: string): boolean {
  const m = /helper thread did (\d+) tasks/.exec(stderr);
  return m !== null && Number(m[1]) > 0;
}

// ---------------------------------------------------------------------------------------------
// The source trees.

/**
 * Folder names: most at the top, some nested one or two levels under an earlier folder (a walk of
 * a real uploads folder meets both).
 */
function folderNames(count: number, t: Tools): string[] {
  const names: string[] = [];
  for (let i = 0; i < count; i++) {
    const parent = i > 0 && t.chance(0.3) ? t.pick(names) : '';
    const name = `album-${i}`;
    names.push(parent !== '' && parent.split('/').length < 3 ? `${parent}/${name}` : name);
  }
  return names;
}

/** Writes a shape's files (seeded sizes, contents and past mtimes) under `source`. */
function writeSourceTree(source: string, shape: Shape, t: Tools): SourceTree {
  const pool = randomPool(t.rand, 256 * KiB);
  const folders = folderNames(shape.folders, t);
  for (const folder of folders) mkdirSync(join(source, folder), { recursive: true });
  // Whole seconds in the past: every clock and every timestamp API keeps them exactly.
  const now = Math.floor(Date.now() / 1000);
  const files = new Map<string, SourceFile>();
  for (let i = 0; i < shape.files; i++) {
    const rel = `${t.pick(folders)}/track-${i}.mp3`;
    const size = t.int(shape.minSize, shape.maxSize);
    const mtime = now - t.int(86_400, 365 * 86_400);
    const abs = join(source, rel);
    writeFileSync(abs, seededContent(pool, size, t.int(0, pool.length - 1), rel));
    utimesSync(abs, mtime, mtime);
    files.set(rel, { rel, size, mtimeMs: mtime * 1000 });
  }
  const all = [...files.keys()];
  const sample = Array.from({ length: BYTE_SAMPLE }, () => t.pick(all));
  return { source, files, folders: new Set(expandParents(folders)), sample: [...new Set(sample)] };
}

/** The folders and all their parents (a nested name implies its parent folder). */
function expandParents(folders: string[]): string[] {
  const all = new Set<string>();
  for (let f of folders) for (; f !== ''; f = parentOf(f)) all.add(f);
  return [...all];
}

// ---------------------------------------------------------------------------------------------
// The mirror check.

/** Every way `dest` differs from an exact mirror of `tree`, capped for a readable failure. */
function mirrorProblems(tree: SourceTree, dest: string): string[] {
  const listing = listTree(dest);
  const problems: string[] = [...missingByFolder(tree, listing.files)];
  for (const [rel, want] of tree.files) {
    const got = listing.files.get(rel);
    if (got === undefined) continue; // reported by folder above
    if (got.size !== want.size) problems.push(`size of ${rel}: ${got.size}, source ${want.size}`);
    if (got.mtimeMs !== want.mtimeMs) problems.push(`mtime of ${rel}: ${got.mtimeMs}, source ${want.mtimeMs}`);
  }
  for (const rel of listing.files.keys()) {
    if (isTempPath(rel)) problems.push(`temp file left: ${rel}`);
    else if (!tree.files.has(rel)) problems.push(`extra file: ${rel}`);
  }
  for (const rel of tree.folders) if (!listing.dirs.has(rel)) problems.push(`missing folder: ${rel}`);
  for (const rel of listing.dirs) if (!tree.folders.has(rel)) problems.push(`extra folder: ${rel}`);
  for (const rel of listing.others) problems.push(`not a file or folder: ${rel}`);
  for (const rel of tree.sample) {
    if (listing.files.has(rel) && !readFileSync(join(dest, rel)).equals(readFileSync(join(tree.source, rel)))) problems.push(`bytes of ${rel} differ from the source`);
  }
  return capped(problems);
}

/** Missing files, one line per folder ("album-7: 33 of 33 files missing"): the race drops whole folders. */
function missingByFolder(tree: SourceTree, present: Map<string, unknown>): string[] {
  const missing = new Map<string, { missing: number; of: number }>();
  for (const rel of tree.files.keys()) {
    const folder = parentOf(rel);
    const entry = missing.get(folder) ?? { missing: 0, of: 0 };
    entry.of++;
    if (!present.has(rel)) entry.missing++;
    missing.set(folder, entry);
  }
  return [...missing]
    .filter(([, n]) => n.missing > 0)
    .map(([folder, n]) => `${folder}: ${n.missing} of ${n.of} files missing`);
}

// ---------------------------------------------------------------------------------------------
// Running the built package.

type Via = 'cli' | 'library';

/** One sync of the built package: the CLI, or the library in a child process; with the worker's debug output on. */
function syncBuilt(via: Via, paths: SyncPaths, cwd: string): Promise<ChildSync> {
  const extraEnv = { DEBUG: WORKER_DEBUG };
  if (via === 'cli') return runBuiltCli(paths, { extraEnv, cwd });
  // Enabled by the environment, as in production (no `force`).
  return runBuiltLibrary({ source: paths.source, dest: paths.dest, lockDir: paths.lockDir }, { extraEnv: { ...extraEnv, ENABLE_UPLOAD_SYNC: 'true' }, cwd });
}

/** What a repetition observed, in one object: a failure shows all of it at once. */
function observed(run: ChildSync, dest: string, tree: SourceTree) {
  return {
    exitCode: run.code,
    signal: run.signal,
    status: run.result?.status,
    errors: run.result?.errors.slice(0, 10),
    copied: run.result?.copied.length,
    mirrorProblems: mirrorProblems(tree, dest),
    // Only when there is no result to show: what the process said instead.
    ...(run.result === null ? { stderr: run.stderr.slice(-2000) } : {}),
  };
}

// ---------------------------------------------------------------------------------------------

/** Sources, dests and the lock folder: made in beforeAll, removed in afterAll. */
let project: ReturnType<typeof tempProject> | null = null;
let hog: Child | null = null;

beforeAll(() => {
  project = tempProject('upload-sync-initial-');
  hog = startCpuHog();
});

afterAll(async () => {
  if (hog !== null) await stopCpuHog(hog);
  // All dests are deleted only now: this disk is slow to create files just after deleting many,
  // and a repetition must not pay for the one before it.
  await project?.cleanup();
});

describe.each(SHAPES)('shape $name: $files files in $folders folders, first sync into an empty mirror', (shape) => {
  const t = randomTools(prng((seed ^ shape.files) >>> 0));
  let tree: SourceTree;
  /** Repetitions whose debug output showed the worker at work. */
  const workerRuns: number[] = [];

  beforeAll(() => {
    tree = writeSourceTree(join(project!.root, `source-${shape.name}`), shape, t);
  });

  const repetitions = Array.from({ length: REPETITIONS }, (_, i): [number, Via] => [i + 1, i % 2 === 0 ? 'cli' : 'library']);

  test.each(repetitions)('repetition %i (%s): exit 0, status ok, every file copied, the mirror exact', async (rep, via) => {
    const { root } = project!;
    const dest = join(root, 'dests', `${shape.name}-${rep}`);
    mkdirSync(dest, { recursive: true }); // a new, empty mirror folder
    const run = await syncBuilt(via, { source: tree.source, dest, lockDir: join(root, 'locks') }, root);
    if (workerDidWork(run.stderr)) workerRuns.push(rep);
    expect(observed(run, dest, tree)).toEqual({
      exitCode: 0,
      signal: null,
      status: 'ok',
      errors: [],
      copied: tree.files.size,
      mirrorProblems: [],
    });
  });

  test('the helper worker thread did work in at least one repetition', () => {
    // Without it, the repetitions above ran on one thread, and the race was never given a chance.
    expect(workerRuns.length).toBeGreaterThan(0);
  });
});
