/**
 * The AWS SDK is an optional peer dependency, loaded on first use only (as chokidar is:
 * lazy-chokidar.test.ts): importing the main entry loads none of it, opening a store does, and
 * without it a store is ERR_CONFIG saying what to install. No gateway needed: opening a store makes no request.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, test } from '@jest/globals';
import { DIST_ESM, ROOT, cleanEnv, loaderHooks, run, tempProject } from './helpers.js';

const DIST_CJS = join(ROOT, 'dist', 'index.cjs');
let p: ReturnType<typeof tempProject>;
beforeEach(() => {
  p = tempProject('upload-sync-lazy-s3-');
});
afterEach(async () => {
  await p.cleanup();
});

/** Logs every module loaded from @aws-sdk; with `hide`, makes the SDK's packages unresolvable (not installed). */
const HOOKS = (log: string, hide: boolean) => `
import { appendFileSync } from 'node:fs';
export async function resolve(specifier, context, next) {
  if (${hide} && specifier.startsWith('@aws-sdk/')) {
    const err = new Error("Cannot find package '" + specifier + "' imported from " + context.parentURL);
    err.code = 'ERR_MODULE_NOT_FOUND';
    throw err;
  }
  return next(specifier, context);
}
export async function load(url, context, next) {
  if (url.includes('/node_modules/@aws-sdk/')) appendFileSync(${JSON.stringify(log)}, 'sdk loaded\\n');
  return next(url, context);
}`;

const setup = (hide = false) => loaderHooks(p.root, (log) => HOOKS(log, hide));
const env = cleanEnv({ AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' });
const STORE = `'s3://some-bucket/uploads', { env: { AWS_ENDPOINT_URL: 'http://127.0.0.1:9', AWS_ACCESS_KEY_ID: 'a', AWS_SECRET_ACCESS_KEY: 'b' } }`;

describe('the AWS SDK is loaded lazily, by a store only', () => {
  test('ESM: importing the main entry loads no SDK; opening a store does', async () => {
    const { log, register } = await setup();
    const script = `
      import { appendFileSync } from 'node:fs';
      const mark = (s) => appendFileSync(${JSON.stringify(log)}, s + '\\n');
      const { openStore } = await import(${JSON.stringify(DIST_ESM)});
      mark('entry imported');
      const store = await openStore(${STORE});
      mark('store open ' + store.key('a b.mp3'));
      store.destroy();
    `;
    const r = await run(process.execPath, ['--import', register, '--input-type=module', '-e', script], { env });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const lines = (await readFile(log, 'utf8')).trim().split('\n');
    expect(lines[0]).toBe('entry imported'); // nothing of the SDK before it
    expect(lines).toContain('sdk loaded');
    expect(lines[lines.length - 1]).toBe('store open uploads/a b.mp3');
  });

  test('CJS: require() of the main entry loads no SDK; openStore loads it with a real dynamic import', async () => {
    const { log, register } = await setup();
    const script = `
      const Module = require('node:module');
      const { appendFileSync } = require('node:fs');
      const mark = (s) => appendFileSync(${JSON.stringify(log)}, s + '\\n');
      const load = Module._load;
      Module._load = function (request, ...rest) {
        if (request.includes('@aws-sdk')) mark('sdk required');
        return load.call(this, request, ...rest);
      };
      const { openStore } = require(${JSON.stringify(DIST_CJS)});
      mark('entry required ' + Object.keys(require.cache).some((k) => k.includes('@aws-sdk')));
      openStore(${STORE}).then((store) => { mark('store open'); store.destroy(); });
    `;
    const r = await run(process.execPath, ['--import', register, '--input-type=commonjs', '-e', script], { env });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const lines = (await readFile(log, 'utf8')).trim().split('\n');
    expect(lines[0]).toBe('entry required false');
    // The entry's own import() comes first; the SDK's CJS files then require() each other.
    expect(lines[1]).toBe('sdk loaded');
    expect(lines[lines.length - 1]).toBe('store open');
    expect(await readFile(DIST_CJS, 'utf8')).toMatch(/import\("@aws-sdk\/client-s3"\)/);
  });

  test('without the SDK installed, a store is ERR_CONFIG saying what to npm install (ESM and CJS)', async () => {
    const { register } = await setup(true);
    const esm = `
      const { openStore } = await import(${JSON.stringify(DIST_ESM)});
      await openStore(${STORE}).then(() => console.log('opened'), (e) => console.log(e.code + ' ' + e.message));
    `;
    const cjs = `
      const { openStore } = require(${JSON.stringify(DIST_CJS)});
      openStore(${STORE}).then(() => console.log('opened'), (e) => console.log(e.code + ' ' + e.message));
    `;
    for (const [type, script] of [['module', esm], ['commonjs', cjs]] as const) {
      const r = await run(process.execPath, ['--import', register, `--input-type=${type}`, '-e', script], { env });
      expect(r.stderr).toBe('');
      expect(r.stdout.trim()).toMatch(/^ERR_CONFIG .*@aws-sdk\/client-s3.*run `npm install @aws-sdk\/client-s3`$/);
    }
  });
});
