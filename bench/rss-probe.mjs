#!/usr/bin/env node
// Where the memory of a large initial sync goes (issue 10's RSS goal, tree D of run.mjs).
//
//   node bench/rss-probe.mjs make DIR                   builds a D-shaped tree in DIR (once; reused)
//   node bench/rss-probe.mjs run LIB SRC DST [--timeline FILE] [--no-helper]
//        one initial sync of SRC into the new folder DST, in this process, as run.mjs's rssOfSync
//        does (LIB: a built dist/index.js). Samples every 20 ms: the process's RSS, the main
//        thread's heap (total, used, young generation), external and array buffers, and the
//        helper thread's heap (sampled inside it, sent with each sample). Prints one JSON line.
//   node bench/rss-probe.mjs cli CLI SRC DST            the same sync through `upload-sync sync`
//        (CLI: a built dist/cli.js); its RSS polled from /proc, its peak from getrusage at exit.
//   node bench/rss-probe.mjs compare SRC N LIB...       N rounds, the builds alternating, in
//        process and through the CLI; prints the peak of each run. Dests go under SRC's parent,
//        removed at the end (creating many files just after deleting many is slow on ext4).
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { createRequire, syncBuiltinESMExports } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { pathToFileURL, fileURLToPath } from 'node:url';
import v8 from 'node:v8';

const [mode, ...args] = process.argv.slice(2);
const MB = 2 ** 20;
const mb = (n) => Math.round((n / MB) * 10) / 10;


/** run.mjs's tree D: 300,000 files of 200–2000 bytes in 3000 folders, the same sizes and mtimes. */
function makeTree(root, files = 300_000, folders = 3000, minSize = 200, maxSize = 2000) {
  let s = files >>> 0;
  const rand = () => ((s = (s * 1664525 + 1013904223) >>> 0) / 2 ** 32);
  const block = Buffer.alloc(maxSize);
  for (let i = 0; i < block.length; i++) block[i] = (i * 31 + 7) & 0xff;
  const past = new Date(Date.now() - 86_400_000);
  for (let f = 0; f < folders; f++) mkdirSync(join(root, `album-${f}`), { recursive: true });
  for (let i = 0; i < files; i++) {
    const path = join(root, `album-${i % folders}`, `track-${i}.mp3`);
    writeFileSync(path, block.subarray(0, Math.floor(minSize + rand() * (maxSize - minSize))));
    utimesSync(path, past, past);
  }
}

const hwm = (pid = 'self') => Number(/VmHWM:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? NaN) * 1024;
const rssOf = (pid) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? NaN) * 1024;

async function runInProcess([lib, src, dst, ...rest]) {
  const timeline = rest.includes('--timeline') ? rest[rest.indexOf('--timeline') + 1] : null;
  // The helper thread, sampled from inside: its script is wrapped in one that reports its heap.
  const require = createRequire(import.meta.url);
  const wt = require('node:worker_threads');
  const workerHeap = { used: 0, total: 0, peakUsed: 0, peakTotal: 0 };
  const Original = wt.Worker;
  let helpers = 0;
  wt.Worker = class extends Original {
    constructor(url, options) {
      const wrapped = `
        const { parentPort } = require('node:worker_threads');
        const v8 = require('node:v8');
        const send = () => { const h = v8.getHeapStatistics(); parentPort.postMessage([h.used_heap_size, h.total_heap_size]); };
        setInterval(send, 20).unref();
        const port = require('node:worker_threads').workerData.port;
        port.on('message', () => setImmediate(send));
        import(${JSON.stringify(String(url))});`;
      super(wrapped, { ...options, eval: true });
      helpers++;
      this.on('message', ([used, total]) => {
        workerHeap.used = used;
        workerHeap.total = total;
        workerHeap.peakUsed = Math.max(workerHeap.peakUsed, used);
        workerHeap.peakTotal = Math.max(workerHeap.peakTotal, total);
      });
    }
  };
  if (rest.includes('--no-helper')) wt.Worker = class { constructor() { throw new Error('no helper (probe)'); } };
  syncBuiltinESMExports();
  const { syncUploads } = await import(pathToFileURL(resolve(lib)).href);
  const samples = [];
  let peak = null;
  const sample = () => {
    const m = process.memoryUsage();
    const spaces = Object.fromEntries(v8.getHeapSpaceStatistics().map((s) => [s.space_name, s.space_size]));
    const row = { t: Math.round(performance.now() - t0), rss: m.rss, heapTotal: m.heapTotal, heapUsed: m.heapUsed, young: spaces.new_space ?? 0, old: spaces.old_space ?? 0, external: m.external, arrayBuffers: m.arrayBuffers, wUsed: workerHeap.used, wTotal: workerHeap.total };
    if (timeline) samples.push(row);
    if (peak === null || row.rss > peak.rss) peak = row;
  };
  const allocProf = rest.includes('--alloc-prof') ? rest[rest.indexOf('--alloc-prof') + 1] : null;
  let session = null;
  if (allocProf) {
    // Every allocation sampled, garbage included: what the run allocates per file, not what it keeps
    // (`--promoted`: leaves out what died young, so what is left is what reached the old generation).
    const { Session } = await import('node:inspector/promises');
    session = new Session();
    session.connect();
    await session.post('HeapProfiler.startSampling', { samplingInterval: 4096, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: !rest.includes('--promoted') });
  }
  const t0 = performance.now();
  const timer = setInterval(sample, 20);
  const snapAt = rest.includes('--snapshot-at') ? Number(rest[rest.indexOf('--snapshot-at') + 1]) : null;
  if (snapAt !== null) setTimeout(() => console.error('snapshot', v8.writeHeapSnapshot(join(dirname(dst), `main-${snapAt}.heapsnapshot`))), snapAt).unref();
  const before = process.memoryUsage().rss;
  const r = await syncUploads({ source: src, dest: dst, force: true, lockDir: join(dirname(dst), 'locks') });
  sample();
  clearInterval(timer);
  if (session) writeFileSync(allocProf, JSON.stringify((await session.post('HeapProfiler.stopSampling')).profile));
  if (r.status !== 'ok') throw new Error(`${r.status}: ${JSON.stringify(r.errors.slice(0, 3))}`);
  const after = process.memoryUsage();
  if (timeline) writeFileSync(timeline, JSON.stringify(samples));
  const fmt = (row) => Object.fromEntries(Object.entries(row).map(([k, v]) => [k, k === 't' ? v : mb(v)]));
  console.log(JSON.stringify({
    maxRSS: mb(process.resourceUsage().maxRSS * 1024), hwm: mb(hwm()), start: mb(before), ms: Math.round(r.durationMs), copied: r.copied.length, helpers,
    atPeak: fmt(peak), end: { heapUsed: mb(after.heapUsed), heapTotal: mb(after.heapTotal) }, worker: { peakUsed: mb(workerHeap.peakUsed), peakTotal: mb(workerHeap.peakTotal) },
  }));
}

