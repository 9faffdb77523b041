/**
 * The step Next's docs leave to the user after `next build` with `output: 'standalone'`: copy
 * `public/` and `.next/static` into `.next/standalone` (`cp -r public .next/standalone/ && cp -r
 * .next/static .next/standalone/.next/`), but without the uploads folder, which `upload-sync sync`
 * mirrors next, atomically and incrementally (a plain `cp -r` would copy every upload twice, and
 * publish half-written ones). Run by `upload-sync assets`.
 */
import { cpSync, statSync } from 'node:fs';
import { join, relative, sep } from 'node:path';
import type { PathsConfig } from '../config/config.js';
import { isInside } from '../config/paths.js';
import { UploadSyncError } from '../shared/errors.js';

export interface AssetsResult {
  /** `<root>/.next/standalone`. */
  readonly standalone: string;
  /** Files copied from `public/` (0 without a `public/` folder). */
  readonly publicFiles: number;
  /** Files copied from `.next/static`. */
  readonly staticFiles: number;
  /** The uploads folder left out (the source, when it is inside `public/`), else `null`. */
  readonly leftOut: string | null;
}

const isDir = (p: string) => statSync(p, { throwIfNoEntry: false })?.isDirectory() ?? false;

/**
 * Copies `<root>/public` (but the uploads folder, `config.source`, when it is inside it) into
 * `<root>/.next/standalone/public` and `<root>/.next/static` into `<root>/.next/standalone/.next/static`.
 * Files there are overwritten, nothing is deleted (the mirror inside is left alone), symlinks are
 * copied as they are.
 * @throws UploadSyncError `ERR_CONFIG` when there is no `.next/standalone` or no `.next/static`
 * (no `next build` with `output: 'standalone'` in this root).
 */
export function copyStandaloneAssets(config: Pick<PathsConfig, 'root' | 'source'>): AssetsResult {
  const { root, source } = config;
  const standalone = join(root, '.next', 'standalone');
  const nextStatic = join(root, '.next', 'static');
  if (!isDir(standalone) || !isDir(nextStatic)) {
    throw new UploadSyncError(
      'ERR_CONFIG',
      `No ${isDir(standalone) ? '.next/static' : '.next/standalone'} in ${root}: set output: 'standalone' in next.config and run \`next build\` first (or point --root / UPLOAD_SYNC_ROOT at the app)`,
      { path: isDir(standalone) ? nextStatic : standalone },
    );
  }
  const pub = join(root, 'public');
  const leftOut = isInside(source, pub) ? source : null;
  let publicFiles = 0;
  if (isDir(pub)) {
    cpSync(pub, join(standalone, 'public'), {
      recursive: true,
      verbatimSymlinks: true,
      filter: (src) => {
        if (leftOut !== null && (src === leftOut || src.startsWith(leftOut + sep))) return false;
        if (!isDir(src)) publicFiles++;
        return true;
      },
    });
  }
  let staticFiles = 0;
  cpSync(nextStatic, join(standalone, '.next', 'static'), {
    recursive: true,
    verbatimSymlinks: true,
    filter: (src) => {
      if (!isDir(src)) staticFiles++;
      return true;
    },
  });
  return { standalone, publicFiles, staticFiles, leftOut: leftOut === null ? null : relative(root, leftOut) };
}
