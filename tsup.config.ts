import { readFileSync } from 'node:fs';
import { defineConfig, type Options } from 'tsup';

const pkg = JSON.parse(readFileSync('./package.json', 'utf8')) as { version: string };

const common: Options = {
  target: 'node20',
  platform: 'node',
  sourcemap: false,
  removeNodeProtocol: false,
  define: { __UPLOAD_SYNC_VERSION__: JSON.stringify(pkg.version) },
};
const library = { index: 'src/index.ts', next: 'src/next.ts' };

export default defineConfig([
  {
    // ESM: a shared chunk, so the main entry and upload-sync/next use one sync engine (one
    // coalescing queue, one UploadSyncError class) in a process.
    ...common,
    entry: library,
    format: ['esm'],
    dts: true,
    splitting: true,
  },
  {
    // CJS without splitting: tsup's CJS splitting rewrites `await import('chokidar')` into
    // require(), and the watcher must load ESM-only chokidar with a real dynamic import.
    ...common,
    entry: library,
    format: ['cjs'],
    dts: true,
    splitting: false,
  },
  {
    // The CLI is ESM only: it is run, never imported.
    ...common,
    entry: { cli: 'src/cli.ts' },
    format: ['esm'],
    banner: { js: '#!/usr/bin/env node' },
  },
]);
