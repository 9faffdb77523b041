import { cleanupOld } from '../cleanup/cleanup.js';
import { resolveCleanupConfig, resolveSyncConfig, type CleanupConfig, type PathsConfig, type SyncConfig } from '../config/config.js';
import { isSyncDisabled } from '../config/parse.js';
import { formatBytes } from '../shared/log.js';
import type { CleanupOptions, SyncOptions, SyncResult } from '../shared/options.js';
import { syncUploads } from '../engine/sync.js';
import { CLEANUP_FLAGS, cleanupOptions, cleanupStoppedLine, printCleanupSummary } from './cleanup.js';
import { healthLine, healthOf, HEALTH_GRACE_MS } from './health.js';
import { printHints } from './hints.js';
import { interruptedExitCode, onInterrupt, type Interrupt } from './interrupt.js';
import { createProgressLine, type ProgressLine } from './progress.js';
import { DISABLED_HELP, FORCE_HELP, STRICT_HELP, disabledLine, syncWarnings } from './warnings.js';
import {
  COMMON_HELP,
  EXIT,
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
  showPaths,
  type Command,
  type Values,
} from './shared.js';

export const sync: Command = {
  summary: 'mirror the uploads folder into the standalone output',
  usage: `upload-sync sync [--cleanup] [--dry-run] [--json] [--delete] [--strict] [--force] [--file PATH]...

Mirrors source into dest: copies new and changed files atomically, keeps the rest.
${DISABLED_HELP}
On a terminal a long sync shows its progress; otherwise it prints one summary line.
SIGINT (Ctrl-C) or SIGTERM stops it cleanly: the copies in flight finish, nothing new starts,
no temp file is left, the summary line says what was done ("Stopped by SIGTERM: ... copied
120 files ..."), and it exits 130 (SIGINT) or 143 (SIGTERM). A second signal stops it at once.

  --file PATH      sync only this path (repeatable); relative to source, or absolute inside it
  --delete         also remove from dest what is gone from source
  --cleanup        then run 'upload-sync cleanup' (orphans older than UPLOAD_SYNC_CLEANUP_DAYS,
                   default 30; skipped when the sync failed), with cleanup's own flags:
    --older-than DAYS, --all, --max-delete N   as in 'upload-sync cleanup --help'
  --dry-run        print what would change, write nothing
  --json           print the result object (JSON) and nothing else on stdout;
                   with --cleanup: {"sync": <result>, "cleanup": <result or null>}
${STRICT_HELP}
${FORCE_HELP}
  -v, --verbose    list every file, not only the first ones

${COMMON_HELP}

Examples:
  upload-sync sync
  upload-sync sync --file albums/new-song.mp3
  upload-sync sync --delete --dry-run
  upload-sync sync --cleanup          # the old script's --cleanup, made safe
  upload-sync sync --cleanup --all --older-than 90
  upload-sync sync --dest s3://my-bucket/uploads --delete      # push the uploads into a bucket
  upload-sync sync --source s3://my-bucket/uploads --delete    # pull it into the mirror (at deploy)`,
  options: {
    ...PATH_OPTIONS,
    'dry-run': { type: 'boolean' },
    json: { type: 'boolean' },
    delete: { type: 'boolean' },
    file: { type: 'string', multiple: true },
    verbose: { type: 'boolean', short: 'v' },
    cleanup: { type: 'boolean' },
    ...CLEANUP_FLAGS,
    strict: { type: 'boolean' },
    force: { type: 'boolean' },
  },
  run: (values) => runSync(values, Boolean(values['dry-run']), !values.force, false),
};

export const check: Command = {
  summary: 'show what a sync would do (a dry run)',
  usage: `upload-sync check [--json] [--delete] [--strict] [--file PATH]...

Compares source and dest and prints what a sync would copy, update and delete. Writes nothing
(so it runs whatever DISABLE_UPLOAD_SYNC says). A health check for cron or a monitor:
'upload-sync check --strict' exits 1 when the mirror is behind (a file to copy or update that
changed over ${HEALTH_GRACE_MS / 1000} s ago, or, with --delete, one to delete) or when temp files of dead
processes are left in source or dest, and 0 when the mirror is in sync.

  --file PATH      check only this path (repeatable)
  --delete         include the deletions a --delete sync would make
  --json           print the result object (JSON) and nothing else on stdout, with a "health"
                   field: {"ok", "behind", "toDelete", "deadTemps": [{"where", "path", "pid"}], "warnings"}
${STRICT_HELP}
                   (check: also the mirror behind, or temp files of dead processes)
  -v, --verbose    list every file

${COMMON_HELP}

Examples:
  upload-sync check
  upload-sync check --delete --json`,
  options: { ...PATH_OPTIONS, json: { type: 'boolean' }, delete: { type: 'boolean' }, file: { type: 'string', multiple: true }, verbose: { type: 'boolean', short: 'v' }, strict: { type: 'boolean' } },
  run: (values) => runSync(values, true, false, true),
};

