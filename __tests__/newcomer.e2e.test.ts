/**
 * Issue 13, "Done when": a newcomer following only the README, from the packed tarball (no clone),
 * gets a working Next.js app with the watcher under PM2. The README's own text is the script, so
 * the two cannot drift apart:
 * - the two ```sh blocks of "## Use it in your app" are run with bash, as written (the first
 *   installs upload-sync, makes the uploads folder and sets the build script; the second copies
 *   the PM2 files out of node_modules/upload-sync, builds, starts PM2 and checks the mirror);
 * - the files that section lists (`- \`path\`: …`) are written from the code blocks of "## Next.js"
 *   that carry that path on their first line; a listed file without its block fails the test.
 * What the README cannot know is the test's, and only that: the app before upload-sync (what
 * `create-next-app` gives: next, react, react-dom, TypeScript and its types, at the versions of
 * examples/next-app, plus a public/robots.txt), `npm install upload-sync` installing the tarball
 * (`npm pack` of this repository), `pm2` the devDependency with a private PM2_HOME, web's PORT a
 * free one and its `instances` 2 (not 'max': a CI machine's core count), a private lock folder.
 * Then it checks as a user would: an upload through the README's route (201), served at once (200,
 * the same bytes, a Range 206), the app's static files served (the `upload-sync assets` step), a
 * file dropped into public/uploads by hand reaching the mirror through the watcher, both apps
 * online in `pm2 jlist`, `upload-sync check --strict` exiting 0.
 * Needs dist/ (`npm run build`) and the npm registry or a warm npm cache. `SKIP_NEXT_E2E=1` skips
 * it, as the other Next tests; CI never sets it.
 */
import { mkdtempSync, realpathSync } from 'node:fs';
import { mkdir, open, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { ROOT, cleanEnv, run, waitFor, type RunResult } from './helpers.js';
import { EXAMPLE, MINUTES, commands, freePort, get } from './next-helpers.js';

const skip = process.env.SKIP_NEXT_E2E === '1';
const PM2 = join(ROOT, 'node_modules', '.bin', 'pm2');

/** The text of a `## ` section of the README, up to the next `## ` heading; throws when it is gone. */
function section(readme: string, heading: string): string {
  const text = readme.split(`\n${heading}\n`)[1]?.split('\n## ')[0];
  if (text === undefined) throw new Error(`README.md has no "${heading}" section`);
  return text;
}

/** The contents of the section's code blocks in the given language (```sh, ```ts…), in order. */
function blocks(text: string, lang: string): string[] {
  return [...text.matchAll(new RegExp(`\\n\`\`\`${lang}\\n([\\s\\S]*?)\\n\`\`\`\\n`, 'g'))].map((m) => m[1]!);
}

/** What the README tells a newcomer to run and write, taken from its text. */
async function readmeScript() {
  const readme = await readFile(join(ROOT, 'README.md'), 'utf8');
  const use = section(readme, '## Use it in your app');
  const sh = blocks(use, 'sh');
  if (sh.length !== 2) throw new Error(`README "Use it in your app": expected two \`\`\`sh blocks (set up, then build and start under PM2), found ${sh.length}`);
  // The files it lists, each shown in "Next.js" with its path on the block's first line.
  const listed = [...use.matchAll(/^- `([^`]+\.(?:ts|tsx|js|mjs|cjs))`:/gm)].map((m) => m[1]!);
  const next = section(readme, '## Next.js');
  const shown = [...blocks(next, 'ts'), ...blocks(next, 'js')];
  const files = listed.map((path) => {
    const block = shown.find((b) => b.startsWith(`// ${path}\n`));
    if (block === undefined) throw new Error(`README "Use it in your app" lists ${path}, but "Next.js" has no code block starting with "// ${path}"`);
    return { path, content: `${block}\n` };
  });
  const buildLine = blocks(next, 'json').map((b) => b.match(/^"build": "(.*)"$/)?.[1]).find((b) => b !== undefined);
  // "Try it": the upload a newcomer sends first, with curl.
  const tryIt = use.match(/`(curl -F file=@song\.mp3 http:\/\/localhost:3000\/api\/upload)` answers `201`/)?.[1];
  if (tryIt === undefined) throw new Error('README "Use it in your app" no longer says what `curl -F file=@song.mp3 http://localhost:3000/api/upload` answers: update the test');
  return { setUp: sh[0]!, start: sh[1]!, files, buildLine, tryIt };
}

