// The `route` case of bench/run.mjs (issue 11 point 9): requests/s of 64 KiB ranged GETs (what an
// `<audio>` element sends while seeking) at concurrency 32, through `createUploadsRoute` and through
// Next's own static handler (`send` on a file that was in public/ at startup), on the same
// standalone server of examples/next-app, side by side, alternating. A third column is Next's floor
// for any route handler: one that answers the same 206 from a buffer in memory, without touching
// the disk (added to the bench's copy of the app only). The route cannot beat that floor.
//
// Experiments (issue 11 point 9: can another integration reach 0.8× static?), each an option that
// adds files to the bench's copy of the app only: `pages` (Pages Router API routes, with and
// without a rewrite), `proxy` (Next 16's proxy.ts answering from memory), `custom` (a custom
// server in front of Next; not supported by Next with standalone output), `preloadExperiment`
// (standalone's server.js under `node -r`, a hand-written Node-level handler before Next's
// listener). See BENCHMARKS.md.
//
// `preload: true` (the default of bench/run.mjs; `--route-preload off`) adds the supported form of
// that last one: server.js started with `--require upload-sync/preload` (the app's installed
// package) and UPLOAD_SYNC_URL_PREFIX=/uploads-preload, so the same file is served by
// createUploadsRoute through the preload there and through Next at /uploads.
//
// The app is built as a user builds it (npm pack → a copy of the example → npm install → its build
// script), as __tests__/next.e2e.test.ts does. `--route-app DIR` reuses a built copy (kept with
// `--keep-route-app`), for profiling: `node --cpu-prof` can then be put in front of server.js by
// hand.
import { spawn, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { createRequire } from 'node:module';
import { createServer } from 'node:net';
import { join, relative, sep } from 'node:path';

const RANGE = 64 * 1024;
const FILE_SIZE = 8 * 2 ** 20;

function must(cmd, args, cwd, env) {
  const r = spawnSync(cmd, args, { cwd, env, encoding: 'utf8', maxBuffer: 64 * 2 ** 20 });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status}):\n${r.stdout?.slice(-3000)}\n${r.stderr?.slice(-3000)}`);
  return r.stdout;
}

/**
 * The `--route-pages` experiment: Pages Router API routes next to the App Router (they coexist in
 * one app), as a user could add them. `pages-floor` answers 64 KiB from memory through `pages/api`
 * (that path's ceiling); `pages-rewrite` is the same handler behind a `next.config` rewrite from a
 * public URL (what serving `/uploads/*` from `pages/api` needs); `pages-raw` does the file work of
 * a real handler with Node's req/res (open `O_NOFOLLOW|O_NONBLOCK`, fstat, one read, close, the
 * route's headers) but none of its path rules or conditionals, behind the same kind of rewrite,
 * and `pages-raw-direct` is that handler at its `/api/...` URL: an upper bound for a real
 * `pages/api` integration.
 */
