import { relative } from 'node:path';
import { resolveConfig, type ResolvedConfig } from '../config.js';
import { formatBytes } from '../log.js';
import type { SyncOptions, SyncResult } from '../options.js';
import { syncUploads } from '../sync.js';
import { COMMON_HELP, EXIT, PATH_OPTIONS, formatDuration, pathOptions, type Command, type Values } from './shared.js';

export const sync: Command = {
  summary: 'mirror the uploads folder into the standalone output',
  usage: `upload-sync sync [--dry-run] [--json] [--delete] [--file PATH]...

Mirrors source into dest: copies new and changed files atomically, keeps the rest.
A sync run by hand always runs, even when the environment disables automatic sync.

  --file PATH      sync only this path (repeatable); relative to source, or absolute inside it
  --delete         also remove from dest what is gone from source
  --dry-run        print what would change, write nothing
  --json           print the result object (JSON) and nothing else on stdout
  -v, --verbose    list every file, not only the first ones

${COMMON_HELP}

Examples:
  upload-sync sync
  upload-sync sync --file albums/new-song.mp3
  upload-sync sync --delete --dry-run`,
  options: {
    ...PATH_OPTIONS,
    'dry-run': { type: 'boolean' },
    json: { type: 'boolean' },
    delete: { type: 'boolean' },
    file: { type: 'string', multiple: true },
    verbose: { type: 'boolean', short: 'v' },
  },
  run: (values) => runSync(values, Boolean(values['dry-run'])),
};

export const check: Command = {
  summary: 'show what a sync would do (a dry run)',
  usage: `upload-sync check [--json] [--delete] [--file PATH]...

Compares source and dest and prints what a sync would copy, update and delete. Writes nothing.

  --file PATH      check only this path (repeatable)
  --delete         include the deletions a --delete sync would make
  --json           print the result object (JSON) and nothing else on stdout
  -v, --verbose    list every file

${COMMON_HELP}

Examples:
  upload-sync check
  upload-sync check --delete --json`,
  options: { ...PATH_OPTIONS, json: { type: 'boolean' }, delete: { type: 'boolean' }, file: { type: 'string', multiple: true }, verbose: { type: 'boolean', short: 'v' } },
  run: (values) => runSync(values, true),
};

async function runSync(values: Values, dryRun: boolean): Promise<number> {
  const options: SyncOptions = { ...pathOptions(values), dryRun, force: true };
  if (values.delete) options.delete = true;
  if (Array.isArray(values.file)) options.files = values.file as string[];
  // Resolve first, so a configuration error is exit 2 with its message, before any work.
  const config = resolveConfig(options);
  const result = await syncUploads(options);
  if (values.json) process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  else printSummary(config, result, Boolean(values.verbose));
  return exitCodeOf(result);
}

export function exitCodeOf(result: { status: string; errors: { code: string }[] }): number {
  if (result.errors.some((e) => e.code === 'ERR_CONFIG')) return EXIT.USAGE;
  return result.status === 'ok' || result.status === 'disabled' ? EXIT.OK : EXIT.FAILED;
}

/** How many files of each list are shown without --verbose. */
const SHOWN = 10;

function printSummary(config: ResolvedConfig, r: SyncResult, verbose: boolean): void {
  const out: string[] = [];
  const cwd = process.cwd();
  const show = (p: string) => (relative(cwd, p).startsWith('..') ? p : relative(cwd, p) || '.');
  out.push(`${r.dryRun ? 'Would sync' : 'Synced'} ${show(config.source)} -> ${show(config.dest)}`);
  const list = (mark: string, paths: string[]) => {
    const shown = verbose ? paths : paths.slice(0, SHOWN);
    for (const p of shown) out.push(`  ${mark} ${p}`);
    if (shown.length < paths.length) out.push(`  ${mark} … and ${paths.length - shown.length} more (--verbose lists all)`);
  };
  list('+', r.copied);
  list('~', r.updated);
  list('-', r.deleted);
  const files = (n: number) => `${n} file${n === 1 ? '' : 's'}`;
  const copied = r.copied.length + r.updated.length;
  const parts = [
    copied === 0 ? 'nothing to copy' : `${r.dryRun ? 'would copy' : 'copied'} ${files(copied)} (${formatBytes(r.bytes)})`,
    r.updated.length > 0 ? `${r.updated.length} of them updated` : '',
    r.deleted.length > 0 ? `${r.dryRun ? 'would delete' : 'deleted'} ${files(r.deleted.length)}` : '',
    `${r.unchanged} unchanged`,
    r.errors.length > 0 ? `${r.errors.length} error${r.errors.length === 1 ? '' : 's'}` : '',
  ].filter(Boolean);
  const label = { ok: 'Done', disabled: 'Disabled', partial: 'Partly done', failed: 'Failed' }[r.status];
  out.push(`${label}: ${parts.join(', ')} in ${formatDuration(r.durationMs)}`);
  process.stdout.write(`${out.join('\n')}\n`);
  for (const e of r.errors) process.stderr.write(`upload-sync: ${e.path === '' ? '' : `${e.path}: `}${e.code}: ${e.message}\n`);
}
