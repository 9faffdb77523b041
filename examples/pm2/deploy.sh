#!/bin/sh
# A deploy of the PM2 example: copy it beside ecosystem.config.cjs and package.json, then run
# `./deploy.sh` (after `git pull` or however the new code arrives).
#
# Cleanup belongs here, between the build and the restart, and never on a schedule: it deletes
# from the mirror, and a running standalone server answers 500 for a file it listed at startup
# that is gone. Run here, nothing is removed from under a server: the workers that start next list
# the cleaned mirror.
set -eu
cd "$(dirname "$0")"

# 1. The build. `next build` makes .next/standalone anew (the mirror in it starts empty).
npm run build
# 2. The mirror complete (a no-op if the build script already ran `upload-sync sync`); a failed
#    sync stops the deploy here. Then cleaned: orphans older than 30 days, stale temp files, temp
#    files of uploads that died mid-write (in public/uploads too), folders left empty. A cleanup
#    that cannot finish (an empty source is refused, say) does not block the deploy.
./node_modules/.bin/upload-sync sync
./node_modules/.bin/upload-sync cleanup || echo "deploy.sh: the cleanup did not finish (see above); deploying anyway" >&2
# 3. The restart. `web`: one worker at a time, each old worker finishing its uploads in flight
#    (kill_timeout); the watcher restarts and reconciles. Starts whatever is not running yet.
pm2 startOrReload ecosystem.config.cjs
