/**
 * `upload-sync sync` and `upload-sync cleanup` stop cleanly on SIGINT/SIGTERM (issue 11, point 8):
 * the built CLI is spawned on a tree big enough to be caught mid-run, the signal is sent once a
 * condition shows the run is in the middle (a temp file with bytes in it in dest; orphans already
 * gone), never after a fixed sleep. Then: the exit code (128 + the signal's number), the line that
 * says what was done, no temp file, every file in the mirror complete, and the rest left for the
 * next run (which finishes it).
 */
import { afterEach, describe, expect, test } from '@jest/globals';
import { readdirSync, statSync } from 'node:fs';
import { mkdir, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { CleanupResult, SyncResult } from '../src/index.js';
import { CLI, cleanEnv, readTree, runCli, tempFiles, tempProject, waitFor, writeTree } from './helpers.js';
import { killChild, startNode, type Child } from './reliability-helpers.js';

let p: ReturnType<typeof tempProject> | undefined;
const children: Child[] = [];
afterEach(async () => {
  for (const c of children.splice(0)) await killChild(c);
  await p?.cleanup();
  p = undefined;
});

const BIG = 16 * 1024 * 1024;

/** 6 big files (copied first, 4 at a time) and 2,000 small ones in 20 folders. */
async function bigTree(): Promise<{ root: string; source: string; dest: string; env: NodeJS.ProcessEnv; total: number }> {
  p = tempProject('upload-sync-signals-');
  const files: Record<string, string | Buffer> = {};
  for (let i = 0; i < 6; i++) files[`big-${i}.flac`] = Buffer.alloc(BIG, `big ${i} `);
  for (let i = 0; i < 2000; i++) files[`album-${i % 20}/track-${i}.mp3`] = `track ${i} `.repeat(1 + (i % 50));
  await writeTree(p.source, files);
  return { ...p, env: cleanEnv({ UPLOAD_SYNC_LOCK_DIR: join(p.root, 'locks') }), total: Object.keys(files).length };
}

/** A temp file of ours in dest with bytes in it: a copy is in flight (not the empty probe of dest's mtime granularity). */
function copyInFlight(dest: string): boolean {
  let names: string[];
  try {
    names = readdirSync(dest);
  } catch {
    return false;
  }
  return names.some((n) => {
    if (!n.startsWith('.upload-sync-')) return false;
    try {
      return statSync(join(dest, n)).size > 0;
    } catch {
      return false; // renamed meanwhile
    }
  });
}

/** Every file in the mirror is complete: the same bytes as its source. Returns how many there are. */
async function mirrorComplete(source: string, dest: string): Promise<number> {
  const [src, dst] = await Promise.all([readTree(source), readTree(dest)]);
  for (const [rel, content] of Object.entries(dst)) {
    expect({ rel, same: src[rel] === content }).toEqual({ rel, same: true });
  }
  return Object.keys(dst).length;
}

describe('sync and cleanup stop cleanly on a signal', () => {
  test('sync stopped by SIGTERM mid-copy: exit 143, "Stopped by SIGTERM" with what was copied, no temp file, complete files; the next run finishes', async () => {
    const t = await bigTree();
    const child = startNode([CLI, 'sync', '--source', t.source, '--dest', t.dest], { env: t.env });
    children.push(child);
    await waitFor(() => child.proc.exitCode !== null || copyInFlight(t.dest), { intervalMs: 1, message: 'a copy in flight' });
    expect(child.proc.exitCode).toBeNull(); // caught mid-run, not after it
    child.proc.kill('SIGTERM');
    expect(await child.exited).toEqual({ code: 143, signal: null });

    expect(child.stderr()).toContain('upload-sync: SIGTERM received: stopping after the files in flight');
    const line = child.stdout().trimEnd();
    expect(line).toMatch(/^Stopped by SIGTERM: \S+ -> \S+: copied \d+ files? \(.*\), 0 unchanged in .*; the rest is left for the next run$/);
    expect(child.stderr()).not.toContain('ERR_ABORTED'); // a stop asked for is not an error line
    expect(await tempFiles(t.dest)).toEqual([]);
    const inMirror = await mirrorComplete(t.source, t.dest);
    expect(Number(/copied (\d+) file/.exec(line)![1])).toBe(inMirror);
    expect(inMirror).toBeGreaterThan(0); // the copies in flight were finished…
    expect(inMirror).toBeLessThan(t.total); // …and nothing new was started

    const next = await runCli(['sync', '--source', t.source, '--dest', t.dest], { env: t.env });
    expect(next.code).toBe(0);
    expect(next.stdout).toMatch(new RegExp(`^Done: .*copied ${t.total - inMirror} files.*, ${inMirror} unchanged`));
    expect(await readTree(t.dest)).toEqual(await readTree(t.source));
  }, 60_000);

  test('sync --json stopped by SIGINT: exit 130, the result (ERR_ABORTED) on stdout, the line on stderr, no temp file', async () => {
    const t = await bigTree();
    const child = startNode([CLI, 'sync', '--json', '--source', t.source, '--dest', t.dest], { env: t.env });
    children.push(child);
    await waitFor(() => child.proc.exitCode !== null || copyInFlight(t.dest), { intervalMs: 1, message: 'a copy in flight' });
    expect(child.proc.exitCode).toBeNull();
    child.proc.kill('SIGINT');
    expect(await child.exited).toEqual({ code: 130, signal: null });

    const result = JSON.parse(child.stdout()) as SyncResult;
    expect(result.status).toBe('partial');
    expect(result.errors.map((e) => e.code)).toEqual(['ERR_ABORTED']);
    expect(child.stderr()).toMatch(new RegExp(`^upload-sync: stopped by SIGINT: copied ${result.copied.length} files? .*; the rest is left for the next run$`, 'm'));
    expect(await tempFiles(t.dest)).toEqual([]);
    expect(await mirrorComplete(t.source, t.dest)).toBe(result.copied.length);
    expect(result.copied.length).toBeLessThan(t.total);
  }, 60_000);

  test('cleanup stopped by SIGTERM mid-run: exit 143, "Stopped by SIGTERM" with what was removed, the rest kept for the next run', async () => {
    p = tempProject('upload-sync-signals-');
    const { source, dest } = p;
    const env = cleanEnv({ UPLOAD_SYNC_LOCK_DIR: join(p.root, 'locks') });
    await writeTree(source, { 'keep.mp3': 'k' });
    await writeTree(dest, { 'keep.mp3': 'k' });
    // 20,000 old orphans in one folder: long enough to be caught mid-run.
    const orphans = join(dest, 'gone');
    await mkdir(orphans);
    const ORPHANS = 20_000;
    const old = new Date(Date.now() - 40 * 86_400_000);
    for (let i = 0; i < ORPHANS; i += 500) {
      await Promise.all(Array.from({ length: 500 }, async (_, j) => {
        const f = join(orphans, `o-${i + j}.mp3`);
        await writeFile(f, 'o');
        await utimes(f, old, old);
      }));
    }
    const left = () => {
      try {
        return readdirSync(orphans).length;
      } catch {
        return 0;
      }
    };
    const child = startNode([CLI, 'cleanup', '--source', source, '--dest', dest], { env });
    children.push(child);
    await waitFor(() => child.proc.exitCode !== null || left() < ORPHANS, { intervalMs: 1, message: 'the first orphans removed' });
    expect(child.proc.exitCode).toBeNull();
    child.proc.kill('SIGTERM');
    expect(await child.exited).toEqual({ code: 143, signal: null });

    const line = child.stdout().trimEnd();
    expect(line).toMatch(/^Stopped by SIGTERM: cleanup of \S+ \(orphans older than 30 days\): removed \d+ files? \(.*\), \d+ kept in .*; the rest is left for the next run$/);
    const removed = Number(/removed (\d+) file/.exec(line)![1]);
    expect(removed).toBe(ORPHANS - left());
    expect(left()).toBeGreaterThan(0); // stopped before the end
    expect(Number(/, (\d+) kept/.exec(line)![1])).toBe(1 + left()); // keep.mp3 and the orphans not reached
    expect(child.stderr()).not.toContain('ERR_ABORTED');
    expect(await readTree(source)).toEqual({ 'keep.mp3': 'k' });

    const next = await runCli(['cleanup', '--json', '--source', source, '--dest', dest], { env });
    expect(next.code).toBe(0);
    const result = JSON.parse(next.stdout) as CleanupResult;
    expect(result.removed).toHaveLength(ORPHANS - removed);
    expect(await readTree(dest)).toEqual({ 'keep.mp3': 'k' });
  }, 60_000);
});
