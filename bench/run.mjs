#!/usr/bin/env node
// `npm run bench`: upload-sync against rsync and cp, side by side in one run, medians and ratios
// as a markdown table. Generates its trees in a temp folder, installs nothing, deletes all at the end.
//
//   node bench/run.mjs [--reps N] [--only copy,noop,upload,rss,watch,wait,upload-rss,upload-fsync,upload-rss-next,route,pm2-reload-next,s3-put-rss,s3-save-rss,s3-push] [--small]
//   (upload-rss-next and pm2-reload-next are not in the default list: they install the example app's dependencies and build it;
//   s3-put-rss, s3-save-rss and s3-push need a Ceph RGW: UPLOAD_SYNC_TEST_S3_ENV, or the Debian packages to start one, else they say why they skip;
//   s3-push also needs rclone; --wait-pairs N: rounds of runs (sync on, sync off, the bare-copy floor) per case of `wait`, default 5;
//   --wait-modes on,off,floor[,burn<µs>…]: the modes of each round (burn150: 150 µs of CPU spun after a save without sync))
//
// `route` (bench/route.mjs) builds examples/next-app standalone with the packed library (it needs
// the npm registry or a warm npm cache, like the Next e2e test), then measures 64 KiB ranged GETs
// at concurrency 32 through the uploads route, Next's static handler and a do-nothing route
// handler on the same server. `--route-app DIR` reuses a built copy; `--route-seconds` per round.
// Experiments (columns added to the same run; see bench/route.mjs): `--route-pages` (pages/api
// handlers: from memory, behind a rewrite, doing the file work), `--route-proxy` (proxy.ts from
// memory), `--route-custom` (a custom server in front of Next; every column then goes through it),
// `--route-preload-experiment` (server.js under `node -r`, a hand-written handler before Next's
// listener). The supported form, `node -r upload-sync/preload`, is a column of every run
// (`--route-preload off` leaves it out).
//
// --small shrinks every tree tenfold (a quick look; the committed table is a full run).
// See ../shared/PERF-NOTES.md: on this disk, creating many files just after deleting many is slow,
// so every copy goes into a new folder and deletions happen at the very end.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync, utimesSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { uploadFsync, uploadRss, uploadRssNext } from './uploads.mjs';
import { routeBench } from './route.mjs';
import { s3PutRss } from './s3-put-rss.mjs';
import { s3SaveRss } from './s3-save-rss.mjs';
import { s3Push } from './s3-push.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const repo = join(here, '..');
const cli = join(repo, 'dist', 'cli.js');
const lib = join(repo, 'dist', 'index.js');

const { values } = parseArgs({
  options: {
    reps: { type: 'string', default: '5' },
    only: { type: 'string', default: 'copy,noop,upload,watch,rss,wait,upload-rss,upload-fsync,route,s3-put-rss,s3-save-rss,s3-push' },
    'route-app': { type: 'string' },
    'route-seconds': { type: 'string', default: '5' },
    'route-pages': { type: 'boolean', default: false },
    'route-proxy': { type: 'boolean', default: false },
    'route-custom': { type: 'boolean', default: false },
    'route-preload-experiment': { type: 'boolean', default: false },
    'route-preload': { type: 'string', default: 'on' },
    small: { type: 'boolean', default: false },
    'wait-pairs': { type: 'string', default: '5' },
    'wait-modes': { type: 'string', default: 'on,off,floor' },
  },
});
const REPS = Number(values.reps);
const ONLY = new Set(values.only.split(','));
const SCALE = values.small ? 0.1 : 1;
const WAIT_MODES = waitModes(values['wait-modes']);

const has = (cmd) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
const HAVE_RSYNC = has('rsync');
if (!HAVE_RSYNC) console.error('bench: rsync is not installed; its columns are left out (install it with your package manager to compare).');

const work = mkdtempSync(join(tmpdir(), 'upload-sync-bench-'));
let seq = 0;
const fresh = (name) => join(work, `${name}-${++seq}`);
process.on('exit', () => rmSync(work, { recursive: true, force: true }));
process.on('SIGINT', () => process.exit(130));

