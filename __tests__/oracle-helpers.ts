/**
 * The rsync oracle of oracle-rsync.test.ts: tree snapshots (type, bytes, mtime to the nanosecond,
 * mode), a readable diff of two of them, and the "oracle source" (the source as the sync is
 * documented to see it), which `rsync -a` then mirrors so its result is what ours must be.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, lstatSync, readdirSync, readFileSync, realpathSync, rmSync, statSync } from 'node:fs';
import { dirname, join, sep } from 'node:path';
import { cleanEnv } from './helpers.js';
import { AS_ROOT, NOBODY } from './reliability-helpers.js';

// ---------------------------------------------------------------------------------------------
// Names the sync never sees (documented difference 1).

const PARTIAL_SUFFIXES = ['.part', '.partial', '.crdownload', '.tmp', '~'];

/** A dotfile or a partial upload, judged case-insensitively as the sync does. */
export const isIgnoredName = (name: string) => name.startsWith('.') || PARTIAL_SUFFIXES.some((s) => name.toLowerCase().endsWith(s));

/** Whether any component of a `/`-path is an ignored name (a file in a dot folder is ignored too). */
export const isIgnoredPath = (rel: string) => rel.split('/').some(isIgnoredName);

/**
 * The same names as rsync rules. rsync's patterns are case-sensitive, so each letter becomes a
 * class (`*.[pP][aA][rR][tT]`): rsync then skips `X.PART` as the sync must, and with `--delete`
 * it protects such names in dest, as the sync never deletes them.
 */
export const RSYNC_EXCLUDES = ['.*', ...PARTIAL_SUFFIXES.map((s) => `*${caseless(s)}`)];

function caseless(text: string): string {
  return [...text].map((c) => (c.toLowerCase() === c.toUpperCase() ? c : `[${c.toLowerCase()}${c.toUpperCase()}]`)).join('');
}

// ---------------------------------------------------------------------------------------------
// Snapshots.

export type Entry =
  | { type: 'file'; size: number; mtimeNs: bigint; mode: number; sha1: string }
  | { type: 'dir'; mode: number }
  | { type: 'symlink' | 'other'; mode: number };

/** Every entry under a root, by `/`-path; the root itself is `''`. Symlinks are not followed. */
export type Snapshot = Map<string, Entry>;

/**
 * Reads a tree (an absent root is an empty snapshot: a dest the first run has to create).
 * `bytes: false` leaves the hashes empty (equal), for walks that need only names, types and times.
 */
export function snapshot(root: string, { bytes = true } = {}): Snapshot {
  const out: Snapshot = new Map();
  if (!existsSync(root)) return out;
  const visit = (rel: string) => {
    const abs = rel === '' ? root : join(root, ...rel.split('/'));
    const st = lstatSync(abs, { bigint: true });
    const mode = Number(st.mode & 0o7777n);
    if (st.isFile()) {
      const sha1 = bytes ? createHash('sha1').update(readFileSync(abs)).digest('hex') : '';
      out.set(rel, { type: 'file', size: Number(st.size), mtimeNs: st.mtimeNs, mode, sha1 });
    } else if (st.isDirectory()) {
      out.set(rel, { type: 'dir', mode });
      for (const name of readdirSync(abs).sort()) visit(rel === '' ? name : `${rel}/${name}`);
    } else {
      out.set(rel, { type: st.isSymbolicLink() ? 'symlink' : 'other', mode });
    }
  };
  visit('');
  return out;
}

/**
 * A path for messages: JSON-quoted, with combining marks escaped, so that an NFD name
 * (`Cafe\u0301`) does not read the same as its NFC twin (`Café`). JSON.parse gives it back.
 */
