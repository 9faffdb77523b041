import { relative } from 'node:path';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { resolveConfig, type ResolvedConfig } from './config.js';
import { UploadSyncError, errorMessage } from './errors.js';
import { formatBytes } from './log.js';
import type { SyncOptions, SyncResult } from './options.js';
import { syncUploads } from './sync.js';

/** Exit codes of DESIGN.md: 0 done (or disabled), 1 the run failed in part or whole, 2 usage or configuration. */
export const EXIT = { OK: 0, FAILED: 1, USAGE: 2 } as const;

type Options = NonNullable<ParseArgsConfig['options']>;

const PATH_OPTIONS: Options = {
  root: { type: 'string' },
  source: { type: 'string' },
  dest: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
};

interface Command {
  summary: string;
  usage: string;
  options: Options;
  run(values: Record<string, unknown>): Promise<number>;
}

const COMMON_HELP = `Paths (default from the environment, see the README):
  --root DIR       project root (default: UPLOAD_SYNC_ROOT, else the cwd; <x>/.next/standalone means <x>)
  --source DIR     canonical uploads folder (default: <root>/public/uploads)
  --dest DIR       the mirror (default: <root>/.next/standalone/public/uploads)
  -h, --help       this help`;

const commands: Record<string, Command> = {
  sync: {
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
  },
  check: {
    summary: 'show what a sync would do (a dry run)',
    usage: `upload-sync check [--json] [--delete] [--file PATH]...

Compares source and dest and prints what a sync would copy, update and delete. Writes nothing.

  --file PATH      check only this path (repeatable)
  --delete         include the deletions a --delete sync would make
  --json           print the result object (JSON) and nothing else on stdout
  -v, --verbose    list every file

${COMMON_HELP}`,
    options: { ...PATH_OPTIONS, json: { type: 'boolean' }, delete: { type: 'boolean' }, file: { type: 'string', multiple: true }, verbose: { type: 'boolean', short: 'v' } },
    run: (values) => runSync(values, true),
  },
};

const MAIN_HELP = `upload-sync ${__UPLOAD_SYNC_VERSION__}: keep a Next.js standalone build's uploads served

Usage: upload-sync <command> [options]

Commands:
${Object.entries(commands)
  .map(([name, c]) => `  ${name.padEnd(8)} ${c.summary}`)
  .join('\n')}

Run 'upload-sync <command> --help' for a command's options.
Exit codes: 0 done (or disabled by the environment), 1 the run failed in part or whole, 2 usage or configuration error.`;

class UsageError extends Error {}

/** Runs the CLI; resolves with the exit code (it never calls `process.exit` itself). */
export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(`${MAIN_HELP}\n`);
    return name === undefined ? EXIT.USAGE : EXIT.OK;
  }
  if (name === '--version' || name === '-V') {
    process.stdout.write(`${__UPLOAD_SYNC_VERSION__}\n`);
    return EXIT.OK;
  }
  const command = commands[name];
  try {
    if (!command) throw new UsageError(`unknown command "${name}"`);
    let values: Record<string, unknown>;
    try {
      ({ values } = parseArgs({ args: rest, options: command.options, strict: true, allowPositionals: false }));
    } catch (err) {
      throw new UsageError(errorMessage(err));
    }
    if (values.help) {
      process.stdout.write(`${command.usage}\n`);
      return EXIT.OK;
    }
    return await command.run(values);
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`upload-sync: ${err.message}\nRun 'upload-sync ${command ? `${name} ` : ''}--help' for usage.\n`);
      return EXIT.USAGE;
    }
    if (err instanceof UploadSyncError && err.code === 'ERR_CONFIG') {
      process.stderr.write(`upload-sync: ${err.message}\n`);
      return EXIT.USAGE;
    }
    process.stderr.write(`upload-sync: ${errorMessage(err)}\n`);
    return EXIT.FAILED;
  }
}

function pathOptions(values: Record<string, unknown>): SyncOptions {
  const out: SyncOptions = {};
  for (const key of ['root', 'source', 'dest'] as const) if (typeof values[key] === 'string') out[key] = values[key];
  return out;
}

async function runSync(values: Record<string, unknown>, dryRun: boolean): Promise<number> {
  const options: SyncOptions = { ...pathOptions(values), dryRun, force: true };
  if (values.delete) options.delete = true;
  if (Array.isArray(values.file)) options.files = values.file as string[];
  // Resolve first, so a configuration error is exit 2 with its message, before any work.
  const config = resolveConfig(options);
  const result = await syncUploads(options);
  if (values.json) process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  else printSummary(config, result, Boolean(values.verbose));
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
  const verb = r.dryRun ? 'would copy' : 'copied';
  const files = (n: number) => `${n} file${n === 1 ? '' : 's'}`;
  const parts = [
    `${r.copied.length + r.updated.length === 0 ? 'nothing to copy' : `${verb} ${files(r.copied.length + r.updated.length)} (${formatBytes(r.bytes)})`}`,
    r.updated.length > 0 ? `${r.updated.length} of them updated` : '',
    r.deleted.length > 0 ? `${r.dryRun ? 'would delete' : 'deleted'} ${files(r.deleted.length)}` : '',
    `${r.unchanged} unchanged`,
    r.errors.length > 0 ? `${r.errors.length} error${r.errors.length === 1 ? '' : 's'}` : '',
  ].filter(Boolean);
  out.push(`${r.status === 'ok' ? 'Done' : r.status === 'disabled' ? 'Disabled' : r.status === 'partial' ? 'Partly done' : 'Failed'}: ${parts.join(', ')} in ${formatDuration(r.durationMs)}`);
  process.stdout.write(`${out.join('\n')}\n`);
  for (const e of r.errors) process.stderr.write(`upload-sync: ${e.path === '' ? '' : `${e.path}: `}${e.code}: ${e.message}\n`);
}

function formatDuration(ms: number): string {
  return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(2)} s`;
}

// Runs when executed as the `upload-sync` bin.
main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`upload-sync: ${errorMessage(err)}\n`);
    process.exitCode = EXIT.FAILED;
  },
);
