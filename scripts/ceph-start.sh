#!/usr/bin/env bash
# Starts the test gateway (scripts/ceph-up.sh) in DIR, on random free-looking ports; when a start
# fails or hangs (about one in twenty: radosgw alive but not answering), prints the logs, stops
# what was started and tries once more with other ports. Exit 0 with DIR/env written, else 1.
#
#   scripts/ceph-start.sh DIR        (stop it with scripts/ceph-down.sh DIR)
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
D=$(realpath -m "$1")
for attempt in 1 2; do
  rm -rf "$D"
  mkdir -p "$D"
  # Random ports: a developer may have another gateway (or another checkout's) running.
  mon=$((20000 + RANDOM % 10000)); rgw=$((30000 + RANDOM % 10000))
  if MON_PORT=$mon RGW_PORT=$rgw timeout 150 "$HERE/ceph-up.sh" "$D"; then exit 0; fi
  echo "ceph-start: attempt $attempt failed (mon $mon, radosgw $rgw); the logs:" >&2
  for f in "$D"/log/*; do [ -f "$f" ] && { echo "==> $f <==" >&2; tail -n 30 "$f" >&2; }; done
  "$HERE/ceph-down.sh" "$D"
done
echo "ceph-start: the gateway did not start twice; giving up" >&2
exit 1