function addPagesApi(app) {
  const api = join(app, 'pages', 'api');
  mkdirSync(join(api, 'bench-pages-floor'), { recursive: true });
  mkdirSync(join(api, 'bench-pages-raw'), { recursive: true });
  writeFileSync(
    join(api, 'bench-pages-floor', '[...path].ts'),
    `import type { NextApiRequest, NextApiResponse } from 'next';
const BYTES = Buffer.alloc(${RANGE});
export const config = { api: { bodyParser: false, responseLimit: false } };
export default function handler(req: NextApiRequest, res: NextApiResponse): void {
  res.writeHead(206, { 'Content-Type': 'audio/mpeg', 'Content-Range': 'bytes 65536-131071/${FILE_SIZE}', 'Content-Length': '${RANGE}' });
  res.end(BYTES);
}
`,
  );
  writeFileSync(
    join(api, 'bench-pages-raw', '[...path].ts'),
    `import type { NextApiRequest, NextApiResponse } from 'next';
import { constants } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
export const config = { api: { bodyParser: false, responseLimit: false } };
const FLAGS = constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK;
const BASE = join(process.cwd(), '..', '..', 'public', 'uploads');
export default async function handler(req: NextApiRequest, res: NextApiResponse): Promise<void> {
  const name = decodeURIComponent(String(req.url).split('?')[0]!.split('/').pop()!);
  const fh = await open(join(BASE, name), FLAGS);
  try {
    const st = await fh.stat();
    const m = /^bytes=(\\d+)-(\\d+)$/.exec(String(req.headers.range));
    const start = Number(m![1]), end = Math.min(Number(m![2]), st.size - 1);
    const buf = Buffer.allocUnsafe(end - start + 1);
    await fh.read(buf, 0, buf.length, start);
    res.writeHead(206, {
      'Accept-Ranges': 'bytes', 'Cache-Control': 'public, max-age=0, no-transform', 'X-Content-Type-Options': 'nosniff',
      ETag: '"' + st.size.toString(16) + '-' + st.mtime.getTime().toString(16) + '"', 'Last-Modified': st.mtime.toUTCString(),
      'Content-Type': 'audio/mpeg', 'Content-Length': String(buf.length), 'Content-Range': 'bytes ' + start + '-' + end + '/' + st.size,
    });
    res.end(buf);
  } finally {
    await fh.close();
  }
}
`,
  );
  const configPath = join(app, 'next.config.mjs');
  const config = readFileSync(configPath, 'utf8');
  const withRewrites = config.replace(
    "output: 'standalone',",
    "output: 'standalone',\n  async rewrites() {\n    return [\n      { source: '/bench-pages-rewrite/:path*', destination: '/api/bench-pages-floor/:path*' },\n      { source: '/bench-pages-raw/:path*', destination: '/api/bench-pages-raw/:path*' },\n    ];\n  },",
  );
  if (withRewrites === config) throw new Error('next.config.mjs: no output: "standalone" line to add rewrites after');
  writeFileSync(configPath, withRewrites);
}

/**
 * The `--route-proxy` experiment: Next 16's `proxy.ts` (formerly middleware) runs before Next's
 * filesystem routes; this one answers 64 KiB from memory for `/bench-proxy/*` (that path's
 * ceiling; any other URL passes through).
 */
function addProxy(app) {
  writeFileSync(
    join(app, 'proxy.ts'),
    `const BYTES = new Uint8Array(${RANGE});
export function proxy(): Response {
  return new Response(BYTES, { status: 206, headers: { 'Content-Type': 'audio/mpeg', 'Content-Range': 'bytes 65536-131071/${FILE_SIZE}' } });
}
export const config = { matcher: '/bench-proxy/:path*' };
`,
  );
}

/**
 * CommonJS source of `raw(req, res)`: the file work of a real handler with Node's req/res (open
 * `O_NOFOLLOW|O_NONBLOCK`, fstat, one read, close, the route's headers), but none of its path rules
 * or conditionals. Used by the custom-server and preload experiments, in .next/standalone.
 */
const RAW_HANDLER_CJS = `const fs = require('node:fs/promises');
const { constants } = require('node:fs');
const { join } = require('node:path');
const FLAGS = constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK;
const BASE = join(__dirname, '..', '..', 'public', 'uploads');
async function raw(req, res) {
  const name = decodeURIComponent(req.url.split('?')[0].split('/').pop());
  const fh = await fs.open(join(BASE, name), FLAGS);
  try {
    const st = await fh.stat();
    const m = /^bytes=(\\d+)-(\\d+)$/.exec(String(req.headers.range));
    const start = Number(m[1]), end = Math.min(Number(m[2]), st.size - 1);
    const buf = Buffer.allocUnsafe(end - start + 1);
    await fh.read(buf, 0, buf.length, start);
    res.writeHead(206, {
      'Accept-Ranges': 'bytes', 'Cache-Control': 'public, max-age=0, no-transform', 'X-Content-Type-Options': 'nosniff',
      ETag: '"' + st.size.toString(16) + '-' + st.mtime.getTime().toString(16) + '"', 'Last-Modified': st.mtime.toUTCString(),
      'Content-Type': 'audio/mpeg', 'Content-Length': String(buf.length), 'Content-Range': 'bytes ' + start + '-' + end + '/' + st.size,
    });
    res.end(buf);
  } finally {
    await fh.close();
  }
}
`;

