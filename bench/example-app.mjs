// The example app (examples/next-app) as a user installs it, for the bench cases that need a real
// standalone build: the packed package installed from its tarball, then `next build`.
import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = join(dirname(fileURLToPath(import.meta.url)), '..');

/** Builds the example into `app` (packing into `base`); returns the build's wall time in ms. */
export function buildExampleApp(base, app, env = process.env) {
  const sh = (cmd, args, cwd) => execFileSync(cmd, args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], env: { ...env, NEXT_TELEMETRY_DISABLED: '1' } });
  const started = performance.now();
  const tarball = join(base, sh('npm', ['pack', '--pack-destination', base, '--silent'], repo).trim().split('\n').pop());
  const example = join(repo, 'examples', 'next-app');
  // Without anything a local run of the example left behind.
  cpSync(example, app, { recursive: true, filter: (src) => src.endsWith('.gitkeep') || (!/[\\/](node_modules|\.next|uploads[\\/].+)$/.test(src.slice(example.length)) && !src.endsWith('next-env.d.ts') && !src.endsWith('package-lock.json')) });
  const pkg = JSON.parse(readFileSync(join(app, 'package.json'), 'utf8'));
  pkg.dependencies['upload-sync'] = `file:${tarball}`;
  writeFileSync(join(app, 'package.json'), JSON.stringify(pkg, null, 2));
  sh('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error'], app);
  sh('npm', ['run', 'build'], app);
  return performance.now() - started;
}
