/**
 * Cross-process and in-process concurrency: real child processes running the built library, a
 * lock holder killed with SIGKILL, a lock held by a live process, and in-process coalescing.
 */
import { afterEach, describe, expect, test } from '@jest/globals';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdir, readdir, stat, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { syncUploads, type SyncResult } from '../src/index.js';
import { DeleteGuard } from '../src/shared/delete-guard.js';
import { DIST_ESM, ROOT, cleanEnv, exists, readTree, tempFiles, tempProject, waitFor, writeTree } from './helpers.js';

// In-process calls read process.env: keep the machine's upload-sync settings out of this file.
for (const key of Object.keys(process.env)) {
  if (/UPLOAD_SYNC/.test(key)) delete process.env[key];
}

/** The lock path the library uses for `dest` (src/lock.ts `lockPath`). */
const lockPathFor = (lockDir: string, dest: string) => join(lockDir, `${createHash('sha256').update(dest).digest('hex').slice(0, 16)}.lock`);

/** 300 files in nested folders, every 25th one a few hundred KB, each with its own content. */
function tree(count = 300): Record<string, string | Buffer> {
  const files: Record<string, string | Buffer> = {};
  for (let i = 0; i < count; i++) {
    const rel = `artist-${i % 6}/album-${i % 11}/${i % 3 === 0 ? 'disc-1/' : ''}track-${i}.mp3`;
    files[rel] = i % 25 === 0 ? Buffer.alloc(200_000 + i * 1000, `big-${i}-`) : `track ${i} `.repeat(1 + (i % 40));
  }
  return files;
}

