// Upload cases of `npm run bench` (issue 11, points 2 and 3):
//   upload-rss    RSS growth of a server receiving one 2 GB multipart upload through saveMultipart
//                 (bench/upload-server.mjs: plain node:http turning the request into a web Request
//                 as Next.js does, the built package; not the example app, whose build takes minutes)
//   upload-rss-next  the same through examples/next-app built standalone (opt-in: it packs the
//                 library, installs the app's dependencies from the npm cache and runs next build)
//   upload-fsync  what the fsyncs of saveUpload cost: the same uploads with fsync on and off
import { execFileSync, spawn } from 'node:child_process';
import { request } from 'node:http';
import { mkdirSync, readFileSync, rmSync, statfsSync } from 'node:fs';
import { createServer } from 'node:net';
import { createInterface } from 'node:readline';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildExampleApp } from './example-app.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const next = join(here, '..', 'dist', 'next.js');
const MB = 1024 * 1024;

const pct = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)];
};

/** Starts the upload server; resolves with its port, a way to wait for its next logged outcome, and stop. */
async function startServer(options) {
  const child = spawn(process.execPath, [join(here, 'upload-server.mjs')], {
    env: { ...process.env, UPLOAD_OPTIONS: JSON.stringify(options) },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const events = [];
  const waiters = [];
  createInterface({ input: child.stdout }).on('line', (line) => {
    events.push(JSON.parse(line));
    while (waiters.length > 0 && events.length > 0) waiters.shift()(events.shift());
  });
  const next = () => new Promise((resolve) => (events.length > 0 ? resolve(events.shift()) : waiters.push(resolve)));
  const { port } = await next();
  const get = (path) => fetch(`http://127.0.0.1:${port}${path}`).then((r) => r.json());
  const stop = () => new Promise((resolve) => {
    child.once('exit', resolve);
    child.kill('SIGTERM');
  });
  return { port, next, get, stop };
}

/** POSTs one multipart body of `size` bytes of file data, generated as it is sent (the client holds 1 MiB). */
function postFile(port, size, name) {
  const boundary = '----upload-sync-bench';
  const head = Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="${name}"\r\nContent-Type: audio/mpeg\r\n\r\n`);
  const tail = Buffer.from(`\r\n--${boundary}--\r\n`);
  const chunk = Buffer.alloc(MB, 0x5a);
  return new Promise((resolve, reject) => {
    const req = request({
      host: '127.0.0.1', port, method: 'POST', path: '/api/upload',
      headers: { 'content-type': `multipart/form-data; boundary=${boundary}`, 'content-length': String(head.length + size + tail.length) },
    }, (res) => {
      let text = '';
      res.on('data', (d) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode, body: text }));
    });
    req.on('error', reject);
    req.write(head);
    let sent = 0;
    const pump = () => {
      while (sent < size) {
        const n = Math.min(chunk.length, size - sent);
        sent += n;
        if (!req.write(n === chunk.length ? chunk : chunk.subarray(0, n))) return void req.once('drain', pump);
      }
      req.end(tail);
    };
    pump();
  });
}

/** RSS growth of the server over one upload of `sizeMB` (after a small warm-up upload loaded the parser). */
export async function uploadRss(work, rows, { sizeMB = 2048 } = {}) {
  const root = join(work, 'upload-rss');
  mkdirSync(root, { recursive: true });
  const free = statfsSync(root);
  if (free.bavail * free.bsize < (sizeMB + 1024) * MB) {
    console.error(`  upload-rss: skipped, under ${sizeMB + 1024} MB free in ${root}`);
    return;
  }
  // sync: false: the mirror's copy of 2 GB would add its own disk time, not the upload's memory.
  const server = await startServer({ root, sync: false, maxBytes: 4 * 1024 * MB });
  try {
    await postFile(server.port, 1000, 'warm-up.mp3');
    await server.next();
    await server.get('/rss/reset');
    const before = (await server.get('/rss')).rss;
    const started = performance.now();
    const res = await postFile(server.port, sizeMB * MB, 'big.mp3');
    const seconds = (performance.now() - started) / 1000;
    const outcome = await server.next();
    if (res.status !== 201 || outcome.files?.[0]?.size !== sizeMB * MB) throw new Error(`upload-rss: the upload failed: ${res.status} ${res.body}`);
    const { peak, rss: after } = await server.get('/rss');
    const growth = (peak - before) / MB;
    rows.push(`| RSS growth of a server receiving one ${sizeMB} MB upload (saveMultipart, plain node:http server; goal ≤ 64 MB) | | peak − before / after − before | ${growth.toFixed(1)} MB / ${((after - before) / MB).toFixed(1)} MB | ${(sizeMB / seconds).toFixed(0)} MB/s |`);
    console.error(`  upload-rss: ${sizeMB} MB in ${seconds.toFixed(1)} s, RSS ${(before / MB).toFixed(0)} MB before, peak +${growth.toFixed(1)} MB, after +${((after - before) / MB).toFixed(1)} MB`);
  } finally {
    await server.stop();
    rmSync(root, { recursive: true, force: true });
  }
}

/** saveUpload's time with and without its fsyncs, alternating, in one process of its own. */
export function uploadFsync(work, rows, { count = 40 } = {}) {
  for (const size of [50 * 1024, 5 * MB]) {
    const root = join(work, `upload-fsync-${size}`);
    const script = `
      const { saveUpload } = await import(${JSON.stringify(next)});
      const bytes = new Uint8Array(${size}).fill(7);
      const times = { on: [], off: [] };
      for (let i = 0; i < ${count * 2}; i++) {
        const fsync = i % 2 === 0;
        const t = performance.now();
        await saveUpload(bytes, { root: ${JSON.stringify(root)}, originalName: 'a.mp3', sync: false, fsync });
        times[fsync ? 'on' : 'off'].push(performance.now() - t);
      }
      process.stdout.write(JSON.stringify(times));`;
    const times = JSON.parse(execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' }));
    rmSync(root, { recursive: true, force: true });
    const fmt = (xs) => `${pct(xs, 50).toFixed(1)} / ${pct(xs, 99).toFixed(1)} ms`;
    const label = size < MB ? `${size / 1024} KB` : `${size / MB} MB`;
    rows.push(`| saveUpload of ${label}, fsync on vs off (p50 / p99, ${count} each) | | on / off | ${fmt(times.on)} / ${fmt(times.off)} | ${(pct(times.on, 50) / pct(times.off, 50)).toFixed(1)}× |`);
    console.error(`  upload-fsync ${label}: on ${fmt(times.on)}, off ${fmt(times.off)}`);
  }
}

/** RSS growth of the example app's standalone server (one Next worker) receiving one upload of `sizeMB`. */
export async function uploadRssNext(work, rows, { sizeMB = 2048 } = {}) {
  const base = join(work, 'upload-rss-next');
  const app = join(base, 'app');
  mkdirSync(base, { recursive: true });
  const free = statfsSync(base);
  if (free.bavail * free.bsize < (sizeMB + 2048) * MB) {
    console.error(`  upload-rss-next: skipped, under ${sizeMB + 2048} MB free in ${base}`);
    return;
  }
  const builtMs = buildExampleApp(base, app);
  console.error(`  upload-rss-next: app built in ${(builtMs / 1000).toFixed(0)} s`);
  const port = await new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port: p } = s.address();
      s.close(() => resolve(p));
    });
  });
  // The mirror's copy of the upload is off (DISABLE_UPLOAD_SYNC): it would add its own disk time.
  const child = spawn(process.execPath, ['server.js'], {
    cwd: join(app, '.next', 'standalone'),
    env: { ...process.env, PORT: String(port), HOSTNAME: '127.0.0.1', NEXT_TELEMETRY_DISABLED: '1', DISABLE_UPLOAD_SYNC: 'true', UPLOAD_MAX_BYTES: String(4 * 1024 * MB) },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const rss = () => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'))[1]) * 1024;
  try {
    for (let up = false; !up; ) up = await fetch(`http://127.0.0.1:${port}/`).then((r) => r.ok, () => new Promise((r) => setTimeout(() => r(false), 100)));
    const warm = await postFile(port, 1000, 'warm-up.mp3');
    if (warm.status !== 201) throw new Error(`upload-rss-next: warm-up upload failed: ${warm.status} ${warm.body}`);
    const before = rss();
    let peak = before;
    const sampler = setInterval(() => (peak = Math.max(peak, rss())), 10);
    const t = performance.now();
    const res = await postFile(port, sizeMB * MB, 'big.mp3');
    const seconds = (performance.now() - t) / 1000;
    clearInterval(sampler);
    const after = rss();
    if (res.status !== 201 || JSON.parse(res.body).size !== sizeMB * MB) throw new Error(`upload-rss-next: the upload failed: ${res.status} ${res.body}`);
    const growth = (peak - before) / MB;
    rows.push(`| RSS growth of the example app (next start, standalone) receiving one ${sizeMB} MB upload (goal ≤ 64 MB) | | peak − before / after − before | ${growth.toFixed(1)} MB / ${((after - before) / MB).toFixed(1)} MB | ${(sizeMB / seconds).toFixed(0)} MB/s |`);
    console.error(`  upload-rss-next: ${sizeMB} MB in ${seconds.toFixed(1)} s, RSS ${(before / MB).toFixed(0)} MB before, peak +${growth.toFixed(1)} MB, after +${((after - before) / MB).toFixed(1)} MB`);
  } finally {
    child.kill('SIGTERM');
    await new Promise((r) => (child.exitCode !== null ? r() : child.once('exit', r)));
    rmSync(base, { recursive: true, force: true });
  }
}
