import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, test } from '@jest/globals';
import { DIST_ESM, ROOT, cleanEnv, loaderHooks, run, tempProject, writeTree } from './helpers.js';

const DIST_CJS = join(ROOT, 'dist', 'index.cjs');

let p: ReturnType<typeof tempProject>;
beforeEach(() => {
  p = tempProject('upload-sync-lazy-');
});
afterEach(async () => {
  await p.cleanup();
});

/**
 * A loader hook that appends every module it loads from chokidar's package to a log file. It sees
 * `import` and `import()` from ESM and from CJS; `require` is watched by the CJS script itself.
 */
const HOOKS = (log: string) => `
import { appendFileSync } from 'node:fs';
export async function load(url, context, next) {
  if (url.includes('/node_modules/chokidar/')) appendFileSync(${JSON.stringify(log)}, 'chokidar loaded\\n');
  return next(url, context);
}`;

async function setup(): Promise<{ log: string; register: string; options: string }> {
  const { log, register } = await loaderHooks(p.root, HOOKS);
  await writeTree(p.source, { 'a.mp3': 'a' });
  const options = JSON.stringify({ source: p.source, dest: p.dest, force: true, lockDir: join(p.root, 'locks'), stableMs: 20, debounceMs: 10 });
  return { log, register, options };
}

describe('chokidar is loaded lazily, by createWatcher only', () => {
  test('ESM: importing the main entry loads no chokidar; starting a watcher does', async () => {
    const { log, register, options } = await setup();
    const script = `
      import { appendFileSync, existsSync } from 'node:fs';
      const mark = (s) => appendFileSync(${JSON.stringify(log)}, s + '\\n');
      const { createWatcher } = await import(${JSON.stringify(DIST_ESM)});
      mark('entry imported');
      const w = createWatcher(${options});
      await w.ready;
      mark('watcher ready ' + existsSync(${JSON.stringify(join(p.dest, 'a.mp3'))}));
      await w.close();
    `;
    const r = await run(process.execPath, ['--import', register, '--input-type=module', '-e', script], { env: cleanEnv() });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const lines = (await readFile(log, 'utf8')).trim().split('\n');
    expect(lines[0]).toBe('entry imported'); // nothing of chokidar before it
    expect(lines).toContain('chokidar loaded');
    expect(lines[lines.length - 1]).toBe('watcher ready true');
  });

  test('CJS: require() of the main entry loads no chokidar; createWatcher works from CJS (a real dynamic import)', async () => {
    const { log, register, options } = await setup();
    const script = `
      const Module = require('node:module');
      const { appendFileSync, existsSync } = require('node:fs');
      const mark = (s) => appendFileSync(${JSON.stringify(log)}, s + '\\n');
      const load = Module._load;
      Module._load = function (request, ...rest) {
        if (request.includes('chokidar')) mark('chokidar required');
        return load.call(this, request, ...rest);
      };
      const { createWatcher } = require(${JSON.stringify(DIST_CJS)});
      mark('entry required ' + Object.keys(require.cache).some((k) => k.includes('chokidar')));
      const w = createWatcher(${options});
      w.ready.then(async () => {
        mark('watcher ready ' + existsSync(${JSON.stringify(join(p.dest, 'a.mp3'))}));
        await w.close();
      });
    `;
    const r = await run(process.execPath, ['--import', register, '--input-type=commonjs', '-e', script], { env: cleanEnv() });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const lines = (await readFile(log, 'utf8')).trim().split('\n');
    expect(lines[0]).toBe('entry required false');
    expect(lines).not.toContain('chokidar required'); // loaded by import(), never turned into require()
    expect(lines).toContain('chokidar loaded');
    expect(lines[lines.length - 1]).toBe('watcher ready true');
    // The bundle keeps the dynamic import as written.
    expect(await readFile(DIST_CJS, 'utf8')).toMatch(/await import\("chokidar"\)/);
  });
});