async function runCli([cli, src, dst]) {
  const exitHook = join(dirname(fileURLToPath(import.meta.url)), '.rss-probe-exit.cjs');
  writeFileSync(exitHook, "process.on('exit', () => process.stderr.write(`maxRSS=${process.resourceUsage().maxRSS}\\n`));\n");
  const child = spawn(process.execPath, ['--require', exitHook, cli, 'sync', '--source', src, '--dest', dst, '--force'], {
    env: { ...process.env, NODE_ENV: 'production', UPLOAD_SYNC_LOCK_DIR: join(dirname(dst), 'locks') },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (err += d));
  let polled = 0;
  const timer = setInterval(() => {
    try {
      polled = Math.max(polled, rssOf(child.pid));
    } catch {}
  }, 20);
  const code = await new Promise((r) => child.on('exit', r));
  clearInterval(timer);
  rmSync(exitHook, { force: true });
  if (code !== 0) throw new Error(`cli exited ${code}: ${out}${err}`);
  const maxRSS = Number(/maxRSS=(\d+)/.exec(err)?.[1]) * 1024;
  console.log(JSON.stringify({ maxRSS: mb(maxRSS), polled: mb(polled), line: out.trim().split('\n').pop() }));
}

async function compare([src, n, ...libs]) {
  const base = join(dirname(resolve(src)), `dests-${process.pid}`);
  const count = (dir) => execFileSync('sh', ['-c', 'find "$1" -type f | wc -l', 'sh', dir], { encoding: 'utf8' }).trim();
  const want = count(src);
  let seq = 0;
  const results = Object.fromEntries(libs.map((l) => [l, { proc: [], cli: [] }]));
  try {
    for (let round = 0; round < Number(n); round++) {
      for (const how of ['proc', 'cli']) {
        for (const lib of round % 2 === 0 ? libs : [...libs].reverse()) {
          const dst = join(base, `d${++seq}`);
          mkdirSync(base, { recursive: true });
          const script = how === 'proc' ? [fileURLToPath(import.meta.url), 'run', lib, src, dst] : [fileURLToPath(import.meta.url), 'cli', join(dirname(lib), 'cli.js'), src, dst];
          const line = execFileSync(process.execPath, script, { encoding: 'utf8' }).trim();
          const got = count(dst);
          if (got !== want) throw new Error(`${lib}: ${got} files in the mirror, ${want} in the source`);
          results[lib][how].push(JSON.parse(line).maxRSS);
          console.error(`${how} ${lib}: ${line}`);
        }
      }
    }
  } finally {
    rmSync(base, { recursive: true, force: true });
  }
  for (const [lib, { proc, cli }] of Object.entries(results)) {
    const stat = (xs) => `${xs.join(' ')} (max ${Math.max(...xs)}, median ${[...xs].sort((a, b) => a - b)[xs.length >> 1]})`;
    console.log(`${lib}\n  in process: ${stat(proc)}\n  CLI:        ${stat(cli)}`);
  }
}

if (mode === 'make') makeTree(args[0], ...args.slice(1).map(Number));
else if (mode === 'run') await runInProcess(args);
else if (mode === 'cli') await runCli(args);
else if (mode === 'compare') await compare(args);
else throw new Error('usage: rss-probe.mjs make|run|cli|compare …');
