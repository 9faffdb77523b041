import type { ParseArgsConfig } from 'node:util';
import type { CommonOptions } from '../options.js';

/** Exit codes of DESIGN.md: 0 done (or disabled), 1 the run failed in part or whole, 2 usage or configuration. */
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
  -h, --help       this help`;

export function pathOptions(values: Values): CommonOptions {
  const out: CommonOptions = {};
  for (const key of ['root', 'source', 'dest'] as const) if (typeof values[key] === 'string') out[key] = values[key];
  return out;
}

export function formatDuration(ms: number): string {
  return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(2)} s`;
}
