/**
 * Every write writes all its bytes or fails. On a full disk, no file under a final name in dest
 * differs from a whole version of its source, and a file that could not be written is an error
 * entry in the result (ENOSPC), never in `copied` / `updated`.
 *
 * Dest is a real, small tmpfs (root only: `mount -t tmpfs -o size=N`), mounted once and resized
 * (`remount,size=N`) and emptied for each trial. Where mounting is refused the file fails loudly in
 * CI (CI=true) and is skipped, with the reason printed, elsewhere: an injected fs would not show
 * how a real kernel fills up (a write that fits in part returns a short count; it does not throw).
 *
 * Each seeded trial picks a tmpfs size, fills it with a filler file to a seeded level, writes 1-8
 * source files (0 B - 3 MiB, often exactly at a power of two or at 256 KiB +- 1, where the engine
 * goes from one synchronous read and write to a streamed copy), syncs with `concurrency` 1 or 4,
 * and checks (a)-(e) below; then frees the filler and syncs again: now exact, and `ok`. Kinds:
 * - fresh: an empty mirror;
 * - update: dest holds an older, smaller version of files, and the largest update cannot fit
 *   beside its old version: the old version must stay whole under its name;
 * - swarm: 1,000-1,400 small files, enough for the built package's helper worker thread to take
 *   shares of the copies.
 * Trials alternate between src/ (imported here) and the built package (dist/index.js in a child
 * process): the two copy paths and the worker are bundled there too.
 *
 * Replay: RELIABILITY_SEED=<seed printed> npm run jest -- __tests__/full-disk.test.ts (needs a
 * build). SOAK=1 runs more trials.
 */
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, statfsSync, unlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { syncUploads, type SyncResult } from '../src/index.js';
import { capped, randomPool, runBuiltLibrary, seededContent, KiB, MiB } from './engine-test-helpers.js';
import { tempProject } from './helpers.js';
import { SOAK, isTempPath, prng, randomTools, rawTree, seedFor, treeDiff } from './reliability-helpers.js';

for (const key of Object.keys(process.env)) {
  if (/UPLOAD_SYNC/.test(key)) delete process.env[key]; // the machine's settings never reach src/ runs
}

const FILE = '__tests__/full-disk.test.ts';
const seed = seedFor(FILE);
const TRIALS = SOAK ? 240 : 48;
/** tmpfs counts space in whole pages. */
const PAGE = 4 * KiB;
/** Error codes that mean "no space". */
const SPACE_CODES = new Set(['ENOSPC', 'EDQUOT']);
const IN_CI = /^(1|true|yes)$/i.test(process.env.CI ?? '');

// ---------------------------------------------------------------------------------------------
// The tmpfs.

