// PM2 apps of a Next.js standalone build that takes uploads (copy this file to the project root).
//
//   pm2 start ecosystem.config.cjs                          # every app
//   pm2 start ecosystem.config.cjs --only upload-watcher    # the watcher alone
//   ./deploy.sh                                             # a deploy: build, sync and clean the mirror, reload
//
// The web app serves .next/standalone; the watcher mirrors each new upload from public/uploads
// into .next/standalone/public/uploads (the standalone server's public folder). There is no
// scheduled cleanup app: cleanup deletes from the mirror, and the running server answers 500 for
// a file it listed at startup that is gone. It runs in deploy.sh, before the restart.

/** What `upload-sync watch` (and upload-watcher.mjs) exits with when the environment disables sync. */
const DISABLED_BY_ENV = 78;

module.exports = {
  apps: [
    {
      name: 'web',
      cwd: __dirname,
      script: '.next/standalone/server.js',
      exec_mode: 'cluster',
      instances: 'max',
      // `pm2 reload web` starts a new worker per instance, one at a time, and once it listens sends
      // the old one SIGINT. Next's standalone server then stops taking connections, lets the
      // requests in flight finish (an upload on a slow connection), and exits. PM2 sends SIGKILL
      // after kill_timeout (1.6 s by default: uploads in flight were cut): room for the longest
      // upload you accept. Leave NEXT_MANUAL_SIG_HANDLE unset (it turns Next's handler off).
      kill_timeout: 30_000,
      // How long a new worker may take to listen before PM2 stops the old one anyway (3 s by
      // default). No wait_ready: Next never sends 'ready'; PM2 waits for it to listen.
      listen_timeout: 15_000,
      node_args: [
        // A closing worker answers `Connection: close`, so keep-alive clients move to the new
        // workers instead of holding the old one until kill_timeout (see graceful-http.cjs).
        '--require', `${__dirname}/graceful-http.cjs`,
        // GET/HEAD of /uploads/* answered by createUploadsRoute before Next's request pipeline:
        // seeks (64 KiB ranges) at the static handler's speed instead of 0.2-0.5x of it. Resolved
        // here, from the project's node_modules: Next bundles upload-sync into its chunks, and
        // .next/standalone/node_modules has no copy. UPLOAD_SYNC_PRELOAD=off turns it off.
        '--require', require.resolve('upload-sync/preload', { paths: [__dirname] }),
      ],
      env: {
        NODE_ENV: 'production',
        PORT: '3000',
        HOSTNAME: '0.0.0.0',
        // UPLOAD_SYNC_URL_PREFIX: '/uploads', // the URL path the preload serves (basePath included)
      },
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
      // Only "disabled by the environment" is a deliberate stop (no restart loop). Never 0 here:
      // PM2 records a death by signal (kill -9, the OOM killer) as exit code 0, and the watcher
      // would then stay stopped for good. (No restart_delay/exp_backoff_restart_delay: PM2 7 then
      // shows such a stop as 'waiting restart'.)
      stop_exit_codes: [DISABLED_BY_ENV],
      out_file: 'logs/upload-watcher.out.log',
      error_file: 'logs/upload-watcher.err.log',
      merge_logs: true, // exactly these file names (no -0 suffix)
      // No `time: true`: the watcher stamps each line itself (ISO 8601, UTC); PM2 would stamp it twice.
      env: {
        NODE_ENV: 'production',
        // UPLOAD_SYNC_EXTENSIONS: 'audio',
        // UPLOAD_SYNC_STABLE_MS: '1000',
        // UPLOAD_SYNC_LOG_FILE: 'logs/upload-sync.log',
      },
    },
  ],
};
