/**
 * rsync as the oracle. A seeded tree (a few hundred files, ~40 folders: modes, pre-1970 and future
 * mtimes, microseconds, unicode NFC/NFD names, a large file, a deep chain, symlinks of every kind,
 * FIFOs, ignored names, dest-only leftovers) goes through an initial sync and two rounds of seeded
 * changes. Each round our `syncUploads` mirrors the source while `rsync -a [--delete]` mirrors the
 * "oracle source" (the source as the sync is documented to see it) into an exact copy of our
 * dest as it was before the run; the two trees must then be the same: paths, types, bytes, file
 * mtimes (to the microsecond), modes of files and folders (not folder mtimes, not owners). The
 * result must tell what happened, and a second run must find nothing to do. A second case runs
 * the built package as `nobody` over read-only source folders.
 *
 * The only documented differences from `rsync -a` (README, "Never synced", symlinks, `delete`):
 * ignored names (dotfiles, partial uploads: case-insensitive), symlinks (a link to a file inside
 * the source is that file; any other link is absent), FIFOs (absent), and, without `delete`, a
 * type swap (file <-> folder) is not mirrored but is an `ERR_TYPE_CONFLICT` entry naming `delete`.
 *
 * Seeded: the seed is printed; RELIABILITY_SEED=<seed> replays every scenario of this file. A
 * failure shows the first 20 problems of each round (ORACLE_MAX_LINES=<n> shows more) and the
 * seeded changes on those paths.
 */