/**
 * The `--route-custom` experiment: a custom server (Next's docs say standalone output and a custom
 * server "cannot be used together"; measured only to show what leaving Next's request pipeline
 * gives). It starts Next as standalone's server.js does (the config of required-server-files.json)
 * and answers `/bench-custom/*` with the same raw file work as `pages-raw`, before Next; anything
 * else goes to `next()`'s request handler. Copied into .next/standalone after the build; every
 * column of the run is then served by it.
 */
function addCustomServer(app) {
  writeFileSync(
    join(app, 'bench-custom-server.cjs'),
    `process.env.NODE_ENV = 'production';
process.chdir(__dirname);
const { config } = require('./.next/required-server-files.json');
process.env.__NEXT_PRIVATE_STANDALONE_CONFIG = JSON.stringify(config);
const http = require('node:http');
const next = require('next');
const port = Number(process.env.PORT), hostname = process.env.HOSTNAME;
${RAW_HANDLER_CJS}const app = next({ dev: false, dir: __dirname, conf: config, hostname, port });
const handle = app.getRequestHandler();
app.prepare().then(() => {
  http.createServer((req, res) => {
    if (req.url.startsWith('/bench-custom/')) raw(req, res).catch(() => { res.statusCode = 500; res.end(); });
    else handle(req, res);
  }).listen(port, hostname);
});
`,
  );
}

/**
 * The `--route-preload-experiment` experiment: standalone's own server.js, unchanged, started with
 * `node -r ./bench-preload.cjs server.js` (PM2: `node_args`). The preload wraps the request listener
 * Next's start-server passes to `http.createServer` (Node's public API, no Next internals) and
 * answers `/bench-preload/*` with the raw file work before Next sees the request, and
 * `/bench-preload-route/*` with `createUploadsRoute` as it is (a Request in, its Response out).
 */
function addPreload(app) {
  writeFileSync(
    join(app, 'bench-preload.cjs'),
    `${RAW_HANDLER_CJS}const http = require('node:http');
// The library as it is, outside Next: createUploadsRoute's GET with a Request made from req, its
// Response written to res. Next bundles the library into its chunks, so it is loaded from the
// app's node_modules, not standalone's.
const { createUploadsRoute } = require(join(__dirname, '..', '..', 'node_modules', 'upload-sync', 'dist', 'next.cjs'));
const route = createUploadsRoute({ urlPrefix: '/bench-preload-route' });
async function viaRoute(req, res) {
  const headers = Object.entries(req.headers).filter(([, v]) => typeof v === 'string');
  const response = await route.GET(new Request('http://' + req.headers.host + req.url, { method: req.method, headers }));
  res.writeHead(response.status, [...response.headers].flat());
  if (response.body) for await (const chunk of response.body) res.write(chunk);
  res.end();
}
const createServer = http.createServer;
http.createServer = function (...args) {
  const i = args.findIndex((a) => typeof a === 'function');
  if (i !== -1) {
    const listener = args[i];
    args[i] = function (req, res) {
      if (req.url.startsWith('/bench-preload/')) raw(req, res).catch(() => { res.statusCode = 500; res.end(); });
      else if (req.url.startsWith('/bench-preload-route/')) viaRoute(req, res).catch(() => { res.statusCode = 500; res.end(); });
      else return listener.call(this, req, res);
    };
  }
  return createServer.apply(this, args);
};
`,
  );
}

