import { spawn } from 'node:child_process';
import { mkdtempSync, realpathSync } from 'node:fs';
import { lstat, mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { expect } from '@jest/globals';
import { UploadSyncError } from '../src/shared/errors.js';

/** The repository root (tests run from it). */
export const ROOT = resolve(process.cwd());
/** The built CLI: `npm test` builds before jest runs. */
export const CLI = join(ROOT, 'dist', 'cli.js');
export const DIST_ESM = join(ROOT, 'dist', 'index.js');

/**
 * Writes a module loader hook for `node --import <register>`: the tests of what loads lazily.
 * `hooks` gets the log file's path (empty at first) and returns the hooks module's source (its
 * `load`, `resolve`); the hooks module and the file that registers it go into `dir`.
 */
export async function loaderHooks(dir: string, hooks: (log: string) => string): Promise<{ log: string; register: string }> {
  const log = join(dir, 'events.log');
  const file = join(dir, 'hooks.mjs');
  const register = join(dir, 'register.mjs');
  await writeFile(log, '');
  await writeFile(file, hooks(log));
  await writeFile(register, `import { register } from 'node:module';\nimport { pathToFileURL } from 'node:url';\nregister(pathToFileURL(${JSON.stringify(file)}));\n`);
  return { log, register };
}

/** A fresh project folder in the OS temp dir, with its real path (macOS /tmp is a symlink). */
export function tempProject(prefix = 'upload-sync-'): { root: string; source: string; dest: string; cleanup: () => Promise<void> } {
  const root = realpathSync(mkdtempSync(join(tmpdir(), prefix)));
  return {
    root,
    source: join(root, 'public', 'uploads'),
    dest: join(root, '.next', 'standalone', 'public', 'uploads'),
    cleanup: () => rm(root, { recursive: true, force: true }),
  };
}

/** Writes files given as `{ 'a/b.mp3': content }`, creating folders. */
export async function writeTree(base: string, files: Record<string, string | Buffer>): Promise<void> {
  for (const [rel, content] of Object.entries(files)) {
    const abs = join(base, rel);
    await mkdir(dirname(abs), { recursive: true });
    await writeFile(abs, content);
  }
}

/** Every regular file under `base` (symlinks and folders excluded), `/`-separated, sorted, with its content. */
export async function readTree(base: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  async function visit(rel: string): Promise<void> {
    let entries;
    try {
      entries = await readdir(join(base, rel), { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      const childRel = rel === '' ? e.name : `${rel}/${e.name}`;
      if (e.isDirectory()) await visit(childRel);
      else if (e.isFile()) out[childRel] = (await readFile(join(base, childRel))).toString('latin1');
    }
  }
  await visit('');
  return Object.fromEntries(Object.entries(out).sort(([a], [b]) => (a < b ? -1 : 1)));
}

/** Names of our temp files anywhere under `base`. */
export async function tempFiles(base: string): Promise<string[]> {
  const found: string[] = [];
  async function visit(dir: string): Promise<void> {
    let entries;
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      if (e.name.startsWith('.upload-sync-')) found.push(join(dir, e.name));
      if (e.isDirectory()) await visit(join(dir, e.name));
    }
  }
  await visit(base);
  return found;
}

export const exists = (p: string) => lstat(p).then(() => true, () => false);

/** Polls `condition` until it is true (never a fixed sleep); fails with `message` after `timeoutMs`. */
export async function waitFor(condition: () => boolean | Promise<boolean>, { timeoutMs = 20_000, intervalMs = 10, message = 'condition' } = {}): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`Timed out after ${timeoutMs} ms waiting for ${message}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs a command to its end and collects its output. */
export function run(command: string, args: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<RunResult> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(command, args, { cwd: options.cwd, env: options.env ?? cleanEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 60_000);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolvePromise({ code, signal, stdout, stderr });
    });
  });
}

/** Runs the built CLI. */
export const runCli = (args: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv } = {}) => run(process.execPath, [CLI, ...args], options);

/** The environment without any upload-sync variable, so the machine's own settings never leak into a test. */
export function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (!/UPLOAD_SYNC|^NODE_ENV$|^DEBUG$/.test(k)) env[k] = v;
  }
  return { ...env, ...extra };
}

/** The `ERR_CONFIG` message of a call that must throw. */
export function configError(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(UploadSyncError);
    expect((err as UploadSyncError).code).toBe('ERR_CONFIG');
    return (err as Error).message;
  }
  throw new Error('expected ERR_CONFIG, nothing was thrown');
}