import { describe, test } from '@jest/globals';
import { createCipheriv } from 'node:crypto';
import { chmodSync, lstatSync, mkdirSync, readdirSync, realpathSync, symlinkSync, unlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { pathToFileURL } from 'node:url';
import { syncUploads, type SyncResult } from '../src/index.js';
import { DIST_ESM, cleanEnv, tempProject } from './helpers.js';
import { AS_ROOT, NOBODY, prng, randomTools, seedFor, startNode } from './reliability-helpers.js';
import {
  buildOracleSource,
  contentChanged,
  exactCopy,
  diffSnapshots,
  runTool,
  filesOf,
  inWritableDir,
  isIgnoredPath,
  quote,
  keepDestEntries,
  removeTree,
  runRsync,
  snapshot,
  typeConflicts,
  type Snapshot,
} from './oracle-helpers.js';

for (const key of Object.keys(process.env)) {
  if (/UPLOAD_SYNC/.test(key)) delete process.env[key];
}

const FILE = 'oracle-rsync';
const BASE_SEED = seedFor(FILE);
/** Six scenarios from the base seed (the golden-ratio step spreads them over the 32-bit range). */
const SEEDS = Array.from({ length: 6 }, (_, i) => (BASE_SEED + Math.imul(i, 0x9e3779b9)) >>> 0);

// ---------------------------------------------------------------------------------------------
// The generator's vocabulary.

/** Name stems: spaces, unicode in both normal forms, `#`, `%` (never `?`). */
const STEMS = ['track', 'Late Night', 'Caf\u00e9', 'Cafe\u0301', '曲 名', 'ünï code', '#1 hit', '100% live', 'a  b', 'Ωmega', 'émoji 🎵'];
const EXTENSIONS = ['.mp3', '.flac', '.jpg', '.txt', ''];
const FILE_MODES = [0o644, 0o644, 0o600, 0o444, 0o755];
const DIR_MODES = [0o755, 0o755, 0o700, 0o750, 0o555];
/** Ignored names, case variants included: the sync must see none of them. */
const IGNORED = ['.DS_Store', '.env', 'upload.mp3.part', 'clip.partial', 'movie.crdownload', 'scratch.tmp', 'song.mp3~', 'X.PART', 'y.Tmp', 'Z.CrDownload', 'w.Partial'];

/** A fixed "now" (June 2025), so that a seed builds the same tree on any day. */
const NOW_S = 1_750_000_000n;
const YEAR_S = 31_536_000n;
/**
 * Microseconds of a time, as a function of its whole second: two files stamped within the same
 * second carry exactly the same time, so rsync's whole-second quick check and our exact
 * comparison never disagree about a file. Node sets mtimes to the microsecond at best.
 */
const FRACTION_US = [0n, 500_000n, 123_000n, 654_321n, 250n, 999_000n];

interface Gen extends ReturnType<typeof randomTools> {
  source: string;
  outside: string;
  /** A fresh number for each generated name: names never collide unless an op means them to. */
  next: () => number;
  /** What was done this round, for the failure report. */
  log: { op: string; path: string }[];
}

function generator(seed: number, source: string, outside: string): Gen {
  let n = 0;
  return { ...randomTools(prng(seed)), source, outside, next: () => ++n, log: [] };
}

const abs = (g: Gen, rel: string) => (rel === '' ? g.source : join(g.source, ...rel.split('/')));
const child = (dir: string, name: string) => (dir === '' ? name : `${dir}/${name}`);
const fileName = (g: Gen) => `${g.pick(STEMS)} ${g.next()}${g.pick(EXTENSIONS)}`;
const dirName = (g: Gen) => `${g.pick(STEMS)} d${g.next()}`;

function shuffle<T>(g: Gen, items: readonly T[]): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = g.int(0, i);
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Times.

const mod = (a: bigint, m: bigint) => ((a % m) + m) % m;

/** The time of a second as an exact decimal string: Node's utimes takes negative times only as strings. */
function stamp(second: bigint): string {
  const ns = second * 1_000_000_000n + FRACTION_US[Number(mod(second, BigInt(FRACTION_US.length)))]! * 1000n;
  const sign = ns < 0n ? '-' : '';
  const a = ns < 0n ? -ns : ns;
  return `${sign}${a / 1_000_000_000n}.${String(a % 1_000_000_000n).padStart(9, '0')}`;
}

const stampNs = (second: bigint) => BigInt(stamp(second).replace('.', ''));

function setMtime(path: string, second: bigint): void {
  const t = stamp(second);
  utimesSync(path, t, t);
}

/** The whole second of a file's mtime (floor, as the kernel's timespec has it). */
function secondOf(path: string): bigint {
  const ns = lstatSync(path, { bigint: true }).mtimeNs;
  return ns >= 0n ? ns / 1_000_000_000n : -((-ns + 999_999_999n) / 1_000_000_000n);
}

/** Recent, before 1970 (about ten years before), or in the future (about five years ahead). */
function randomSecond(g: Gen): bigint {
  const era = g.pick(['recent', 'recent', 'recent', 'pre-1970', 'future'] as const);
  const jitter = BigInt(g.int(0, 30_000_000));
  if (era === 'pre-1970') return -10n * YEAR_S + jitter;
  if (era === 'future') return NOW_S + 5n * YEAR_S - jitter;
  return NOW_S - jitter;
}

/** The gap between the stamps of two seconds, in ns (absolute). */
function gapNs(a: bigint, b: bigint): bigint {
  const d = stampNs(a) - stampNs(b);
  return d < 0n ? -d : d;
}

/**
 * An old mtime moved by about a second, either way, such that the times differ by at least 1 s:
 * the same-size rewrite that a size+mtime check must still see.
 */
function nearbySecond(g: Gen, old: bigint): bigint {
  return shuffle(g, [old + 1n, old - 1n, old + 2n, old - 2n]).find((s) => gapNs(s, old) >= 1_000_000_000n)!;
}

/**
 * A random time at least 1 s from the old one. (Adjacent seconds can be 1 ms apart, 191.999 and
 * 192.000: rsync tells them apart by the second, a tolerance of a millisecond would not, and the
 * contract promises only differences of a second or more.)
 */
function farSecond(g: Gen, old: bigint): bigint {
  let second = randomSecond(g);
  while (gapNs(second, old) < 1_000_000_000n) second += 7n;
  return second;
}

// ---------------------------------------------------------------------------------------------
// Writing the source.

/** Seeded bytes: an AES-CTR keystream under a key drawn from the PRNG (megabytes in a few ms). */
function randomBytes(g: Gen, size: number): Buffer {
  const key = Buffer.from(Array.from({ length: 32 }, () => g.int(0, 255)));
  const cipher = createCipheriv('aes-128-ctr', key.subarray(0, 16), key.subarray(16));
  return Buffer.concat([cipher.update(Buffer.alloc(size)), cipher.final()]);
}

/** 0 bytes often (the empty-file case), else small to a few tens of KB. */
function randomSize(g: Gen): number {
  const r = g.rand();
  if (r < 0.15) return 0;
  if (r < 0.55) return g.int(1, 64);
  if (r < 0.9) return g.int(100, 8000);
  return g.int(8000, 60_000);
}

interface FileSpec {
  size?: number;
  mode?: number;
  second?: bigint;
}

/** (Re)writes a source file with seeded bytes, mode and mtime. A rewrite unlinks first (a 0o444 file). */
async function writeFileAt(g: Gen, rel: string, spec: FileSpec = {}): Promise<void> {
  const path = abs(g, rel);
  const bytes = randomBytes(g, spec.size ?? randomSize(g));
  const mode = spec.mode ?? g.pick(FILE_MODES);
  const second = spec.second ?? randomSecond(g);
  await inWritableDir(dirname(path), () => {
    removeTree(path);
    writeFileSync(path, bytes);
  });
  chmodSync(path, mode);
  setMtime(path, second);
}

async function makeDir(g: Gen, rel: string, mode: number): Promise<void> {
  await inWritableDir(dirname(abs(g, rel)), () => mkdirSync(abs(g, rel)));
  chmodSync(abs(g, rel), mode);
}

/** What the sync sees in the source now: its files and folders (not ignored, not behind a link), and the files links point at. */
function view(g: Gen): { files: string[]; dirs: string[]; linkTargets: Set<string> } {
  const files: string[] = [];
  const dirs: string[] = [''];
  const linkTargets = new Set<string>();
  const sourceReal = realpathSync(g.source);
  const visit = (dir: string) => {
    for (const name of readdirSync(abs(g, dir)).sort()) {
      const rel = child(dir, name);
      const st = lstatSync(abs(g, rel));
      if (st.isSymbolicLink()) {
        try {
          linkTargets.add(relative(sourceReal, realpathSync(abs(g, rel))).split('\\').join('/'));
        } catch {
          // dangling
        }
      } else if (isIgnoredPath(rel)) continue;
      else if (st.isDirectory()) {
        dirs.push(rel);
        visit(rel);
      } else if (st.isFile()) files.push(rel);
    }
  };
  visit('');
  return { files, dirs, linkTargets };
}

/** A link target that the sync must not mirror: dangling, a folder inside, a file or folder outside. */
function oddLinkTarget(g: Gen, linkRel: string): string {
  const linkDir = dirname(abs(g, linkRel));
  const target = g.pick([
    () => join(g.source, `gone ${g.next()}.mp3`),
    () => abs(g, g.pick(view(g).dirs)),
    () => join(g.outside, 'secret.mp3'),
    () => join(g.outside, 'dir'),
  ])();
  return g.chance(0.5) ? target : relative(linkDir, target) || '.'; // absolute and relative links both
}

async function addSymlink(g: Gen, rel: string, target: string): Promise<void> {
  await inWritableDir(dirname(abs(g, rel)), () => symlinkSync(target, abs(g, rel)));
}

// ---------------------------------------------------------------------------------------------
// The initial tree, and what dest holds before the first run.

async function buildInitialTree(g: Gen): Promise<void> {
  mkdirSync(g.source, { recursive: true });
  chmodSync(g.source, 0o755);
  writeFileSync(join(g.outside, 'secret.mp3'), 'outside the source');
  mkdirSync(join(g.outside, 'dir', 'sub'), { recursive: true });
  writeFileSync(join(g.outside, 'dir', 'sub', 'x.mp3'), 'outside, in a folder');

  // Folders first (all 0o755 while they are filled; their seeded modes are applied at the end).
  const dirs: string[] = [''];
  const modes = new Map<string, number>();
  const addDir = (rel: string) => {
    mkdirSync(abs(g, rel));
    dirs.push(rel);
    modes.set(rel, g.pick(DIR_MODES));
  };
  for (let i = 0; i < 30; i++) addDir(child(g.pick(dirs), dirName(g)));
  let deep = g.pick(dirs);
  for (let level = 0; level < 9; level++) addDir((deep = child(deep, `level ${level}`)));
  const n = g.next();
  addDir(`Caf\u00e9 d${n}`); // the same name in NFC and NFD: two folders on Linux
  addDir(`Cafe\u0301 d${n}`);

  for (let i = 0; i < 240; i++) await writeFileAt(g, child(g.pick(dirs), fileName(g)));
  for (let i = 0; i < 3; i++) {
    const dir = g.pick(dirs);
    const k = g.next();
    await writeFileAt(g, child(dir, `Caf\u00e9 ${k}.mp3`));
    await writeFileAt(g, child(dir, `Cafe\u0301 ${k}.mp3`));
  }
  await writeFileAt(g, child(deep, `at the bottom ${g.next()}.mp3`));
  await writeFileAt(g, child(g.pick(dirs), `large ${g.next()}.flac`), { size: 2 * 1024 * 1024 + g.int(0, 4095) });
  for (let i = 0; i < 4; i++) await writeFileAt(g, child(g.pick(dirs), `empty ${g.next()}.mp3`), { size: 0 });

  // Never synced: ignored names, a dot folder, links that do not lead to a file inside, FIFOs.
  for (const name of IGNORED) await writeFileAt(g, child(g.pick(dirs), name.startsWith('.') ? name : `${g.next()} ${name}`));
  mkdirSync(abs(g, '.hidden/inner'), { recursive: true });
  await writeFileAt(g, '.hidden/inner/in a dot folder.mp3');
  for (let i = 0; i < 6; i++) {
    const rel = child(g.pick(dirs), `odd link ${g.next()}.mp3`);
    await addSymlink(g, rel, oddLinkTarget(g, rel));
  }
  for (let i = 0; i < 6; i++) await OPS_BY_NAME['add a symlink to a file inside']!(g);
  for (let i = 0; i < 2; i++) await OPS_BY_NAME['add a FIFO']!(g);

  for (const [rel, mode] of [...modes].reverse()) chmodSync(abs(g, rel), mode);
  g.log.length = 0;
}

/**
 * Dest before the first run: leftovers the source never had (a file, and a folder of files to be
 * emptied with `delete`), names the sync must never delete (dotfiles, partial uploads, a folder
 * kept by a dotfile), stale copies of some source files, and a folder with another mode. The
 * leftovers are `zz-` names the generator never uses in the source.
 */
async function plantDest(g: Gen, dest: string): Promise<void> {
  const write = (rel: string, bytes: string | Buffer) => {
    const path = join(dest, ...rel.split('/'));
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, bytes);
    setMtime(path, randomSecond(g));
  };
  write(`zz-orphan ${g.next()}.mp3`, 'orphan');
  const orphans = `zz-orphans d${g.next()}`;
  write(`${orphans}/a.mp3`, 'orphan a');
  write(`${orphans}/deeper/b.mp3`, 'orphan b');
  for (const rel of ['.htaccess', '.cache/keep.bin', `keep ${g.next()}.part`, `KEEP ${g.next()}.PART`, `zz-kept d${g.next()}/.keep`]) write(rel, 'never deleted');

  const { files, dirs } = view(g);
  for (let i = 0; i < 5; i++) {
    const rel = g.pick(files);
    write(rel, randomBytes(g, lstatSync(abs(g, rel)).size + 1)); // another size: both tools must copy
  }
  const dir = g.pick(dirs.filter((d) => d !== ''));
  mkdirSync(join(dest, ...dir.split('/')), { recursive: true });
  chmodSync(join(dest, ...dir.split('/')), 0o777);
}

