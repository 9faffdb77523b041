import { resolveWatchConfig, type WatchConfig } from '../config/config.js';
import { parseInteger } from '../config/parse.js';
import { withCode } from '../shared/errors.js';
import { formatBytes, stampedLine, type Level } from '../shared/log.js';
import type { SyncResult, WatcherOptions } from '../shared/options.js';
import { createWatcher, type UploadWatcher, type WatcherError } from '../watch/watcher.js';
import { hintsFor, type HintKind } from './hints.js';
import { createProgressLine } from './progress.js';
import { COMMON_HELP, EXIT, PATH_OPTIONS, formatDuration, pathOptions, showPath, type Command, type Values } from './shared.js';

/**
 * The exit code of `watch` when the environment disables sync: a code of its own (sysexits'
 * EX_CONFIG), so PM2's `stop_exit_codes` can name it alone. Not 0: PM2 7 records a death by
 * signal (`kill -9`, the OOM killer) as exit code 0, and a watcher stopped for good by that is a
 * watcher that never mirrors again.
 */
export const EXIT_DISABLED = 78;

/** Flags that set a watcher timing (each also has an env variable). */
const TIMINGS = [
  ['stable-ms', 'stableMs'],
  ['debounce-ms', 'debounceMs'],
  ['max-wait-ms', 'maxWaitMs'],
  ['reconcile-ms', 'reconcileMs'],
] as const;

export const watch: Command = {
  summary: 'watch the uploads folder and mirror each change (the PM2 process)',
  usage: `upload-sync watch [--delete] [--polling] [--force] [--json] [--stable-ms MS]...

Watches source and mirrors each new or changed file into dest once it has stopped changing,
with a full reconcile at start and every --reconcile-ms. On a terminal the first sync shows its
progress (as 'upload-sync sync' does). Logs one line per sync that changed something or
failed (none for a sync that found nothing to do), each with its time (ISO 8601, UTC). Runs until
SIGINT or SIGTERM, then finishes the copy in flight and exits 0. Tells PM2 it is ready
(process.send('ready'), for wait_ready) after the first sync.

Follows the environment's enable rule: when it disables sync (no NODE_ENV=production nor
ENABLE_UPLOAD_SYNC=true, or DISABLE_UPLOAD_SYNC=true), it says so and exits ${EXIT_DISABLED}: a code
of its own, for PM2's stop_exit_codes: [${EXIT_DISABLED}] (not 0: PM2 records a death by signal as 0).

  --delete            also mirror deletions (default: UPLOAD_SYNC_DELETE)
  --polling           poll instead of native events (network filesystems)
  --force             watch even when the environment disables sync
  --stable-ms MS      a file is synced once unchanged this long (default: UPLOAD_SYNC_STABLE_MS, else 1000)
  --debounce-ms MS    batch window (default: UPLOAD_SYNC_DEBOUNCE_MS, else 200)
  --max-wait-ms MS    longest a stable file waits for its batch (default: UPLOAD_SYNC_MAX_WAIT_MS, else 5000)
  --reconcile-ms MS   full reconcile period, 0 for only at start (default: UPLOAD_SYNC_RECONCILE_MS, else 600000)
  --json              one result object (JSON) per line per sync on stdout (every sync); messages go to stderr

${COMMON_HELP}

Examples:
  upload-sync watch
  ENABLE_UPLOAD_SYNC=true upload-sync watch --stable-ms 2000
  pm2 start ecosystem.config.cjs --only upload-watcher   (see the README's "PM2", and examples/pm2 in the package)`,
  options: {
    ...PATH_OPTIONS,
    delete: { type: 'boolean' },
    polling: { type: 'boolean' },
    force: { type: 'boolean' },
    json: { type: 'boolean' },
    ...Object.fromEntries(TIMINGS.map(([flag]) => [flag, { type: 'string' as const }])),
  },
  run: runWatch,
};

async function runWatch(values: Values): Promise<number> {
  const options = watchOptions(values);
  const json = Boolean(values.json);
  const say = sayer(json, options);
  const config = resolveWatchConfig(options); // a configuration error throws here: exit 2
  const watcher = createWatcher(options);
  if (!watcher.enabled) {
    say('INFO', 'Sync is disabled by the environment (DISABLE_UPLOAD_SYNC=true, or neither NODE_ENV=production nor ENABLE_UPLOAD_SYNC=true); not watching. Pass --force to watch anyway.');
    return EXIT_DISABLED;
  }

  // chokidar keeps the process alive while it watches; this covers the moments it does not (a restart).
  const keepAlive = setInterval(() => undefined, 1 << 30);
  let stopping = false;
  watcher.on('sync', (result) => {
    if (json) process.stdout.write(`${JSON.stringify(result)}\n`);
    // A sync that changed nothing (files the app's upload route had synced already) is not told:
    // under load those were most of the lines. DEBUG=upload-sync:* still has each run.
    else if (!changedNothing(result)) say(result.status === 'ok' ? 'INFO' : 'WARN', describe(result));
  });
  watcher.on('error', errorTeller(config, say));
  const signal = firstSignal();
  void watcher.ready.then(() => {
    if (!stopping) tellReady(watcher, config.source, say);
  });

  const received = await signal;
  stopping = true;
  say('INFO', `Stopping (${received}): finishing the sync in flight`);
  await watcher.close();
  clearInterval(keepAlive);
  say('INFO', 'Stopped');
  // A parent's IPC channel (PM2) must not keep the process from exiting.
  process.channel?.unref();
  return EXIT.OK;
}