const mountTmpfs = (dir: string, bytes: number) => execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${bytes}`, 'tmpfs', dir], { stdio: 'pipe' });
/** A new size for a mounted, emptied tmpfs: one mount serves every trial. */
const resizeTmpfs = (dir: string, bytes: number) => execFileSync('mount', ['-o', `remount,size=${bytes}`, dir], { stdio: 'pipe' });
const freeBytes = (dir: string) => {
  const fs = statfsSync(dir);
  return fs.bavail * fs.bsize;
};
/** Removes what is in `dir`, not `dir` (a mount point). */
const emptyDir = (dir: string) => {
  for (const name of readdirSync(dir)) rmSync(join(dir, name), { recursive: true, force: true });
};
const pages = (bytes: number) => Math.ceil(bytes / PAGE);

/**
 * Why a tmpfs cannot be mounted here, or `null` when it can: tried once on a throwaway folder
 * before any test is defined, because the answer decides whether the tests run or are skipped.
 * The real mount is made in beforeAll, so nothing stays mounted when every test is filtered out.
 */
function tmpfsRefused(): string | null {
  if (process.platform !== 'linux') return `not Linux (${process.platform})`;
  if (process.getuid?.() !== 0) return 'not root';
  const probe = mkdtempSync(join(tmpdir(), 'upload-sync-full-disk-probe-'));
  try {
    mountTmpfs(probe, 64 * PAGE);
    execFileSync('umount', [probe], { stdio: 'pipe' });
    return null;
  } catch (err) {
    return `mount refused: ${String((err as { stderr?: Buffer }).stderr ?? '').trim() || (err as Error).message}`;
  } finally {
    rmSync(probe, { recursive: true, force: true });
  }
}

const refused = tmpfsRefused();
if (refused !== null) {
  // eslint-disable-next-line no-console
  console.log(`full-disk: NO real tmpfs (${refused}): ${IN_CI ? 'failing, as CI must run these tests' : 'skipping these tests'}`);
}
/** In CI a refused mount fails every test (beforeAll mounts): these tests must not quietly not run there. */
const suite = refused === null || IN_CI ? describe : describe.skip;

/** Where the trials run (made in beforeAll, so a skipped file leaves nothing behind). */
interface Disk {
  project: ReturnType<typeof tempProject>;
  /** The tmpfs mount point: dest is a folder in it, the filler file sits beside dest. */
  mount: string;
  dest: string;
  filler: string;
  lockDir: string;
  mounted: boolean;
}
let disk: Disk | null = null;

// ---------------------------------------------------------------------------------------------
// Trials.

type Kind = 'fresh' | 'update' | 'swarm';
type Via = 'src' | 'dist';

interface PlannedFile {
  rel: string;
  size: number;
  /** Update trials: the size of the older version dest holds before the sync (never larger than `size`). */
  olderSize?: number;
}

interface Trial {
  name: string;
  index: number;
  via: Via;
  concurrency: 1 | 4;
  kind: Kind;
  /** tmpfs size, a whole number of pages. */
  capacity: number;
  /** fresh and swarm: the share of the free space the filler takes; update: see `fillDisk`. */
  fill: number;
  files: PlannedFile[];
  /** Seeds this trial's file contents. */
  contentSeed: number;
}

/** One kind per trial index (src and dist alternate, so each kind runs with both). */
const KIND_CYCLE: Kind[] = ['fresh', 'fresh', 'update', 'update', 'fresh', 'swarm', 'fresh', 'fresh', 'update', 'update', 'swarm', 'fresh'];

/** Sizes where copy paths change: powers of two, page edges, the 256 KiB switch to a streamed copy, its 1 MiB chunk. */
const BOUNDARY_SIZES = [0, 1, 4095, 4096, 4097, 64 * KiB, 128 * KiB, 256 * KiB - 1, 256 * KiB, 256 * KiB + 1, 512 * KiB, 1 * MiB, 1 * MiB + 1, 2 * MiB, 3 * MiB];
const MAX_SIZE = 3 * MiB;

type Tools = ReturnType<typeof randomTools>;

function pickSize(t: Tools, min = 0): number {
  return t.chance(0.5) ? t.pick(BOUNDARY_SIZES.filter((s) => s >= min)) : t.int(min, MAX_SIZE);
}

function planFiles(t: Tools, kind: Kind): PlannedFile[] {
  if (kind === 'swarm') {
    return Array.from({ length: t.int(1000, 1400) }, (_, i) => ({ rel: `disc-${i % 6}/track-${i}.mp3`, size: t.int(0, 6 * KiB) }));
  }
  const files = Array.from({ length: t.int(1, 8) }, (_, i): PlannedFile => {
    const folder = t.chance(0.5) ? `album-${t.int(0, 2)}/` : '';
    if (kind === 'fresh') {
      const size = pickSize(t);
      return { rel: `${folder}file-${i}-${size}.bin`, size };
    }
    // An update never shrinks a file: then no publish frees space, and an update that does not
    // fit at the start never fits (see `expectedSpaceErrors`).
    const [a, b] = [pickSize(t, 1), pickSize(t)];
    const file = { rel: `${folder}file-${i}.bin`, size: Math.max(a, b), olderSize: Math.min(a, b) };
    return t.chance(0.8) ? file : { rel: file.rel, size: file.size }; // some files are new
  });
  if (kind === 'update' && !files.some((f) => f.olderSize !== undefined)) files[0]!.olderSize = t.int(0, files[0]!.size);
  return files;
}

/** Pages the trial's files can hold at once (old and new versions side by side during an update). */
const neededPages = (files: PlannedFile[]) => files.reduce((n, f) => n + pages(f.size) + pages(f.olderSize ?? 0), 0);

function planTrial(t: Tools, index: number): Trial {
  const kind = KIND_CYCLE[index % KIND_CYCLE.length]!;
  const via: Via = index % 2 === 0 ? 'src' : 'dist';
  const concurrency = t.pick([1, 4] as const);
  const files = planFiles(t, kind);
  // 256 KiB - 4 MiB, but always room for every file once the filler is gone (the second sync).
  const capacity = Math.max(t.int(64, 1024), neededPages(files) + 16) * PAGE;
  const fill = t.rand() * 0.98;
  const trial = { index, via, concurrency, kind, capacity, fill, files, contentSeed: t.int(0, 2 ** 32 - 1) };
  return { ...trial, name: trialName(trial) };
}

function trialName(t: Omit<Trial, 'name'>): string {
  const what =
    t.kind === 'swarm'
      ? `${t.files.length} files of 0-6 KiB`
      : t.files.map((f) => (f.olderSize === undefined ? `${f.size}` : `${f.olderSize}->${f.size}`)).join(', ') + ' B';
  const fill = t.kind === 'update' ? 'the largest update not fitting' : `${Math.round(t.fill * 100)}% full`;
  return `trial ${t.index} (${t.via}, concurrency ${t.concurrency}, ${t.kind}): tmpfs ${Math.round(t.capacity / KiB)} KiB ${fill}; ${what}`;
}

const master = randomTools(prng(seed));
const trials = Array.from({ length: TRIALS }, (_, i) => planTrial(master, i));

// ---------------------------------------------------------------------------------------------
// Contents.

/** The bytes a trial's files hold: the version to sync, and (update trials) the one dest holds first. */
interface Versions {
  current: Map<string, Buffer>;
  older: Map<string, Buffer>;
}

function makeVersions(trial: Trial): Versions {
  const t = randomTools(prng(trial.contentSeed));
  const pool = randomPool(t.rand, 512 * KiB);
  const versions: Versions = { current: new Map(), older: new Map() };
  for (const f of trial.files) {
    versions.current.set(f.rel, seededContent(pool, f.size, t.int(0, pool.length - 1), `${f.rel} new`));
    if (f.olderSize !== undefined) versions.older.set(f.rel, seededContent(pool, f.olderSize, t.int(0, pool.length - 1), `${f.rel} old`));
  }
  return versions;
}

/** Whole seconds in the past: the new version one day later than the old, so the run sees it changed. */
const OLD_MTIME = Math.floor(Date.now() / 1000) - 2 * 86_400;
const NEW_MTIME = OLD_MTIME + 86_400;

function writeFiles(source: string, files: Map<string, Buffer>, mtime: number): void {
  for (const [rel, bytes] of files) {
    const abs = join(source, rel);
    mkdirSync(dirname(abs), { recursive: true });
    writeFileSync(abs, bytes);
    utimesSync(abs, mtime, mtime);
  }
}

/**
 * Writes the filler beside dest and returns the free space left. fresh and swarm: a seeded share
 * of the free space. update: all but less than the largest update's new version (a seeded number
 * of pages), so that update cannot be written.
 */
function fillDisk(trial: Trial, { mount, filler: fillerPath }: Disk): number {
  const free = freeBytes(mount);
  let filler = Math.floor((free * trial.fill) / PAGE) * PAGE;
  if (trial.kind === 'update') {
    const largest = Math.max(...trial.files.filter((f) => f.olderSize !== undefined).map((f) => pages(f.size)));
    const leave = Math.floor(trial.fill * largest) * PAGE; // 0 .. largest - 1 pages
    filler = Math.max(0, free - leave);
  }
  writeFileSync(fillerPath, Buffer.alloc(filler, 0xf1));
  return freeBytes(mount);
}

// ---------------------------------------------------------------------------------------------
// Syncing: src/ in this process, or the built package in a child.

interface SyncPlace {
  source: string;
  dest: string;
  lockDir: string;
}

async function sync(trial: Trial, place: SyncPlace): Promise<SyncResult> {
  const options = { ...place, concurrency: trial.concurrency, force: true };
  if (trial.via === 'src') return syncUploads(options);
  const run = await runBuiltLibrary(options);
  if (run.code !== 0 || run.result === null) {
    throw new Error(`the dist/ sync process ended with code ${run.code} (signal ${run.signal}) and no result:\n${run.stderr.slice(-2000)}`);
  }
  return run.result;
}

// ---------------------------------------------------------------------------------------------
// The checks.

/** How `got` differs from `want`, in a few words (a hole of zeros shows as a difference mid-file). */
function mismatch(got: Buffer, want: Buffer): string {
  let at = 0;
  while (at < got.length && at < want.length && got[at] === want[at]) at++;
  return `${got.length} bytes where the source has ${want.length}, first difference at byte ${at}`;
}

const isWhole = (got: Buffer | undefined, want: Buffer | undefined) => got !== undefined && want !== undefined && got.equals(want);

/**
 * The files whose sync cannot succeed: in an update trial, the largest updated file, whose new
 * version does not fit in the space left (free space only shrinks during the run: no update
 * shrinks a file). Each must be an error, and keep its old version.
 */
function expectedSpaceErrors(trial: Trial, freeAtStart: number): string[] {
  if (trial.kind !== 'update') return [];
  return trial.files.filter((f) => f.olderSize !== undefined && pages(f.size) * PAGE > freeAtStart).map((f) => f.rel);
}

/** (a)-(e) after a sync on a full disk: every way the result or dest breaks the promise. */
async function fullDiskProblems(versions: Versions, result: SyncResult, dest: string, mustFail: string[]): Promise<string[]> {
  const tree = await rawTree(dest);
  const finals = new Map([...tree].filter(([rel]) => !isTempPath(rel)));
  const errors = new Map(result.errors.map((e) => [e.path, e]));
  const reported = new Map([...result.copied.map((rel) => [rel, 'copied'] as const), ...result.updated.map((rel) => [rel, 'updated'] as const)]);
  const problems: string[] = [];

  // (a) Under a final name: a whole version of the source (the new one, or the old one an update left).
  for (const [rel, bytes] of finals) {
    const want = versions.current.get(rel);
    if (want === undefined) problems.push(`(a) ${rel}: in dest, not in source`);
    else if (!bytes.equals(want) && !isWhole(bytes, versions.older.get(rel))) problems.push(`(a) ${rel}: not a whole version of its source: ${mismatch(bytes, want)}`);
  }
  // (b) What the result says was written is there, whole.
  for (const [rel, how] of reported) {
    const got = finals.get(rel);
    if (!isWhole(got, versions.current.get(rel))) problems.push(`(b) ${rel}: reported ${how}, but dest holds ${got === undefined ? 'nothing' : mismatch(got, versions.current.get(rel) ?? Buffer.alloc(0))}`);
    if (errors.has(rel)) problems.push(`(b) ${rel}: reported ${how} and also as an error (${errors.get(rel)!.code})`);
  }
  // (c) What is not there whole is an error entry for that file, for lack of space; an update
  // that failed leaves the old version whole.
  for (const [rel, want] of versions.current) {
    const got = finals.get(rel);
    if (isWhole(got, want)) continue;
    const entry = errors.get(rel);
    if (entry === undefined) problems.push(`(c) ${rel}: ${got === undefined ? 'not in dest' : 'not whole in dest'}, and no error entry`);
    else if (!SPACE_CODES.has(entry.code)) problems.push(`(c) ${rel}: error ${entry.code} (${entry.message}), expected ENOSPC`);
    const old = versions.older.get(rel);
    if (old !== undefined && !isWhole(got, old)) problems.push(`(c) ${rel}: its update failed, and the old version is no longer whole under its name: ${got === undefined ? 'gone' : mismatch(got, old)}`);
  }
  for (const rel of mustFail) {
    if (!errors.has(rel)) problems.push(`(c) ${rel}: its new version cannot fit beside the old one, yet there is no error for it`);
  }
  // (d) No temp file is left.
  for (const rel of tree.keys()) if (isTempPath(rel)) problems.push(`(d) temp file left: ${rel}`);
  // (e) The status says whether everything was done.
  const allWhole = [...versions.current].every(([rel, want]) => isWhole(finals.get(rel), want));
  if (result.errors.length > 0 && result.status !== 'partial' && result.status !== 'failed') problems.push(`(e) status ${result.status} with ${result.errors.length} errors`);
  if (result.errors.length === 0 && result.status !== 'ok') problems.push(`(e) status ${result.status} without an error`);
  if (result.status === 'ok' && !allWhole) problems.push('(e) status ok, but not every file is in dest whole');
  return capped(problems);
}

/** After the filler is freed: dest is the source exactly, with no temp file. */
async function exactProblems(versions: Versions, dest: string): Promise<string[]> {
  const tree = await rawTree(dest);
  const temps = [...tree.keys()].filter(isTempPath).map((rel) => `temp file left: ${rel}`);
  const finals = new Map([...tree].filter(([rel]) => !isTempPath(rel)));
  return capped([...treeDiff(versions.current, finals), ...temps]);
}

// ---------------------------------------------------------------------------------------------


suite('a full dest on a real tmpfs: every write is whole or an error', () => {
  beforeAll(() => {
    if (refused !== null) throw new Error(`no real tmpfs: ${refused}`);
    const project = tempProject('upload-sync-full-disk-');
    const mount = join(project.root, 'tmpfs');
    disk = { project, mount, dest: join(mount, 'mirror'), filler: join(mount, 'filler.bin'), lockDir: join(project.root, 'locks'), mounted: false };
    mkdirSync(mount, { recursive: true });
    mountTmpfs(mount, 4 * MiB);
    disk.mounted = true;
  });

  afterAll(async () => {
    if (disk === null) return;
    try {
      if (disk.mounted) execFileSync('umount', [disk.mount], { stdio: 'pipe' });
    } catch {
      execFileSync('umount', ['-l', disk.mount], { stdio: 'pipe' }); // busy: detach it, never leave it mounted
    }
    await disk.project.cleanup();
  });

  test.each(trials.map((trial) => [trial.name, trial] as const))('%s', async (_name, trial) => {
    const d = disk!;
    const source = join(d.project.root, `source-${trial.index}`);
    const place = { source, dest: d.dest, lockDir: d.lockDir };
    const versions = makeVersions(trial);
    emptyDir(d.mount); // the mount is shared: what the last trial left goes, then it takes this trial's size
    resizeTmpfs(d.mount, trial.capacity);
    try {
      // Update trials: dest first holds the older versions, synced while there is room.
      if (versions.older.size > 0) {
        writeFiles(source, versions.older, OLD_MTIME);
        const setup = await sync(trial, place);
        expect({ setup: setup.status, errors: setup.errors }).toEqual({ setup: 'ok', errors: [] });
      }
      writeFiles(source, versions.current, NEW_MTIME);

      const free = fillDisk(trial, d);
      const full = await sync(trial, place);
      const onFullDisk = await fullDiskProblems(versions, full, d.dest, expectedSpaceErrors(trial, free));

      unlinkSync(d.filler);
      const again = await sync(trial, place);
      expect({ onFullDisk, afterFreeing: { status: again.status, errors: again.errors, mirror: await exactProblems(versions, d.dest) } }).toEqual({
        onFullDisk: [],
        afterFreeing: { status: 'ok', errors: [], mirror: [] },
      });
    } finally {
      rmSync(source, { recursive: true, force: true });
    }
  });
});
