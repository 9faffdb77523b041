// Measures `upload-sync watch` (the built CLI, dist/cli.js):
//  1. latency from an upload's last write to its arrival in dest, over N uploads written one after
//     another in 4 chunks (a slow client), p50/p90;
//  2. peak RSS (VmHWM) of the watch process on a tree of --tree files, after its first sync and a
//     few more uploads.
//
//   npm run build && node bench/watch-latency.mjs [--stable-ms 1000] [--uploads 30] [--tree 10000] [--polling]
import { spawn } from 'node:child_process';
import { mkdtempSync, realpathSync } from 'node:fs';
import { mkdir, open, readFile, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as delay } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const CLI = join(dirname(fileURLToPath(import.meta.url)), '..', 'dist', 'cli.js');
const { values } = parseArgs({
  options: {
    'stable-ms': { type: 'string', default: '1000' },
    uploads: { type: 'string', default: '30' },
    tree: { type: 'string', default: '10000' },
    polling: { type: 'boolean', default: false },
  },
});
const stableMs = Number(values['stable-ms']);
const uploads = Number(values.uploads);
const treeSize = Number(values.tree);

function project() {
  const root = realpathSync(mkdtempSync(join(tmpdir(), 'upload-sync-bench-')));
  return { root, source: join(root, 'public', 'uploads'), dest: join(root, '.next', 'standalone', 'public', 'uploads') };
}

function startWatch(p) {
  const env = { ...process.env, ENABLE_UPLOAD_SYNC: 'true', UPLOAD_SYNC_STABLE_MS: String(stableMs), UPLOAD_SYNC_LOCK_DIR: join(p.root, 'locks') };
  delete env.DEBUG;
  const child = spawn(process.execPath, [CLI, 'watch', ...(values.polling ? ['--polling'] : [])], { cwd: p.root, env, stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  const exited = new Promise((resolve) => child.on('exit', resolve));
  return { child, exited, out: () => out };
}

async function until(cond, ms = 1) {
  while (!(await cond())) await delay(ms);
}

const pct = (sorted, q) => sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)];
const mb = (kB) => `${(kB / 1024).toFixed(1)} MB`;

async function latency() {
  const p = project();
  await mkdir(p.source, { recursive: true });
  const w = startWatch(p);
  await until(() => w.out().includes('Ready:'), 5);
  const chunk = Buffer.alloc(256 * 1024, 7);
  const times = [];
  for (let i = 0; i < uploads; i++) {
    const rel = `u${i % 5}/upload-${i}.mp3`;
    await mkdir(join(p.source, `u${i % 5}`), { recursive: true });
    const fh = await open(join(p.source, rel), 'w');
    for (let c = 0; c < 4; c++) {
      await fh.write(chunk);
      if (c < 3) await delay(20);
    }
    await fh.close();
    const last = performance.now();
    await until(async () => (await stat(join(p.dest, rel)).catch(() => null))?.size === chunk.length * 4);
    times.push(performance.now() - last);
  }
  w.child.kill('SIGTERM');
  await w.exited;
  await rm(p.root, { recursive: true, force: true });
  times.sort((a, b) => a - b);
  console.log(`latency (${values.polling ? 'polling' : 'native'}, stableMs ${stableMs}, debounce 200, ${uploads} uploads of 1 MB in 4 chunks): ` +
    `p50 ${Math.round(pct(times, 0.5))} ms, p90 ${Math.round(pct(times, 0.9))} ms, min ${Math.round(times[0])} ms, max ${Math.round(times[times.length - 1])} ms`);
}

async function memory() {
  const p = project();
  const perFolder = 100;
  const anHourAgo = new Date(Date.now() - 3600_000);
  for (let f = 0; f < Math.ceil(treeSize / perFolder); f++) {
    const dir = join(p.source, `artist-${f}`, 'album');
    await mkdir(dir, { recursive: true });
    await Promise.all(Array.from({ length: Math.min(perFolder, treeSize - f * perFolder) }, async (_, i) => {
      await writeFile(join(dir, `track-${i}.mp3`), `track ${f}/${i}`);
      await utimes(join(dir, `track-${i}.mp3`), anHourAgo, anHourAgo); // uploads of the past: the start sync copies them at once
    }));
  }
  const t0 = performance.now();
  const w = startWatch(p);
  await until(() => w.out().includes('Ready:'), 5);
  const ready = performance.now() - t0;
  const copied = await stat(join(p.dest, `artist-${Math.ceil(treeSize / perFolder) - 1}`, 'album', 'track-0.mp3')).then(() => true, () => false);
  for (let i = 0; i < 10; i++) await writeFile(join(p.source, `new-${i}.mp3`), 'x');
  await until(async () => (await stat(join(p.dest, 'new-9.mp3')).catch(() => null)) !== null, 20);
  const status = await readFile(`/proc/${w.child.pid}/status`, 'utf8');
  const field = (name) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status)?.[1]);
  w.child.kill('SIGTERM');
  await w.exited;
  await rm(p.root, { recursive: true, force: true });
  console.log(`memory (${values.polling ? 'polling' : 'native'}, ${treeSize} files in ${Math.ceil(treeSize / perFolder)} folders): ` +
    `peak RSS (VmHWM) ${mb(field('VmHWM'))}, RSS now ${mb(field('VmRSS'))}, ready (first sync${copied ? ', the whole tree copied' : ''}) after ${Math.round(ready)} ms`);
}

await latency();
await memory();