type Say = (level: Level, message: string) => void;

function watchOptions(values: Values): WatcherOptions {
  const options: WatcherOptions = { ...pathOptions(values) };
  if (values.delete) options.delete = true;
  if (values.polling) options.usePolling = true;
  if (values.force) options.force = true;
  for (const [flag, key] of TIMINGS) {
    const value = values[flag];
    if (typeof value === 'string') options[key] = parseInteger(value, { name: `--${flag}`, isEnv: false }, { unit: ' of milliseconds' });
  }
  return options;
}

/**
 * How the watcher's lines are written: each with its own time (ISO 8601, UTC), since PM2's out and
 * error logs have none of their own. On a terminal, the first sync (minutes on a fresh mirror) shows
 * its progress through `options.onProgress`, as `sync` does; the line is erased for good before the
 * first message (the first sync's own line among them).
 */
function sayer(json: boolean, options: WatcherOptions): Say {
  let progress = !json && process.stderr.isTTY ? createProgressLine(process.stderr) : null;
  if (progress) options.onProgress = progress.update;
  return (level, message) => {
    progress?.done();
    progress = null;
    (json || level !== 'INFO' ? process.stderr : process.stdout).write(stampedLine(level, message));
  };
}

/** Tells each watcher error; what to do about a permission problem or a full disk is said once per kind, however often it recurs. */
function errorTeller(config: WatchConfig, say: Say): (err: WatcherError) => void {
  const hinted = new Set<HintKind>();
  return (err) => {
    say('ERROR', withCode(err.code, err.message));
    if (!['EACCES', 'EPERM', 'ENOSPC', 'EROFS'].includes(err.code)) return;
    // The watch limit (also ENOSPC) carries its own advice (fs.inotify.max_user_watches): not a full disk.
    if (err.code === 'ENOSPC' && err.message.includes('max_user_watches')) return;
    void hintsFor(config, [{ path: err.path ?? '', code: err.code, message: err.message }]).then(
      (hints) => {
        for (const h of hints) {
          if (hinted.has(h.kind)) continue;
          hinted.add(h.kind);
          say('WARN', h.text);
        }
      },
      () => undefined,
    );
  };
}

/** The first SIGINT or SIGTERM; a second one ends the process at once, the default way. */
function firstSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    const onSignal = (name: NodeJS.Signals) => {
      process.removeListener('SIGINT', onSignal);
      process.removeListener('SIGTERM', onSignal);
      resolve(name);
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  });
}

/** The ready line, and PM2's wait_ready: the process is online once the first sync is done. */
function tellReady(watcher: UploadWatcher, source: string, say: Say): void {
  const s = watcher.stats();
  const how = s.mode === 'off' ? 'not watching (see the errors above), reconciling only' : s.mode === 'native' ? 'native events' : 'polling';
  say('INFO', `Ready: watching ${showPath(source)} (${how}${s.sourcePresent ? '' : ', waiting for the folder to exist'})`);
  if (typeof process.send === 'function') {
    try {
      process.send('ready', undefined, undefined, () => undefined);
    } catch {
      // The IPC channel is closed: nobody waits for it.
    }
  }
}

/** An `ok` run that copied, updated and deleted nothing. */
export function changedNothing(r: SyncResult): boolean {
  return r.status === 'ok' && r.copied.length + r.updated.length + r.deleted.length === 0 && r.errors.length === 0;
}

/** One line per sync: what changed, then the first paths. */
export function describe(r: SyncResult): string {
  const files = (n: number) => `${n} file${n === 1 ? '' : 's'}`;
  const changed = [...r.copied, ...r.updated];
  const parts = [
    changed.length === 0 ? (r.errors.length > 0 ? 'nothing copied' : 'nothing to copy') : `copied ${files(changed.length)} (${formatBytes(r.bytes)})`,
    r.deleted.length > 0 ? `deleted ${files(r.deleted.length)}` : '',
    `${r.unchanged} unchanged`,
    r.filtered > 0 ? `${files(r.filtered)} left out by the extension filter` : '',
    r.errors.length > 0 ? `${r.errors.length} error${r.errors.length === 1 ? '' : 's'} (${errorCodes(r)})` : '',
  ].filter(Boolean);
  const label = { ok: 'Synced', partial: 'Synced in part', failed: 'Sync failed', disabled: 'Sync disabled' }[r.status];
  const shown = [...changed, ...r.deleted.map((p) => `-${p}`)];
  const list = shown.length === 0 ? '' : `: ${shown.slice(0, 5).join(', ')}${shown.length > 5 ? ` and ${shown.length - 5} more` : ''}`;
  return `${label}: ${parts.join(', ')} in ${formatDuration(r.durationMs)}${list}`;
}

/** The codes of a result's errors, most frequent first: `EACCES ×2, ERR_CHANGED` (an ERR_ABORTED at shutdown is told from a failure). */
function errorCodes(r: SyncResult): string {
  const counts = new Map<string, number>();
  for (const e of r.errors) counts.set(e.code, (counts.get(e.code) ?? 0) + 1);
  return [...counts].sort((a, b) => b[1] - a[1]).map(([code, n]) => (n > 1 ? `${code} ×${n}` : code)).join(', ');
}
