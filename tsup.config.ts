import { readFileSync } from 'node:fs';
import { defineConfig, type Options } from 'tsup';

const pkg = JSON.parse(readFileSync('./package.json', 'utf8')) as { version: string };

const common: Options = {
  target: 'node20',
  platform: 'node',
  sourcemap: false,
  removeNodeProtocol: false,
};
const version = JSON.stringify(pkg.version);
/** `diff-worker` runs in a worker thread (src/engine/threads.ts finds it beside the bundle by this name). */
const library = { index: 'src/index.ts', next: 'src/next.ts', 'diff-worker': 'src/engine/worker.ts' };
const esmDefine = { __UPLOAD_SYNC_VERSION__: version, __DIFF_WORKER__: JSON.stringify('diff-worker.js') };

export default defineConfig([
  {
    // ESM: a shared chunk, so the main entry and upload-sync/next use one sync engine (one
    // coalescing queue, one UploadSyncError class) in a process.
    ...common,
    entry: library,
    format: ['esm'],
    dts: true,
    splitting: true,
    define: esmDefine,
  },
  {
    // CJS without splitting: tsup's CJS splitting rewrites `await import('chokidar')` into
    // require(), and the watcher must load ESM-only chokidar with a real dynamic import.
    ...common,
    entry: library,
    format: ['cjs'],
    dts: true,
    splitting: false,
    // import.meta.url (to find the worker) from __filename.
    shims: true,
    define: { __UPLOAD_SYNC_VERSION__: version, __DIFF_WORKER__: JSON.stringify('diff-worker.cjs') },
  },
  {
    // `upload-sync/preload`, CJS only (`node --require` needs CJS; `--import` takes it too). It
    // requires ./next.cjs at the first upload request, so the route is not bundled in twice.
    ...common,
    entry: { preload: 'src/preload.ts' },
    format: ['cjs'],
    // Types of nothing (it exports nothing), so that type checkers resolving the entry find some.
    dts: true,
    shims: true,
  },
  {
    // The CLI is ESM only: it is run, never imported.
    ...common,
    entry: { cli: 'src/cli.ts' },
    format: ['esm'],
    // Dependencies bundled in (but chokidar, loaded only by `watch`, and the optional AWS SDK): resolving packages is most of
    // what a CLI start costs beyond Node's own, and a no-op sync is that start plus a few ms.
    noExternal: [/^(?!chokidar$|@aws-sdk\/)/],
    // The AWS SDK is an optional peer dependency: loaded from the app's node_modules, never bundled.
    external: [/^@aws-sdk\//],
    // The bundled CommonJS dependencies require() Node's built-ins: give the ESM bundle a require.
    banner: { js: "#!/usr/bin/env node\nimport { createRequire as __createRequire } from 'node:module';\nconst require = __createRequire(import.meta.url);" },
    define: esmDefine,
  },
]);
