import { copyStandaloneAssets } from '../build/standalone-assets.js';
import { resolveServeConfig } from '../config/config.js';
import { EXIT, pathOptions, showPath, type Command } from './shared.js';

export const assets: Command = {
  summary: "after `next build`: copy public/ (but the uploads) and .next/static into .next/standalone",
  usage: `upload-sync assets [--root DIR] [--source DIR]

The step Next's docs leave to you after \`next build\` with output: 'standalone': copies public/ into
.next/standalone/public and .next/static into .next/standalone/.next/static, leaving out the uploads
folder (the source), which \`upload-sync sync\` mirrors next, atomically and incrementally. Files
there are overwritten, nothing is deleted, symlinks are copied as they are. Exit 2 when the root has
no .next/standalone (no \`next build\` with output: 'standalone' there).

  --root DIR       the app (default: UPLOAD_SYNC_ROOT, else the cwd; <x>/.next/standalone means <x>)
  --source DIR     the uploads folder left out (default: UPLOAD_SYNC_SOURCE, else <root>/public/uploads)
  -h, --help       this help

Example (package.json):
  "build": "next build && upload-sync assets && upload-sync sync"`,
  options: {
    root: { type: 'string' },
    source: { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  },
  async run(values) {
    const config = resolveServeConfig(pathOptions(values));
    const r = copyStandaloneAssets(config);
    const files = (n: number) => `${n} file${n === 1 ? '' : 's'}`;
    process.stdout.write(
      `Copied public/ (${files(r.publicFiles)}${r.leftOut === null ? '' : `, without ${r.leftOut}`}) and .next/static (${files(r.staticFiles)}) into ${showPath(r.standalone)}\n`,
    );
    return EXIT.OK;
  },
};
