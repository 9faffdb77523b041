/**
 * Load: 8 processes call `syncUploads` in a loop (full and targeted runs) while `upload-sync watch`
 * runs and files are uploaded with `saveUpload` (new files and overwrites) for a bounded time. At
 * the end: no error anywhere, an exact mirror, no temp file, and the lock never held by a dead
 * process (while it exists it is always fresh: its holder refreshes it; at the end it is gone).
 *
 * A minute of load, as issue 7 asks (RELIABILITY_LOAD_MS sets another length; SOAK=1, npm run
 * test:soak, runs five).
 */
import { afterAll, describe, expect, test } from '@jest/globals';
import { stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { pathToFileURL } from 'node:url';
import { lockPath, STALE_MS } from '../src/shared/lock.js';
import { saveUpload } from '../src/next.js';
import type { SyncResult } from '../src/index.js';
import { CLI, DIST_ESM, cleanEnv, readTree, tempFiles, tempProject, waitFor } from './helpers.js';
import { SOAK, killChild, prng, randomTools, seedFor, startNode, type Child } from './reliability-helpers.js';

for (const key of Object.keys(process.env)) {
  if (/UPLOAD_SYNC/.test(key)) delete process.env[key];
}

const SEED = seedFor('reliability-load');
const LOAD_MS = Number(process.env.RELIABILITY_LOAD_MS ?? (SOAK ? 300_000 : 60_000));
const WORKERS = 8;
const KB = 1024;

let p: ReturnType<typeof tempProject>;
const children: Child[] = [];
afterAll(async () => {
  for (const c of children.splice(0)) await killChild(c);
  await p?.cleanup();
});

/**
 * A syncing process: full runs, and now and then a targeted run of a few files it finds, until
 * `until`; then one last full run. Prints a summary of every result it got, and any warning the
 * library logged (a lock taken over from it, a release that failed).
 */
const WORKER = `
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { syncUploads } from ${JSON.stringify(pathToFileURL(DIST_ESM).href)};
const { options, until, seed } = JSON.parse(process.argv[2]);
let s = seed >>> 0;
const rand = () => ((s = (s * 1664525 + 1013904223) >>> 0) / 4294967296);
const warnings = [];
const logger = { info() {}, warn: (m) => warnings.push(m), error() {} };
const summary = { runs: 0, targeted: 0, statuses: {}, errors: [], warnings };
const some = () => {
  try {
    const dirs = readdirSync(options.source).filter((n) => !n.startsWith('.'));
    const dir = dirs[Math.floor(rand() * dirs.length)];
    return readdirSync(join(options.source, dir)).filter((n) => !n.startsWith('.')).slice(0, 3).map((n) => dir + '/' + n);
  } catch { return []; }
};
const one = async (files) => {
  const r = await syncUploads({ ...options, logger, ...(files ? { files } : {}) });
  summary.runs++;
  if (files) summary.targeted++;
  summary.statuses[r.status] = (summary.statuses[r.status] ?? 0) + 1;
  summary.errors.push(...r.errors.slice(0, 5));
};
while (Date.now() < until) {
  const files = rand() < 0.3 ? some() : null;
  await one(files && files.length > 0 ? files : null);
}
await one(null);
process.stdout.write(JSON.stringify(summary));
`;

describe('load', () => {
  test(`${WORKERS} processes syncing in a loop while the watcher runs and files are uploaded (${Math.round(LOAD_MS / 1000)} s)`, async () => {
    p = tempProject('upload-sync-load-');
    const r = randomTools(prng(SEED));
    const lockDir = join(p.root, 'locks');
    const lock = lockPath(lockDir, p.dest);
    const options = { source: p.source, dest: p.dest, force: true, lockDir };
    await saveUpload(Buffer.from('first'), { ...options, name: 'first.mp3', folder: 'u0' });

    const watcher = startNode([CLI, 'watch', '--force', '--json', '--stable-ms', '200', '--debounce-ms', '50', '--reconcile-ms', String(Math.max(2000, Math.round(LOAD_MS / 4)))], {
      cwd: p.root,
      env: cleanEnv({ UPLOAD_SYNC_SOURCE: p.source, UPLOAD_SYNC_DEST: p.dest, UPLOAD_SYNC_LOCK_DIR: lockDir }),
      ipc: true,
    });
    children.push(watcher);
    await waitFor(() => watcher.messages.includes('ready') || watcher.proc.exitCode !== null, { message: `the watcher to be ready (stderr: ${watcher.stderr()})` });

    // The lock, watched all along: while it exists its holder refreshes it, so it is never older than the stale bound.
    let lockOldest = 0;
    let lockSeen = 0;
    let watching = true;
    const lockWatch = (async () => {
      while (watching) {
        const st = await stat(lock).catch(() => null);
        if (st) {
          lockSeen++;
          lockOldest = Math.max(lockOldest, Date.now() - st.mtimeMs);
        }
        await delay(50);
      }
    })();

    const started = Date.now();
    const until = started + LOAD_MS;
    const script = join(p.root, 'worker.mjs');
    await writeFile(script, WORKER);
    const workers = Array.from({ length: WORKERS }, (_, i) => {
      const w = startNode([script, JSON.stringify({ options, until, seed: SEED + i })], { env: cleanEnv() });
      children.push(w);
      return w;
    });

    // Uploads until 80% of the time: new files in a dozen folders, sometimes an overwrite of an earlier one.
    const uploads: Array<{ name: string; sync: SyncResult | null }> = [];
    const saved: string[] = [];
    const uploadErrors: string[] = [];
    const uploadUntil = started + LOAD_MS * 0.8;
    for (let i = 1; Date.now() < uploadUntil; i++) {
      const overwrite = saved.length > 0 && r.chance(0.15);
      const rel = overwrite ? r.pick(saved) : `u${r.int(0, 11)}/song-${i}.mp3`;
      const [folder, name] = rel.split('/') as [string, string];
      const size = r.chance(0.1) ? r.int(256, 1024) * KB : r.int(1, 64) * KB;
      try {
        const s = await saveUpload(Buffer.alloc(size, `${rel}@${i}|`), { ...options, folder, name, overwrite });
        uploads.push({ name: s.name, sync: s.sync });
        if (!overwrite) saved.push(s.name);
      } catch (err) {
        uploadErrors.push(`${rel}: ${(err as Error).message}`);
      }
      await delay(r.int(5, 40)); // the pace of the uploads: drawn from the seeded PRNG
    }

    const exits = await Promise.all(workers.map((w) => w.exited));
    // The watcher catches up with the last uploads, then stops (finishing the copy in flight).
    await waitFor(async () => JSON.stringify(await readTree(p.dest)) === JSON.stringify(await readTree(p.source)), { timeoutMs: 30_000, message: 'the mirror to settle' });
    watcher.proc.kill('SIGTERM');
    const watcherExit = await watcher.exited;
    watching = false;
    await lockWatch;
    const elapsed = Date.now() - started;

    const summaries = workers.map((w) => JSON.parse(w.stdout() || '{}') as { runs: number; targeted: number; statuses: Record<string, number>; errors: unknown[]; warnings: string[] });
    const watcherResults = watcher.stdout().trimEnd().split('\n').filter(Boolean).map((l) => JSON.parse(l) as SyncResult);
    const uploadSyncErrors = uploads.filter((u) => u.sync?.status !== 'ok').map((u) => `${u.name}: ${JSON.stringify(u.sync?.errors)}`);
    // eslint-disable-next-line no-console
    console.log(
      `reliability-load (seed ${SEED}, ${LOAD_MS} ms): ${uploads.length} uploads, ${summaries.reduce((n, s) => n + (s.runs ?? 0), 0)} worker runs ` +
        `(${summaries.reduce((n, s) => n + (s.targeted ?? 0), 0)} targeted), ${watcherResults.length} watcher syncs; lock seen ${lockSeen} times, oldest ${Math.round(lockOldest)} ms; ${elapsed} ms in all`,
    );

    expect(exits).toEqual(workers.map(() => ({ code: 0, signal: null })));
    expect(workers.map((w) => w.stderr()).filter(Boolean)).toEqual([]);
    expect(summaries.flatMap((s) => s.errors)).toEqual([]);
    expect(summaries.flatMap((s) => s.warnings)).toEqual([]);
    expect(summaries.every((s) => s.runs > 1 && Object.keys(s.statuses).join() === 'ok')).toBe(true);
    expect(uploadErrors).toEqual([]);
    expect(uploadSyncErrors).toEqual([]);
    expect(watcherExit).toEqual({ code: 0, signal: null });
    expect(watcherResults.filter((x) => x.status !== 'ok' || x.errors.length > 0)).toEqual([]);
    expect(watcher.stderr().split('\n').filter((l) => / (ERROR|WARN): /.test(l))).toEqual([]);
    expect(uploads.length).toBeGreaterThan(50);

    expect(await readTree(p.dest)).toEqual(await readTree(p.source));
    expect(await tempFiles(p.dest)).toEqual([]);
    expect(await tempFiles(p.source)).toEqual([]);
    expect(lockSeen).toBeGreaterThan(0);
    expect(lockOldest).toBeLessThan(STALE_MS);
    expect(await stat(lock).catch(() => null)).toBeNull(); // released at the end: nobody holds it
  }, LOAD_MS + 120_000);
});