/** The example app, built standalone with the packed library; returns its folder. */
export function buildApp(repo, work, env, { pages = false, proxy = false, custom = false, preloadExperiment = false } = {}) {
  const app = join(work, 'route-app');
  const example = join(repo, 'examples', 'next-app');
  const pack = join(work, 'pack');
  mkdirSync(pack, { recursive: true });
  const tarball = join(pack, must('npm', ['pack', '--pack-destination', pack, '--silent'], repo, env).trim().split('\n').pop());
  cpSync(example, app, {
    recursive: true,
    filter: (src) => {
      const rel = relative(example, src);
      const top = rel.split(sep)[0];
      if (top === 'node_modules' || top === '.next' || rel === 'next-env.d.ts' || rel === 'package-lock.json') return false;
      return !(rel.startsWith(join('public', 'uploads') + sep) && !rel.endsWith('.gitkeep'));
    },
  });
  // The floor: a route handler that does nothing but answer 64 KiB from memory.
  const floor = join(app, 'app', 'bench-floor', '[...path]');
  mkdirSync(floor, { recursive: true });
  writeFileSync(
    join(floor, 'route.ts'),
    `const BYTES = new Uint8Array(${RANGE});\nexport async function GET(): Promise<Response> {\n  return new Response(BYTES, { status: 206, headers: { 'Content-Type': 'audio/mpeg', 'Content-Range': 'bytes 65536-131071/${FILE_SIZE}' } });\n}\n`,
  );
  if (pages) addPagesApi(app);
  if (proxy) addProxy(app);
  if (custom) addCustomServer(app);
  if (preloadExperiment) addPreload(app);
  const pkgPath = join(app, 'package.json');
  const pkg = JSON.parse(readFileSync(pkgPath, 'utf8'));
  pkg.dependencies['upload-sync'] = `file:${tarball}`;
  writeFileSync(pkgPath, JSON.stringify(pkg, null, 2));
  must('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error'], app, env);
  must('npm', ['run', 'build'], app, env);
  for (const [on, file] of [[custom, 'bench-custom-server.cjs'], [preloadExperiment, 'bench-preload.cjs']]) {
    if (on) cpSync(join(app, file), join(app, '.next', 'standalone', file));
  }
  return app;
}

function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** One GET; resolves with status, headers and body length (or the body, when `keep`). */
function get(agent, port, path, headers, keep = false) {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, headers, agent }, (res) => {
      let length = 0;
      const chunks = [];
      res.on('data', (c) => {
        length += c.length;
        if (keep) chunks.push(c);
      });
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, length, body: keep ? Buffer.concat(chunks) : null }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

/** `concurrency` loops of 64 KiB ranged GETs for `ms`: completed 206s per second (each checked). */
async function load(port, path, { ms, concurrency }) {
  const agent = new Agent({ keepAlive: true, maxSockets: concurrency });
  let s = 12345;
  const rand = () => ((s = (s * 1664525 + 1013904223) >>> 0) / 2 ** 32);
  let done = 0;
  const end = performance.now() + ms;
  const loop = async () => {
    while (performance.now() < end) {
      const start = Math.floor(rand() * (FILE_SIZE / RANGE)) * RANGE;
      const r = await get(agent, port, path, { Range: `bytes=${start}-${start + RANGE - 1}` });
      if (r.status !== 206 || r.length !== RANGE) throw new Error(`${path}: ${r.status}, ${r.length} bytes`);
      done++;
    }
  };
  const t = performance.now();
  await Promise.all(Array.from({ length: concurrency }, loop));
  const rps = done / ((performance.now() - t) / 1000);
  agent.destroy();
  return rps;
}

/**
 * Runs the case; returns `{ route, static, floor }` medians in requests/s. `rounds` measurements of
 * `seconds` each per target, the order alternating every round, after a warm-up of each.
 */
