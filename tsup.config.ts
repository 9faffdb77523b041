import { readFileSync } from 'node:fs';
import { defineConfig } from 'tsup';

const pkg = JSON.parse(readFileSync('./package.json', 'utf8')) as { version: string };
const define = { __UPLOAD_SYNC_VERSION__: JSON.stringify(pkg.version) };

export default defineConfig([
  {
    // The library: one ESM and one CJS build, each with its own type file.
    entry: { index: 'src/index.ts' },
    format: ['esm', 'cjs'],
    dts: true,
    clean: true,
    target: 'node20',
    platform: 'node',
    sourcemap: false,
    splitting: false,
    removeNodeProtocol: false,
    define,
  },
  {
    // The CLI is ESM only: it is run, never imported.
    entry: { cli: 'src/cli.ts' },
    format: ['esm'],
    target: 'node20',
    platform: 'node',
    banner: { js: '#!/usr/bin/env node' },
    removeNodeProtocol: false,
    define,
  },
]);