/**
 * `obeyDisable`: `DISABLE_UPLOAD_SYNC=true` stops the run (sync without --force; never check).
 * `health`: `check`'s verdict (`--json`'s `health`; `--strict` fails when it is not ok).
 */
async function runSync(values: Values, dryRun: boolean, obeyDisable: boolean, health: boolean): Promise<number> {
  const options: SyncOptions = { ...pathOptions(values), dryRun, force: true };
  if (values.delete) options.delete = true;
  if (Array.isArray(values.file)) options.files = values.file as string[];
  // Resolve first, so a configuration error is exit 2 with its message, before any work.
  const config = resolveSyncConfig(options);
  const stray = Object.keys(CLEANUP_FLAGS).find((flag) => values[flag] !== undefined);
  if (stray !== undefined && !values.cleanup) throw new UsageError(`--${stray} is a flag of the cleanup: add --cleanup, or run 'upload-sync cleanup --${stray} …'`);
  const cleanup = values.cleanup ? cleanupOptions(values, dryRun) : null;
  const cleanupConfig = cleanup ? resolveCleanupConfig(cleanup) : null;
  if (obeyDisable && isSyncDisabled()) {
    const result = await syncUploads({ ...options, force: false }); // `disabled`, at once
    if (values.json) process.stdout.write(`${JSON.stringify(cleanup ? { sync: result, cleanup: null } : result, null, 2)}\n`);
    process.stderr.write(disabledLine(cleanup ? 'sync --cleanup' : 'sync'));
    return exitCodeOf(result);
  }
  const progress = !values.json && process.stderr.isTTY ? createProgressLine(process.stderr) : null;
  if (progress) options.onProgress = progress.update;
  const interrupt = onInterrupt((line) => {
    progress?.done();
    process.stderr.write(`upload-sync: ${line}\n`);
  });
  options.signal = interrupt.signal;
  try {
    return await syncThenCleanup(values, options, config, cleanup, cleanupConfig, interrupt, progress, health);
  } finally {
    interrupt.dispose();
  }
}

async function syncThenCleanup(
  values: Values,
  options: SyncOptions,
  config: SyncConfig,
  cleanup: CleanupOptions | null,
  cleanupConfig: CleanupConfig | null,
  interrupt: Interrupt,
  progress: ProgressLine | null,
  withHealth: boolean,
): Promise<number> {
  const verbose = Boolean(values.verbose);
  let result: SyncResult;
  try {
    result = await syncUploads(options);
  } finally {
    progress?.done();
  }
  const stopped = interrupt.received;
  const warnings = syncWarnings(config, result, options.files ?? null);
  for (const w of warnings) process.stderr.write(`upload-sync: ${w}\n`);
  const health = withHealth && stopped === null ? healthOf(config, result, warnings) : null;
  // --strict: a warning (for check, a health that is not ok) fails a run that would otherwise exit 0.
  const strict = (code: number) => (code === EXIT.OK && values.strict && (warnings.length > 0 || (health !== null && !health.ok)) ? EXIT.FAILED : code);
  if (!cleanup || stopped !== null) {
    if (values.json) process.stdout.write(`${JSON.stringify(cleanup ? { sync: result, cleanup: null } : health ? { ...result, health } : result, null, 2)}\n`);
    else printSummary(config, result, verbose, stopped);
    if (health !== null && !health.ok && (health.behind + health.toDelete + health.deadTemps.length > 0)) process.stderr.write(`upload-sync: ${healthLine(health)}\n`);
    if (stopped !== null) {
      if (values.json) process.stderr.write(`upload-sync: ${stoppedLine(stopped, result)}\n`);
      if (cleanup) process.stderr.write(`upload-sync: cleanup skipped: stopped by ${stopped}\n`);
    }
    await printHints(config, result.errors);
    return stopped !== null ? interruptedExitCode(stopped) : strict(exitCodeOf(result));
  }
  // sync --cleanup: the old script's flag. A failed sync (source missing, lock) skips the cleanup.
  if (!values.json) printSummary(config, result, verbose, null);
  await printHints(config, result.errors);
  if (result.status === 'failed') {
    if (values.json) process.stdout.write(`${JSON.stringify({ sync: result, cleanup: null }, null, 2)}\n`);
    else process.stderr.write('upload-sync: cleanup skipped: the sync failed\n');
    return exitCodeOf(result);
  }
  const cleaned = await cleanupOld({ ...cleanup, signal: interrupt.signal });
  const stoppedInCleanup = interrupt.received;
  if (values.json) process.stdout.write(`${JSON.stringify({ sync: result, cleanup: cleaned }, null, 2)}\n`);
  else printCleanupSummary(cleanupConfig!, cleaned, verbose, stoppedInCleanup);
  if (values.json && stoppedInCleanup !== null) process.stderr.write(`upload-sync: ${cleanupStoppedLine(stoppedInCleanup, cleaned)}\n`);
  await printHints(config, cleaned.errors);
  if (stoppedInCleanup !== null) return interruptedExitCode(stoppedInCleanup);
  return strict(Math.max(exitCodeOf(result), exitCodeOf(cleaned)));
}