// ---------------------------------------------------------------------------------------------
// The changes of a round.

interface Op {
  name: string;
  weight: number;
  /** Makes the change; returns the path it touched, or null when there was nothing to do it to. */
  run: (g: Gen) => Promise<string | null>;
}

const nonRoot = (dirs: string[]) => dirs.filter((d) => d !== '');
const pickOrNull = <T>(g: Gen, items: T[]): T | null => (items.length === 0 ? null : g.pick(items));
/**
 * Files no op touched yet this round. An mtime moved twice in a round could end up a millisecond
 * from the synced one (see farSecond), a difference the contract does not cover.
 */
const unmoved = (g: Gen, files: string[]) => files.filter((f) => !g.log.some((e) => e.path === f));

const OPS: Op[] = [
  {
    name: 'add a file',
    weight: 5,
    run: async (g) => {
      const rel = child(g.pick(view(g).dirs), fileName(g));
      await writeFileAt(g, rel);
      return rel;
    },
  },
  {
    name: 'remove a file',
    weight: 3,
    run: async (g) => {
      const rel = pickOrNull(g, view(g).files);
      if (rel !== null) await inWritableDir(dirname(abs(g, rel)), () => unlinkSync(abs(g, rel)));
      return rel;
    },
  },
  {
    name: 'rewrite with a new size',
    weight: 3,
    run: async (g) => {
      const rel = pickOrNull(g, unmoved(g, view(g).files));
      if (rel === null) return null;
      const st = lstatSync(abs(g, rel));
      let size = randomSize(g);
      if (size === st.size) size += 1;
      await writeFileAt(g, rel, { size, mode: st.mode & 0o7777, second: farSecond(g, secondOf(abs(g, rel))) });
      return rel;
    },
  },
  {
    name: 'same-size rewrite, mtime moved by about 1 s',
    weight: 3,
    run: async (g) => {
      const rel = pickOrNull(g, unmoved(g, view(g).files));
      if (rel === null) return null;
      const st = lstatSync(abs(g, rel));
      await writeFileAt(g, rel, { size: st.size, mode: st.mode & 0o7777, second: nearbySecond(g, secondOf(abs(g, rel))) });
      return rel;
    },
  },
  {
    name: 'chmod a file',
    weight: 3,
    run: async (g) => {
      const rel = pickOrNull(g, view(g).files);
      if (rel === null) return null;
      const mode = lstatSync(abs(g, rel)).mode & 0o7777;
      chmodSync(abs(g, rel), g.pick(FILE_MODES.filter((m) => m !== mode)));
      return rel;
    },
  },
  {
    name: 'chmod a folder',
    weight: 3,
    run: async (g) => {
      const rel = pickOrNull(g, nonRoot(view(g).dirs));
      if (rel === null) return null;
      const mode = lstatSync(abs(g, rel)).mode & 0o7777;
      chmodSync(abs(g, rel), g.pick(DIR_MODES.filter((m) => m !== mode)));
      return rel;
    },
  },
  {
    name: 'touch the mtime only',
    weight: 2,
    run: async (g) => {
      const rel = pickOrNull(g, unmoved(g, view(g).files));
      if (rel === null) return null;
      setMtime(abs(g, rel), farSecond(g, secondOf(abs(g, rel))));
      return rel;
    },
  },
  {
    name: 'file -> folder',
    weight: 2,
    run: async (g) => {
      const rel = pickOrNull(g, view(g).files);
      if (rel === null) return null;
      await inWritableDir(dirname(abs(g, rel)), () => unlinkSync(abs(g, rel)));
      await makeDir(g, rel, 0o755);
      for (let i = g.int(0, 2); i > 0; i--) await writeFileAt(g, child(rel, fileName(g)));
      chmodSync(abs(g, rel), g.pick(DIR_MODES));
      return rel;
    },
  },
  {
    name: 'folder -> file',
    weight: 2,
    run: async (g) => {
      const rel = pickOrNull(g, nonRoot(view(g).dirs));
      if (rel === null) return null;
      await inWritableDir(dirname(abs(g, rel)), () => removeTree(abs(g, rel)));
      await writeFileAt(g, rel);
      return rel;
    },
  },
  {
    name: 'file -> symlink (dangling, folder, or outside)',
    weight: 3,
    run: async (g) => {
      const { files, linkTargets } = view(g);
      // Not a file a link points at: links to links are a case the contract does not spell out.
      const rel = pickOrNull(g, files.filter((f) => !linkTargets.has(f)));
      if (rel === null) return null;
      await inWritableDir(dirname(abs(g, rel)), () => unlinkSync(abs(g, rel)));
      await addSymlink(g, rel, oddLinkTarget(g, rel));
      return rel;
    },
  },
  {
    name: 'add a symlink to a file inside',
    weight: 1,
    run: async (g) => {
      const { files, dirs } = view(g);
      const target = pickOrNull(g, files);
      if (target === null) return null;
      const rel = child(g.pick(dirs), `link ${g.next()}${g.pick(EXTENSIONS)}`);
      await addSymlink(g, rel, g.chance(0.5) ? abs(g, target) : relative(dirname(abs(g, rel)), abs(g, target)));
      return rel;
    },
  },
  {
    name: 'remove a folder',
    weight: 1,
    run: async (g) => {
      const rel = pickOrNull(g, nonRoot(view(g).dirs));
      if (rel !== null) await inWritableDir(dirname(abs(g, rel)), () => removeTree(abs(g, rel)));
      return rel;
    },
  },
  {
    name: 'add an empty folder',
    weight: 2,
    run: async (g) => {
      const rel = child(g.pick(view(g).dirs), dirName(g));
      await makeDir(g, rel, g.pick(DIR_MODES));
      return rel;
    },
  },
  {
    name: 'add an ignored name',
    weight: 1,
    run: async (g) => {
      const name = g.pick(IGNORED);
      const rel = child(g.pick(view(g).dirs), name.startsWith('.') ? `.${g.next()}${name}` : `${g.next()} ${name}`);
      await writeFileAt(g, rel);
      return rel;
    },
  },
  {
    name: 'add a FIFO',
    weight: 1,
    run: async (g) => {
      const rel = child(g.pick(view(g).dirs), `pipe ${g.next()}`);
      await inWritableDir(dirname(abs(g, rel)), () => runTool('mkfifo', [abs(g, rel)]));
      return rel;
    },
  },
];
const OPS_BY_NAME: Record<string, (g: Gen) => Promise<string | null>> = Object.fromEntries(OPS.map((op) => [op.name, op.run]));

