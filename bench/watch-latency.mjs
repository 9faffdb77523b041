// Measures `upload-sync watch` (the built CLI, dist/cli.js):
//  1. latency from an upload's last write to its arrival in dest, over N uploads written one after
//     another in 4 chunks (a slow client), p50/p90;
//  2. peak RSS (VmHWM) of the watch process on a tree of --tree files, after its first sync and a
//     few more uploads.
//
//   npm run build && node bench/watch-latency.mjs [--stable-ms 1000] [--uploads 30] [--tree 10000] [--polling]
//
// --rss: only a memory run on a big tree that is kept between runs (writing 100,000 files takes a
// minute): --tree files in folders of --per-folder under --tree-dir (default: a folder in the temp
// dir named after the size). It starts `watch` (NODE_ENV=production) on it, waits for ready, drops
// --uploads uploads (1 MB in 4 chunks, one after another, half into existing folders, half into
// new ones) and reports the peak RSS (VmHWM), the inotify watches the process holds, and the
// latency of those uploads. The mirror is kept too (a restart's no-op start sync) unless --cold
// (a new empty mirror: the start sync copies the whole tree). --cli runs another build.
//
//   node bench/watch-latency.mjs --rss --tree 100000 [--cold] [--polling] [--cli /other/dist/cli.js]
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, realpathSync } from 'node:fs';
import { mkdir, open, readdir, readFile, readlink, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as delay } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    'stable-ms': { type: 'string', default: '1000' },
    uploads: { type: 'string' },
    tree: { type: 'string', default: '10000' },
    polling: { type: 'boolean', default: false },
    rss: { type: 'boolean', default: false },
    'per-folder': { type: 'string', default: '100' },
    'tree-dir': { type: 'string' },
    cold: { type: 'boolean', default: false },
    cli: { type: 'string', default: join(dirname(fileURLToPath(import.meta.url)), '..', 'dist', 'cli.js') },
  },
});
const CLI = resolve(values.cli);
const stableMs = Number(values['stable-ms']);
const uploads = Number(values.uploads ?? (values.rss ? 20 : 30));
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

/** Waits for the watch process's ready line; throws if it exits first. */
async function untilReady(w) {
  await until(() => w.out().includes('Ready:') || w.child.exitCode !== null, 5);
  if (!w.out().includes('Ready:')) throw new Error(`watch exited (${w.child.exitCode}) before it was ready: ${w.out()}`);
}

async function until(cond, ms = 1) {
  while (!(await cond())) await delay(ms);
}

/** Writes `rel` in 4 chunks with short pauses (a slow client); returns ms from its last write to its arrival in dest. */
async function upload(source, dest, rel, chunk) {
  await mkdir(dirname(join(source, rel)), { recursive: true });
  const fh = await open(join(source, rel), 'w');
  for (let c = 0; c < 4; c++) {
    await fh.write(chunk);
    if (c < 3) await delay(20);
  }
  await fh.close();
  const last = performance.now();
  await until(async () => (await stat(join(dest, rel)).catch(() => null))?.size === chunk.length * 4);
  return performance.now() - last;
}

const pct = (sorted, q) => sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)];
const mb = (kB) => `${(kB / 1024).toFixed(1)} MB`;

async function latency() {
  const p = project();
  await mkdir(p.source, { recursive: true });
  const w = startWatch(p);
  await untilReady(w);
  const chunk = Buffer.alloc(256 * 1024, 7);
  const times = [];
  for (let i = 0; i < uploads; i++) {
    times.push(await upload(p.source, p.dest, `u${i % 5}/upload-${i}.mp3`, chunk));
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
  await untilReady(w);
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

/** Inotify watches held by a process: the `inotify wd:` lines of its inotify descriptors. */
async function inotifyWatches(pid) {
  let n = 0;
  for (const fd of await readdir(`/proc/${pid}/fd`).catch(() => [])) {
    if ((await readlink(`/proc/${pid}/fd/${fd}`).catch(() => '')) !== 'anon_inode:inotify') continue;
    n += ((await readFile(`/proc/${pid}/fdinfo/${fd}`, 'utf8').catch(() => '')).match(/^inotify wd:/gm) ?? []).length;
  }
  return n;
}

async function procStatus(pid) {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  return (name) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status)?.[1]);
}