let work = '';
let app = '';
let port = 0;
let script: Awaited<ReturnType<typeof readmeScript>>;
let started: RunResult;
const pm2Home = () => join(work, 'pm2-home');
const source = () => join(app, 'public', 'uploads');
const mirror = () => join(app, '.next', 'standalone', 'public', 'uploads');
const base = () => `http://127.0.0.1:${port}`;

/** The environment of a newcomer's shell: no upload-sync variable, npm quiet and cache first, the private PM2 on PATH. */
const env = (): NodeJS.ProcessEnv => ({
  ...Object.fromEntries(Object.entries(cleanEnv()).filter(([k]) => !/^(npm_|PM2_)/i.test(k))),
  PATH: `${join(work, 'bin')}:${process.env.PATH}`,
  PM2_HOME: pm2Home(),
  NEXT_TELEMETRY_DISABLED: '1',
  UPLOAD_SYNC_LOCK_DIR: join(work, 'locks'),
  npm_config_prefer_offline: 'true',
  npm_config_audit: 'false',
  npm_config_fund: 'false',
  npm_config_update_notifier: 'false',
  npm_config_loglevel: 'error',
});
const { timings, timed, must } = commands(env);

/**
 * Runs README text with bash, stopping at the first failing line. Two commands are the test's:
 * `npm install upload-sync` installs the tarball, and `pm2 start` first gives web a free port and
 * two instances (and fails if the ecosystem file no longer has the lines it changes).
 */
function bash(label: string, text: string, tarball: string): Promise<RunResult> {
  const prelude = `set -euo pipefail
npm() {
  if [ "$#" -eq 2 ] && [ "$1" = install ] && [ "$2" = upload-sync ]; then command npm install '${tarball}'; else command npm "$@"; fi
}
pm2() {
  if [ "$1" = start ]; then
    for line in "PORT: '3000'" "instances: 'max'"; do
      grep -qF "$line" ecosystem.config.cjs || { echo "newcomer test: ecosystem.config.cjs has no $line any more: update the test" >&2; return 1; }
    done
    sed -i "s/PORT: '3000'/PORT: '${port}'/; s/instances: 'max'/instances: 2/" ecosystem.config.cjs
  fi
  command pm2 "$@"
}
`;
  return timed(label, () => run('bash', ['-c', prelude + text], { cwd: app, env: env(), timeoutMs: 6 * MINUTES }));
}

const failed = (what: string, r: RunResult) => new Error(`${what} failed (exit ${r.code ?? r.signal}):\n${r.stdout.slice(-4000)}\n${r.stderr.slice(-4000)}`);

interface Pm2App {
  name: string;
  pm2_env: { status: string; exec_mode: string };
}
async function pm2Apps(): Promise<Pm2App[]> {
  const r = await run(PM2, ['jlist'], { cwd: app, env: env(), timeoutMs: 60_000 });
  if (r.code !== 0) throw failed('pm2 jlist', r);
  return JSON.parse(r.stdout.trimEnd().split('\n').pop()!) as Pm2App[]; // PM2 may print lines of its own first
}

