import { cleanupOld } from '../cleanup/cleanup.js';
import { resolveCleanupConfig, resolveSyncConfig, type PathsConfig } from '../config/config.js';
import { formatBytes } from '../shared/log.js';
import type { SyncOptions, SyncResult } from '../shared/options.js';
import { syncUploads } from '../engine/sync.js';
import { cleanupOptions, printCleanupSummary } from './cleanup.js';
import { printHints } from './hints.js';
import { createProgressLine } from './progress.js';
import {
  COMMON_HELP,
  PATH_OPTIONS,
  STATUS_LABEL,
  exitCodeOf,
  formatDuration,
  listFiles,
  pathOptions,
  printErrors,
  showPath,
  type Command,
  type Values,
} from './shared.js';

export const sync: Command = {
  summary: 'mirror the uploads folder into the standalone output',
  usage: `upload-sync sync [--cleanup] [--dry-run] [--json] [--delete] [--file PATH]...

Mirrors source into dest: copies new and changed files atomically, keeps the rest.
A sync run by hand always runs, even when the environment disables automatic sync.
On a terminal a long sync shows its progress; otherwise it prints one summary line.

  --file PATH      sync only this path (repeatable); relative to source, or absolute inside it
  --delete         also remove from dest what is gone from source
  --cleanup        then run 'upload-sync cleanup' (orphans older than UPLOAD_SYNC_CLEANUP_DAYS,
                   default 30; skipped when the sync failed)
  --dry-run        print what would change, write nothing
  --json           print the result object (JSON) and nothing else on stdout;
                   with --cleanup: {"sync": <result>, "cleanup": <result or null>}
  -v, --verbose    list every file, not only the first ones

${COMMON_HELP}

Examples:
  upload-sync sync
  upload-sync sync --file albums/new-song.mp3
  upload-sync sync --delete --dry-run
  upload-sync sync --cleanup          # the old script's --cleanup, made safe`,
  options: {
    ...PATH_OPTIONS,
    'dry-run': { type: 'boolean' },
    json: { type: 'boolean' },
    delete: { type: 'boolean' },
    file: { type: 'string', multiple: true },
    verbose: { type: 'boolean', short: 'v' },
    cleanup: { type: 'boolean' },
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
  const config = resolveSyncConfig(options);
  const cleanup = values.cleanup ? cleanupOptions(values, dryRun) : null;
  const cleanupConfig = cleanup ? resolveCleanupConfig(cleanup) : null;
  const progress = !values.json && process.stderr.isTTY ? createProgressLine(process.stderr) : null;
  if (progress) options.onProgress = progress.update;
  let result: SyncResult;
  try {
    result = await syncUploads(options);
  } finally {
    progress?.done();
  }
  if (!cleanup) {
    if (values.json) process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
    else printSummary(config, result, Boolean(values.verbose));
    await printHints(config, result.errors);
    return exitCodeOf(result);
  }
  // sync --cleanup: the old script's flag. A failed sync (source missing, lock) skips the cleanup.
  if (!values.json) printSummary(config, result, Boolean(values.verbose));
  await printHints(config, result.errors);
  if (result.status === 'failed') {
    if (values.json) process.stdout.write(`${JSON.stringify({ sync: result, cleanup: null }, null, 2)}\n`);
    else process.stderr.write('upload-sync: cleanup skipped: the sync failed\n');
    return exitCodeOf(result);
  }
  const cleaned = await cleanupOld(cleanup);
  if (values.json) process.stdout.write(`${JSON.stringify({ sync: result, cleanup: cleaned }, null, 2)}\n`);
  else printCleanupSummary(cleanupConfig!, cleaned, Boolean(values.verbose));
  await printHints(config, cleaned.errors);
  return Math.max(exitCodeOf(result), exitCodeOf(cleaned));
}

/**
 * On a terminal: a header, the first files of each list and a summary line. Off a terminal (PM2,
 * cron, a pipe): one summary line, preceded by every file with --verbose.
 */
function printSummary(config: PathsConfig, r: SyncResult, verbose: boolean): void {
  const out: string[] = [];
  const tty = Boolean(process.stdout.isTTY);
  const paths = `${showPath(config.source)} -> ${showPath(config.dest)}`;
  if (tty) out.push(`${r.dryRun ? 'Would sync' : 'Synced'} ${paths}`);
  const list = (mark: string, files: string[]) => {
    if (!tty && !verbose) return;
    out.push(...listFiles(mark, files, verbose));
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
  const label = STATUS_LABEL[r.status];
  out.push(`${label}${r.dryRun ? ' (dry run)' : ''}: ${tty ? '' : `${paths}: `}${parts.join(', ')} in ${formatDuration(r.durationMs)}`);
  process.stdout.write(`${out.join('\n')}\n`);
  printErrors(r.errors);
}