export const quote = (rel: string) => JSON.stringify(rel).replace(/[\u0300-\u036f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);

/** Paths of the regular files in a snapshot. */
export const filesOf = (s: Snapshot) => [...s].filter(([, e]) => e.type === 'file').map(([rel]) => rel);

/** Seconds with nine decimals (exact, negative times included), for messages. */
export function formatNs(ns: bigint): string {
  const sign = ns < 0n ? '-' : '';
  const abs = ns < 0n ? -ns : ns;
  return `${sign}${abs / 1_000_000_000n}.${String(abs % 1_000_000_000n).padStart(9, '0')}`;
}

/** Node carries mtimes as a double of milliseconds: the contract is the same microsecond. */
const MTIME_TOLERANCE_NS = 1000n;

/** What the two sides of a diff are called in its lines. */
export interface DiffLabels {
  want: string;
  got: string;
}

/**
 * What differs between rsync's tree (`expected`) and ours, one line a path: missing, extra, type,
 * bytes, mtime, mode. Folder mtimes are not compared at all (the contract leaves them).
 */
export function diffSnapshots(expected: Snapshot, actual: Snapshot, { want, got }: DiffLabels = { want: 'rsync', got: 'ours' }): string[] {
  const lines: string[] = [];
  const paths = [...new Set([...expected.keys(), ...actual.keys()])].sort();
  for (const rel of paths) {
    const a = expected.get(rel);
    const b = actual.get(rel);
    const name = quote(rel);
    if (!b) lines.push(`missing ${name} (${want} has a ${a!.type})`);
    else if (!a) lines.push(`extra   ${name} (a ${b.type} ${want} does not have)`);
    else if (a.type !== b.type) lines.push(`type    ${name}: ${want} has a ${a.type}, ${got} a ${b.type}`);
    else {
      const what = entryDifferences(a, b, { want, got });
      if (what.length > 0) lines.push(`differs ${name}: ${what.join('; ')}`);
    }
  }
  return lines;
}

function entryDifferences(a: Entry, b: Entry, { want, got }: DiffLabels): string[] {
  const what: string[] = [];
  if (a.type === 'file' && b.type === 'file') {
    if (a.sha1 !== b.sha1) what.push(`bytes (${want} ${a.size} B ${a.sha1.slice(0, 8)}, ${got} ${b.size} B ${b.sha1.slice(0, 8)})`);
    const delta = b.mtimeNs - a.mtimeNs;
    if (delta >= MTIME_TOLERANCE_NS || delta <= -MTIME_TOLERANCE_NS) {
      const shown = delta < 1_000_000n && delta > -1_000_000n ? `${Number(delta) / 1e3} µs` : `${Number(delta) / 1e6} ms`;
      what.push(`mtime (${want} ${formatNs(a.mtimeNs)}, ${got} ${formatNs(b.mtimeNs)}, Δ ${shown})`);
    }
  }
  if (a.mode !== b.mode) what.push(`mode (${want} 0o${a.mode.toString(8)}, ${got} 0o${b.mode.toString(8)})`);
  return what;
}

/** Whether a file's bytes or mtime differ (what a copy changes; a mode alone is not a copy). */
export function contentChanged(before: Entry | undefined, after: Entry): boolean {
  if (before?.type !== 'file' || after.type !== 'file') return true;
  return before.sha1 !== after.sha1 || before.mtimeNs !== after.mtimeNs;
}

// ---------------------------------------------------------------------------------------------
// The oracle's input.

/**
 * The real path of the regular file a source symlink leads to, when that file is inside the
 * source (the one kind of link the sync mirrors, as a file); else null.
 */
function fileInsideSource(link: string, sourceReal: string): string | null {
  let target: string;
  try {
    target = realpathSync(link);
  } catch {
    return null; // dangling
  }
  if (!target.startsWith(sourceReal + sep) || !statSync(target).isFile()) return null;
  return target;
}

/**
 * The source as rsync must see it (documented differences 2 and 3): a copy in which a symlink to
 * a file inside the source is that file (`--copy-links`: the target's bytes, mtime and mode), and
 * every other symlink and every FIFO is absent (excluded, and with `--delete-excluded` gone from
 * the previous round's copy). Ignored names stay; RSYNC_EXCLUDES keeps the oracle run from them.
 */
export async function buildOracleSource(source: string, oracleSource: string): Promise<void> {
  const sourceReal = realpathSync(source);
  const unseen = [...snapshot(source, { bytes: false })]
    .filter(([rel, e]) => e.type === 'other' || (e.type === 'symlink' && fileInsideSource(join(source, ...rel.split('/')), sourceReal) === null))
    .map(([rel]) => rel);
  const wildcard = unseen.find((rel) => /[*?[\\]/.test(rel));
  if (wildcard !== undefined) throw new Error(`the generator made a name rsync reads as a pattern: ${wildcard}`);
  const rules = unseen.map((rel) => `--exclude=/${rel}`); // anchored: that path only
  await runTool('rsync', ['-a', '--copy-links', '--checksum', '--delete', '--delete-excluded', ...rules, `${source}/`, `${oracleSource}/`]);
}

/**
 * The topmost paths that are a file on one side and a folder on the other. Ignored paths are
 * left out: neither tool looks at them.
 */
export function typeConflicts(source: Snapshot, dest: Snapshot): string[] {
  const conflicts: string[] = [];
  for (const [rel, entry] of source) {
    const there = dest.get(rel);
    if (rel === '' || isIgnoredPath(rel) || !there) continue;
    const kinds = new Set([entry.type, there.type]);
    if (kinds.has('file') && kinds.has('dir')) conflicts.push(rel);
  }
  return conflicts; // a conflict has nothing under it on both sides: no nested ones to drop
}

/**
 * Without `delete` a type swap is not mirrored (documented difference 4): the oracle source gets
 * dest's own entry (a `cp -a`, so rsync finds it current and leaves it as it is).
 */
export async function keepDestEntries(conflicts: string[], oracleSource: string, oracleDest: string): Promise<void> {
  for (const rel of conflicts) {
    const at = join(oracleSource, ...rel.split('/'));
    await inWritableDir(dirname(at), async () => {
      removeTree(at);
      await cpA(join(oracleDest, ...rel.split('/')), at);
    });
  }
}

// ---------------------------------------------------------------------------------------------
// Processes and folders.

/** Runs a command; rejects with its stderr unless it exits 0. `asNobody`: as uid/gid nobody (when root). */
export function runTool(command: string, args: string[], { asNobody = false } = {}): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      env: cleanEnv(),
      stdio: ['ignore', 'ignore', 'pipe'],
      ...(asNobody && AS_ROOT ? { uid: NOBODY, gid: NOBODY } : {}),
    });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code, signal) => {
      if (code === 0) resolve();
      else reject(new Error(`${command} ${args.join(' ')}: exit ${code ?? signal}\n${stderr}`));
    });
  });
}

