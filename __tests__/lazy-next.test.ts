/**
 * `upload-sync/next` loads what a request needs, when it needs it: the sync engine on the first
 * targeted sync of a save, the bucket's modules (aws4, node:http signing) on the first save into a
 * bucket, the route's serving code (range-parser, content-disposition, the bucket reads) on a
 * route's first request. A Next worker that only serves, or saves to disk with `sync: false`,
 * never loads the first two (together about 10 MB of RSS per worker, measured by importing the
 * built entry), and one that only saves never loads the third (~5 MB).
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, expect, test } from '@jest/globals';
import { ROOT, cleanEnv, loaderHooks, run, tempProject } from './helpers.js';

let p: ReturnType<typeof tempProject>;
beforeEach(() => {
  p = tempProject('upload-sync-lazy-next-');
});
afterEach(async () => {
  await p.cleanup();
});

/** Logs each module of interest as it loads: the engine's, the store's and the route's chunks of dist, aws4, the route's packages. */
const HOOKS = (log: string) => `
import { appendFileSync } from 'node:fs';
export async function load(url, context, next) {
  const m =
    /\\/dist\\/(sync|store-save|route-serve)-[^/]*\\.js$/.exec(url) ??
    /\\/node_modules\\/(range-parser|content-disposition)\\/(?:dist\\/)?index\\.js$/.exec(url) ??
    (url.includes('/node_modules/aws4/') ? [0, 'aws4'] : null);
  if (m) appendFileSync(${JSON.stringify(log)}, 'loaded ' + m[1] + '\\n');
  return next(url, context);
}`;

test('ESM: importing upload-sync/next and making a route loads neither the engine, the store nor the route\'s serving code; a disk save without sync neither; its first sync loads the engine only; the first request the route\'s code', async () => {
  const { log, register } = await loaderHooks(p.root, HOOKS);
  const options = { source: p.source, dest: p.dest, force: true, lockDir: join(p.root, 'locks') };
  const script = `
    import { appendFileSync } from 'node:fs';
    const mark = (s) => appendFileSync(${JSON.stringify(log)}, s + '\\n');
    const { saveUpload, createUploadsRoute } = await import(${JSON.stringify(join(ROOT, 'dist', 'next.js'))});
    const route = createUploadsRoute(${JSON.stringify(options)});
    mark('imported');
    const a = await saveUpload(new Uint8Array(10), { ...${JSON.stringify(options)}, originalName: 'a.mp3', sync: false });
    mark('saved without sync: ' + (a.sync === null));
    const b = await saveUpload(new Uint8Array(10), { ...${JSON.stringify(options)}, originalName: 'b.mp3' });
    mark('saved with sync: ' + b.sync.status);
    const res = await route.GET(new Request('http://localhost' + a.url));
    mark('served ' + res.status + ' ' + (await res.arrayBuffer()).byteLength);
  `;
  const r = await run(process.execPath, ['--import', register, '--input-type=module', '-e', script], { env: cleanEnv() });
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  const lines = (await readFile(log, 'utf8')).trim().split('\n');
  expect(lines.slice(0, 4)).toEqual(['imported', 'saved without sync: true', 'loaded sync', 'saved with sync: ok']);
  // The route's chunk and its packages load at its first request (in the order ESM fetches them), before it answers.
  expect(lines.slice(4, -1).sort()).toEqual(['loaded content-disposition', 'loaded range-parser', 'loaded route-serve']);
  expect(lines.at(-1)).toBe('served 200 10');
});

test('CJS: requiring upload-sync/next runs no bucket code (aws4, node:http) and no route code (range-parser, content-disposition), nor does a disk save with its sync', async () => {
  const options = { source: p.source, dest: p.dest, force: true, lockDir: join(p.root, 'locks') };
  const script = `
    const loaded = () => ({
      aws4: Object.keys(require.cache).some((k) => k.includes('/node_modules/aws4/')),
      http: process.moduleLoadList.includes('NativeModule http'),
      route: Object.keys(require.cache).some((k) => /\\/node_modules\\/(range-parser|content-disposition)\\//.test(k)),
    });
    const { saveUpload } = require(${JSON.stringify(join(ROOT, 'dist', 'next.cjs'))});
    const out = { imported: loaded() };
    saveUpload(new Uint8Array(10), { ...${JSON.stringify(options)}, originalName: 'a.mp3' }).then((s) => {
      out.saved = { ...loaded(), status: s.sync.status };
      process.stdout.write(JSON.stringify(out));
    });
  `;
  const r = await run(process.execPath, ['-e', script], { env: cleanEnv() });
  expect(r.stderr).toBe('');
  expect(JSON.parse(r.stdout)).toEqual({ imported: { aws4: false, http: false, route: false }, saved: { aws4: false, http: false, route: false, status: 'ok' } });
});
