// `npm run bench -- --only pm2-reload-next` (opt-in: it installs the example app's dependencies and
// builds it): `pm2 reload web` of examples/next-app built standalone, run by a real PM2 (from
// node_modules) with examples/pm2's ecosystem file, under load on keep-alive connections (uploads
// that each take ~4 s, and two GET loops). Side by side in one run: the ecosystem as shipped, and
// without its graceful-http.cjs preload. Counts failed requests and times the reload.
import { execFile } from 'node:child_process';
import { copyFileSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { createServer } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildExampleApp } from './example-app.mjs';
import { promisify } from 'node:util';

const here = dirname(fileURLToPath(import.meta.url));
const repo = join(here, '..');
const PM2 = join(repo, 'node_modules', '.bin', 'pm2');
const BOUNDARY = 'bench-pm2-reload';
const CHUNK = 16 * 1024;
const UPLOADS = 6;
const PIECES = 20;
const EVERY_MS = 200;

const freePort = () =>
  new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
const pause = (ms) => new Promise((r) => setTimeout(r, ms));

/** One request; a POST is a multipart upload sent in PIECES pieces, EVERY_MS apart (a slow connection). */
function ask(port, agent, method) {
  return new Promise((resolve, reject) => {
    const head = Buffer.from(`--${BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="bench.mp3"\r\nContent-Type: audio/mpeg\r\n\r\n`);
    const tail = Buffer.from(`\r\n--${BOUNDARY}--\r\n`);
    const headers = method === 'POST' ? { 'content-type': `multipart/form-data; boundary=${BOUNDARY}`, 'content-length': String(head.length + PIECES * CHUNK + tail.length) } : {};
    const req = request({ host: '127.0.0.1', port, method, path: method === 'POST' ? '/api/upload' : '/', agent, headers }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode));
      res.on('error', reject);
    });
    req.on('error', reject);
    if (method === 'GET') return void req.end();
    req.write(head);
    let sent = 0;
    const next = () => {
      if (sent++ === PIECES) return void req.end(tail);
      req.write(Buffer.alloc(CHUNK, 1));
      setTimeout(next, EVERY_MS);
    };
    next();
  });
}

async function reloadUnderLoad(app, env, port) {
  const pm2 = (...args) => promisify(execFile)(PM2, args, { cwd: app, env });
  await pm2('start', 'ecosystem.config.cjs', '--only', 'web');
  const agent = new Agent({ keepAlive: true, maxSockets: 64 });
  try {
    for (let up = false; !up; ) up = await ask(port, agent, 'GET').then((s) => s === 200, () => pause(100).then(() => false));
    const failures = [];
    let ok = 0;
    let stop = false;
    const client = async (method) => {
      while (!stop) {
        try {
          const status = await ask(port, agent, method);
          if (status >= 400) failures.push(`${method} ${status}`);
          else ok++;
        } catch (err) {
          failures.push(`${method} ${err.code ?? err.message}`);
        }
        if (method === 'GET') await pause(20);
      }
    };
    // Uploads start spread over one upload's length, so some are always in flight.
    const clients = [...Array.from({ length: UPLOADS }, (_, i) => pause((i * PIECES * EVERY_MS) / UPLOADS).then(() => client('POST'))), client('GET'), client('GET')];
    await pause(PIECES * EVERY_MS + 1000);
    const started = performance.now();
    await pm2('reload', 'web');
    const reloadMs = performance.now() - started;
    await pause(PIECES * EVERY_MS + 1000); // the new workers under the same load
    stop = true;
    await Promise.all(clients);
    return { reloadMs, ok, failures };
  } finally {
    agent.destroy();
    await pm2('delete', 'web').catch(() => undefined);
  }
}

export async function pm2ReloadNext(work, rows) {
  const base = join(work, 'pm2-reload-next');
  const app = join(base, 'app');
  mkdirSync(base, { recursive: true });
  const env = { ...process.env, NEXT_TELEMETRY_DISABLED: '1', PM2_HOME: join(base, 'pm2'), UPLOAD_SYNC_LOCK_DIR: join(base, 'locks') };
  const builtMs = buildExampleApp(base, app, env);
  console.error(`  pm2-reload-next: app built in ${(builtMs / 1000).toFixed(0)} s`);
  const port = await freePort();
  const shipped = readFileSync(join(repo, 'examples', 'pm2', 'ecosystem.config.cjs'), 'utf8').replace("PORT: '3000'", `PORT: '${port}'`);
  copyFileSync(join(repo, 'examples', 'pm2', 'graceful-http.cjs'), join(app, 'graceful-http.cjs'));
  const results = {};
  try {
    for (const [label, ecosystem] of [
      ['as shipped', shipped],
      ['without graceful-http.cjs', shipped.replace(/\n\s*node_args: \[[^\]]*\],/, '')],
    ]) {
      writeFileSync(join(app, 'ecosystem.config.cjs'), ecosystem);
      const r = await reloadUnderLoad(app, env, port);
      results[label] = r;
      console.error(`  pm2-reload-next (${label}): reload ${(r.reloadMs / 1000).toFixed(1)} s, ${r.ok} answered, ${r.failures.length} failed${r.failures.length ? ` (${[...new Set(r.failures)].join(', ')})` : ''}`);
    }
  } finally {
    await promisify(execFile)(PM2, ['kill'], { cwd: app, env }).catch(() => undefined);
    rmSync(base, { recursive: true, force: true });
  }
  const cell = (r) => `${r.failures.length} failed of ${r.ok + r.failures.length}, reload ${(r.reloadMs / 1000).toFixed(1)} s`;
  rows.push(`| pm2 reload web, examples/next-app standalone under keep-alive load (${UPLOADS} uploads of ~${(PIECES * EVERY_MS) / 1000} s, 2 GET loops); goal: 0 failed | | examples/pm2 as shipped / without graceful-http.cjs | ${cell(results['as shipped'])} / ${cell(results['without graceful-http.cjs'])} | |`);
}