beforeAll(async () => {
  if (skip) return;
  script = await readmeScript();
  work = realpathSync(mkdtempSync(join(tmpdir(), 'upload-sync-newcomer-')));
  app = join(work, 'app');
  port = await freePort();
  await mkdir(join(work, 'bin'), { recursive: true });
  await symlink(PM2, join(work, 'bin', 'pm2'));
  const packed = await must('npm pack', 'npm', ['pack', '--pack-destination', work, '--silent'], ROOT, 2 * MINUTES);
  const tarball = join(work, packed.trim().split('\n').pop()!);

  // The newcomer's app before upload-sync: what create-next-app makes, at the example's versions.
  const example = JSON.parse(await readFile(join(EXAMPLE, 'package.json'), 'utf8')) as { dependencies: Record<string, string>; devDependencies: Record<string, string> };
  const pick = (from: Record<string, string>, names: string[]) => Object.fromEntries(names.map((n) => [n, from[n]!]));
  await mkdir(join(app, 'public'), { recursive: true });
  await writeFile(join(app, 'package.json'), `${JSON.stringify({ name: 'my-app', private: true, scripts: { dev: 'next dev' }, dependencies: pick(example.dependencies, ['next', 'react', 'react-dom']), devDependencies: pick(example.devDependencies, ['@types/node', '@types/react', 'typescript']) }, null, 2)}\n`);
  await writeFile(join(app, 'public', 'robots.txt'), 'User-agent: *\nAllow: /\n');
  await must('npm install (the app)', 'npm', ['install'], app, 6 * MINUTES);

  // The README: set up, the files it lists, then build and start under PM2.
  const setUp = await bash('README: set up', script.setUp, tarball);
  if (setUp.code !== 0) throw failed('README "Use it in your app", first block', setUp);
  for (const { path, content } of script.files) {
    await mkdir(dirname(join(app, path)), { recursive: true });
    await writeFile(join(app, path), content);
  }
  started = await bash('README: build, start', script.start, tarball);
  if (started.code !== 0) throw failed('README "Use it in your app", second block (build, pm2 start, check)', started);
  // pm2 start returns once the watcher is ready (wait_ready); web's workers may still be starting.
  await waitFor(() => get(`${base()}/robots.txt`).then(() => true, () => false), { timeoutMs: 60_000, intervalMs: 100, message: `web answering on ${base()}` });
}, 12 * MINUTES);

afterAll(async () => {
  // Always: the private daemon and its apps go, whatever happened above.
  if (work !== '') await run(PM2, ['kill'], { cwd: app, env: env(), timeoutMs: 30_000 }).catch(() => undefined);
  if (work !== '') await rm(work, { recursive: true, force: true });
  if (!skip) console.log(`newcomer timings (ms): ${JSON.stringify(timings)}`);
}, MINUTES);

