import { cleanupOld } from '../cleanup/cleanup.js';
import { resolveCleanupConfig, type CleanupConfig } from '../config/config.js';
import { isSyncDisabled } from '../config/parse.js';
import { formatBytes } from '../shared/log.js';
import type { CleanupOptions, CleanupResult } from '../shared/options.js';
import { printHints } from './hints.js';
import { interruptedExitCode, onInterrupt } from './interrupt.js';
import { DISABLED_HELP, disabledLine } from './warnings.js';
import {
  COMMON_HELP,
  LEFT,
  PATH_OPTIONS,
  STATUS_LABEL,
  UsageError,
  exitCodeOf,
  formatDuration,
  listFiles,
  pathOptions,
  printErrors,
  realErrors,
  showPath,
  type Command,
  type Options,
  type Values,
} from './shared.js';

/** The flags that choose what a cleanup removes (`sync --cleanup` takes them too). */
export const CLEANUP_FLAGS = {
  'older-than': { type: 'string' },
  all: { type: 'boolean' },
  'max-delete': { type: 'string' },
} as const satisfies Options;

export const cleanup: Command = {
  summary: 'remove from the mirror what no longer belongs there',
  usage: `upload-sync cleanup [--older-than DAYS] [--all] [--max-delete N] [--dry-run] [--json] [--force]

Removes from dest the orphans (files whose source is gone) older than DAYS, the temp files
of interrupted syncs (older than an hour), and the folders left empty (never dest itself).
Refuses (exit 1, ERR_SOURCE_EMPTY) when the source is missing or holds no file that would be
synced: an unmounted disk must not empty the mirror. Symlinks are never followed, files the
extension filter (UPLOAD_SYNC_EXTENSIONS) excludes are never touched, and it waits for a
running sync (the same lock).
${DISABLED_HELP}
SIGINT or SIGTERM stops it before the next removal; the summary line says what was removed
("Stopped by SIGTERM: ..."), and it exits 130 (SIGINT) or 143 (SIGTERM).

  --older-than DAYS  minimum age, by modification time (default: UPLOAD_SYNC_CLEANUP_DAYS, else 30)
  --all              every file that old, in the source or not (the old find -mtime +30 -delete:
                     a sync copies the ones still in the source back)
  --max-delete N     remove at most N files; the rest is reported and the exit code is 1
                     (default: UPLOAD_SYNC_MAX_DELETE, else no cap)
  --dry-run          print what would be removed, remove nothing
  --json             print the result object (JSON) and nothing else on stdout
  --force            run even when DISABLE_UPLOAD_SYNC=true
  -v, --verbose      list every file

${COMMON_HELP}

Examples:
  upload-sync cleanup --dry-run
  upload-sync cleanup --older-than 7 --max-delete 500
  upload-sync cleanup --all --older-than 90 --json`,
  options: {
    ...PATH_OPTIONS,
    ...CLEANUP_FLAGS,
    'dry-run': { type: 'boolean' },
    json: { type: 'boolean' },
    verbose: { type: 'boolean', short: 'v' },
    force: { type: 'boolean' },
  },
  async run(values) {
    const options = cleanupOptions(values, Boolean(values['dry-run']));
    // Resolve first, so a configuration error is exit 2 with its message, before any work.
    const config = resolveCleanupConfig(options);
    if (!values.force && isSyncDisabled()) {
      const result = await cleanupOld({ ...options, force: false }); // `disabled`, at once
      if (values.json) process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
      process.stderr.write(disabledLine('cleanup'));
      return exitCodeOf(result);
    }
    const interrupt = onInterrupt((line) => process.stderr.write(`upload-sync: ${line}\n`));
    try {
      const result = await cleanupOld({ ...options, signal: interrupt.signal });
      const stopped = interrupt.received;
      if (values.json) process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
      else printCleanupSummary(config, result, Boolean(values.verbose), stopped);
      if (values.json && stopped !== null) process.stderr.write(`upload-sync: ${cleanupStoppedLine(stopped, result)}\n`);
      await printHints(config, result.errors);
      return stopped !== null ? interruptedExitCode(stopped) : exitCodeOf(result);
    } finally {
      interrupt.dispose();
    }
  },
};