/** Every kind of change once (in a seeded order), then 25 more drawn by weight. */
async function changeRound(g: Gen): Promise<void> {
  const weighted = OPS.flatMap((op) => Array<Op>(op.weight).fill(op));
  for (const op of [...shuffle(g, OPS), ...Array.from({ length: 25 }, () => g.pick(weighted))]) {
    const path = await op.run(g);
    if (path !== null) g.log.push({ op: op.name, path });
  }
}

// ---------------------------------------------------------------------------------------------
// One round: both tools, then every check.

interface Sides {
  source: string;
  oursDest: string;
  oracleSource: string;
  oracleDest: string;
  delete: boolean;
  sync: () => Promise<SyncResult>;
  /** Run rsync as nobody too (the case where our sync runs as nobody). */
  asNobody?: boolean;
}

/** Syncs ours and rsync from the same dest state; returns what is wrong (empty when all is right). */
async function checkRound(s: Sides): Promise<string[]> {
  const before = snapshot(s.oursDest);
  await exactCopy(s.oursDest, s.oracleDest);
  await buildOracleSource(s.source, s.oracleSource);
  const conflicts = s.delete ? [] : typeConflicts(snapshot(s.oracleSource, { bytes: false }), before);
  await keepDestEntries(conflicts, s.oracleSource, s.oracleDest);
  const input = snapshot(s.oracleSource, { bytes: false });

  const [first] = await Promise.all([s.sync(), runRsync(s.oracleSource, s.oracleDest, { delete: s.delete, asNobody: s.asNobody })]);
  const ours = snapshot(s.oursDest);
  const problems = [...diffSnapshots(snapshot(s.oracleDest), ours), ...leakedIgnoredNames(before, ours), ...resultProblems('first run', first, before, ours, conflicts)];

  // Right after, nothing is left to do.
  const second = await s.sync();
  const again = snapshot(s.oursDest);
  problems.push(...diffSnapshots(ours, again, { want: 'run 1', got: 'run 2' }).map((line) => `second run changed the mirror: ${line}`));
  problems.push(...resultProblems('second run', second, ours, again, conflicts));
  const busy = [...second.copied, ...second.updated, ...second.deleted];
  if (busy.length > 0) {
    const counts = `copied ${second.copied.length}, updated ${second.updated.length}, deleted ${second.deleted.length}`;
    problems.push(`second run: ${counts}, expected none (first: ${busy.slice(0, 3).map(quote).join(', ')})`);
  }
  const expected = syncedFileCount(input, conflicts);
  if (second.unchanged !== expected) problems.push(`second run: unchanged ${second.unchanged}, expected ${expected} (every synced file)`);
  return problems;
}

