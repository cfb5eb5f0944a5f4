#!/usr/bin/env bash
# DHCP server comparison with Kea's perfdhcp: completed DORA exchanges per second and latency of
# ferroboot vs dnsmasq (--no-ping) vs kea-dhcp4 (memfile), in the same namespace setup, median of
# RUNS runs each. perfdhcp acts as a relay (giaddr = its address), so every server answers by
# unicast and no broadcast or raw-socket path is involved.
#
#   server ns fbbs: fbb0 10.90.0.1/16  <-- veth -->  client ns fbbc: fbb1 10.90.0.2/16 (perfdhcp)
#
# Needs root, perfdhcp (kea-admin), dnsmasq, kea-dhcp4 and a release build
# (`cargo build --release`). Knobs: RATE (offered DORA/s, default 4000), SECS (per run, 10),
# RUNS (3), CLIENTS (distinct MACs, 50000), BIN (ferroboot binary), SERVERS (which to run),
# DNSMASQ_ARGS (extra dnsmasq flags, e.g. --leasefile-ro to see it without its lease file).
# Each run starts the server with empty lease state. ferroboot fdatasyncs its journal before each
# batch of ACKs; dnsmasq and kea's memfile write their lease files without an fsync per lease.
set -euo pipefail

RATE=${RATE:-4000}
SECS=${SECS:-10}
RUNS=${RUNS:-3}
CLIENTS=${CLIENTS:-50000}
BIN=${BIN:-$(cd "$(dirname "$0")/.." && pwd)/target/release/ferroboot}
SERVERS=${SERVERS:-"ferroboot dnsmasq kea"}
S=fbbs
C=fbbc
WORK=$(mktemp -d /tmp/dhcp-compare.XXXXXX)
PID=

for t in perfdhcp dnsmasq kea-dhcp4; do
    command -v "$t" >/dev/null || { echo "missing $t" >&2; exit 1; }
done
[ -x "$BIN" ] || { echo "missing $BIN (cargo build --release)" >&2; exit 1; }

stop_server() {
    if [ -n "$PID" ]; then kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; PID=; fi
}
cleanup() {
    stop_server
    ip netns del $S 2>/dev/null || true
    ip netns del $C 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

ip netns del $S 2>/dev/null || true
ip netns del $C 2>/dev/null || true
ip netns add $S
ip netns add $C
ip link add fbb0 type veth peer name fbb1
ip link set fbb0 netns $S
ip link set fbb1 netns $C
ip -n $S addr add 10.90.0.1/16 dev fbb0
ip -n $C addr add 10.90.0.2/16 dev fbb1
for ns in $S $C; do ip -n $ns link set lo up; done
ip -n $S link set fbb0 up
ip -n $C link set fbb1 up

start_ferroboot() {
    mkdir -p "$WORK/fb/root" "$WORK/fb/state"
    rm -f "$WORK/fb/state/"*
    cat > "$WORK/fb/ferroboot.toml" <<TOML
root = "$WORK/fb/root"
state_dir = "$WORK/fb/state"
interface = "fbb0"
[dhcp]
mode = "server"
subnet = "10.90.0.0"
netmask = "255.255.0.0"
range = { start = "10.90.1.0", end = "10.90.250.255" }
router = "10.90.0.1"
lease_time = 3600
[tftp]
enabled = false
[http]
enabled = false
TOML
    RUST_LOG=warn ip netns exec $S "$BIN" serve --config "$WORK/fb/ferroboot.toml" 2>"$WORK/fb.log" &
    PID=$!
}

start_dnsmasq() {
    rm -f "$WORK/dnsmasq.leases"
    ip netns exec $S dnsmasq --keep-in-foreground --quiet-dhcp --port=0 --no-ping --interface=fbb0 --bind-interfaces \
        --dhcp-range=10.90.1.0,10.90.250.255,255.255.0.0,1h --dhcp-lease-max=100000 \
        --dhcp-leasefile="$WORK/dnsmasq.leases" --log-facility="$WORK/dnsmasq.log" ${DNSMASQ_ARGS:-} &
    PID=$!
}

start_kea() {
    rm -f "$WORK"/kea-leases4.csv*
    cat > "$WORK/kea.json" <<JSON
{ "Dhcp4": {
  "interfaces-config": { "interfaces": [ "fbb0" ], "dhcp-socket-type": "udp" },
  "lease-database": { "type": "memfile", "persist": true, "name": "$WORK/kea-leases4.csv", "lfc-interval": 0 },
  "valid-lifetime": 3600,
  "subnet4": [ { "id": 1, "subnet": "10.90.0.0/16",
                 "pools": [ { "pool": "10.90.1.0 - 10.90.250.255" } ],
                 "option-data": [ { "name": "routers", "data": "10.90.0.1" } ] } ],
  "loggers": [ { "name": "kea-dhcp4", "output_options": [ { "output": "$WORK/kea.log" } ], "severity": "WARN" } ]
} }
JSON
    KEA_LOCKFILE_DIR=$WORK KEA_PIDFILE_DIR=$WORK ip netns exec $S kea-dhcp4 -c "$WORK/kea.json" >/dev/null 2>&1 &
    PID=$!
}

wait_port67() {
    for _ in $(seq 1 100); do
        ip netns exec $S ss -lun 2>/dev/null | grep -q ':67 ' && return 0
        sleep 0.05
    done
    echo "server did not bind port 67" >&2
    return 1
}

median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

printf '%-10s %12s %10s %14s %14s %8s\n' server "DORA/s" "drops%" "D-O avg ms" "R-A avg ms" runs
for srv in $SERVERS; do
    : > "$WORK/$srv.rates"; : > "$WORK/$srv.do"; : > "$WORK/$srv.ra"; : > "$WORK/$srv.drops"
    for run in $(seq 1 "$RUNS"); do
        "start_$srv"
        wait_port67
        sleep 0.3
        out=$(ip netns exec $C perfdhcp -4 -r "$RATE" -R "$CLIENTS" -p "$SECS" -l 10.90.0.2 10.90.0.1 2>&1 || true)
        stop_server
        echo "$out" > "$WORK/$srv.$run.perfdhcp"
        echo "$out" | awk '/^Rate:/ {print $2}' | head -1 >> "$WORK/$srv.rates"
        echo "$out" | awk '/avg delay/ {print $3}' | sed -n 1p >> "$WORK/$srv.do"
        echo "$out" | awk '/avg delay/ {print $3}' | sed -n 2p >> "$WORK/$srv.ra"
        echo "$out" | awk '/drops ratio/ {print $3}' | sed -n 2p >> "$WORK/$srv.drops"
    done
    printf '%-10s %12s %10s %14s %14s %8s\n' "$srv" "$(median < "$WORK/$srv.rates")" \
        "$(median < "$WORK/$srv.drops")" "$(median < "$WORK/$srv.do")" "$(median < "$WORK/$srv.ra")" "$RUNS"
done
[ -n "${KEEP:-}" ] && cp -r "$WORK" "$KEEP"
exit 0
