// `npm run bench -- --only wait` (issue 11, point 1): does an upload wait for a full sync or a big
// copy in another process? One upload of 50 KB at a time through `saveUpload` (the built package),
// in a process of its own, while another process runs `upload-sync sync`: an initial sync of 50,000
// files into an empty mirror (every deploy), or the copy of one 1.5 GB file (the watcher on a big
// upload). Each with the upload's sync on, and with `sync: false`, which waits for nothing and so
// measures only the machine being busy; and on an idle machine. Goal: p99 with the sync on ≤ 1.2×
// p99 with it off (the median over rounds of runs), and ≤ 250 ms added over the idle machine.
// A third mode in each round, `floor`, saves with `sync: false` and then copies the file into the
// mirror by hand (copyFileSync to a temp name, rename): what a mirror publish costs at the least,
// so that the library's own share of the ratio shows (floor / off next to on / off).
// `--wait-modes` adds calibration modes: `burn<µs>` saves with `sync: false`, then spins on the CPU
// for that long (no I/O): what that much CPU per upload alone does to the p99 on this machine.
// Each mode's CPU per upload (the uploader's user + system time over its uploads) is printed too.
import { execFileSync, spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, readdirSync, renameSync, utimesSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';

const UPLOADER = `
import { copyFileSync, existsSync, mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { saveUpload } from ${'__NEXT__'};
const [source, dest, sync, goFile, stopFile, cap, outFile] = process.argv.slice(1);
const body = Buffer.alloc(50 * 1024, 7);
const ms = [];
const options = { source, dest, force: true, folder: 'incoming', sync: sync === 'on', allowedTypes: 'audio' };
const burn = sync.startsWith('burn') ? BigInt(Number(sync.slice(4)) * 1000) : 0n; // ns
// Warm: modules loaded, the mirror's mtime probed; then wait for the background run to be going.
for (let i = 0; i < 3; i++) await saveUpload(body, { ...options, originalName: 'warm.mp3' });
process.stdout.write('ready\\n');
while (!existsSync(goFile)) await new Promise((r) => setTimeout(r, 1));
const cpu0 = process.cpuUsage();
for (let i = 0; i < Number(cap) && !existsSync(stopFile); i++) {
  const t = process.hrtime.bigint();
  const saved = await saveUpload(body, { ...options, originalName: 'up.mp3' });
  if (burn > 0) for (const until = process.hrtime.bigint() + burn; process.hrtime.bigint() < until; );
  if (sync === 'floor') {
    // The least any mirror publish costs: a bare copy to a temp name and a rename, after the save.
    const to = join(dest, saved.name);
    mkdirSync(dirname(to), { recursive: true });
    copyFileSync(saved.path, to + '.floor.tmp');
    renameSync(to + '.floor.tmp', to);
  }
  ms.push(Number(process.hrtime.bigint() - t) / 1e6);
  if (saved.sync && saved.sync.status !== 'ok') throw new Error('sync ' + saved.sync.status + ': ' + JSON.stringify(saved.sync.errors.slice(0, 2)));
}
const cpu = process.cpuUsage(cpu0);
writeFileSync(outFile, JSON.stringify({ ms, cpuMs: (cpu.user + cpu.system) / 1000 / Math.max(1, ms.length) }));
`;

/**
 * @param {{ work: string, cli: string, next: string, env: Record<string, string>, scale: number, rounds: number, rows: string[], fmt: (ms: number) => string, pct: (xs: number[], p: number) => number, median: (xs: number[]) => number }} o
 */
export async function uploadWait(o) {
  const many = makeMany(join(o.work, 'wait-many'), Math.round(50_000 * o.scale), 500);
  const big = makeBig(join(o.work, 'wait-big'), Math.round(1.5 * 2 ** 30 * o.scale));
  const script = UPLOADER.replace(`${'__NEXT__'}`, JSON.stringify(o.next));
  let seq = 0;
  const fresh = (name) => join(o.work, `wait-${name}-${++seq}`);

  /** Uploads one at a time until the background run ends (or `cap`); their latencies in ms. */
  async function uploads({ source, background, sync, cap }) {
    const dest = fresh('mirror');
    mkdirSync(dest, { recursive: true });
    const stopFile = fresh('stop');
    const goFile = fresh('go');
    const outFile = fresh('out.json');
    const up = spawn(process.execPath, ['--input-type=module', '-e', script, source, dest, sync, goFile, stopFile, String(cap), outFile], { env: { ...process.env, ...o.env }, stdio: ['ignore', 'pipe', 'inherit'] });
    const upDone = new Promise((resolve, reject) => up.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`uploader failed (${code})`)))));
    await new Promise((resolve) => up.stdout.once('data', resolve)); // warmed up
    let bg = null;
    if (background) {
      bg = spawn(process.execPath, [o.cli, 'sync', '--source', source, '--dest', dest], { env: { ...process.env, ...o.env }, stdio: ['ignore', 'ignore', 'pipe'] });
      let err = '';
      bg.stderr.on('data', (d) => (err += d));
      bg.done = new Promise((resolve, reject) => bg.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`background sync failed (${code}): ${err}`)))));
      // Started: it holds the lock and has begun filling dest (a temp file, for the big copy).
      while (!(existsSync(dest) && readdirSync(dest).length > 0)) await new Promise((r) => setTimeout(r, 2));
    }
    writeFileSync(goFile, '');
    if (bg) {
      await bg.done;
      writeFileSync(stopFile, '');
    }
    await upDone;
    // The run's uploads leave the source (a rename, no deletion: see BENCHMARKS.md on this disk),
    // so that every background run copies the same tree, not the tree plus every earlier run's uploads.
    renameSync(join(source, 'incoming'), fresh('uploaded'));
    return JSON.parse(readFileSync(outFile, 'utf8')); // { ms: per upload, cpuMs: CPU per upload }
  }

  const results = {};
  const ratios = {};
  const others = {}; // label → mode → p99 / off per round (floor, burn…)
  const cpu = {}; // label|mode → CPU ms per upload per run
  const modes = o.modes ?? ['on', 'off', 'floor'];
  const cases = [
    ['idle machine', null],
    [`initial sync of ${Math.round(50_000 * o.scale)} files in another process`, many],
    [`copy of one ${(1.5 * o.scale).toFixed(2)} GB file in another process`, big],
  ];
  for (const [label, source] of cases) {
    // Rounds of runs (sync on, sync off and the floor, each first in turn): each round gives one
    // ratio of p99s, and the goal is judged on their median (a p99 of ~12 ms moves by 3–4 ms from
    // one background run to the next, so one pooled figure landed on either side of the goal).
    // Each run starts from a flushed disk: what the run before left in the page cache to write
    // back (1.5 GB after a big copy) weighed more than the sync itself.
    for (let round = 0; round < (source === null ? 1 : o.rounds); round++) {
      const p99 = {};
      // Every mode comes first, in the middle and last in turn.
      const order = source === null ? ['on', 'off'] : modes.map((_, i) => modes[(i + round) % modes.length]);
      for (const sync of order) {
        execFileSync('sync');
        const { ms: got, cpuMs } = await uploads({ source: source ?? many, background: source !== null, sync, cap: source === null ? 200 : 5000 });
        (cpu[`${label}|${sync}`] ??= []).push(cpuMs);
        if (got.length === 0) throw new Error(`wait: no upload ran during ${label} (it ended first): use a larger tree`);
        results[`${label}|${sync}`] = [...(results[`${label}|${sync}`] ?? []), ...got];
        p99[sync] = o.pct(got, 99);
      }
      (ratios[label] ??= []).push(p99.on / p99.off);
      for (const mode of order) if (mode !== 'on' && mode !== 'off') ((others[label] ??= {})[mode] ??= []).push(p99[mode] / p99.off);
    }
    for (const sync of source === null ? ['on', 'off'] : modes) {
      const ms = results[`${label}|${sync}`];
      if (!ms) continue;
      const perUpload = o.median(cpu[`${label}|${sync}`]) * 1000;
      const line = `| upload of 50 KB, one at a time, during: ${label} | sync ${sync} | ${ms.length} uploads | p50 ${o.fmt(o.pct(ms, 50))} / p99 ${o.fmt(o.pct(ms, 99))}; CPU ${perUpload.toFixed(0)} µs per upload | |`;
      o.rows.push(line);
      console.error(`  wait: ${label}, sync ${sync}: ${ms.length} uploads, p50 ${o.fmt(o.pct(ms, 50))}, p99 ${o.fmt(o.pct(ms, 99))}, CPU ${perUpload.toFixed(0)} µs per upload`);
    }
  }
  const idle = o.pct(results['idle machine|on'], 99);
  for (const [label, source] of cases) {
    if (source === null) continue;
    const on = o.pct(results[`${label}|on`], 99);
    const each = ratios[label].map((r) => `${r.toFixed(2)}×`).join(', ');
    const rest = Object.entries(others[label] ?? {}).map(([mode, rs]) => [mode, rs.map((r) => `${r.toFixed(2)}×`).join(', '), o.median(rs)]);
    o.rows.push(`| upload p99, sync on / sync off, during: ${label} | | ${ratios[label].length} rounds of runs: ${each} | median ${o.median(ratios[label]).toFixed(2)}× (goal ≤ 1.2×); +${o.fmt(on - idle)} over idle (goal ≤ 250 ms) | |`);
    for (const [mode, list, med] of rest) {
      const what = mode === 'floor' ? 'a bare copy after the save / sync off (the floor of any mirror publish)' : `${mode.slice(4)} µs of CPU spun after the save / sync off (calibration)`;
      o.rows.push(`| upload p99, ${what}, during: ${label} | | ${ratios[label].length} rounds: ${list} | median ${med.toFixed(2)}× (reference) | |`);
    }
    console.error(`  wait: ${label}: p99 on / off per round ${each}; median ${o.median(ratios[label]).toFixed(2)}×${rest.map(([mode, list, med]) => `; ${mode} / off ${list}; median ${med.toFixed(2)}×`).join('')}`);
  }
}


function rng(seed) {
  let s = seed >>> 0;
  return () => ((s = (s * 1664525 + 1013904223) >>> 0) / 2 ** 32);
}

function makeMany(root, files, folders) {
  const rand = rng(files);
  const block = Buffer.alloc(4000, 5);
  const past = new Date(Date.now() - 86_400_000);
  for (let f = 0; f < folders; f++) mkdirSync(join(root, `album-${f}`), { recursive: true });
  for (let i = 0; i < files; i++) {
    const path = join(root, `album-${i % folders}`, `track-${i}.mp3`);
    writeFileSync(path, block.subarray(0, Math.floor(200 + rand() * 3800)));
    utimesSync(path, past, past);
  }
  return root;
}

function makeBig(root, bytes) {
  mkdirSync(root, { recursive: true });
  const fd = openSync(join(root, 'big.wav'), 'w');
  const chunk = Buffer.alloc(8 * 2 ** 20, 9);
  for (let left = bytes; left > 0; left -= chunk.length) writeSync(fd, chunk, 0, Math.min(left, chunk.length));
  closeSync(fd);
  return root;
}