/** A kept tree of `treeSize` files (an hour old), built once. */
async function keptTree() {
  const perFolder = Number(values['per-folder']);
  const dir = values['tree-dir'] ?? join(tmpdir(), `upload-sync-bench-tree-${treeSize}x${perFolder}`);
  const source = join(dir, 'source');
  if (!existsSync(join(dir, 'complete'))) {
    const t0 = performance.now();
    const anHourAgo = new Date(Date.now() - 3600_000);
    for (let f = 0; f < Math.ceil(treeSize / perFolder); f++) {
      const folder = join(source, `album-${String(f).padStart(4, '0')}`);
      await mkdir(folder, { recursive: true });
      await Promise.all(Array.from({ length: Math.min(perFolder, treeSize - f * perFolder) }, async (_, i) => {
        const file = join(folder, `track-${String(i).padStart(3, '0')}.mp3`);
        await writeFile(file, `track ${f}/${i}`);
        await utimes(file, anHourAgo, anHourAgo);
      }));
    }
    await writeFile(join(dir, 'complete'), '');
    console.error(`bench: built ${treeSize} files in ${Math.ceil(treeSize / perFolder)} folders under ${source} in ${Math.round((performance.now() - t0) / 1000)} s (kept for the next runs)`);
  }
  return { dir, source, folders: Math.ceil(treeSize / perFolder) };
}

async function rssRun() {
  const tree = await keptTree();
  const scratch = realpathSync(mkdtempSync(join(tmpdir(), 'upload-sync-bench-rss-')));
  const dest = values.cold ? join(scratch, 'dest') : join(tree.dir, 'dest');
  const env = { ...process.env, NODE_ENV: 'production', UPLOAD_SYNC_LOCK_DIR: join(scratch, 'locks') };
  for (const k of ['DEBUG', 'ENABLE_UPLOAD_SYNC', 'DISABLE_UPLOAD_SYNC', 'CHOKIDAR_USEPOLLING']) delete env[k];
  for (const k of Object.keys(env)) if (k.startsWith('UPLOAD_SYNC_') && k !== 'UPLOAD_SYNC_LOCK_DIR') delete env[k];
  const args = [CLI, 'watch', '--source', tree.source, '--dest', dest, '--stable-ms', String(stableMs), ...(values.polling ? ['--polling'] : [])];
  const t0 = performance.now();
  const child = spawn(process.execPath, args, { cwd: scratch, env, stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  const exited = new Promise((resolve) => child.on('exit', resolve));
  await until(() => out.includes('Ready:') || child.exitCode !== null, 20);
  if (child.exitCode !== null) throw new Error(`watch exited: ${out}`);
  const ready = performance.now() - t0;
  const atReady = await procStatus(child.pid);
  const watchesAtReady = await inotifyWatches(child.pid);

  const chunk = Buffer.alloc(256 * 1024, 7);
  const times = [];
  const written = [];
  const tag = Date.now().toString(36);
  for (let i = 0; i < uploads; i++) {
    const folder = i % 2 === 0 ? `album-${String((i * 37) % tree.folders).padStart(4, '0')}` : `new-${tag}-${i}`;
    const rel = `${folder}/upload-${tag}-${i}.mp3`;
    written.push(rel);
    times.push(await upload(tree.source, dest, rel, chunk));
  }
  const after = await procStatus(child.pid);
  const watches = await inotifyWatches(child.pid);
  child.kill('SIGTERM');
  await exited;
  // Leave the kept tree and mirror as they were.
  for (const rel of written) {
    for (const base of [tree.source, dest]) {
      await rm(join(base, rel), { force: true });
      if (rel.startsWith('new-')) await rm(join(base, dirname(rel)), { recursive: true, force: true });
    }
  }
  await rm(scratch, { recursive: true, force: true });
  times.sort((a, b) => a - b);
  console.log(`rss (${values.polling ? 'polling' : 'native'}, ${values.cold ? 'cold: empty mirror' : 'warm: mirror up to date'}, ${treeSize} files in ${tree.folders} folders, stableMs ${stableMs}, ${CLI}): ` +
    `peak RSS (VmHWM) ${mb(after('VmHWM'))} (at ready ${mb(atReady('VmHWM'))}), RSS now ${mb(after('VmRSS'))}, ` +
    `inotify watches ${watchesAtReady} at ready, ${watches} after ${uploads} uploads, ready after ${Math.round(ready)} ms; ` +
    `upload latency p50 ${Math.round(pct(times, 0.5))} ms, p90 ${Math.round(pct(times, 0.9))} ms, max ${Math.round(times[times.length - 1])} ms`);
}

if (values.rss) {
  await rssRun();
} else {
  await latency();
  await memory();
}