/** Files the sync compares: not ignored, not at or under a type conflict. */
function syncedFileCount(input: Snapshot, conflicts: string[]): number {
  const inConflict = (rel: string) => conflicts.some((c) => rel === c || rel.startsWith(`${c}/`));
  return filesOf(input).filter((rel) => !isIgnoredPath(rel) && !inConflict(rel)).length;
}

/** Ignored names (dotfiles, partial uploads in any case) that the run put in dest. */
function leakedIgnoredNames(before: Snapshot, after: Snapshot): string[] {
  return [...after.keys()].filter((rel) => isIgnoredPath(rel) && !before.has(rel)).map((rel) => `ignored name ${quote(rel)} was copied to dest`);
}

/**
 * Whether a result tells the truth about a run that took dest from `before` to `after`: status
 * and errors (type conflicts only, each naming `delete`), every file written is in `copied` or
 * `updated` and every one reported was written, every file gone is in `deleted`.
 */
function resultProblems(label: string, r: SyncResult, before: Snapshot, after: Snapshot, conflicts: string[]): string[] {
  const problems: string[] = [];
  const q = quote;
  const unexpected = r.errors.filter((e) => !(e.code === 'ERR_TYPE_CONFLICT' && conflicts.includes(e.path)));
  for (const e of unexpected) problems.push(`${label}: error ${e.code} at ${q(e.path)}: ${e.message}`);
  for (const path of conflicts) {
    const entry = r.errors.find((e) => e.path === path && e.code === 'ERR_TYPE_CONFLICT');
    if (!entry) problems.push(`${label}: no ERR_TYPE_CONFLICT entry for the type swap at ${q(path)} (without delete)`);
    else if (!/\bdelete\b/.test(entry.message)) problems.push(`${label}: the ERR_TYPE_CONFLICT message for ${q(path)} does not mention \`delete\`: ${q(entry.message)}`);
  }
  const written = new Set([...r.copied, ...r.updated]);
  const deleted = new Set(r.deleted);
  // With type conflicts some paths failed: `partial`, or `failed` if nothing else was to be done.
  const didSomething = written.size + deleted.size > 0;
  const okStatuses = conflicts.length === 0 ? ['ok'] : didSomething ? ['partial'] : ['partial', 'failed'];
  if (!okStatuses.includes(r.status)) problems.push(`${label}: status ${r.status}, expected ${okStatuses.join(' or ')}`);

  for (const rel of r.copied.filter((p) => r.updated.includes(p))) problems.push(`${label}: ${q(rel)} is both copied and updated`);
  for (const rel of [...written].filter((p) => deleted.has(p))) problems.push(`${label}: ${q(rel)} is both written and deleted`);
  for (const rel of written) {
    const now = after.get(rel);
    if (now?.type !== 'file') problems.push(`${label}: reports ${q(rel)} copied/updated, but dest has no such file`);
    else if (!contentChanged(before.get(rel), now) && before.get(rel)?.mode === now.mode) problems.push(`${label}: reports ${q(rel)} copied/updated, but it did not change`);
  }
  for (const rel of filesOf(after)) {
    if (contentChanged(before.get(rel), after.get(rel)!) && !written.has(rel)) problems.push(`${label}: ${q(rel)} was written but is not in copied/updated`);
  }
  for (const rel of filesOf(before)) {
    if (after.get(rel)?.type !== 'file' && !deleted.has(rel)) problems.push(`${label}: ${q(rel)} was removed from dest but is not in deleted`);
  }
  for (const rel of deleted) {
    const was = before.get(rel);
    if (!was) problems.push(`${label}: reports ${q(rel)} deleted, but dest did not have it`);
    else if (after.get(rel)?.type === was.type) problems.push(`${label}: reports ${q(rel)} deleted, but it is still there`);
  }
  return problems;
}

