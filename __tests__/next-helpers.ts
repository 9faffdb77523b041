// Helpers of the Next.js end-to-end tests: the example copied as a user would, commands that must
// succeed (timed), and the standalone server started, asked and stopped.
import { spawn, type ChildProcess } from 'node:child_process';
import { cp, mkdir, readFile, writeFile } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { createServer } from 'node:net';
import { join, relative, sep } from 'node:path';
import { ROOT, run, waitFor } from './helpers.js';

export const MINUTES = 60_000;
export const EXAMPLE = join(ROOT, 'examples', 'next-app');

/** Copies examples/next-app to `to` without anything a local run left behind (node_modules, .next, uploads). */
export async function copyExample(to: string): Promise<void> {
  await cp(EXAMPLE, to, {
    recursive: true,
    filter: (src) => {
      const rel = relative(EXAMPLE, src);
      const top = rel.split(sep)[0];
      if (top === 'node_modules' || top === '.next' || rel === 'next-env.d.ts' || rel === 'package-lock.json') return false;
      return !(rel.startsWith(join('public', 'uploads') + sep) && !rel.endsWith('.gitkeep'));
    },
  });
}

/** Commands that must succeed, each timed into `timings`. */
export function commands(env: () => NodeJS.ProcessEnv) {
  const timings: Record<string, number> = {};
  async function timed<T>(label: string, fn: () => Promise<T>): Promise<T> {
    const started = Date.now();
    try {
      return await fn();
    } finally {
      timings[label] = Date.now() - started;
    }
  }
  async function must(label: string, command: string, args: string[], cwd: string, timeoutMs: number): Promise<string> {
    const r = await timed(label, () => run(command, args, { cwd, env: env(), timeoutMs }));
    if (r.code !== 0) throw new Error(`${label} failed (${r.code ?? r.signal}):\n${r.stdout.slice(-4000)}\n${r.stderr.slice(-4000)}`);
    return r.stdout;
  }
  return { timings, timed, must };
}

/** A TCP port free on 127.0.0.1 now (the server that takes it may still race another: rare, and it fails loudly). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

export interface Started {
  child: ChildProcess;
  base: string;
  output: () => string;
}

/** Every server started and not yet stopped: afterAll stops them. */
export const servers = new Set<ChildProcess>();

/**
 * Starts `node [nodeArgs] server.js` in the standalone folder (as PM2 or systemd would) and waits
 * until it answers. `nodeArgs`: Node's own options, such as `--require` of a preload.
 */
export async function startServer(standalone: string, env: NodeJS.ProcessEnv, nodeArgs: string[] = []): Promise<Started> {
  const port = await freePort();
  const child = spawn(process.execPath, [...nodeArgs, 'server.js'], {
    cwd: standalone,
    env: { ...env, PORT: String(port), HOSTNAME: '127.0.0.1' },
    detached: true, // its own process group, so stopServer reaches anything it starts
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  servers.add(child);
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const base = `http://127.0.0.1:${port}`;
  await waitFor(
    async () => {
      if (child.exitCode !== null) throw new Error(`server exited with ${child.exitCode}:\n${out}`);
      return get(`${base}/`).then((r) => r.status === 200, () => false);
    },
    { timeoutMs: 60_000, intervalMs: 100, message: `the server on ${base}` },
  );
  return { child, base, output: () => out };
}

export async function stopServer(started: Pick<Started, 'child'> | undefined): Promise<void> {
  if (!started) return;
  const { child } = started;
  if (child.exitCode === null && child.signalCode === null) {
    const exited = new Promise((r) => child.once('exit', r));
    try {
      process.kill(-child.pid!, 'SIGTERM');
    } catch {
      // already gone
    }
    const timer = setTimeout(() => {
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        // already gone
      }
    }, 10_000);
    await exited;
    clearTimeout(timer);
  }
  servers.delete(child);
}

export interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

/** A raw HTTP request: the path is sent exactly as given (fetch would normalize `%2e%2e` and `\`). */
export function get(url: string, headers: Record<string, string> = {}, method = 'GET'): Promise<Answer> {
  const { host, port, pathname } = new URL(url);
  const rawPath = url.slice(url.indexOf('/', url.indexOf('//') + 2)) || pathname;
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: host.split(':')[0], port, path: rawPath, method, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

/**
 * What next.e2e.test.ts does first, for other test files: `npm pack` the library, copy the example
 * into `work/app` as a user would, install the tarball with next and react, run its `build` script.
 * A build is ~20-45 s; jest gives each test file its own module registry, so a file that needs the
 * app builds its own (in its own temp folder: the files change what they find there).
 */
export async function buildExample(
  work: string,
  must: ReturnType<typeof commands>['must'],
  /** More dependencies of the app, as in package.json (the store's AWS SDK, say). */
  dependencies: Record<string, string> = {},
  /** Dependencies of the example left out (an app without the optional AWS SDK, say). */
  drop: readonly string[] = [],
): Promise<{ app: string; standalone: string }> {
  const app = join(work, 'app');
  const pack = join(work, 'pack');
  await mkdir(pack, { recursive: true });
  const packed = await must('npm pack', 'npm', ['pack', '--pack-destination', pack, '--silent'], ROOT, 2 * MINUTES);
  const tarball = join(pack, packed.trim().split('\n').pop()!);
  await copyExample(app);
  const pkgPath = join(app, 'package.json');
  const pkg = JSON.parse(await readFile(pkgPath, 'utf8')) as { dependencies: Record<string, string> };
  Object.assign(pkg.dependencies, dependencies, { 'upload-sync': `file:${tarball}` });
  for (const name of drop) delete pkg.dependencies[name];
  await writeFile(pkgPath, JSON.stringify(pkg, null, 2));
  await must('npm install', 'npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error'], app, 6 * MINUTES);
  await must('build', 'npm', ['run', 'build'], app, 6 * MINUTES);
  return { app, standalone: join(app, '.next', 'standalone') };
}
