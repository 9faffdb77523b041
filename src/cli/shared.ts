import { isAbsolute, relative } from 'node:path';
import type { ParseArgsConfig } from 'node:util';
import { withCode } from '../shared/errors.js';
import { oneLine } from '../shared/log.js';
import type { CommonOptions } from '../shared/options.js';

/**
 * Exit codes of DESIGN.md: 0 done (or disabled), 1 the run failed in part or whole, 2 usage or
 * configuration. A run stopped by a signal exits 128 + its number (interrupt.ts).
 */
export const EXIT = { OK: 0, FAILED: 1, USAGE: 2 } as const;

export type Options = NonNullable<ParseArgsConfig['options']>;
export type Values = Record<string, unknown>;

/** One `upload-sync <name>` command. */
export interface Command {
  summary: string;
  /** The text of `upload-sync <name> --help`. */
  usage: string;
  options: Options;
  /** Resolves with the exit code. */
  run(values: Values): Promise<number>;
}

/** A wrong flag or argument: exit 2 with the command's usage hint. */
export class UsageError extends Error {}

export const PATH_OPTIONS: Options = {
  root: { type: 'string' },
  source: { type: 'string' },
  dest: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
};

export const COMMON_HELP = `Paths (default from the environment, see the README):
  --root DIR       project root (default: UPLOAD_SYNC_ROOT, else the cwd; <x>/.next/standalone means <x>)
  --source DIR     canonical uploads folder (default: <root>/public/uploads)
  --dest DIR       the mirror (default: <root>/.next/standalone/public/uploads)
                   (sync and watch: --dest s3://bucket/prefix pushes into a bucket; sync:
                   --source s3://bucket/prefix pulls one into --dest; endpoint and keys from
                   AWS_ENDPOINT_URL, AWS_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)
  -h, --help       this help`;

export function pathOptions(values: Values): CommonOptions {
  const out: CommonOptions = {};
  for (const key of ['root', 'source', 'dest'] as const) if (typeof values[key] === 'string') out[key] = values[key];
  return out;
}

export function formatDuration(ms: number): string {
  return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(2)} s`;
}

export function exitCodeOf(result: { status: string; errors: { code: string }[] }): number {
  if (result.errors.some((e) => e.code === 'ERR_CONFIG')) return EXIT.USAGE;
  return result.status === 'ok' || result.status === 'disabled' ? EXIT.OK : EXIT.FAILED;
}

/** A path relative to the cwd when it is under it, else absolute. */
export function showPath(p: string): string {
  if (p.startsWith('s3://')) return p; // a bucket: its URL as given
  const rel = relative(process.cwd(), p);
  return rel.startsWith('..') || isAbsolute(rel) ? p : rel || '.';
}

/**
 * Paths shown side by side (`source -> dest`), all the same way: relative to the cwd when every
 * one is under it, else all absolute (run from .next/standalone, the source is outside the cwd).
 */
export function showPaths(...paths: string[]): string[] {
  const shown = paths.map(showPath);
  return shown.some((s, i) => s === paths[i]) ? paths : shown;
}

export const STATUS_LABEL = { ok: 'Done', disabled: 'Disabled', partial: 'Partly done', failed: 'Failed' } as const;

/** How many files of each list are shown without --verbose. */
const SHOWN = 10;

/** `  + path` lines: every path with --verbose, else the first few and a count. */
export function listFiles(mark: string, paths: readonly string[], verbose: boolean): string[] {
  const shown = verbose ? paths : paths.slice(0, SHOWN);
  const lines = shown.map((p) => `  ${mark} ${oneLine(p)}`); // a newline in a file name never starts a line
  if (shown.length < paths.length) lines.push(`  ${mark} … and ${paths.length - shown.length} more (--verbose lists all)`);
  return lines;
}

/** The error entries but the `ERR_ABORTED` of a run stopped on purpose (its summary line says so). */
export function realErrors<E extends { code: string }>(errors: readonly E[]): E[] {
  return errors.filter((e) => e.code !== 'ERR_ABORTED');
}

/** The end of a stopped run's line. */
export const LEFT = 'the rest is left for the next run';

/** One stderr line per error entry. */
export function printErrors(errors: readonly { path: string; code: string; message: string }[]): void {
  for (const e of errors) process.stderr.write(`upload-sync: ${e.path === '' ? '' : `${oneLine(e.path)}: `}${oneLine(withCode(e.code, e.message))}\n`);
}