/** The options of a cleanup run from the flags (`cleanup`'s, or those given to `sync --cleanup`). */
export function cleanupOptions(values: Values, dryRun: boolean): CleanupOptions {
  const options: CleanupOptions = { ...pathOptions(values), dryRun, force: true };
  const days = values['older-than'];
  if (typeof days === 'string') {
    if (!/^\d+(\.\d+)?$/.test(days.trim())) {
      const negative = /^-\d/.test(days.trim()) ? ': an age cannot be negative' : '';
      throw new UsageError(`--older-than: expected a number of days >= 0, got ${JSON.stringify(days)}${negative}`);
    }
    options.olderThanDays = Number(days);
  }
  const max = values['max-delete'];
  if (typeof max === 'string') {
    if (!/^\d+$/.test(max.trim()) || Number(max) < 1) throw new UsageError(`--max-delete: expected a whole number >= 1, got ${JSON.stringify(max)}`);
    options.maxDelete = Number(max);
  }
  if (values.all) options.orphansOnly = false;
  return options;
}

const files = (n: number) => `${n} file${n === 1 ? '' : 's'}`;

/** What a cleanup did: `removed 3 files (1.2 MB), 40 kept, 1 over the cap, 1 error`. */
function cleanupParts(r: CleanupResult): string[] {
  const overCap = r.errors.filter((e) => e.code === 'ERR_MAX_DELETE').length;
  const others = realErrors(r.errors).filter((e) => e.code !== 'ERR_MAX_DELETE').length;
  return [
    r.removed.length === 0 ? 'nothing to remove' : `${r.dryRun ? 'would remove' : 'removed'} ${files(r.removed.length)} (${formatBytes(r.bytesFreed)})`,
    `${r.kept} kept`,
    overCap > 0 ? `${overCap} over the cap` : '',
    others > 0 ? `${others} error${others === 1 ? '' : 's'}` : '',
  ].filter(Boolean);
}

/** `stopped by SIGTERM: removed 120 files (…), 30 kept; the rest is left for the next run` (stderr, with --json). */
export function cleanupStoppedLine(name: NodeJS.Signals, r: CleanupResult): string {
  return `stopped by ${name}: cleanup ${cleanupParts(r).join(', ')} in ${formatDuration(r.durationMs)}; ${LEFT}`;
}

/** Like the sync summary: a header and the files on a terminal, one line elsewhere; `Stopped by SIGTERM` for a stopped run. */
export function printCleanupSummary(config: CleanupConfig, r: CleanupResult, verbose: boolean, stopped: NodeJS.Signals | null = null): void {
  const tty = Boolean(process.stdout.isTTY);
  const out: string[] = [];
  const what = `${showPath(config.dest)} (${config.orphansOnly ? 'orphans' : 'every file'} older than ${config.olderThanDays} day${config.olderThanDays === 1 ? '' : 's'})`;
  if (tty) out.push(`${r.dryRun ? 'Would clean' : 'Cleaned'} ${what}`);
  if (tty || verbose) out.push(...listFiles('-', r.removed, verbose));
  const overCap = r.errors.filter((e) => e.code === 'ERR_MAX_DELETE');
  const others = realErrors(r.errors).filter((e) => e.code !== 'ERR_MAX_DELETE');
  const label = stopped !== null ? `Stopped by ${stopped}` : STATUS_LABEL[r.status];
  const rest = stopped !== null ? `; ${LEFT}` : '';
  out.push(`${label}${r.dryRun ? ' (dry run)' : ''}: ${tty ? '' : `cleanup of ${what}: `}${cleanupParts(r).join(', ')} in ${formatDuration(r.durationMs)}${rest}`);
  process.stdout.write(`${out.join('\n')}\n`);
  printErrors(others);
  if (overCap.length > 0) {
    process.stderr.write(`upload-sync: stopped at the cap of ${config.maxDelete} (--max-delete, UPLOAD_SYNC_MAX_DELETE): ${files(overCap.length)} left for a later run, e.g. ${overCap[0]!.path}\n`);
  }
}