const files = (n: number) => `${n} file${n === 1 ? '' : 's'}`;

/** What a sync did, for its summary line: `copied 3 files (1.2 MB), deleted 1 file, 40 unchanged, 1 error`. */
function syncParts(r: SyncResult): string[] {
  const copied = r.copied.length + r.updated.length;
  const errors = realErrors(r.errors).length;
  return [
    // A run with errors copied nothing: it does not say there was nothing to copy.
    copied === 0 ? (errors > 0 && !r.dryRun ? 'nothing copied' : 'nothing to copy') : `${r.dryRun ? 'would copy' : 'copied'} ${files(copied)} (${formatBytes(r.bytes)})`,
    r.updated.length > 0 ? `${r.updated.length} of them updated` : '',
    r.deleted.length > 0 ? `${r.dryRun ? 'would delete' : 'deleted'} ${files(r.deleted.length)}` : '',
    `${r.unchanged} unchanged`,
    r.filtered > 0 ? `${files(r.filtered)} left out by the extension filter` : '',
    errors > 0 ? `${errors} error${errors === 1 ? '' : 's'}` : '',
  ].filter(Boolean);
}

/** `stopped by SIGTERM: copied 120 files (…), 300 unchanged; the rest is left for the next run` (stderr, with --json). */
export function stoppedLine(name: NodeJS.Signals, r: SyncResult): string {
  return `stopped by ${name}: ${syncParts(r).join(', ')} in ${formatDuration(r.durationMs)}; ${LEFT}`;
}

/**
 * On a terminal: a header, the first files of each list and a summary line. Off a terminal (PM2,
 * cron, a pipe): one summary line, preceded by every file with --verbose. A run stopped by a signal
 * says so in place of its status: `Stopped by SIGTERM: … copied 120 files …; the rest is left for the next run`.
 */
function printSummary(config: PathsConfig, r: SyncResult, verbose: boolean, stopped: NodeJS.Signals | null): void {
  const out: string[] = [];
  const tty = Boolean(process.stdout.isTTY);
  const paths = showPaths(config.source, config.dest).join(' -> ');
  if (tty) out.push(`${r.dryRun ? 'Would sync' : 'Synced'} ${paths}`);
  const list = (mark: string, names: string[]) => {
    if (!tty && !verbose) return;
    out.push(...listFiles(mark, names, verbose));
  };
  list('+', r.copied);
  list('~', r.updated);
  list('-', r.deleted);
  const label = stopped !== null ? `Stopped by ${stopped}` : STATUS_LABEL[r.status];
  const rest = stopped !== null ? `; ${LEFT}` : '';
  out.push(`${label}${r.dryRun ? ' (dry run)' : ''}: ${tty ? '' : `${paths}: `}${syncParts(r).join(', ')} in ${formatDuration(r.durationMs)}${rest}`);
  process.stdout.write(`${out.join('\n')}\n`);
  printErrors(realErrors(r.errors));
}
