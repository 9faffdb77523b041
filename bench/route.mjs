// The `route` case of bench/run.mjs (issue 11 point 9): requests/s of 64 KiB ranged GETs (what an
// `<audio>` element sends while seeking) at concurrency 32, through `createUploadsRoute` and through
// Next's own static handler (`send` on a file that was in public/ at startup), on the same
// standalone server of examples/next-app, side by side, alternating. A third column is Next's floor
// for any route handler: one that answers the same 206 from a buffer in memory, without touching
// the disk (added to the bench's copy of the app only). The route cannot beat that floor.
//
// The app is built as a user builds it (npm pack → a copy of the example → npm install → its build
// script), as __tests__/next.e2e.test.ts does. `--route-app DIR` reuses a built copy (kept with
// `--keep-route-app`), for profiling: `node --cpu-prof` can then be put in front of server.js by
// hand.
import { spawn, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { createServer } from 'node:net';
import { join, relative, sep } from 'node:path';

const RANGE = 64 * 1024;
const FILE_SIZE = 8 * 2 ** 20;

function must(cmd, args, cwd, env) {
  const r = spawnSync(cmd, args, { cwd, env, encoding: 'utf8', maxBuffer: 64 * 2 ** 20 });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status}):\n${r.stdout?.slice(-3000)}\n${r.stderr?.slice(-3000)}`);
  return r.stdout;
}

/** The example app, built standalone with the packed library; returns its folder. */
export function buildApp(repo, work, env) {
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
  const pkgPath = join(app, 'package.json');
  const pkg = JSON.parse(readFileSync(pkgPath, 'utf8'));
  pkg.dependencies['upload-sync'] = `file:${tarball}`;
  writeFileSync(pkgPath, JSON.stringify(pkg, null, 2));
  must('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error'], app, env);
  must('npm', ['run', 'build'], app, env);
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
export async function routeBench({ repo, work, app, env, seconds = 5, rounds = 3, concurrency = 32, log = console.error }) {
  app ??= buildApp(repo, work, env);
  const standalone = join(app, '.next', 'standalone');
  const bytes = Buffer.alloc(FILE_SIZE);
  for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 31 + (i >> 12)) & 0xff;
  // Next's static handler: a file in public/ when the server starts.
  writeFileSync(join(standalone, 'public', 'bench-static.mp3'), bytes);

  const cleanup = [];
  const port = await freePort();
  const child = spawn(process.execPath, [...(process.env.ROUTE_BENCH_NODE_ARGS ?? '').split(' ').filter(Boolean), 'server.js'], {
    cwd: standalone,
    env: { ...env, PORT: String(port), HOSTNAME: '127.0.0.1' },
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
    for (const [name, path] of Object.entries(paths)) {
      if (name === 'floor') continue;
      const r = await get(agent, port, path, { Range: 'bytes=65536-131071' }, true);
      if (r.status !== 206 || !r.body.equals(bytes.subarray(65536, 131072))) throw new Error(`${name}: ${r.status}, wrong bytes`);
      // Which handler answered: the route's ETag is strong, send's is weak.
      if ((name === 'route') === String(r.headers.etag).startsWith('W/')) throw new Error(`${path} was not served by the ${name} handler (ETag ${r.headers.etag})`);
    }
    for (const path of Object.values(paths)) await load(port, path, { ms: 1000, concurrency });
    const samples = { route: [], static: [], floor: [] };
    for (let round = 0; round < rounds; round++) {
      const order = round % 2 === 0 ? ['route', 'static', 'floor'] : ['floor', 'static', 'route'];
      for (const name of order) {
        const rps = await load(port, paths[name], { ms: seconds * 1000, concurrency });
        samples[name].push(rps);
        log(`  route bench round ${round + 1}: ${name} ${rps.toFixed(0)} req/s`);
      }
    }
    const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
    return { route: median(samples.route), static: median(samples.static), floor: median(samples.floor), samples };
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
