#!/usr/bin/env bash
# Stops what scripts/ceph-up.sh DIR started, by PID, newest first, each waited for (10 s, then KILL).
D=$(realpath -m "$1"); [ -f "$D/pids" ] || exit 0
for p in $(tac "$D/pids"); do
  kill "$p" 2>/dev/null || continue
  for _ in $(seq 1 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$p" 2>/dev/null && kill -9 "$p"
done
rm -f "$D/pids"