/** A child process that runs `code` as an ES module and whose output we collect. */
interface Child {
  proc: ChildProcessWithoutNullStreams;
  stdout: () => string;
  stderr: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

function startChild(script: string, args: string[]): Child {
  const proc = spawn(process.execPath, [script, ...args], { env: cleanEnv(), stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  proc.stdout.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve, reject) => {
    proc.on('error', reject);
    proc.on('close', (code, signal) => resolve({ code, signal }));
  });
  return { proc, stdout: () => out, stderr: () => err, exited };
}

/** Child script: loads the built library, says `ready`, waits for stdin to close, then syncs and prints the result. */
const SYNC_CHILD = `
import { syncUploads } from ${JSON.stringify(pathToFileURL(DIST_ESM).href)};
const options = JSON.parse(process.argv[2]);
process.stdout.write('ready\\n');
if (process.argv[3] === 'barrier') {
  process.stdin.resume();
  await new Promise((resolve) => process.stdin.on('end', resolve));
}
const result = await syncUploads(options);
process.stdout.write('RESULT ' + JSON.stringify(result) + '\\n');
`;

/** Child script: takes the lock with proper-lockfile exactly as src/lock.ts does, holds it until stdin closes. */
const LOCK_CHILD = `
import { createRequire } from 'node:module';
const lockfile = createRequire(${JSON.stringify(join(ROOT, 'package.json'))})('proper-lockfile');
const [dest, lockfilePath] = process.argv.slice(2);
const release = await lockfile.lock(dest, { lockfilePath, realpath: false, stale: 10000, retries: 0 });
process.stdout.write('locked\\n');
process.stdin.resume();
await new Promise((resolve) => process.stdin.on('end', resolve));
await release();
process.stdout.write('released\\n');
`;

/** Starts a process that holds the lock of `dest` (as src/shared/lock.ts takes it) until its stdin closes. */
async function holdLock(root: string, lockDir: string, dest: string): Promise<Child> {
  await mkdir(lockDir, { recursive: true });
  const script = join(root, 'lock-child.mjs');
  await writeFile(script, LOCK_CHILD);
  const holder = startChild(script, [dest, lockPathFor(lockDir, dest)]);
  children.push(holder);
  await waitFor(() => holder.stdout().includes('locked') || holder.proc.exitCode !== null, { message: 'the lock holder' });
  expect(holder.stdout() + holder.stderr()).toContain('locked');
  return holder;
}

function resultOf(child: Child): SyncResult {
  const line = child.stdout().split('\n').find((l) => l.startsWith('RESULT '));
  if (!line) throw new Error(`child printed no result; stdout: ${child.stdout()} stderr: ${child.stderr()}`);
  return JSON.parse(line.slice('RESULT '.length)) as SyncResult;
}

const projects: Array<ReturnType<typeof tempProject>> = [];
const children: Child[] = [];
function project(): ReturnType<typeof tempProject> {
  const p = tempProject('upload-sync-conc-');
  projects.push(p);
  return p;
}

afterEach(async () => {
  for (const c of children.splice(0)) {
    if (c.proc.exitCode === null && c.proc.signalCode === null) c.proc.kill('SIGKILL');
    await c.exited.catch(() => undefined);
  }
  await Promise.all(projects.splice(0).map((p) => p.cleanup()));
});

describe('cross-process runs', () => {
  test('5 processes syncing the same tree at once leave an exact mirror, each file copied once', async () => {
    const { root, source, dest } = project();
    const files = tree();
    await writeTree(source, files);
    // Dest starts with stale files (to delete) and outdated copies (to update).
    const stale = { 'gone/old-1.mp3': 'old', 'artist-0/album-0/removed.mp3': 'removed', 'top-level-gone.mp3': 'x' };
    const outdated = ['artist-1/album-1/track-1.mp3', 'artist-2/album-2/track-2.mp3'];
    await writeTree(dest, { ...stale, ...Object.fromEntries(outdated.map((rel) => [rel, 'outdated content, another size'])) });
    const lockDir = join(root, 'locks');
    const script = join(root, 'sync-child.mjs');
    await writeFile(script, SYNC_CHILD);

    const options = JSON.stringify({ source, dest, force: true, delete: true, lockDir });
    const started = Array.from({ length: 5 }, () => startChild(script, [options, 'barrier']));
    children.push(...started);
    // Barrier: every child has loaded the library before any of them starts, so they start together.
    await waitFor(() => started.every((c) => c.stdout().includes('ready')), { message: 'all children ready' });
    for (const c of started) c.proc.stdin.end();
    const exits = await Promise.all(started.map((c) => c.exited));

    expect(exits).toEqual(started.map(() => ({ code: 0, signal: null })));
    const results = started.map(resultOf);
    for (const r of results) {
      expect(r.status).toBe('ok');
      expect(r.errors).toEqual([]);
    }
    expect(await readTree(dest)).toEqual(await readTree(source));
    expect(await tempFiles(dest)).toEqual([]);
    // The runs were serialized: across all processes each file was written exactly once.
    const all = (key: 'copied' | 'updated' | 'deleted') => results.flatMap((r) => r[key]).sort();
    expect(all('copied')).toEqual(Object.keys(files).filter((rel) => !outdated.includes(rel)).sort());
    expect(all('updated')).toEqual([...outdated].sort());
    expect(all('deleted')).toEqual(Object.keys(stale).sort());
    // The last runs found everything in place.
    expect(results.filter((r) => r.copied.length + r.updated.length + r.deleted.length === 0 && r.unchanged === 300)).toHaveLength(4);
    // The lock was released: no lock left behind.
    expect(await readdir(lockDir)).toEqual([]);
  });

  test('a lock holder killed with SIGKILL mid-copy does not block the next run', async () => {
    const { root, source, dest } = project();
    const big = 50 * 1024 * 1024;
    await writeTree(source, {
      'album/one.flac': Buffer.alloc(big, 'one-'),
      'album/two.flac': Buffer.alloc(big, 'two-'),
      'three.flac': Buffer.alloc(big, 'three-'),
      'small/a.mp3': 'a',
    });
    const lockDir = join(root, 'locks');
    const lockPath = lockPathFor(lockDir, dest);
    const script = join(root, 'sync-child.mjs');
    await writeFile(script, SYNC_CHILD);

    const child = startChild(script, [JSON.stringify({ source, dest, force: true, lockDir })]);
    children.push(child);
    // Kill the holder while it holds the lock and a big copy is in flight. Each time a temp file
    // shows up the holder is stopped (SIGSTOP) and looked at, so the copy cannot finish between the
    // look and the kill; anything else (a small file's copy, the mtime probe) goes on (SIGCONT).
    const bigCopyInFlight = async () => {
      for (const temp of await tempFiles(dest)) {
        const size = (await stat(temp).catch(() => null))?.size;
        // (Not an empty one: the run's probe of dest's mtime granularity makes an empty temp file for a moment.)
        if (!temp.startsWith(join(dest, 'small')) && size !== undefined && size > 0 && size < big) return true;
      }
      return false;
    };
    await waitFor(
      async () => {
        if (child.proc.exitCode !== null) return true;
        if (!(await readdir(lockDir).catch(() => [])).some((n) => n.endsWith('.lock')) || (await tempFiles(dest)).length === 0) return false;
        child.proc.kill('SIGSTOP');
        if (await bigCopyInFlight()) return true; // stays stopped until the SIGKILL below
        child.proc.kill('SIGCONT');
        return false;
      },
      { intervalMs: 1, message: 'the child to hold the lock and copy a big file' },
    );
    child.proc.kill('SIGKILL');
    expect(await child.exited).toEqual({ code: null, signal: 'SIGKILL' });
    expect(await exists(lockPath)).toBe(true); // the dead holder left its lock
    const crashTemps = await tempFiles(dest);
    expect(crashTemps.length).toBeGreaterThan(0);
    // The dead holder's temp files carry its pid; nothing of theirs reached a final name half-written.
    for (const t of crashTemps) expect(basename(t).startsWith(`.upload-sync-${child.proc.pid!.toString(36)}-`)).toBe(true);

    const t0 = performance.now();
    const result = await syncUploads({ source, dest, force: true, lockDir });
    const took = performance.now() - t0;

    expect(result.status).toBe('ok');
    expect(result.errors).toEqual([]);
    expect(took).toBeLessThan(30_000); // taken over as stale (10 s), not timed out (30 s)
    expect(await exists(lockPath)).toBe(false);
    // Exact mirror, and no temp file: the recovery run removed the dead holder's (its pid is gone).
    expect(await tempFiles(dest)).toEqual([]);
    expect(await readTree(dest)).toEqual(await readTree(source));
  }, 60_000);

  test('a lock held by a live process: ELOCKED after lockTimeoutMs, nothing written; works once released', async () => {
    const { root, source, dest } = project();
    await writeTree(source, { 'a.mp3': 'a', 'b/c.mp3': 'c' });
    const lockDir = join(root, 'locks');
    const holder = await holdLock(root, lockDir, dest);

    const t0 = performance.now();
    const result = await syncUploads({ source, dest, force: true, lockDir, lockTimeoutMs: 500 });
    const took = performance.now() - t0;
    expect(result.status).toBe('failed');
    expect(result.errors[0]?.code).toBe('ELOCKED');
    expect(result.copied).toEqual([]);
    expect(took).toBeGreaterThanOrEqual(450);
    expect(took).toBeLessThan(5_000);
    expect(await exists(dest)).toBe(false);

    holder.proc.stdin.end();
    expect(await holder.exited).toEqual({ code: 0, signal: null });
    const after = await syncUploads({ source, dest, force: true, lockDir, lockTimeoutMs: 500 });
    expect(after.status).toBe('ok');
    expect(after.copied).toEqual(['a.mp3', 'b/c.mp3']);
    expect(await readTree(dest)).toEqual(await readTree(source));
  });
});

describe('uploads never wait for a full run (issue 11)', () => {
  test('a targeted sync publishes while another process holds the lock, and while a full run here waits for it', async () => {
    const { root, source, dest } = project();
    await writeTree(source, { 'old/a.mp3': 'a', 'old/b.mp3': 'b' });
    const lockDir = join(root, 'locks');
    // Another process's full run, as far as the lock can tell: it holds the lock until told to stop.
    const holder = await holdLock(root, lockDir, dest);

    // A full run in this process waits for that lock (long timeout: it is still waiting below).
    let fullDone = false;
    const full = syncUploads({ source, dest, force: true, lockDir, lockTimeoutMs: 60_000 }).finally(() => (fullDone = true));
    // An upload arrives: its targeted sync neither takes the lock nor queues behind the full run.
    // Waiting for the lock would fail it with ELOCKED after 500 ms.
    await writeTree(source, { 'new/upload.mp3': 'fresh upload' });
    const upload = await syncUploads({ source, dest, force: true, lockDir, lockTimeoutMs: 500, files: ['new/upload.mp3'] });
    expect(upload).toMatchObject({ status: 'ok', copied: ['new/upload.mp3'], errors: [] });
    expect(readFileSync(join(dest, 'new', 'upload.mp3'), 'utf8')).toBe('fresh upload');
    expect(fullDone).toBe(false); // the full run is still waiting for the lock
    expect(holder.proc.exitCode).toBe(null); // and the other process still holds it

    holder.proc.stdin.end();
    expect(await holder.exited).toEqual({ code: 0, signal: null });
    const after = await full;
    expect(after.status).toBe('ok');
    expect(after.copied).toEqual(['old/a.mp3', 'old/b.mp3']); // the upload was there already: unchanged
    expect(await readTree(dest)).toEqual(await readTree(source));
    expect(await tempFiles(dest)).toEqual([]);
  });

  test('what a full run deletes is re-checked against the source at that moment: a file an upload published meanwhile stays', async () => {
    const { source, dest } = project();
    // The full run compared while the source lacked late.mp3 (an orphan to delete); before its
    // deletion, the upload landed in the source and its targeted sync published it.
    await writeTree(dest, { 'late.mp3': 'published by an upload meanwhile', 'gone.mp3': 'orphan' });
    await writeTree(source, { 'late.mp3': 'published by an upload meanwhile' });
    const guard = new DeleteGuard({ source, sourceReal: source, dest, destReal: dest, extensions: null, dryRun: false, maxDelete: Infinity });
    expect(guard.removeFile('late.mp3', 'exists')).toBe('kept');
    expect(guard.removeFile('gone.mp3', 'exists')).toBe('removed');
    expect(await readTree(dest)).toEqual({ 'late.mp3': 'published by an upload meanwhile' });
  });
});

describe('in-process coalescing', () => {
  test('targeted calls made during a full sync run beside it: the first at once, the nine made meanwhile in one follow-up run', async () => {
    const { root, source, dest } = project();
    const files = tree();
    await writeTree(source, files);
    const lockDir = join(root, 'locks');
    const common = { source, dest, force: true, lockDir };

    let firstDone = false;
    const first = syncUploads(common).finally(() => (firstDone = true));
    // Once the full run has walked the tree (it has started filling dest), new uploads arrive and
    // ten targeted calls are made in one synchronous block, while it is still running.
    await waitFor(() => existsSync(dest) && readdirSync(dest).length > 0, { intervalMs: 1, message: 'the full run to start copying' });
    expect(firstDone).toBe(false);
    const fresh = Array.from({ length: 10 }, (_, i) => `fresh/upload-${i}.mp3`);
    const targeted = fresh.map((rel, i) => {
      const abs = join(source, rel);
      if (i === 0) mkdirSync(join(source, 'fresh'));
      writeFileSync(abs, `fresh upload ${i}`);
      return syncUploads({ ...common, files: [rel] });
    });
    expect(firstDone).toBe(false);

    const full = await first;
    const merged = await Promise.all(targeted);
    expect(full.status).toBe('ok');
    for (const r of merged) expect(r.status).toBe('ok');
    // The first targeted call did not queue behind the full run: it ran at once, on its own. The
    // nine made while it ran were served by one follow-up run: the very same result object.
    expect(merged[0]!.copied).toEqual([fresh[0]]);
    expect(new Set(merged.slice(1)).size).toBe(1);
    expect(merged[1]).not.toBe(merged[0]);
    expect(merged[1]).not.toBe(full);
    expect(full.copied).toHaveLength(300);
    expect(merged[1]!.copied).toEqual(fresh.slice(1).sort());
    expect(await readTree(dest)).toEqual(await readTree(source));
    expect(await tempFiles(dest)).toEqual([]);
  });
});