// ---------------------------------------------------------------------------------------------
// Reporting.

const MAX_LINES = Number(process.env.ORACLE_MAX_LINES ?? 20);

/** The first problems of each failing round, with the seeded changes that touched their paths. */
function report(header: string, rounds: { round: string; problems: string[]; log: Gen['log'] }[]): string {
  const parts = [header];
  for (const { round, problems, log } of rounds) {
    if (problems.length === 0) continue;
    parts.push(`\n${round}: ${problems.length} problem(s): ${summary(problems)}`);
    parts.push(...problems.slice(0, MAX_LINES).map((line) => `  ${line}`));
    if (problems.length > MAX_LINES) parts.push(`  … and ${problems.length - MAX_LINES} more`);
    const paths = problems.slice(0, MAX_LINES).flatMap((line) => [...line.matchAll(/"((?:[^"\\]|\\.)*)"/g)].map((m) => JSON.parse(m[0]) as string));
    const related = log.filter(({ path }) => paths.some((p) => p === path || p.startsWith(`${path}/`) || path.startsWith(`${p}/`)));
    if (related.length > 0) parts.push('  changes of this round on those paths:', ...related.slice(0, MAX_LINES).map(({ op, path }) => `    ${op}: ${quote(path)}`));
  }
  return parts.join('\n');
}

