// PM2 apps of a Next.js standalone build that takes uploads (copy this file to the project root).
//
//   pm2 start ecosystem.config.cjs                          # every app
//   pm2 start ecosystem.config.cjs --only upload-watcher    # the watcher alone
//
// The web app serves .next/standalone; the watcher mirrors each new upload from public/uploads
// into .next/standalone/public/uploads (the standalone server's public folder).
module.exports = {
  apps: [
    {
      name: 'web',
      cwd: __dirname,
      script: '.next/standalone/server.js',
      exec_mode: 'cluster',
      instances: 'max',
      env: { NODE_ENV: 'production', PORT: '3000', HOSTNAME: '0.0.0.0' },
    },
    {
      name: 'upload-watcher',
      cwd: __dirname,
      script: 'upload-watcher.mjs', // or: script: 'node_modules/upload-sync/dist/cli.js', args: 'watch'
      exec_mode: 'fork',
      instances: 1,
      // Online once the watcher is watching and its first sync is done (it calls process.send('ready')).
      wait_ready: true,
      listen_timeout: 120_000, // a first sync of a large tree can take a while
      // pm2 stop sends SIGINT: the watcher finishes the copy in flight, then exits 0. SIGKILL only after this.
      kill_timeout: 30_000,
      max_memory_restart: '300M',
      // Exit code 0 is a deliberate stop (sync disabled by the environment): no restart loop.
      // (No restart_delay/exp_backoff_restart_delay: PM2 7 then shows such a stop as 'waiting restart'.)
      stop_exit_codes: [0],
      out_file: 'logs/upload-watcher.out.log',
      error_file: 'logs/upload-watcher.err.log',
      merge_logs: true, // exactly these file names (no -0 suffix)
      time: true, // PM2 prefixes each line with a timestamp
      env: {
        NODE_ENV: 'production',
        // UPLOAD_SYNC_EXTENSIONS: 'audio',
        // UPLOAD_SYNC_STABLE_MS: '1000',
        // UPLOAD_SYNC_LOG_FILE: 'logs/upload-sync.log',
      },
    },
    {
      // Once a day (03:30), remove from the mirror the orphans older than 30 days, the temp files of
      // interrupted syncs and the folders left empty. cron_restart starts it, autorestart: false
      // lets it exit when done: PM2 shows it 'stopped' until the next day. `pm2 start` also runs it
      // once at once. Try `upload-sync cleanup --dry-run` by hand first.
      name: 'upload-cleanup',
      cwd: __dirname,
      script: 'node_modules/upload-sync/dist/cli.js',
      args: 'cleanup',
      exec_mode: 'fork',
      cron_restart: '30 3 * * *',
      autorestart: false,
      out_file: 'logs/upload-cleanup.out.log',
      error_file: 'logs/upload-cleanup.err.log',
      merge_logs: true,
      time: true,
      env: {
        NODE_ENV: 'production',
        // UPLOAD_SYNC_CLEANUP_DAYS: '30',
        // UPLOAD_SYNC_MAX_DELETE: '500', // a cap per run: a surprise stops at 500 files (exit 1)
        // UPLOAD_SYNC_LOG_FILE: 'logs/upload-sync.log',
      },
    },
  ],
};