// ---------------------------------------------------------------------------------------------
// Trees

/** Deterministic pseudo-random sizes, so every run builds the same trees. */
function rng(seed) {
  let s = seed >>> 0;
  return () => ((s = (s * 1664525 + 1013904223) >>> 0) / 2 ** 32);
}

function makeTree(name, { files, folders, minSize, maxSize }) {
  const root = join(work, name);
  const rand = rng(files);
  const block = Buffer.alloc(maxSize);
  for (let i = 0; i < block.length; i++) block[i] = (i * 31 + 7) & 0xff;
  const past = new Date(Date.now() - 86_400_000);
  for (let f = 0; f < folders; f++) mkdirSync(join(root, `album-${f}`), { recursive: true });
  for (let i = 0; i < files; i++) {
    const size = Math.floor(minSize + rand() * (maxSize - minSize));
    const path = join(root, `album-${i % folders}`, `track-${i}.mp3`);
    writeFileSync(path, block.subarray(0, size));
    utimesSync(path, past, past);
  }
  return root;
}

const TREES = {
  A: () => makeTree('A', { files: Math.round(10_000 * SCALE), folders: 200, minSize: 1000, maxSize: 32_000 }),
  B: () => makeTree('B', { files: Math.round(100 * SCALE) || 10, folders: 10, minSize: 8 * 2 ** 20, maxSize: 8 * 2 ** 20 + 1 }),
  C: () => makeTree('C', { files: Math.round(100_000 * SCALE), folders: 1000, minSize: 200, maxSize: 4000 }),
  D: () => makeTree('D', { files: Math.round(300_000 * SCALE), folders: 3000, minSize: 200, maxSize: 2000 }),
};
const COUNTS = { A: Math.round(10_000 * SCALE), B: Math.round(100 * SCALE) || 10, C: Math.round(100_000 * SCALE), D: Math.round(300_000 * SCALE) };

/**
 * Files under `dir` and their total size (find, no Node): a copy that "succeeds" with folders
 * missing must not pass as fast. Throws when the mirror is not the whole source.
 */
function checkMirror(name, src, dst, tool) {
  const count = (dir) => execFileSync('sh', ['-c', `find "$1" -type f -not -name '.*' -printf '%s\\n' | awk '{ n++; s += $1 } END { print n + 0, s + 0 }'`, 'sh', dir], { encoding: 'utf8' }).trim();
  const want = count(src);
  const got = count(dst);
  if (got !== want) throw new Error(`${tool} on ${name}: the mirror holds ${got} (files bytes), the source ${want}: not exact`);
  return Number(want.split(' ')[0]);
}
let mirrorsChecked = 0;
const built = {};
const tree = (name) => (built[name] ??= time(() => TREES[name]()).value);

// ---------------------------------------------------------------------------------------------
// Measuring

function time(fn) {
  const t = process.hrtime.bigint();
  const value = fn();
  return { ms: Number(process.hrtime.bigint() - t) / 1e6, value };
}