/** How many problems of each kind, e.g. `mtime 40, mode 12, extra 3, first run 2`. */
function summary(problems: string[]): string {
  const counts = new Map<string, number>();
  for (const line of problems) {
    const differs = /^differs "(?:[^"\\]|\\.)*": (.*)$/.exec(line);
    const kinds = differs ? [...differs[1]!.matchAll(/(?:^|; )(\w+) \(/g)].map((m) => m[1]!) : [/^(first run|second run|\w+)/.exec(line)![1]!];
    for (const kind of kinds) counts.set(kind, (counts.get(kind) ?? 0) + 1);
  }
  return [...counts].map(([kind, n]) => `${kind} ${n}`).join(', ');
}

function failIfAny(header: string, rounds: { round: string; problems: string[]; log: Gen['log'] }[]): void {
  if (rounds.some((r) => r.problems.length > 0)) throw new Error(report(header, rounds));
}

// ---------------------------------------------------------------------------------------------
// The tests.

describe('syncUploads against rsync -a (the oracle)', () => {
  describe.each([true, false])('delete: %s', (del) => {
    test.each(SEEDS.map((seed, i) => [i, seed]))('seeded scenario #%i: initial sync and two rounds of changes', async (index, seed) => {
      const p = tempProject('upload-sync-oracle-');
      const outside = join(p.root, 'outside');
      mkdirSync(outside);
      try {
        const g = generator(seed, p.source, outside);
        const sides: Sides = {
          source: p.source,
          oursDest: p.dest,
          oracleSource: join(p.root, 'oracle-source'),
          oracleDest: join(p.root, 'oracle-dest'),
          delete: del,
          sync: () => syncUploads({ source: p.source, dest: p.dest, delete: del, force: true, lockDir: join(p.root, 'locks') }),
        };
        await buildInitialTree(g);
        await plantDest(g, p.dest);
        const rounds = [];
        for (const round of ['initial sync', 'round 1', 'round 2']) {
          if (round !== 'initial sync') await changeRound(g);
          rounds.push({ round, problems: await checkRound(sides), log: [...g.log] });
          g.log.length = 0;
        }
        failIfAny(`delete: ${del}, scenario #${index}, seed ${seed} (base seed ${BASE_SEED}; replay: RELIABILITY_SEED=${BASE_SEED} npm run jest -- ${FILE})`, rounds);
      } finally {
        removeTree(p.root);
      }
    });
  });

  // Root ignores permission bits: only a sync running as another user meets a read-only folder.
  const asRoot = AS_ROOT ? test : test.skip;
  asRoot('as nobody: read-only (0o555) source folders are mirrored as rsync does, first run and after a file is added', async () => {
    const p = tempProject('upload-sync-oracle-nobody-');
    try {
      const g = generator(BASE_SEED, p.source, join(p.root, 'outside'));
      chmodSync(p.root, 0o755);
      await readOnlySource(g);
      const lockDir = join(p.root, 'locks');
      mkdirSync(lockDir);
      mkdirSync(dirname(p.dest), { recursive: true });
      await runTool('chown', ['-R', `${NOBODY}:${NOBODY}`, p.root]);
      const sides: Sides = {
        source: p.source,
        oursDest: p.dest,
        oracleSource: join(p.root, 'oracle-source'),
        oracleDest: join(p.root, 'oracle-dest'),
        delete: true,
        sync: () => syncAsNobody({ source: p.source, dest: p.dest, delete: true, force: true, lockDir }),
        asNobody: true,
      };
      const rounds = [{ round: 'first run', problems: await checkRound(sides), log: [] }];

      // Add a file the way an admin would: open the folder, add, close it again.
      const ro = join(p.source, 'read-only');
      chmodSync(ro, 0o755);
      await writeFileAt(g, 'read-only/added later.mp3', { mode: 0o644 });
      chmodSync(ro, 0o555);
      await runTool('chown', [`${NOBODY}:${NOBODY}`, join(ro, 'added later.mp3')]);
      rounds.push({ round: 'after adding a file', problems: await checkRound(sides), log: [] });
      failIfAny(`as nobody, seed ${BASE_SEED}`, rounds);
    } finally {
      removeTree(p.root);
    }
  });
});

