// nginx as users run it with examples/nginx/upload-sync.conf: the file itself, only its three
// example values replaced (listen, the public folder, Next's address), inside a minimal nginx.conf
// of a temp prefix, started in the foreground as a child process and stopped after.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ROOT, run, waitFor } from './helpers.js';
import { freePort, get } from './next-helpers.js';

export const NGINX_CONF = join(ROOT, 'examples', 'nginx', 'upload-sync.conf');
export const NGINX = '/usr/sbin/nginx';

export interface StartedNginx {
  base: string;
  port: number;
  prefix: string;
  stop: () => Promise<void>;
  errorLog: () => Promise<string>;
}

/** Replaces `from` by `to` in `text`, failing when `from` is not there exactly `times` times (the file changed: update the test). */
function replaceExactly(text: string, from: string, to: string, times: number): string {
  const found = text.split(from).length - 1;
  if (found !== times) throw new Error(`${NGINX_CONF}: expected ${times} × ${JSON.stringify(from)}, found ${found}`);
  return text.split(from).join(to);
}

/** The site file as a user would adapt it: listen on `port`, serve `publicDir`, proxy to `upstream` (host:port). */
export async function adaptedSite(port: number, publicDir: string, upstream: string): Promise<string> {
  let site = await readFile(NGINX_CONF, 'utf8');
  site = replaceExactly(site, 'listen 80;', `listen 127.0.0.1:${port};`, 1);
  site = replaceExactly(site, 'root /srv/app/public;', `root ${publicDir};`, 1);
  site = replaceExactly(site, 'proxy_pass http://127.0.0.1:3000;', `proxy_pass http://${upstream};`, 3);
  return site;
}

/** Starts nginx (`daemon off`) in `prefix` with the adapted site; resolves when it answers. */
export async function startNginx(prefix: string, publicDir: string, upstream: string): Promise<StartedNginx> {
  const port = await freePort();
  await mkdir(prefix, { recursive: true });
  await writeFile(join(prefix, 'site.conf'), await adaptedSite(port, publicDir, upstream));
  const temp = (name: string) => `${name}_temp_path ${join(prefix, name)};`;
  // As Debian's nginx.conf: mime.types included at http level (the site's `types {}` must win over it).
  // Workers run as root when the test does: the temp folders are 0700 and nobody could not read them.
  await writeFile(
    join(prefix, 'nginx.conf'),
    [
      'daemon off;',
      process.getuid?.() === 0 ? 'user root;' : '',
      'worker_processes 1;',
      `pid ${join(prefix, 'nginx.pid')};`,
      `error_log ${join(prefix, 'error.log')} info;`,
      'events { worker_connections 256; }',
      'http {',
      '  include /etc/nginx/mime.types;',
      '  default_type application/octet-stream;',
      `  access_log ${join(prefix, 'access.log')};`,
      `  ${temp('client_body')} ${temp('proxy')} ${temp('fastcgi')} ${temp('uwsgi')} ${temp('scgi')}`,
      `  include ${join(prefix, 'site.conf')};`,
      '}',
      '',
    ].join('\n'),
  );
  const args = ['-p', prefix, '-c', join(prefix, 'nginx.conf'), '-e', join(prefix, 'error.log')];
  const check = await run(NGINX, ['-t', ...args]);
  if (check.code !== 0) throw new Error(`nginx -t failed:\n${check.stderr}`);
  const child: ChildProcess = spawn(NGINX, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const base = `http://127.0.0.1:${port}`;
  const errorLog = () => readFile(join(prefix, 'error.log'), 'utf8').catch(() => '');
  await waitFor(
    async () => {
      if (child.exitCode !== null) throw new Error(`nginx exited with ${child.exitCode}:\n${stderr}\n${await errorLog()}`);
      return get(`${base}/uploads/`).then(() => true, () => false);
    },
    { timeoutMs: 20_000, intervalMs: 50, message: `nginx on ${base}` },
  );
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM'); // fast shutdown of the master and its workers
    await exited;
  };
  return { base, port, prefix, stop, errorLog };
}

/** The `client_max_body_size` of the site file, in bytes (nginx's k/m/g are powers of 1024). */
export function bodyLimitOf(site: string): number {
  const m = /client_max_body_size\s+(\d+)([kKmMgG]?);/.exec(site);
  if (!m) throw new Error('no client_max_body_size in the site file');
  const unit = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[m[2]!.toLowerCase() as '' | 'k' | 'm' | 'g'];
  return Number(m[1]) * unit;
}
