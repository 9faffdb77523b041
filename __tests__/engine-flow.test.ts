/**
 * The pipeline's flow as an app in the same process sees it: copies start while the comparison
 * still runs (batches, not one plan of the whole tree), and a long run of small synchronous copies
 * leaves the event loop free every few ms (the lock's refresh, a server's requests).
 */
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { afterEach, beforeEach, expect, test } from '@jest/globals';
import { syncUploads } from '../src/index.js';
import { readTree, tempFiles, tempProject, writeTree } from './helpers.js';

for (const key of Object.keys(process.env)) {
  if (/UPLOAD_SYNC/.test(key)) delete process.env[key];
}

let p: ReturnType<typeof tempProject>;
beforeEach(() => {
  p = tempProject('upload-sync-flow-');
});
afterEach(async () => {
  await p.cleanup();
});

const sync = (extra: Parameters<typeof syncUploads>[0] = {}) => syncUploads({ source: p.source, dest: p.dest, force: true, lockDir: join(p.root, 'locks'), ...extra });

test('timers keep running during a long run of small synchronous copies', async () => {
  await mkdir(join(p.source, 'more'), { recursive: true });
  for (let i = 0; i < 3000; i++) await writeFile(join(p.source, 'more', `x-${i}.mp3`), `x ${i}`);
  let ticks = 0;
  const timer = setInterval(() => ticks++, 5);
  const started = performance.now();
  const result = await sync(); // from source: one thread, every small copy synchronous
  const took = performance.now() - started;
  clearInterval(timer);
  expect(result.copied.length).toBe(3000);
  // Without yields, a timer due in 5 ms waits for the whole run; with them, for ~10 ms at most.
  expect(ticks).toBeGreaterThanOrEqual(Math.floor(took / 100));
  expect((await readdir(join(p.dest, 'more'))).length).toBe(3000);
});

test('a long comparison hands its copies on as it goes: progress totals grow, the mirror is exact', async () => {
  const files: Record<string, string> = {};
  for (let i = 0; i < 5000; i++) files[`album-${i % 50}/t-${i}.mp3`] = `t ${i}`;
  await writeTree(p.source, files);
  const totals: number[] = [];
  const result = await sync({ onProgress: (pr) => void (totals.at(-1) !== pr.filesTotal && totals.push(pr.filesTotal)) });
  expect(result.copied.length).toBe(5000);
  // Copies went out in batches while the tree was still being compared, not as one plan of 5,000.
  expect(totals.length).toBeGreaterThan(1);
  expect(totals[0]).toBeLessThan(5000);
  expect(totals.at(-1)).toBe(5000);
  expect(await readTree(p.dest)).toEqual(files);
  expect(await tempFiles(p.dest)).toEqual([]);
});
