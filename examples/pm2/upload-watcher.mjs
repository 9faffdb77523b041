// The `upload-watcher` PM2 app: a custom watcher script built on createWatcher.
// (`upload-sync watch` does the same; a script like this one is where to add your own hooks.)
import { createWatcher } from 'upload-sync';

// One line per event, each with its time (ISO 8601, UTC), so the app needs no `time: true` in the
// ecosystem file (it would stamp these lines twice). Newlines in a message (a file name) are escaped.
const log = (level, message) =>
  (level === 'info' ? process.stdout : process.stderr).write(`[${new Date().toISOString()}] ${level.toUpperCase()}: ${String(message).replace(/\n/g, '\\n')}\n`);

// Options come from the environment (UPLOAD_SYNC_*, see the README); pass any here to override.
const watcher = createWatcher();

if (!watcher.enabled) {
  // Exit 78, as `upload-sync watch` does: the ecosystem file's stop_exit_codes names this code
  // alone, so PM2 does not restart it, yet restarts a watcher killed by a signal (PM2 records that as 0).
  log('info', 'upload-sync is disabled by the environment (set NODE_ENV=production or ENABLE_UPLOAD_SYNC=true); not watching');
  process.exit(78);
}

watcher.on('sync', (r) => {
  const changed = [...r.copied, ...r.updated];
  // A sync that found nothing to do (an upload the app's route had synced already) is not logged.
  if (r.status === 'ok' && changed.length + r.deleted.length + r.errors.length === 0) return;
  const first = (list) => list.slice(0, 5).join(', ') + (list.length > 5 ? ` and ${list.length - 5} more` : '');
  const what = changed.length > 0 ? `copied ${first(changed)}` : 'nothing to copy';
  const deleted = r.deleted.length > 0 ? `, deleted ${first(r.deleted)}` : '';
  log(r.status === 'ok' ? 'info' : 'warn', `sync ${r.status}: ${what}${deleted} (${r.unchanged} unchanged, ${Math.round(r.durationMs)} ms)`);
});
// One line per error: its code, and the message, which ends with what to do for a permission
// error, a full or a read-only disk ("(hint: ...)"). Will-retry and recovered lines go to the log
// file (UPLOAD_SYNC_LOG_FILE) and to DEBUG=upload-sync:watch.
watcher.on('error', (err) => log('error', `${err.code}: ${err.message}`));

let stopping = false;
const stop = async (signal) => {
  if (stopping) return;
  stopping = true;
  log('info', `${signal}: finishing the copy in flight`);
  await watcher.close(); // waits for the sync in flight; starts no new copy
  log('info', 'stopped');
  process.exit(0);
};
process.on('SIGINT', stop); // what pm2 stop sends
process.on('SIGTERM', stop);

await watcher.ready;
if (!stopping) {
  log('info', `ready: watching ${watcher.stats().mode === 'polling' ? 'by polling' : 'with native events'}`);
  process.send?.('ready'); // PM2's wait_ready
}