/** A source with a read-only folder and subfolder holding files of several modes. */
async function readOnlySource(g: Gen): Promise<void> {
  mkdirSync(join(g.source, 'read-only', 'sub'), { recursive: true });
  await writeFileAt(g, 'top.mp3', { mode: 0o644 });
  await writeFileAt(g, 'read-only/a.mp3', { mode: 0o644 });
  await writeFileAt(g, 'read-only/b.flac', { mode: 0o444 });
  await writeFileAt(g, 'read-only/sub/c.mp3', { mode: 0o600 });
  await writeFileAt(g, 'read-only/sub/empty.mp3', { size: 0, mode: 0o644 });
  chmodSync(join(g.source, 'read-only', 'sub'), 0o555);
  chmodSync(join(g.source, 'read-only'), 0o555);
}

/** `syncUploads` of the built package, in a child process running as nobody. */
async function syncAsNobody(options: Record<string, unknown>): Promise<SyncResult> {
  const script = `
    import { syncUploads } from ${JSON.stringify(pathToFileURL(DIST_ESM).href)};
    process.stdout.write(JSON.stringify(await syncUploads(${JSON.stringify(options)})));`;
  const child = startNode(['--input-type=module', '-e', script], { asNobody: true, env: cleanEnv() });
  const exit = await child.exited;
  if (exit.code !== 0) throw new Error(`the sync as nobody exited with ${exit.code ?? exit.signal}: ${child.stderr()}`);
  return JSON.parse(child.stdout()) as SyncResult;
}
