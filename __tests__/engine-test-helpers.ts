/**
 * Shared by initial-sync-repeat.test.ts and full-disk.test.ts: running the BUILT package as users
 * do (the CLI, or a child process that imports dist/index.js: the helper worker thread exists only
 * there), seeded file contents, a CPU hog, and a quick listing of a tree.
 */
import { lstatSync, readdirSync, type Stats } from 'node:fs';
import { pathToFileURL } from 'node:url';
import type { SyncResult } from '../src/index.js';
import { CLI, DIST_ESM, cleanEnv } from './helpers.js';
import { killChild, startNode, type Child } from './reliability-helpers.js';

export const KiB = 1024;
export const MiB = 1024 * KiB;

/** How a child sync process ended, and the result it printed (`null` when stdout was no JSON result). */
export interface ChildSync {
  code: number | null;
  signal: NodeJS.Signals | null;
  result: SyncResult | null;
  stdout: string;
  stderr: string;
}

/** Where a sync reads and writes. */
export interface SyncPaths {
  source: string;
  dest: string;
  lockDir: string;
}

/** A node child run to its end (SIGKILLed after `timeoutMs`, so a hung sync fails instead of hanging jest). */
async function runNodeChild(args: string[], env: NodeJS.ProcessEnv, cwd: string | undefined, timeoutMs: number): Promise<ChildSync> {
  const child = startNode(args, { env, ...(cwd === undefined ? {} : { cwd }) });
  const timer = setTimeout(() => child.proc.kill('SIGKILL'), timeoutMs);
  try {
    const { code, signal } = await child.exited;
    return { code, signal, result: parseResult(child.stdout()), stdout: child.stdout(), stderr: child.stderr() };
  } finally {
    clearTimeout(timer);
  }
}

function parseResult(stdout: string): SyncResult | null {
  try {
    const parsed = JSON.parse(stdout) as SyncResult;
    return typeof parsed === 'object' && parsed !== null && Array.isArray(parsed.copied) ? parsed : null;
  } catch {
    return null;
  }
}

/**
 * `upload-sync sync --json` of dist/cli.js, configured by the environment as a deploy script does
 * (UPLOAD_SYNC_SOURCE / _DEST / _LOCK_DIR, ENABLE_UPLOAD_SYNC=true). `extraEnv`: e.g. DEBUG.
 */
export function runBuiltCli(paths: SyncPaths, { extraEnv = {}, cwd, timeoutMs = 120_000 }: { extraEnv?: Record<string, string>; cwd?: string; timeoutMs?: number } = {}): Promise<ChildSync> {
  const env = cleanEnv({
    ENABLE_UPLOAD_SYNC: 'true',
    UPLOAD_SYNC_SOURCE: paths.source,
    UPLOAD_SYNC_DEST: paths.dest,
    UPLOAD_SYNC_LOCK_DIR: paths.lockDir,
    ...extraEnv,
  });
  return runNodeChild([CLI, 'sync', '--json'], env, cwd, timeoutMs);
}

/** The child's program: `syncUploads(<argv[1] as JSON>)` of dist/index.js, its result printed as JSON. */
const LIBRARY_CHILD = `
const { syncUploads } = await import(${JSON.stringify(pathToFileURL(DIST_ESM).href)});
const result = await syncUploads(JSON.parse(process.argv[1]));
process.stdout.write(JSON.stringify(result));
`;

/**
 * `syncUploads(options)` of the built package (dist/index.js) in a fresh node process, as an app
 * calls it. `options` must be plain JSON (no signal, no callbacks).
 */
export function runBuiltLibrary(
  options: Record<string, unknown>,
  { extraEnv = {}, cwd, timeoutMs = 120_000 }: { extraEnv?: Record<string, string>; cwd?: string; timeoutMs?: number } = {},
): Promise<ChildSync> {
  return runNodeChild(['--input-type=module', '-e', LIBRARY_CHILD, JSON.stringify(options)], cleanEnv(extraEnv), cwd, timeoutMs);
}

/** A child process that keeps one CPU busy until `stopCpuHog` (this machine has two: the sync gets the other). */
export function startCpuHog(): Child {
  return startNode(['-e', 'for (;;) {}']);
}

export const stopCpuHog = (hog: Child) => killChild(hog);

/** `size` random bytes from the seeded `rand`: a pool that file contents are cut from. */
export function randomPool(rand: () => number, size: number): Buffer {
  const pool = Buffer.allocUnsafe(size);
  for (let i = 0; i + 4 <= size; i += 4) pool.writeUInt32LE((rand() * 2 ** 32) >>> 0, i);
  for (let i = size - (size % 4); i < size; i++) pool[i] = (rand() * 256) >>> 0;
  return pool;
}

/**
 * Seeded content of `size` bytes: `tag` (say, the path and a version) then the pool from `offset`
 * on, wrapping. Two files with other tags or offsets differ, so a byte comparison tells them apart,
 * and no run of zeros (a hole) looks like content.
 */
export function seededContent(pool: Buffer, size: number, offset: number, tag: string): Buffer {
  const out = Buffer.allocUnsafe(size);
  let at = 0;
  let from = offset % pool.length;
  while (at < size) {
    const n = Math.min(size - at, pool.length - from);
    pool.copy(out, at, from, from + n);
    at += n;
    from = 0;
  }
  Buffer.from(`${tag}\n`).copy(out, 0, 0, Math.min(size, Buffer.byteLength(tag) + 1));
  return out;
}

/** Every entry under `base`, `/`-separated: regular files with their lstat, folders, and anything else. */
export interface TreeListing {
  files: Map<string, Stats>;
  dirs: Set<string>;
  others: string[];
}

/** Lists a tree with synchronous calls (10,000 files in tens of ms). A missing `base` lists as empty. */
export function listTree(base: string): TreeListing {
  const listing: TreeListing = { files: new Map(), dirs: new Set(), others: [] };
  const visit = (rel: string) => {
    let names: string[];
    try {
      names = readdirSync(rel === '' ? base : `${base}/${rel}`);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw err;
    }
    for (const name of names) {
      const childRel = rel === '' ? name : `${rel}/${name}`;
      const st = lstatSync(`${base}/${childRel}`);
      if (st.isDirectory()) {
        listing.dirs.add(childRel);
        visit(childRel);
      } else if (st.isFile()) listing.files.set(childRel, st);
      else listing.others.push(childRel);
    }
  };
  visit('');
  return listing;
}

/** The parent folder of a `/`-path ('' at the top). */
export const parentOf = (rel: string) => (rel.includes('/') ? rel.slice(0, rel.lastIndexOf('/')) : '');

/** A list of problems, cut to `max` lines with a count of the rest: a failure stays readable. */
export function capped(problems: string[], max = 30): string[] {
  return problems.length <= max ? problems : [...problems.slice(0, max), `... and ${problems.length - max} more`];
}
