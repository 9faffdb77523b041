#!/usr/bin/env bash
# A real S3-compatible server on loopback for the tests: one ceph-mon, one memstore ceph-osd and
# radosgw, from Debian (apt-get install -y --no-install-recommends ceph-mon ceph-osd radosgw), no
# systemd, every file in DIR. Prints `S3 ready at http://127.0.0.1:PORT` and writes DIR/env
# (AWS_ENDPOINT_URL, keys, region); PIDs in DIR/pids. Stop it with scripts/ceph-down.sh DIR.
#
#   scripts/ceph-up.sh DIR        (MON_PORT, RGW_PORT: ports, default 16789 and 17480)
#
# Traps this works around (see the comments below): the OSD's start-up CRUSH commands racing the
# monmap with auth none; Ceph's default /var/log and /var/run paths; the mon's free-disk warnings;
# memstore holding deleted objects until radosgw's garbage collector runs (two hours by default).
set -euo pipefail
D=$(realpath -m "$1"); mkdir -p "$D"/{run,log,mon.a,osd.0}
: > "$D/pids"
MON_PORT=${MON_PORT:-16789}; RGW_PORT=${RGW_PORT:-17480}
FSID=$(cat /proc/sys/kernel/random/uuid)
T0=$(date +%s%N); ms() { echo "$(( ($(date +%s%N) - T0) / 1000000 )) ms: $*"; }
cat > "$D/ceph.conf" <<CONF
[global]
fsid = $FSID
mon host = v1:127.0.0.1:$MON_PORT
mon initial members = a
public addr = 127.0.0.1
cluster addr = 127.0.0.1
ms bind msgr2 = false
auth cluster required = none
auth service required = none
auth client required = none
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
mon max pg per osd = 1000
osd crush chooseleaf type = 0
mon allow pool size one = true
mon warn on pool no redundancy = false
mon data avail warn = 2
mon data avail crit = 1
run dir = $D/run
admin socket = $D/run/\$name.asok
pid file = $D/run/\$name.pid
log file = $D/log/\$name.log
mon cluster log file = $D/log/\$cluster.\$channel.log
keyring = $D/keyring
[mon.a]
mon data = $D/mon.a
[osd.0]
# The OSD must not send CRUSH commands at start: with auth none it may send them before it has the
# monmap (fsid 0000), the mon answers 'wrong fsid' and the OSD exits. It is added to CRUSH below.
osd crush update on start = false
osd class update on start = false
osd data = $D/osd.0
osd objectstore = memstore
# Objects live in RAM: room for the 1 GB upload tests, and deleted objects freed within a minute.
memstore device bytes = ${MEMSTORE_BYTES:-4294967296}
[client.rgw.a]
rgw frontends = beast endpoint=127.0.0.1:$RGW_PORT
rgw gc obj min wait = 30
rgw gc processor period = 30
CONF
export CEPH_CONF="$D/ceph.conf"
ceph-authtool --create-keyring "$D/keyring" --gen-key -n mon. --cap mon 'allow *' >/dev/null
ceph-authtool "$D/keyring" --gen-key -n client.admin --cap mon 'allow *' --cap osd 'allow *' >/dev/null
monmaptool --create --fsid "$FSID" --addv a "[v1:127.0.0.1:$MON_PORT]" "$D/monmap" >/dev/null
ceph-mon --mkfs -i a --monmap "$D/monmap" --keyring "$D/keyring"
ceph-mon -i a -f > "$D/log/mon.out" 2>&1 & echo $! >> "$D/pids"
timeout 30 bash -c 'until ceph -s --connect-timeout 2 >/dev/null 2>&1; do sleep 0.3; done'
ms "mon up"
OSD_UUID=$(cat /proc/sys/kernel/random/uuid)
ID=$(timeout 20 ceph osd new "$OSD_UUID")
ceph osd crush add-bucket node1 host >/dev/null 2>&1
ceph osd crush move node1 root=default >/dev/null 2>&1
ceph osd crush add "osd.$ID" 1.0 host=node1 >/dev/null 2>&1
ceph-osd -i "$ID" --mkfs --osd-uuid "$OSD_UUID" > "$D/log/osd-mkfs.out" 2>&1
ceph-osd -i "$ID" -f > "$D/log/osd.out" 2>&1 & echo $! >> "$D/pids"
timeout 60 bash -c 'until ceph osd stat 2>/dev/null | grep -q " 1 up"; do sleep 0.5; done'
ms "osd up"
radosgw -n client.rgw.a -f > "$D/log/rgw.out" 2>&1 & echo $! >> "$D/pids"
timeout 90 bash -c "until curl -s -o /dev/null http://127.0.0.1:$RGW_PORT/; do sleep 0.5; done"
ms "radosgw answers"
timeout 30 radosgw-admin -n client.admin user create --uid=test --display-name=test \
  --access-key=TESTAK --secret=TESTSK >/dev/null
cat > "$D/env" <<ENV
AWS_ENDPOINT_URL=http://127.0.0.1:$RGW_PORT
AWS_ACCESS_KEY_ID=TESTAK
AWS_SECRET_ACCESS_KEY=TESTSK
AWS_REGION=us-east-1
UPLOAD_SYNC_S3_PATH_STYLE=true
ENV
ms "S3 ready at http://127.0.0.1:$RGW_PORT"
