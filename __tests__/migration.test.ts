/**
 * README, "Coming from the old scripts": the move, run as it is written. The shell block of "The
 * move, step by step" is taken from the README (so a README change that breaks the steps fails
 * here) and run with bash on an old deployment's layout: seeded generated uploads in
 * `public/uploads` and in `.next/standalone/public/uploads` (some in both, some only in the mirror
 * as the old route left them, one name in both with different content, nested folders), the old
 * scripts, the old log file. Real `rsync`, real `npm` (`pkg set`, `run build`, `npx`), the built
 * CLI; `next build` is a stand-in that makes `.next/standalone` anew (as the real one does, wiping
 * the mirror); the registry install of upload-sync is stubbed (it links this repository, so
 * `node_modules/.bin/upload-sync` is `dist/cli.js`). In the first layout `pm2` is the real one (a
 * devDependency) with a private PM2_HOME: the old apps run before the move, and the user's
 * ecosystem file is examples/pm2's with the web app renamed; in the second, `pm2` only records.
 */
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { existsSync } from 'node:fs';
import { chmod, copyFile, mkdir, readFile, symlink, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { cleanEnv, exists, readTree, ROOT, run, tempProject, waitFor, writeTree, type RunResult } from './helpers.js';
import { prng } from './reliability-helpers.js';

/** The shell block of "The move, step by step", as the README shows it. */
async function moveSteps(): Promise<string> {
  const readme = await readFile(join(ROOT, 'README.md'), 'utf8');
  const section = readme.split('\n## Coming from the old scripts\n')[1]?.split('\n## ')[0];
  if (section === undefined) throw new Error('README has no "## Coming from the old scripts" section');
  const steps = section.split('\n### The move, step by step\n')[1];
  const block = steps?.match(/\n```sh\n([\s\S]*?)\n```\n/)?.[1];
  if (block === undefined) throw new Error('README: no ```sh block under "### The move, step by step"');
  return block;
}

/** The paths of the README's example deployment, and where they are in the test's temp folder. */
const PROJECT = '/srv/oyagema';
const LOG_DIR = '/var/log/oyagema';
const BUILD_LINE = 'next build && upload-sync assets && upload-sync sync';
/** PM2, a devDependency: the first layout runs the README's pm2 commands with it. */
const PM2 = join(ROOT, 'node_modules', '.bin', 'pm2');
const HAS_PM2 = existsSync(PM2);
/** What the stand-in `next build` writes as the standalone server: a process that stays up under PM2. */
const SERVER_JS = 'setInterval(() => {}, 1 << 30); // the standalone server\n';

type Where = 'both' | 'both-touched' | 'source-only' | 'mirror-only';
interface Upload {
  rel: string;
  where: Where;
  bytes: Buffer;
  mtime: number; // seconds
}

/** An old deployment's uploads: where they are, and whether one name is in both folders with different content. */
interface Layout {
  title: string;
  seed: number;
  kinds: Where[];
  conflict: boolean;
  /** The README's pm2 commands run with the real PM2 (when it is installed), else recorded. */
  realPm2: boolean;
}
const LAYOUTS: Layout[] = [
  { title: 'uploads in both folders, some only in the mirror, one name with two contents', seed: 13, kinds: ['both', 'both', 'both', 'both-touched', 'source-only', 'mirror-only', 'mirror-only'], conflict: true, realPm2: HAS_PM2 },
  { title: 'no public/uploads at all: the old route wrote every upload into the mirror', seed: 7, kinds: ['mirror-only'], conflict: false, realPm2: false },
];

/** Generated uploads: names with spaces and accents, nested folders, empty and 1 MiB files, old dates. */
function generateUploads({ seed, kinds }: Layout): Upload[] {
  const rnd = prng(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;
  const folders = ['', 'singles', 'albums/Night Drive', 'albums/Café del Mar', 'artists/ayu/2024/live', 'covers'];
  const now = Math.floor(Date.now() / 1000);
  const uploads: Upload[] = [];
  for (let i = 0; i < 48; i++) {
    const folder = pick(folders);
    const ext = folder === 'covers' ? pick(['jpg', 'png']) : pick(['mp3', 'wav', 'flac', 'm4a']);
    const name = `${pick(['track', 'Demo take', 'mix', 'intro'])} ${i}.${ext}`;
    const size = i === 0 ? 0 : i === 1 ? 1 << 20 : Math.floor(rnd() * 65536);
    const bytes = Buffer.alloc(size);
    for (let b = 0; b < size; b++) bytes[b] = Math.floor(rnd() * 256);
    // Up to 90 days old: some past the old 30-day cleanup, which the move must not apply.
    uploads.push({ rel: folder === '' ? name : `${folder}/${name}`, where: i < 4 ? 'mirror-only' : pick(kinds), bytes, mtime: now - Math.floor(rnd() * 90 * 86400) });
  }
  return uploads;
}
const CONFLICT = { rel: 'albums/Night Drive/01 Intro.wav', source: Buffer.from('the canonical take'), mirror: Buffer.from('a later upload under the same name, written into the mirror') };

const OLD_SYNC_SCRIPT = `#!/bin/bash
# Sync uploads into the standalone build
rsync -av public/uploads/ .next/standalone/public/uploads/ >> /var/log/oyagema/sync-uploads.log 2>&1
chown -R www-data:www-data .next/standalone/public/uploads
chmod -R 775 .next/standalone/public/uploads
`;
const OLD_PRODUCTION_SCRIPT = `#!/bin/bash
[ "$NODE_ENV" = production ] || exit 0
[ "$DISABLE_UPLOAD_SYNC" = true ] && exit 0
rsync -av public/uploads/ .next/standalone/public/uploads/
[ "$1" = --cleanup ] && find .next/standalone/public/uploads -type f -mtime +30 -delete
`;
const OLD_WATCHER = `const chokidar = require('chokidar');
const { exec } = require('child_process');
chokidar.watch('public/uploads', { ignored: /^(?!.*\\.(mp3|wav|flac|m4a)$)/ }).on('add', () => exec('scripts/sync-uploads.sh'));
`;
/** Stands in for \`next build\` with output: 'standalone': .next/standalone made anew (no public/ in it), a new .next/static. */
const FAKE_NEXT = `#!/bin/sh
set -e
[ "$1" = build ] || { echo "fake next: only 'next build'" >&2; exit 2; }
rm -rf .next/standalone .next/static
mkdir -p .next/standalone .next/static/chunks
echo 'setInterval(() => {}, 1 << 30); // the standalone server' > .next/standalone/server.js
echo "chunk $$" > .next/static/chunks/app.js
`;
const OLD_LOG = '[2026-10-01 03:00:01] INFO: Starting upload sync\n[2026-10-01 03:00:02] INFO: Upload sync completed\n';

/** A private PM2 for one project: its own PM2_HOME, and a bin folder that puts `pm2` on PATH. */
interface PrivatePm2 {
  home: string;
  bin: string;
}

/** Runs `script` with bash: stops at the first failing step; pm2 real (`pm2Of`) or recorded; the install of upload-sync a link to this repository. */
function bash(root: string, script: string, pm2Of?: PrivatePm2): Promise<RunResult> {
  const prelude = `set -euo pipefail
[ -n "\${PM2_HOME:-}" ] || pm2() { printf '%s\\n' "$*" >> "$PM2_CALLS"; }
npm() {
  if [ "$1" = install ] && [ "$2" = upload-sync ]; then
    mkdir -p node_modules/.bin
    ln -sfn "$UPLOAD_SYNC_PACKAGE" node_modules/upload-sync
    ln -sf ../upload-sync/dist/cli.js node_modules/.bin/upload-sync
  else
    command npm "$@"
  fi
}
`;
  const env: NodeJS.ProcessEnv = Object.fromEntries(Object.entries(cleanEnv()).filter(([k]) => !/^(npm_|PM2_)/i.test(k)));
  if (pm2Of !== undefined) Object.assign(env, { PM2_HOME: pm2Of.home, PATH: `${pm2Of.bin}:${env.PATH}` });
  Object.assign(env, {
    PM2_CALLS: join(root, 'pm2-calls.txt'),
    UPLOAD_SYNC_PACKAGE: ROOT,
    npm_config_offline: 'true',
    npm_config_update_notifier: 'false',
    npm_config_audit: 'false',
    npm_config_fund: 'false',
  });
  return run('bash', ['-c', prelude + script], { cwd: root, env, timeoutMs: 50_000 });
}

/** `pm2 <args>` with the private PM2; throws with its output when it fails. */
async function pm2Run(root: string, pm2Of: PrivatePm2, args: string[]): Promise<string> {
  const r = await run(PM2, args, { cwd: root, env: cleanEnv({ PM2_HOME: pm2Of.home }), timeoutMs: 60_000 });
  if (r.code !== 0) throw new Error(`pm2 ${args.join(' ')} exited ${r.code}: ${r.stdout}\n${r.stderr}`);
  return r.stdout;
}
interface Pm2App {
  name: string;
  pm2_env: { status: string; pm_exec_path: string; node_args?: string[]; env?: Record<string, string> };
}
async function pm2Apps(root: string, pm2Of: PrivatePm2): Promise<Pm2App[]> {
  // PM2 may print lines of its own before the JSON: the JSON is the last line.
  return JSON.parse((await pm2Run(root, pm2Of, ['jlist'])).trimEnd().split('\n').pop()!) as Pm2App[];
}

/**
 * The old deployment under a private PM2: the web app in cluster mode, the old watcher and the
 * daily cleanup app (stand-ins that stay up: the old watcher's chokidar is not installed here).
 * Then what the README's step 2 leaves to the user's hands: examples/pm2's ecosystem file beside
 * package.json, its `web` app renamed to the user's, the log file in both apps' env.
 */
async function oldPm2(root: string, logFile: string): Promise<PrivatePm2> {
  const pm2Of = { home: join(root, 'pm2-home'), bin: join(root, 'pm2-bin') };
  await mkdir(pm2Of.bin, { recursive: true });
  await symlink(PM2, join(pm2Of.bin, 'pm2'));
  await writeFile(join(root, 'old-app.js'), 'setInterval(() => {}, 1 << 30);\n');
  await pm2Run(root, pm2Of, ['start', '.next/standalone/server.js', '--name', 'oyagema', '-i', '2']);
  await pm2Run(root, pm2Of, ['start', 'old-app.js', '--name', 'upload-watcher']);
  await pm2Run(root, pm2Of, ['start', 'old-app.js', '--name', 'upload-cleanup', '--cron-restart', '0 3 * * *']);

  const example = join(ROOT, 'examples', 'pm2');
  for (const name of ['ecosystem.config.cjs', 'upload-watcher.mjs', 'graceful-http.cjs']) await copyFile(join(example, name), join(root, name));
  let ecosystem = await readFile(join(root, 'ecosystem.config.cjs'), 'utf8');
  const edits: Array<[string, string]> = [
    ["name: 'web'", "name: 'oyagema'"],
    ["instances: 'max'", 'instances: 2'],
    ["PORT: '3000',", `PORT: '3000', UPLOAD_SYNC_LOG_FILE: ${JSON.stringify(logFile)},`],
    ["// UPLOAD_SYNC_LOG_FILE: 'logs/upload-sync.log',", `UPLOAD_SYNC_LOG_FILE: ${JSON.stringify(logFile)},`],
  ];
  for (const [from, to] of edits) {
    if (!ecosystem.includes(from)) throw new Error(`examples/pm2/ecosystem.config.cjs no longer has ${from}: update this test`);
    ecosystem = ecosystem.replace(from, to);
  }
  await writeFile(join(root, 'ecosystem.config.cjs'), ecosystem);
  return pm2Of;
}

/** What `rsync -a --delete` would still change in the mirror: nothing when it equals the source. Folder mtimes are left out (not kept, README "The mirror, compared with rsync -a"). */
async function mirrorDrift(root: string): Promise<string> {
  const r = await run('rsync', ['-ani', '--omit-dir-times', '--delete', 'public/uploads/', '.next/standalone/public/uploads/'], { cwd: root });
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  return r.stdout;
}

describe.each(LAYOUTS)('the move from the old scripts, as the README writes it: $title', (layout) => {
  let p: ReturnType<typeof tempProject>;
  const uploads = generateUploads(layout);
  const latin1 = (b: Buffer) => b.toString('latin1');
  /** Every upload that existed in either folder, with the content public/uploads must hold after the move. */
  const expected: Record<string, string> = {};
  let steps = '';
  let moved: RunResult;
  let pm2Of: PrivatePm2 | undefined;
  let logFile = '';

  beforeAll(async () => {
    p = tempProject('upload-sync-move-');
    logFile = join(p.root, 'var/log/oyagema/sync-uploads.log');
    steps = await moveSteps();
    for (const fixed of [`cd ${PROJECT}`, LOG_DIR]) {
      if (!steps.includes(fixed)) throw new Error(`The README's move no longer has "${fixed}": update this test's paths`);
    }
    await writeTree(p.root, {
      'package.json': `${JSON.stringify({ name: 'oyagema', private: true, scripts: { build: 'next build && ./scripts/sync-uploads-production.sh', start: 'pm2 start ecosystem.config.cjs' } }, null, 2)}\n`,
      'node_modules/.bin/next': FAKE_NEXT,
      'scripts/sync-uploads.sh': OLD_SYNC_SCRIPT,
      'scripts/sync-uploads-production.sh': OLD_PRODUCTION_SCRIPT,
      'upload-watcher.js': OLD_WATCHER,
      'public/favicon.ico': 'ico',
      '.next/static/chunks/old.js': 'old chunk',
      '.next/standalone/server.js': 'setInterval(() => {}, 1 << 30); // the old build\n',
      'var/log/oyagema/sync-uploads.log': OLD_LOG,
    });
    await chmod(join(p.root, 'node_modules/.bin/next'), 0o755);
    for (const u of uploads) {
      const inSource = u.where !== 'mirror-only';
      const inMirror = u.where !== 'source-only';
      for (const [base, present] of [[p.source, inSource], [p.dest, inMirror]] as const) {
        if (!present) continue;
        await writeTree(base, { [u.rel]: u.bytes });
        // The old rsync -a kept the mtime; a file the old route wrote again (same bytes) has a newer one.
        const mtime = base === p.dest && u.where === 'both-touched' ? u.mtime + 3600 : u.mtime;
        await utimes(join(base, u.rel), mtime, mtime);
      }
      expected[u.rel] = latin1(u.bytes);
    }
    if (layout.conflict) {
      await writeTree(p.source, { [CONFLICT.rel]: CONFLICT.source });
      await writeTree(p.dest, { [CONFLICT.rel]: CONFLICT.mirror });
      expected[CONFLICT.rel] = latin1(CONFLICT.source);
    }
    // The layout the test means to build: each case is there.
    for (const w of layout.kinds) expect(uploads.some((u) => u.where === w)).toBe(true);
    expect(await exists(p.source)).toBe(layout.kinds.some((w) => w !== 'mirror-only'));

    if (layout.realPm2) pm2Of = await oldPm2(p.root, logFile);

    const script = steps.replaceAll(`cd ${PROJECT}`, `cd '${p.root}'`).replaceAll(LOG_DIR, join(p.root, 'var/log/oyagema'));
    expect(script).toContain(logFile);
    moved = await bash(p.root, `set -x\n${script}`, pm2Of);
  }, 90_000);
  afterAll(async () => {
    // Always: the private daemon and its apps go, whatever happened above.
    if (pm2Of !== undefined) await run(PM2, ['kill'], { cwd: p.root, env: cleanEnv({ PM2_HOME: pm2Of.home }), timeoutMs: 30_000 }).catch(() => undefined);
    await p?.cleanup();
  }, 40_000);

  test('every step runs (exit 0)', () => {
    if (moved.code !== 0) throw new Error(`the README's move failed (exit ${moved.code}):\n${moved.stderr}\n${moved.stdout}`);
  });

  test('no upload is lost: public/uploads holds every file of either folder, its own version where both differ', async () => {
    expect(await readTree(p.source)).toEqual(expected);
  });

  test('the mirror\'s version of a conflicting name is kept aside and listed where the README says', async () => {
    expect(steps).toMatch(/upload-move\/conflicts\//);
    const listed = await readFile(join(p.root, 'upload-move/conflicts.txt'), 'utf8');
    const kept = await readTree(join(p.root, 'upload-move/conflicts'));
    if (layout.conflict) {
      expect(listed).toBe(`${CONFLICT.rel}\n`);
      expect(kept).toEqual({ [CONFLICT.rel]: latin1(CONFLICT.mirror) });
    } else {
      expect(listed).toBe('');
      expect(kept).toEqual({});
    }
  });

  test('the build ran the new build line: the mirror equals the source (rsync -a --delete would change nothing)', async () => {
    expect(JSON.parse(await readFile(join(p.root, 'package.json'), 'utf8')).scripts.build).toBe(BUILD_LINE);
    expect(await readFile(join(p.root, '.next/standalone/server.js'), 'utf8')).toBe(SERVER_JS);
    expect(await exists(join(p.root, '.next/standalone/.next/static/chunks/app.js'))).toBe(true); // upload-sync assets
    expect(await readFile(join(p.root, '.next/standalone/public/favicon.ico'), 'utf8')).toBe('ico');
    expect(await mirrorDrift(p.root)).toBe('');
    expect(await readTree(p.dest)).toEqual(expected);
  });

  test('the route that serves uploads is the one of the README\'s "Next.js" section', async () => {
    const readme = await readFile(join(ROOT, 'README.md'), 'utf8');
    const shown = readme.match(/\n```ts\n\/\/ app\/uploads\/\[\.\.\.path\]\/route\.ts\n([\s\S]*?)```\n/)?.[1];
    expect(shown).toMatch(/createUploadsRoute/);
    expect(await readFile(join(p.root, 'app/uploads/[...path]/route.ts'), 'utf8')).toBe(shown);
  });

  if (layout.realPm2) test('PM2 runs the new apps only: the web app (with the ecosystem\'s settings) and the new watcher; the old ones are gone, also from the saved list', async () => {
    const apps = await pm2Apps(p.root, pm2Of!);
    expect(apps.map((a) => `${a.name} ${a.pm2_env.status}`).sort()).toEqual(['oyagema online', 'oyagema online', 'upload-watcher online']);
    const watcher = apps.find((a) => a.name === 'upload-watcher')!;
    expect(watcher.pm2_env.pm_exec_path).toBe(join(p.root, 'upload-watcher.mjs'));
    for (const web of apps.filter((a) => a.name === 'oyagema')) {
      expect(web.pm2_env.node_args?.join(' ')).toMatch(/graceful-http\.cjs/); // the new ecosystem file, not the old start
      expect(web.pm2_env.env?.UPLOAD_SYNC_LOG_FILE).toBe(logFile);
    }
    const saved = JSON.parse(await readFile(join(pm2Of!.home, 'dump.pm2'), 'utf8')) as Array<{ name: string }>;
    expect(saved.map((a) => a.name).sort()).toEqual(['oyagema', 'oyagema', 'upload-watcher']);
  });

  test('the old scripts are gone, the old PM2 apps deleted, the log file kept and appended in its format', async () => {
    for (const old of ['scripts/sync-uploads.sh', 'scripts/sync-uploads-production.sh', 'upload-watcher.js']) expect(await exists(join(p.root, old))).toBe(false);
    if (pm2Of === undefined) {
      const pm2 = (await readFile(join(p.root, 'pm2-calls.txt'), 'utf8')).split('\n');
      expect(pm2).toContain('delete upload-watcher upload-cleanup');
    }
    const log = await readFile(join(p.root, 'var/log/oyagema/sync-uploads.log'), 'utf8');
    expect(log.startsWith(OLD_LOG)).toBe(true);
    const added = log.slice(OLD_LOG.length).trimEnd().split('\n');
    expect(added.length).toBeGreaterThan(0);
    for (const line of added) expect(line).toMatch(/^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\] (INFO|WARN|ERROR): /);
    expect(added.join('\n')).toMatch(/INFO: .*ok/i);
  });

  test('a rebuild (next build wipes .next/standalone) serves every upload again, a new one included; check exits 0', async () => {
    await writeTree(p.source, { 'singles/after the move.mp3': 'saved by the new route' });
    if (pm2Of !== undefined) {
      // The watcher under PM2 mirrors it; waited for, so that no copy of its own runs during the rebuild.
      await waitFor(() => exists(join(p.dest, 'singles/after the move.mp3')), { message: 'the watcher under PM2 to mirror a new upload' });
      // ... and says so in the old log file, set in its env by the ecosystem file.
      await waitFor(async () => (await readFile(logFile, 'utf8')).includes('INFO: Copied singles/after the move.mp3'), { message: "the watcher's line in the log file" });
    }
    const rebuilt = await bash(p.root, 'npm run build', pm2Of);
    if (rebuilt.code !== 0) throw new Error(`npm run build failed (exit ${rebuilt.code}):\n${rebuilt.stderr}`);
    expect(await readFile(join(p.root, '.next/standalone/server.js'), 'utf8')).toBe(SERVER_JS);
    expect(await mirrorDrift(p.root)).toBe('');
    expect(await readTree(p.dest)).toEqual({ ...expected, 'singles/after the move.mp3': 'saved by the new route' });

    const check = await bash(p.root, 'npx upload-sync check --strict --json', pm2Of);
    expect(check.stderr).toBe('');
    expect(check.code).toBe(0);
    const result = JSON.parse(check.stdout);
    expect(result).toMatchObject({ status: 'ok', dryRun: true, copied: [], updated: [], errors: [] });
    expect(result.unchanged).toBe(Object.keys(expected).length + 1);
  });
});

/**
 * The README's table: the old `find .next/standalone/public/uploads -type f -mtime +30 -delete` is
 * `upload-sync cleanup --all --older-than 31` (find counts whole days: `+30` means 31 or more), and
 * `--older-than 30` also removes the files 30 to 31 days old. Real `find` is the oracle.
 */
describe('the old cleanup rule, compared with find -mtime +30 -delete', () => {
  const projects: Array<ReturnType<typeof tempProject>> = [];
  afterAll(() => Promise.all(projects.map((p) => p.cleanup())));

  /** A mirror of files 0 to 60 days old (each half a day off a day boundary), half of them orphans. */
  async function oldMirror() {
    const p = tempProject('upload-sync-move-find-');
    projects.push(p);
    const rnd = prng(30);
    const now = Date.now() / 1000;
    const ages: Record<string, number> = {};
    for (let i = 0; i < 60; i++) {
      const rel = `${['', 'albums/a/', 'singles/'][i % 3]}song ${i}.mp3`;
      const days = i + 0.25 + rnd() * 0.5; // whole day i, a quarter to three quarters in
      ages[rel] = days;
      const mtime = now - days * 86400;
      await writeTree(p.dest, { [rel]: `song ${i}` });
      await utimes(join(p.dest, rel), mtime, mtime);
      if (i % 2 === 0) {
        await writeTree(p.source, { [rel]: `song ${i}` });
        await utimes(join(p.source, rel), mtime, mtime);
      }
    }
    return { p, ages };
  }
  async function afterFind(dest: string): Promise<Record<string, string>> {
    const copy = `${dest}.find`;
    expect((await run('cp', ['-a', dest, copy])).code).toBe(0);
    const r = await run('find', [copy, '-type', 'f', '-mtime', '+30', '-delete']);
    expect(r.stderr).toBe('');
    return readTree(copy);
  }

  test('--all --older-than 31 leaves what find left; --older-than 30 also removes the files 30 to 31 days old', async () => {
    expect(await readFile(join(ROOT, 'README.md'), 'utf8')).toContain('the old rule is `upload-sync cleanup --all --older-than 31`');
    for (const [days, alsoRemoved] of [[31, []], [30, ['song 30.mp3']]] as const) {
      const { p } = await oldMirror();
      const byFind = await afterFind(p.dest);
      const r = await run(process.execPath, [join(ROOT, 'dist/cli.js'), 'cleanup', '--all', '--older-than', String(days)], { cwd: p.root, env: cleanEnv() });
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      const left = await readTree(p.dest);
      expect(Object.keys(byFind).filter((rel) => !(rel in left))).toEqual(alsoRemoved);
      expect(Object.keys(left).filter((rel) => !(rel in byFind))).toEqual([]);
    }
  });

  test('the default removes only the orphans that old: what is still in the source stays in the mirror', async () => {
    const { p, ages } = await oldMirror();
    const r = await run(process.execPath, [join(ROOT, 'dist/cli.js'), 'cleanup'], { cwd: p.root, env: cleanEnv() });
    expect(r.code).toBe(0);
    const source = await readTree(p.source);
    const expectedLeft = Object.keys(ages).filter((rel) => rel in source || ages[rel]! < 30).sort();
    expect(Object.keys(await readTree(p.dest)).sort()).toEqual(expectedLeft);
  });
});