(skip ? describe.skip : describe)('a newcomer follows the README\'s "Use it in your app", from the packed tarball', () => {
  test('the README gives every file and the build line it names, and the build ran that line', async () => {
    expect(script.files.map((f) => f.path).sort()).toEqual(['app/api/upload/route.ts', 'app/uploads/[...path]/route.ts', 'next.config.mjs']);
    const pkg = JSON.parse(await readFile(join(app, 'package.json'), 'utf8')) as { scripts: Record<string, string>; dependencies: Record<string, string> };
    expect(pkg.dependencies['upload-sync']).toMatch(/upload-sync-.*\.tgz$/); // the tarball, no clone
    expect(pkg.scripts.build).toBe(script.buildLine); // the two places the README shows it agree
    expect(started.stdout).toMatch(/Copied public\/ \(1 file, without public\/uploads\) and \.next\/static \(\d+ files\) into \.next\/standalone/);
    expect(started.stdout).toMatch(/Done \(dry run\): public\/uploads -> \.next\/standalone\/public\/uploads: nothing to copy/); // check --strict, exit 0
  });

  test('PM2 runs both apps of the ecosystem file: web in cluster mode, the watcher, all online', async () => {
    const apps = await pm2Apps();
    expect(apps.map((a) => `${a.name} ${a.pm2_env.exec_mode} ${a.pm2_env.status}`).sort()).toEqual([
      'upload-watcher fork_mode online',
      'web cluster_mode online',
      'web cluster_mode online',
    ]);
    // Nothing on the web workers' stderr (PM2 writes it to PM2_HOME/logs/web-error-<id>.log).
    const logs = await readdir(join(pm2Home(), 'logs'));
    const errorLogs = logs.filter((n) => n.startsWith('web-error'));
    expect(errorLogs).toHaveLength(2);
    for (const name of errorLogs) expect(await readFile(join(pm2Home(), 'logs', name), 'utf8')).toBe('');
  });

  test('an upload through the README\'s route (its curl line) is served at once: 201, then 200 with the same bytes, and a Range 206', async () => {
    const song = randomBytes(300_000);
    await writeFile(join(work, 'song.mp3'), song);
    // As the README's "Try it" writes it (curl sends the file as application/octet-stream), to this test's port.
    const curl = `${script.tryIt.replace('http://localhost:3000', base())} --silent --write-out '\\n%{http_code}'`;
    const r = await run('bash', ['-c', curl], { cwd: work, env: env(), timeoutMs: MINUTES });
    expect(r.code).toBe(0);
    const [json, status] = r.stdout.split('\n');
    expect(status).toBe('201');
    const body = JSON.parse(json!) as { url?: string; error?: string };
    expect(body.url).toMatch(/^\/uploads\/[^/]+\.mp3$/);
    const name = body.url!.slice('/uploads/'.length);
    // Saved into public/uploads and mirrored before the answer.
    expect((await readFile(join(source(), name))).equals(song)).toBe(true);
    expect((await readFile(join(mirror(), name))).equals(song)).toBe(true);

    const got = await get(`${base()}${body.url}`);
    expect(got.status).toBe(200);
    expect(got.headers['content-type']).toBe('audio/mpeg');
    expect(got.body.equals(song)).toBe(true);
    const range = await get(`${base()}${body.url}`, { Range: 'bytes=1000-66535' });
    expect(range.status).toBe(206);
    expect(range.headers['content-range']).toBe(`bytes 1000-66535/${song.length}`);
    expect(range.body.equals(song.subarray(1000, 66536))).toBe(true);
  });

  test('the app\'s own static files are served (upload-sync assets): public/robots.txt and .next/static', async () => {
    const robots = await get(`${base()}/robots.txt`);
    expect(robots.status).toBe(200);
    expect(robots.body.toString()).toBe('User-agent: *\nAllow: /\n');
    const chunks = (await readdir(join(app, '.next', 'static', 'chunks'))).filter((n) => n.endsWith('.js'));
    expect(chunks.length).toBeGreaterThan(0);
    const chunk = await get(`${base()}/_next/static/chunks/${chunks[0]}`);
    expect(chunk.status).toBe(200);
    expect(chunk.body.equals(await readFile(join(app, '.next', 'static', 'chunks', chunks[0]!)))).toBe(true);
  });

  test('a file dropped into public/uploads by hand (as scp or FTP writes it) reaches the mirror through the watcher and is served', async () => {
    const bytes = randomBytes(512 * 1024);
    const rel = 'by hand/dropped.mp3';
    await mkdir(join(source(), 'by hand'), { recursive: true });
    // Written in place, in pieces, as scp does: the watcher must wait for the last one.
    const file = await open(join(source(), rel), 'w');
    for (let i = 0; i < 4; i++) {
      await file.write(bytes.subarray(i * 131072, (i + 1) * 131072));
      await file.sync();
      await new Promise((r) => setTimeout(r, 100)); // scp's pace: pauses shorter than the watcher's stableMs
    }
    await file.close();
    const inMirror = () => readFile(join(mirror(), rel)).then((b) => b.equals(bytes), () => false);
    await waitFor(inMirror, { timeoutMs: 30_000, intervalMs: 100, message: `${rel} in the mirror` });
    const log = await readFile(join(app, 'logs', 'upload-watcher.out.log'), 'utf8');
    expect(log).toContain(`copied ${rel}`);
    const served = await get(`${base()}/uploads/by%20hand/dropped.mp3`);
    expect(served.status).toBe(200);
    expect(served.body.equals(bytes)).toBe(true);
  }, MINUTES);

  test('upload-sync check --strict exits 0: the mirror holds every upload', async () => {
    const r = await run('bash', ['-c', 'npx upload-sync check --strict --json'], { cwd: app, env: env(), timeoutMs: MINUTES });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const result = JSON.parse(r.stdout) as { status: string; copied: string[]; updated: string[]; health: { ok: boolean } };
    expect(result).toMatchObject({ status: 'ok', copied: [], updated: [], health: { ok: true } });
  });
});
