/**
 * Shared by the reliability-*.test.ts files: a seeded PRNG (the seed printed, replayable with
 * RELIABILITY_SEED), the soak switch, child processes (optionally as `nobody`), and tree readers
 * that see every name on disk, including names that are not valid UTF-8.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { chown, lstat, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { cleanEnv } from './helpers.js';

/** `npm run test:soak` sets SOAK=1: longer loops, more trials. */
export const SOAK = /^(1|true|yes)$/i.test(process.env.SOAK ?? '');

/**
 * The seed of one test file: RELIABILITY_SEED when set (to replay a failure), else a fresh one.
 * Printed, with the command that replays it.
 */
export function seedFor(file: string): number {
  const given = process.env.RELIABILITY_SEED;
  const seed = given !== undefined && given !== '' ? Number(given) >>> 0 : (Math.random() * 2 ** 32) >>> 0;
  // eslint-disable-next-line no-console
  console.log(`${file}: seed ${seed}${given ? ' (from RELIABILITY_SEED)' : ''}; replay with RELIABILITY_SEED=${seed} npm run jest -- ${file}`);
  return seed;
}

/** mulberry32: a small, fast, seeded PRNG; numbers in [0, 1). */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Helpers over one PRNG. */
export function randomTools(rand: () => number) {
  const int = (min: number, max: number) => min + Math.floor(rand() * (max - min + 1)); // inclusive
  const pick = <T>(items: readonly T[]): T => items[Math.floor(rand() * items.length)]!;
  const chance = (p: number) => rand() < p;
  return { rand, int, pick, chance };
}

/** The uid and gid of `nobody`: sync processes run as it when the tests run as root (root ignores permission bits). */
export const NOBODY = 65534;
export const AS_ROOT = process.getuid?.() === 0;

/** chown to nobody (as root only: otherwise the files are already the test user's). */
export async function giveToNobody(...paths: string[]): Promise<void> {
  if (!AS_ROOT) return;
  for (const p of paths) await chown(p, NOBODY, NOBODY);
}

export interface Child {
  proc: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  /** IPC messages (with `ipc: true`). */
  messages: unknown[];
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** A node child process whose output is collected. `asNobody`: run as uid/gid nobody when we are root. */
export function startNode(
  args: string[],
  options: { cwd?: string; env?: NodeJS.ProcessEnv; ipc?: boolean; asNobody?: boolean; stdin?: boolean } = {},
): Child {
  const proc = spawn(process.execPath, args, {
    cwd: options.cwd,
    env: options.env ?? cleanEnv(),
    stdio: [options.stdin ? 'pipe' : 'ignore', 'pipe', 'pipe', ...(options.ipc ? (['ipc'] as const) : [])],
    ...(options.asNobody && AS_ROOT ? { uid: NOBODY, gid: NOBODY } : {}),
  });
  let out = '';
  let err = '';
  const messages: unknown[] = [];
  proc.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  proc.on('message', (m) => messages.push(m));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve, reject) => {
    proc.on('error', reject);
    proc.on('close', (code, signal) => resolve({ code, signal }));
  });
  return { proc, stdout: () => out, stderr: () => err, messages, exited };
}

/** SIGKILL a child still running, and wait for it. */
export async function killChild(child: Child): Promise<void> {
  if (child.proc.exitCode === null && child.proc.signalCode === null) child.proc.kill('SIGKILL');
  await child.exited.catch(() => undefined);
}

/**
 * Every regular file under `base` with its bytes, keyed by its name as on disk: path components
 * read as Buffers, shown as UTF-8 when they are valid UTF-8, else as `\xNN` escapes. Our temp
 * files and other dotfiles are included (callers filter).
 */
export async function rawTree(base: string): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  async function visit(dir: Buffer, rel: string): Promise<void> {
    let entries: Buffer[];
    try {
      entries = await readdir(dir, { encoding: 'buffer' });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw err;
    }
    for (const name of entries) {
      const abs = Buffer.concat([dir, Buffer.from('/'), name]);
      const childRel = rel === '' ? showName(name) : `${rel}/${showName(name)}`;
      let st;
      try {
        st = await lstat(abs);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue; // a temp file renamed meanwhile
        throw err;
      }
      if (st.isDirectory()) await visit(abs, childRel);
      else if (st.isFile()) {
        try {
          out.set(childRel, await readFile(abs));
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
        }
      }
    }
  }
  await visit(Buffer.from(base), '');
  return out;
}

/** A name as UTF-8 when it is valid UTF-8, else each byte >= 0x80 as `\xNN`. */
export function showName(name: Buffer): string {
  const text = name.toString('utf8');
  if (Buffer.from(text, 'utf8').equals(name)) return text;
  return [...name].map((b) => (b < 0x80 ? String.fromCharCode(b) : `\\x${b.toString(16).padStart(2, '0')}`)).join('');
}

/** Whether a `/`-path has a component that is one of our temp files. */
export const isTempPath = (rel: string) => rel.split('/').some((part) => part.startsWith('.upload-sync-'));

/** The paths where two raw trees differ (missing, extra, other bytes), for readable failures. */
export function treeDiff(expected: Map<string, Buffer>, actual: Map<string, Buffer>): string[] {
  const problems: string[] = [];
  for (const [rel, bytes] of expected) {
    const got = actual.get(rel);
    if (got === undefined) problems.push(`missing ${JSON.stringify(rel)}`);
    else if (!got.equals(bytes)) problems.push(`differs ${JSON.stringify(rel)} (${got.length} bytes, expected ${bytes.length})`);
  }
  for (const rel of actual.keys()) if (!expected.has(rel)) problems.push(`extra ${JSON.stringify(rel)}`);
  return problems;
}

/** Files named by a filter over a raw tree. */
export function filterTree(tree: Map<string, Buffer>, keep: (rel: string) => boolean): Map<string, Buffer> {
  return new Map([...tree].filter(([rel]) => keep(rel)));
}

/** Joins a folder and a `/`-path. */
export const under = (base: string, rel: string) => join(base, ...rel.split('/'));