/** `cp -a`: bytes, modes, mtimes to the nanosecond, owners (as root). */
export const cpA = (from: string, to: string) => runTool('cp', ['-a', from, to]);

/**
 * Makes `to` an exact copy of `from` (absent if `from` is): every name, dotfiles and symlinks
 * included, bytes, modes, owners (as root), file mtimes to the nanosecond. It is what `rm -r` and
 * `cp -a` would give, but writes only what changed since the last round: a slow disk then takes
 * seconds instead of a minute. `--checksum` compares bytes (not size and mtime) and sets mtimes
 * exactly; the copy is checked against `from` all the same, as the oracle stands on it.
 */
export async function exactCopy(from: string, to: string): Promise<void> {
  if (!existsSync(from)) return removeTree(to);
  await runTool('rsync', ['-a', '--checksum', '--delete', `${from}/`, `${to}/`]);
  // rsync compared the bytes; the check is of what it could have left out (names, modes, mtimes).
  const wrong = diffSnapshots(snapshot(from, { bytes: false }), snapshot(to, { bytes: false }), { want: 'original', got: 'copy' });
  if (wrong.length > 0) throw new Error(`the oracle's copy of ${from} is not exact:\n${wrong.slice(0, 20).join('\n')}`);
}

/** The oracle: `rsync -a [--delete]` with the ignored names excluded. */
export function runRsync(from: string, to: string, options: { delete: boolean; asNobody?: boolean }): Promise<void> {
  const args = ['-a', ...(options.delete ? ['--delete'] : []), ...RSYNC_EXCLUDES.map((p) => `--exclude=${p}`), `${from}/`, `${to}/`];
  return runTool('rsync', args, { asNobody: options.asNobody });
}

/**
 * Runs `fn` with `dir` writable by its owner. As root permission bits do not apply, so nothing is
 * touched; as another user a 0o555 folder is opened for the change and closed again.
 */
export async function inWritableDir<T>(dir: string, fn: () => T | Promise<T>): Promise<T> {
  if (AS_ROOT) return fn();
  const mode = lstatSync(dir).mode & 0o7777;
  if (mode & 0o200) return fn();
  chmodSync(dir, mode | 0o700);
  try {
    return await fn();
  } finally {
    chmodSync(dir, mode);
  }
}

/** rm -rf, read-only folders included (they must be opened first when we are not root). */
export function removeTree(path: string): void {
  if (!AS_ROOT && existsSync(path)) {
    const open = (p: string) => {
      if (!lstatSync(p).isDirectory()) return;
      chmodSync(p, 0o700);
      for (const name of readdirSync(p)) open(join(p, name));
    };
    open(path);
  }
  rmSync(path, { recursive: true, force: true });
}