/** Wall time of a whole process, like a user's shell sees it. */
function runTimed(cmd, args, env) {
  const { ms, value } = time(() => spawnSync(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, ...env } }));
  if (value.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${value.status}): ${value.stderr}`);
  return ms;
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const pct = (xs, p) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))];

const ENV = { NODE_ENV: 'production', UPLOAD_SYNC_LOCK_DIR: join(work, 'locks') };
const ours = (src, dst, extra = []) => runTimed(process.execPath, [cli, 'sync', '--source', src, '--dest', dst, ...extra], ENV);
const rsync = (src, dst) => runTimed('rsync', ['-a', `${src}/`, `${dst}/`]);
const cpA = (src, dst) => runTimed('cp', ['-a', `${src}/.`, `${dst}/`]);
const floor = (src, dst) => runTimed('find', [src, dst, '-printf', '%s %T@\\n']);

/** Runs each tool `REPS` times, alternating the order every round; returns medians in ms. */
function sideBySide(tools) {
  const samples = Object.fromEntries(Object.keys(tools).map((k) => [k, []]));
  const names = Object.keys(tools);
  for (let rep = 0; rep < REPS; rep++) {
    const order = rep % 2 === 0 ? names : [...names].reverse();
    for (const name of order) samples[name].push(tools[name]());
  }
  return Object.fromEntries(names.map((n) => [n, median(samples[n])]));
}

const rows = [];
const fmt = (ms) => (ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : ms >= 10 ? `${ms.toFixed(0)} ms` : `${ms.toFixed(2)} ms`);
function row(kase, treeName, results, baseline) {
  const base = results[baseline];
  for (const [tool, ms] of Object.entries(results)) {
    rows.push(`| ${kase} | ${treeName} | ${tool} | ${fmt(ms)} | ${base && tool !== baseline ? `${(ms / base).toFixed(2)}×` : ''} |`);
  }
  console.error(`  ${kase} ${treeName}: ${Object.entries(results).map(([t, ms]) => `${t} ${fmt(ms)}`).join(', ')}`);
}

// ---------------------------------------------------------------------------------------------
// Cases

function initialCopy(name) {
  const src = tree(name);
  const dests = [];
  const into = (tool, fn) => () => {
    const dst = fresh(`${name}-copy`);
    mkdirSync(dst, { recursive: true });
    dests.push(dst);
    const ms = fn(src, dst);
    // Every repetition's mirror is counted (outside the timing): a fast copy that lost files fails the bench.
    if (checkMirror(name, src, dst, tool) !== COUNTS[name]) throw new Error(`${tool} on ${name}: file count differs from the tree's`);
    mirrorsChecked++;
    return ms;
  };
  const tools = {
    'upload-sync sync': into('upload-sync sync', ours),
    'syncUploads() in process': into('syncUploads() in process', (s, d) => inProcess('full', s, d)),
    'cp -a': into('cp -a', cpA),
  };
  if (HAVE_RSYNC) tools['rsync -a'] = into('rsync -a', rsync);
  row('initial copy into an empty mirror (each mirror counted)', name, sideBySide(tools), HAVE_RSYNC ? 'rsync -a' : 'cp -a');
  return dests;
}

function noop(name) {
  const src = tree(name);
  const dst = fresh(`${name}-mirror`);
  mkdirSync(dst, { recursive: true });
  ours(src, dst);
  const tools = {
    'upload-sync sync': () => ours(src, dst),
    'syncUploads() in process': () => inProcess('noop', src, dst),
    'find (stat floor)': () => floor(src, dst),
  };
  if (HAVE_RSYNC) tools['rsync -a'] = () => rsync(src, dst);
  row('no-op resync', name, sideBySide(tools), HAVE_RSYNC ? 'rsync -a' : 'find (stat floor)');
}

/** Times a call of the library inside a Node process that is already running (what an app pays). */
function inProcess(kind, src, dst, file) {
  const script = `
    import { syncUploads } from ${JSON.stringify(lib)};
    const { writeFileSync } = await import('node:fs');
    const opts = { source: ${JSON.stringify(src)}, dest: ${JSON.stringify(dst)}, force: true, lockDir: ${JSON.stringify(ENV.UPLOAD_SYNC_LOCK_DIR)} };
    await syncUploads({ ...opts, files: ['album-0/track-0.mp3'] }); // warm: modules loaded, lock folder made
    ${kind === 'full' ? `(await import('node:fs')).rmSync(${JSON.stringify(join(dst, 'album-0'))}, { recursive: true });` : ''}
    ${kind === 'upload' ? `writeFileSync(${JSON.stringify(join(src, file ?? ''))}, Buffer.alloc(48 * 1024, 7));` : ''}
    const t = process.hrtime.bigint();
    const r = await syncUploads(${kind === 'upload' ? `{ ...opts, files: [${JSON.stringify(file)}] }` : 'opts'});
    const ms = Number(process.hrtime.bigint() - t) / 1e6;
    if (r.status !== 'ok') throw new Error(JSON.stringify(r.errors.slice(0, 3)));
    process.stdout.write(String(ms));`;
  const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
  return Number(out);
}