export async function routeBench({ repo, work, app, env, seconds = 5, rounds = 3, concurrency = 32, pages = false, proxy = false, custom = false, preloadExperiment = false, preload = false, log = console.error }) {
  app ??= buildApp(repo, work, env, { pages, proxy, custom, preloadExperiment });
  // upload-sync/preload as the PM2 example gives it: an absolute path resolved from the app's node_modules.
  const preloadArgs = preload ? ['--require', createRequire(join(app, 'package.json')).resolve('upload-sync/preload')] : [];
  const server = [...preloadArgs, ...(custom ? ['bench-custom-server.cjs'] : preloadExperiment ? ['-r', './bench-preload.cjs', 'server.js'] : ['server.js'])];
  const standalone = join(app, '.next', 'standalone');
  const bytes = Buffer.alloc(FILE_SIZE);
  for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 31 + (i >> 12)) & 0xff;
  // Next's static handler: a file in public/ when the server starts.
  writeFileSync(join(standalone, 'public', 'bench-static.mp3'), bytes);

  const cleanup = [];
  const port = await freePort();
  const child = spawn(process.execPath, [...(process.env.ROUTE_BENCH_NODE_ARGS ?? '').split(' ').filter(Boolean), ...server], {
    cwd: standalone,
    env: { ...env, PORT: String(port), HOSTNAME: '127.0.0.1', ...(preload ? { UPLOAD_SYNC_URL_PREFIX: '/uploads-preload' } : {}) },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  try {
    const agent = new Agent({ keepAlive: false });
    for (const until = Date.now() + 60_000; ; ) {
      if (child.exitCode !== null) throw new Error(`server.js exited with ${child.exitCode}`);
      if (await get(agent, port, '/', {}).then((r) => r.status === 200, () => false)) break;
      if (Date.now() > until) throw new Error('server.js did not answer within 60 s');
      await new Promise((r) => setTimeout(r, 100));
    }
    // The route: a file that arrived after startup (Next's static handler does not list it).
    const name = `bench-route-${Date.now()}.mp3`;
    writeFileSync(join(app, 'public', 'uploads', name), bytes);
    cleanup.push(join(app, 'public', 'uploads', name));
    const paths = { route: `/uploads/${name}`, static: '/bench-static.mp3', floor: '/bench-floor/x.mp3' };
    if (pages) Object.assign(paths, { 'pages-floor': '/api/bench-pages-floor/x.mp3', 'pages-rewrite': '/bench-pages-rewrite/x.mp3', 'pages-raw': `/bench-pages-raw/${name}`, 'pages-raw-direct': `/api/bench-pages-raw/${name}` });
    if (custom) paths['custom-raw'] = `/bench-custom/${name}`;
    if (preload) paths.preload = `/uploads-preload/${name}`;
    if (preloadExperiment) Object.assign(paths, { 'preload-raw': `/bench-preload/${name}`, 'preload-route': `/bench-preload-route/${name}` });
    if (proxy) paths['proxy-floor'] = '/bench-proxy/x.mp3';
    const floors = new Set(['floor', 'pages-floor', 'pages-rewrite', 'proxy-floor']);
    for (const [name, path] of Object.entries(paths)) {
      if (floors.has(name)) continue;
      const r = await get(agent, port, path, { Range: 'bytes=65536-131071' }, true);
      if (r.status !== 206 || !r.body.equals(bytes.subarray(65536, 131072))) throw new Error(`${name}: ${r.status}, wrong bytes`);
      // Which handler answered: the route's ETag is strong, send's is weak.
      if ((name !== 'static') === String(r.headers.etag).startsWith('W/')) throw new Error(`${path} was not served by the ${name} handler (ETag ${r.headers.etag})`);
      // Next's answers carry its Vary; upload-sync/preload's, before Next, do not.
      if ((name === 'route' || name === 'preload') && (name === 'preload') !== (r.headers.vary === undefined)) throw new Error(`${path}: Vary ${r.headers.vary}: not the ${name} path`);
    }
    for (const path of Object.values(paths)) await load(port, path, { ms: 1000, concurrency });
    const samples = Object.fromEntries(Object.keys(paths).map((k) => [k, []]));
    for (let round = 0; round < rounds; round++) {
      const order = round % 2 === 0 ? Object.keys(paths) : Object.keys(paths).reverse();
      for (const name of order) {
        const rps = await load(port, paths[name], { ms: seconds * 1000, concurrency });
        samples[name].push(rps);
        log(`  route bench round ${round + 1}: ${name} ${rps.toFixed(0)} req/s`);
      }
    }
    const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
    return { ...Object.fromEntries(Object.entries(samples).map(([k, xs]) => [k, median(xs)])), samples };
  } finally {
    if (child.exitCode === null) {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    }
    for (const f of cleanup) rmSync(f, { force: true });
  }
}

export const routeBenchExists = (app) => existsSync(join(app, '.next', 'standalone', 'server.js'));