function upload(name) {
  const src = tree(name);
  const dst = fresh(`${name}-mirror`);
  mkdirSync(dst, { recursive: true });
  ours(src, dst);
  let n = 0;
  const tools = {
    'syncUploads({ files }) in process': () => inProcess('upload', src, dst, `album-1/new-upload-${++n}.mp3`),
  };
  if (HAVE_RSYNC) {
    tools['spawn rsync -a over the tree'] = () => {
      writeFileSync(join(src, 'album-1', `new-rsync-${++n}.mp3`), Buffer.alloc(48 * 1024, 7));
      return rsync(src, dst);
    };
  }
  const results = sideBySide(tools);
  row('one new upload', name, results, HAVE_RSYNC ? 'spawn rsync -a over the tree' : undefined);
  return results['syncUploads({ files }) in process'];
}

/** Peak RSS (MB) of an initial sync into an empty mirror, alone in its own process (the sync after every `next build`). */
function rssOfSync(name) {
  const src = tree(name);
  const dst = fresh(`${name}-rss`);
  const script = `
    import { syncUploads } from ${JSON.stringify(lib)};
    const r = await syncUploads({ source: ${JSON.stringify(src)}, dest: ${JSON.stringify(dst)}, force: true, lockDir: ${JSON.stringify(ENV.UPLOAD_SYNC_LOCK_DIR)} });
    if (r.status !== 'ok') throw new Error(r.status);
    process.stdout.write(String(process.resourceUsage().maxRSS / 1024));`;
  const mb = Number(execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' }));
  const files = checkMirror(name, src, dst, 'syncUploads()'); // the tree may have grown by the upload cases
  rows.push(`| peak RSS, initial sync into an empty mirror (${files} files, counted exact) | ${name} | upload-sync | ${mb.toFixed(0)} MB | |`);
  console.error(`  peak RSS initial sync ${name}: ${mb.toFixed(0)} MB`);
}

/** Watcher latency (last write → arrival in dest) and the watch process's peak RSS. */
async function watch(name, { stableMs = 1000, uploads = 50 } = {}) {
  const src = tree(name);
  const dst = fresh(`${name}-watch`);
  const child = spawn(process.execPath, [cli, 'watch', '--source', src, '--dest', dst], {
    env: { ...process.env, ...ENV, UPLOAD_SYNC_STABLE_MS: String(stableMs) },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  const until = async (cond, what, limitMs = 600_000) => {
    const end = Date.now() + limitMs;
    while (!cond()) {
      if (Date.now() > end || child.exitCode !== null) throw new Error(`watch: timed out waiting for ${what}\n${out}`);
      await new Promise((r) => setTimeout(r, 5));
    }
  };
  const { existsSync, statSync, renameSync, openSync, writeSync, closeSync, readFileSync } = await import('node:fs');
  await until(() => existsSync(join(dst, 'album-0', 'track-0.mp3')) && /ready|watching/i.test(out), 'the first sync');
  const latencies = { renamed: [], slow: [] };
  for (let i = 0; i < uploads; i++) {
    const slow = i % 2 === 1;
    const rel = join(`album-${i % 50}`, `${slow ? 'slow' : 'renamed'}-${i}.mp3`);
    let lastWrite;
    if (slow) {
      // Written in 8 pieces with pauses shorter than stableMs, as a browser upload arrives.
      const fd = openSync(join(src, rel), 'w');
      for (let k = 0; k < 8; k++) {
        writeSync(fd, Buffer.alloc(64 * 1024, k));
        lastWrite = performance.now();
        await new Promise((r) => setTimeout(r, stableMs / 8));
      }
      closeSync(fd);
    } else {
      const tmp = join(src, `.upload-${i}.tmp`);
      writeFileSync(tmp, Buffer.alloc(512 * 1024, 3));
      renameSync(tmp, join(src, rel));
      lastWrite = performance.now();
    }
    await until(() => existsSync(join(dst, rel)) && statSync(join(dst, rel)).size === statSync(join(src, rel)).size, rel, 60_000);
    latencies[slow ? 'slow' : 'renamed'].push(performance.now() - lastWrite);
  }
  const status = readFileSync(`/proc/${child.pid}/status`, 'utf8');
  const hwm = Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? NaN) / 1024;
  child.kill('SIGTERM');
  await new Promise((r) => child.on('exit', r));
  for (const [kind, xs] of Object.entries(latencies)) {
    rows.push(`| watcher latency, ${kind} (stableMs ${stableMs}) | ${name} | p50 / p90 / p99 | ${fmt(pct(xs, 50))} / ${fmt(pct(xs, 90))} / ${fmt(pct(xs, 99))} | |`);
  }
  rows.push(`| peak RSS, upload-sync watch | ${name} | upload-sync | ${hwm.toFixed(0)} MB | |`);
  console.error(`  watch ${name}: ${JSON.stringify(Object.fromEntries(Object.entries(latencies).map(([k, xs]) => [k, [pct(xs, 50), pct(xs, 90)].map(Math.round)])))} RSS ${hwm.toFixed(0)} MB`);
}

// ---------------------------------------------------------------------------------------------

const cpuModel = cpus()[0]?.model ?? 'unknown';
console.error(`bench: ${cpus().length} cores (${cpuModel}), ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}, reps ${REPS}${values.small ? ', --small' : ''}`);
console.error(`bench: trees in ${work}`);

if (ONLY.has('copy')) for (const t of ['A', 'B']) initialCopy(t);
if (ONLY.has('noop')) for (const t of ['A', 'C']) noop(t);
if (ONLY.has('upload')) {
  const a = upload('A');
  const c = upload('C');
  rows.push(`| one new upload: time on C / time on A | | syncUploads({ files }) | ${(c / a).toFixed(2)}× | |`);
}
if (ONLY.has('watch')) await watch('C');
if (ONLY.has('wait')) await (await import('./upload-wait.mjs')).uploadWait({ work, cli, next: join(repo, 'dist', 'next.js'), env: ENV, scale: SCALE, rounds: Number(values['wait-pairs']), modes: WAIT_MODES, rows, fmt, pct, median });
if (ONLY.has('rss')) {
  rssOfSync('C');
  rssOfSync('D');
}
if (ONLY.has('upload-rss')) await uploadRss(work, rows, { sizeMB: values.small ? 200 : 2048 });
if (ONLY.has('upload-rss-next')) await uploadRssNext(work, rows, { sizeMB: values.small ? 200 : 2048 });
if (ONLY.has('pm2-reload-next')) await (await import('./pm2-reload.mjs')).pm2ReloadNext(work, rows);
if (ONLY.has('upload-fsync')) uploadFsync(work, rows);
if (ONLY.has('s3-put-rss')) await s3PutRss({ repo, work, rows, sizeMB: values.small ? 200 : 1024 });
if (ONLY.has('s3-save-rss')) await s3SaveRss({ repo, work, rows, sizeMB: values.small ? 200 : 1024 });
// At most 3 reps: each initial push writes tree A (~165 MB) into a memstore shared with the tests.
if (ONLY.has('s3-push')) await s3Push({ repo, work, cli, src: tree('A'), count: COUNTS.A, reps: Math.min(REPS, 3), noopReps: Math.max(REPS, 5), rows, row, env: ENV });
if (ONLY.has('route')) {
  const r = await routeBench({
    repo,
    work,
    app: values['route-app'],
    env: { ...process.env, ...ENV, NEXT_TELEMETRY_DISABLED: '1' },
    seconds: Number(values['route-seconds']),
    rounds: Math.max(REPS, 3),
    pages: values['route-pages'],
    proxy: values['route-proxy'],
    custom: values['route-custom'],
    preloadExperiment: values['route-preload-experiment'],
    preload: values['route-preload'] !== 'off',
  });
  const kase = `64 KiB ranged GETs, concurrency 32, one Next standalone server${values['route-custom'] ? ' (started by a custom server)' : ''}`;
  rows.push(`| ${kase} | | Next's static handler (public/ at startup) | ${r.static.toFixed(0)} req/s | |`);
  rows.push(`| ${kase} | | createUploadsRoute | ${r.route.toFixed(0)} req/s | ${(r.route / r.static).toFixed(2)}× static |`);
  rows.push(`| ${kase} | | a route handler answering 64 KiB from memory (Next's floor) | ${r.floor.toFixed(0)} req/s | ${(r.floor / r.static).toFixed(2)}× static; route ${(r.route / r.floor).toFixed(2)}× floor |`);
  const experiments = {
    'pages-floor': 'a pages/api handler answering 64 KiB from memory (that path\'s ceiling)',
    'pages-rewrite': 'the same pages/api handler behind a next.config rewrite',
    'pages-raw': 'a pages/api handler doing the file work (open, fstat, read, close), behind a rewrite',
    'pages-raw-direct': 'the same pages/api file handler at its /api URL (no rewrite)',
    'proxy-floor': 'proxy.ts answering 64 KiB from memory',
    'custom-raw': 'a custom server (unsupported with standalone) doing the file work before Next',
    'preload-raw': 'server.js under node -r: a preload doing the file work before Next\'s listener',
    'preload-route': 'the same preload calling createUploadsRoute\'s GET (Request in, Response out)',
  };
  for (const [name, label] of Object.entries(experiments)) {
    if (r[name] !== undefined) rows.push(`| ${kase} | | ${label} | ${r[name].toFixed(0)} req/s | ${(r[name] / r.static).toFixed(2)}× static |`);
  }
  if (r.preload !== undefined) rows.push(`| ${kase} | | createUploadsRoute through \`node -r upload-sync/preload\` (before Next's pipeline) | ${r.preload.toFixed(0)} req/s | ${(r.preload / r.static).toFixed(2)}× static (goal ≥ 0.8×) |`);
  console.error(`  route: static ${r.static.toFixed(0)}, route ${r.route.toFixed(0)}, floor ${r.floor.toFixed(0)}${r.preload === undefined ? '' : `, preload ${r.preload.toFixed(0)}`} req/s`);
}
if (mirrorsChecked > 0) console.error(`bench: ${mirrorsChecked} initial-copy mirrors counted, every one exact`);

const versions = [
  `Node ${process.version}`,
  HAVE_RSYNC ? execFileSync('rsync', ['--version'], { encoding: 'utf8' }).split('\n')[0] : 'rsync: not installed',
  execFileSync('cp', ['--version'], { encoding: 'utf8' }).split('\n')[0],
].join('; ');
console.log(`Machine: ${cpus().length} cores (${cpuModel}), ${(totalmem() / 2 ** 30).toFixed(0)} GiB; ${versions}; medians of ${REPS} runs, tools alternating.
Trees: A ${COUNTS.A} files of 1–32 KB in 200 folders; B ${COUNTS.B} files of 8 MiB; C ${COUNTS.C} files of 0.2–4 KB in 1000 folders; D ${COUNTS.D} files of 0.2–2 KB in 3000 folders (RSS only).
Every initial copy's mirror was counted (files and bytes, with find) after each repetition: ${mirrorsChecked} mirrors, all exact.

| case | tree | tool | median | ratio |
| --- | --- | --- | --- | --- |
${rows.join('\n')}`);

/** `--wait-modes`: `on` and `off` always, then `floor` and `burn<µs>` calibrations. */
function waitModes(value) {
  const modes = value.split(',').map((m) => m.trim()).filter(Boolean);
  const bad = modes.filter((m) => !['on', 'off', 'floor'].includes(m) && !/^burn[1-9][0-9]*$/.test(m));
  if (bad.length > 0 || !modes.includes('on') || !modes.includes('off')) {
    throw new Error(`--wait-modes: expected on,off and any of floor, burn<µs> (e.g. burn150), got ${JSON.stringify(value)}`);
  }
  return [...new Set(modes)];
}
