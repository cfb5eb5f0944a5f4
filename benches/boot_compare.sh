#!/usr/bin/env bash
# Whole-boot comparison: ferroboot vs the stack it replaces (dnsmasq for DHCP + TFTP, nginx for
# HTTP), both driven by `ferroboot loadgen` with N = 1, 8, 32, 128 simulated machines booting at
# once: PXE DHCP → TFTP of ipxe.efi (blksize 1468, windowsize 16 asked for) → iPXE DHCP → HTTP of
# a kernel and an initrd. Then ferroboot's peak RSS (VmHWM) with 1,000 concurrent TFTP sessions
# and 1,000 HTTP connections.
#
#   server ns loadbs: loadb0 10.78.0.1/24  <-- veth -->  client ns loadbc: loadb1 10.78.0.2/24
#
# The servers run one at a time in loadbs (dnsmasq's TFTP port is fixed at 69), pinned to CPU 1
# (dnsmasq and nginx both on it); loadgen runs in loadbc pinned to CPU 0. Every run starts the
# server with empty lease state; servers alternate run by run (A B, A B, ...); each figure is the
# median of RUNS runs (3 × RUNS at N <= 8, whose runs are short). dnsmasq runs with --no-ping
# (else it pings each new address for ~3 s) and --edns-packet-max=65000 (else blksize is capped
# at 2263); nginx with sendfile, one worker, access log off; ferroboot with RUST_LOG=warn.
#
#   sudo bash benches/boot_compare.sh            # full: initrd 500 MiB, RUNS=3
#   sudo bash benches/boot_compare.sh --quick    # initrd 32 MiB, N = 1 8 32, RUNS=1, RSS at 200
#
# Knobs (environment): RUNS, NODES ("1 8 32 128"), INITRD_MIB (500), KERNEL_MIB (12),
# WINDOWSIZE (16), BLKSIZE (1468), RSS_NODES (1000), RSS_TFTP_MIB (4), RSS_HTTP_MIB (128),
# OUT (docs/bench-boot: where results.csv, rss.txt and the PNG go), PLOT=0 (skip the plot).
# Needs root, dnsmasq, nginx, jq, curl (installed with apt when missing) and cargo.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)

QUICK=0
[ "${1:-}" = "--quick" ] && QUICK=1
if [ $QUICK = 1 ]; then
    RUNS=${RUNS:-1}; NODES=${NODES:-"1 8 32"}; INITRD_MIB=${INITRD_MIB:-32}
    RSS_NODES=${RSS_NODES:-200}; RSS_HTTP_MIB=${RSS_HTTP_MIB:-8}
fi
RUNS=${RUNS:-3}
NODES=${NODES:-"1 8 32 128"}
INITRD_MIB=${INITRD_MIB:-500}
KERNEL_MIB=${KERNEL_MIB:-12}
WINDOWSIZE=${WINDOWSIZE:-16}
BLKSIZE=${BLKSIZE:-1468}
RSS_NODES=${RSS_NODES:-1000}
RSS_TFTP_MIB=${RSS_TFTP_MIB:-4}
RSS_HTTP_MIB=${RSS_HTTP_MIB:-128}
OUT=${OUT:-$REPO/docs/bench-boot}
PLOT=${PLOT:-1}
S=loadbs; C=loadbc; SIF=loadb0; CIF=loadb1; SRV=10.78.0.1

[ "$(id -u)" = 0 ] || { echo "needs root (network namespaces, ports 67/69)" >&2; exit 1; }
# shellcheck source=../scripts/lib-peers.sh
. scripts/lib-peers.sh
peers_apt_install dnsmasq-base nginx jq curl iproute2 util-linux fonts-dejavu-core
peers_stop_service nginx /usr/sbin/nginx

cargo build --release --locked --quiet
BIN=$REPO/target/release/ferroboot
WORK=$(mktemp -d /tmp/boot-compare.XXXXXX)
PIDS=()
cleanup() {
    local p
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    ip netns del $S 2>/dev/null || true
    ip netns del $C 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT
ulimit -n "$(ulimit -Hn)"  # 1,000 TFTP sockets + 1,000 TCP connections on each side
export RUST_LOG=warn

# --- the lab -------------------------------------------------------------------------------
ip netns del $S 2>/dev/null || true
ip netns del $C 2>/dev/null || true
ip netns add $S
ip netns add $C
ip link add $SIF type veth peer name $CIF
ip link set $SIF netns $S
ip link set $CIF netns $C
ip -n $S addr add $SRV/24 dev $SIF
ip -n $C addr add 10.78.0.2/24 dev $CIF
for ns in $S $C; do ip -n $ns link set lo up; done
ip -n $S link set $SIF up
ip -n $C link set $CIF up

ROOT=$WORK/root
mkdir -p "$ROOT" "$WORK/state" "$WORK/nginx"
if [ -r /usr/lib/ipxe/ipxe.efi ]; then cp -L /usr/lib/ipxe/ipxe.efi "$ROOT/ipxe.efi"
else head -c 1M /dev/urandom > "$ROOT/ipxe.efi"; fi
head -c "${KERNEL_MIB}M" /dev/urandom > "$ROOT/vmlinuz"
head -c "${INITRD_MIB}M" /dev/urandom > "$ROOT/initrd.img"
head -c "${RSS_TFTP_MIB}M" /dev/urandom > "$ROOT/rss-tftp.bin"
head -c "${RSS_HTTP_MIB}M" /dev/urandom > "$ROOT/rss-http.bin"
printf '#!ipxe\nkernel /boot/vmlinuz\ninitrd /boot/initrd.img\nboot\n' > "$ROOT/boot.ipxe"

cat > "$WORK/ferroboot.toml" <<TOML
root = "$ROOT"
state_dir = "$WORK/state"
interface = "$SIF"
server_address = "$SRV"
[dhcp]
mode = "server"
subnet = "10.78.0.0"
netmask = "255.255.255.0"
range = { start = "10.78.0.10", end = "10.78.0.250" }
router = "$SRV"
lease_time = 3600
TOML

cat > "$WORK/nginx/nginx.conf" <<CONF
worker_processes 1;
user root;
daemon off;
master_process on;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log;
events { worker_connections 4096; }
http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_timeout 30;
    client_body_temp_path $WORK/nginx; proxy_temp_path $WORK/nginx; fastcgi_temp_path $WORK/nginx;
    uwsgi_temp_path $WORK/nginx; scgi_temp_path $WORK/nginx;
    server { listen $SRV:8080; location /boot/ { alias $ROOT/; } }
}
CONF

SERVER_PIDS=()
bg_in_ns() { # cpu log cmd... : starts cmd in $S pinned to cpu
    local cpu=$1 log=$2; shift 2
    ip netns exec $S taskset -c "$cpu" "$@" </dev/null >"$log" 2>&1 &
    SERVER_PIDS+=($!); PIDS+=($!)
}
wait_http() { for _ in $(seq 100); do ip netns exec $C curl -sf -o /dev/null -r 0-0 "http://$SRV:8080/boot/vmlinuz" && return 0; sleep 0.1; done; return 1; }
wait_udp() { for _ in $(seq 100); do ip netns exec $S ss -Hlun "sport = :$1" | grep -q . && return 0; sleep 0.1; done; return 1; }

start_server() { # ferroboot | stack
    rm -rf "$WORK/state"/* "$WORK/dnsmasq.leases"
    SERVER_PIDS=()
    if [ "$1" = ferroboot ]; then
        bg_in_ns 1 "$WORK/ferroboot.log" "$BIN" serve --config "$WORK/ferroboot.toml"
    else
        touch "$WORK/dnsmasq.leases"
        bg_in_ns 1 "$WORK/dnsmasq.log" /usr/sbin/dnsmasq --no-daemon --conf-file=/dev/null --no-resolv \
            --no-hosts --port=0 --interface=$SIF --bind-interfaces --user=root --group=root --pid-file= \
            --dhcp-range=10.78.0.10,10.78.0.250,255.255.255.0,1h --dhcp-leasefile="$WORK/dnsmasq.leases" \
            --dhcp-lease-max=10000 --no-ping --dhcp-userclass=set:ipxe,iPXE \
            --dhcp-boot=tag:!ipxe,ipxe.efi,,$SRV --dhcp-boot=tag:ipxe,http://$SRV:8080/boot.ipxe \
            --enable-tftp --tftp-root="$ROOT" --edns-packet-max=65000 --tftp-max=2000 \
            --log-facility=- --quiet-dhcp --quiet-tftp
        bg_in_ns 1 "$WORK/nginx.log" nginx -c "$WORK/nginx/nginx.conf" -p "$WORK/nginx"
    fi
    wait_udp 67 && wait_udp 69 && wait_http || { echo "$1 did not start" >&2; tail "$WORK"/*.log >&2; exit 1; }
}
stop_server() {
    local p
    for p in "${SERVER_PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for p in "${SERVER_PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    SERVER_PIDS=()
}

loadgen() { # json-out nodes extra...
    local out=$1 n=$2; shift 2
    ip netns exec $C taskset -c 0 "$BIN" loadgen --server $SRV --nodes "$n" --interface $CIF \
        --blksize "$BLKSIZE" --windowsize "$WINDOWSIZE" "$@" --json >"$out" 2>"$out.err" || true
}

# Warm the page cache for both.
cat "$ROOT"/* > /dev/null

mkdir -p "$OUT"
RAW=$WORK/raw.csv
echo "server,nodes,run,booted,failed,tftp_mbs,http_mbs,booted_p50_ms,booted_max_ms,dhcp_p50_ms,tftp_p50_ms,retries" > "$RAW"
# A run at N <= 8 lasts a second or two and its HTTP phase a fraction of that, so one scheduler
# hiccup moves it by half: those points get three times the runs.
runs_for() { if [ "$1" -le 8 ]; then echo $((RUNS * 3)); else echo "$RUNS"; fi; }
for n in $NODES; do
    for run in $(seq "$(runs_for "$n")"); do
        order="ferroboot stack"
        [ $((run % 2)) = 0 ] && order="stack ferroboot"
        for srv in $order; do
            start_server "$srv"
            j=$WORK/$srv-$n-$run.json
            loadgen "$j" "$n" --no-script --http-file /boot/vmlinuz --http-file /boot/initrd.img
            stop_server
            if ! jq -e . "$j" >/dev/null 2>&1; then
                echo "loadgen produced no report for $srv N=$n run $run:" >&2; cat "$j.err" >&2; exit 1
            fi
            jq -r --arg s "$srv" --arg r "$run" '[ $s, .nodes, $r, .booted, .failed,
                (.throughput.tftp.mb_per_s|floor), (.throughput.http.mb_per_s|floor),
                .time_to_booted.p50_ms, .time_to_booted.max_ms, .phases.dhcp.p50_ms, .phases.tftp.p50_ms,
                (.retries.dhcp_retransmits + .retries.tftp_retransmits + .retries.http_reconnects) ] | @csv' \
                "$j" | tr -d '"' >> "$RAW"
            printf '[boot] %-9s N=%-4s run %s: %s\n' "$srv" "$n" "$run" \
                "$(jq -r '"\(.booted)/\(.nodes) booted, tftp \(.throughput.tftp.mb_per_s|floor) MB/s, http \(.throughput.http.mb_per_s|floor) MB/s, booted max \(.time_to_booted.max_ms|floor) ms"' "$j")" >&2
            [ "$(jq .failed "$j")" = 0 ] || jq -r '.failures[:5][] | "    \(.mac) \(.phase): \(.error)"' "$j" >&2
        done
    done
done

# Medians per (server, N).
median() { sort -n | awk '{a[NR]=$1} END {if (NR == 0) print 0; else print a[int((NR+1)/2)]}'; }
RES=$OUT/results.csv
echo "server,nodes,runs,booted_min,failed_max,tftp_mbs,http_mbs,booted_p50_ms,booted_max_ms,dhcp_p50_ms,tftp_p50_ms,retries" > "$RES"
for srv in ferroboot stack; do
    for n in $NODES; do
        rows=$(awk -F, -v s=$srv -v n="$n" '$1 == s && $2 == n' "$RAW")
        col() { printf '%s\n' "$rows" | cut -d, -f"$1" | median; }
        bmin=$(printf '%s\n' "$rows" | cut -d, -f4 | sort -n | head -1)
        fmax=$(printf '%s\n' "$rows" | cut -d, -f5 | sort -n | tail -1)
        echo "$srv,$n,$(runs_for "$n"),$bmin,$fmax,$(col 6),$(col 7),$(col 8),$(col 9),$(col 10),$(col 11),$(col 12)" >> "$RES"
    done
done

# --- peak RSS: RSS_NODES concurrent TFTP sessions and HTTP connections ----------------------
start_server ferroboot
fbpid=${SERVER_PIDS[0]}
# The pid is `ip netns exec`'s, which execs taskset, which execs ferroboot: the same process.
peak_t=0; peak_h=0
( while :; do
    ip netns exec $C curl -s "http://$SRV:8080/metrics" | awk '/^ferroboot_active_sessions/ {print}'
    sleep 0.2
  done ) > "$WORK/active.txt" 2>/dev/null &
sampler=$!; PIDS+=($sampler)
ip netns exec $C taskset -c 0 "$BIN" loadgen --server $SRV --nodes "$RSS_NODES" --no-dhcp \
    --tftp-file rss-tftp.bin --http-file /boot/rss-http.bin --blksize "$BLKSIZE" --windowsize "$WINDOWSIZE" \
    --json >"$WORK/rss.json" 2>"$WORK/rss.err" || true
kill $sampler 2>/dev/null || true; wait $sampler 2>/dev/null || true
hwm_kib=$(awk '/^VmHWM/ {print $2}' "/proc/$fbpid/status")
stop_server
peak_t=$(awk -F'[ }]' '/protocol="tftp"/ {if ($NF+0 > m) m = $NF+0} END {print m+0}' "$WORK/active.txt")
peak_h=$(awk -F'[ }]' '/protocol="http"/ {if ($NF+0 > m) m = $NF+0} END {print m+0}' "$WORK/active.txt")
rss_booted=$(jq -r '"\(.booted)/\(.nodes)"' "$WORK/rss.json" 2>/dev/null || echo "?")
{
    echo "ferroboot VmHWM: $((hwm_kib / 1024)) MiB ($hwm_kib KiB)"
    echo "loadgen --no-dhcp --nodes $RSS_NODES: $rss_booted completed (TFTP ${RSS_TFTP_MIB} MiB + HTTP ${RSS_HTTP_MIB} MiB each)"
    echo "peak concurrent (from /metrics every 0.2 s): tftp $peak_t sessions, http $peak_h connections"
} > "$OUT/rss.txt"

# --- report ------------------------------------------------------------------------------
{
    echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $(uname -r), $(. /etc/os-release && echo "$PRETTY_NAME")"
    echo "dnsmasq $(dpkg-query -W -f='${Version}' dnsmasq-base), nginx $(dpkg-query -W -f='${Version}' nginx 2>/dev/null || nginx -v 2>&1 | cut -d/ -f2)"
    echo "files: ipxe.efi $(stat -c %s "$ROOT/ipxe.efi") B, vmlinuz ${KERNEL_MIB} MiB, initrd ${INITRD_MIB} MiB; TFTP blksize $BLKSIZE windowsize $WINDOWSIZE asked; median of $RUNS runs (3 × $RUNS at N <= 8)"
} > "$OUT/machine.txt"
cat "$OUT/machine.txt"
echo
printf '%-6s | %-21s | %-21s | %-23s | %s\n' N "booted (fb / stack)" "TFTP MB/s (fb/stack)" "HTTP MB/s (fb / nginx)" "time-to-booted p50 / max ms (fb ; stack)"
for n in $NODES; do
    f=$(awk -F, -v n="$n" '$1 == "ferroboot" && $2 == n' "$RES")
    s=$(awk -F, -v n="$n" '$1 == "stack" && $2 == n' "$RES")
    g() { echo "$1" | cut -d, -f"$2"; }
    printf '%-6s | %4s/%-4s  %4s/%-4s | %8s / %-9s | %9s / %-11s | %s / %s ; %s / %s\n' "$n" \
        "$(g "$f" 4)" "$n" "$(g "$s" 4)" "$n" "$(g "$f" 6)" "$(g "$s" 6)" "$(g "$f" 7)" "$(g "$s" 7)" \
        "$(g "$f" 8)" "$(g "$f" 9)" "$(g "$s" 8)" "$(g "$s" 9)"
done
echo
cat "$OUT/rss.txt"

# The issue's targets, checked on these medians.
{
    echo "targets:"
    awk -F, -v nodes="$NODES" 'NR > 1 { b[$1","$2] = $4; t[$1","$2] = $6; h[$1","$2] = $7 }
        END {
            n = split(nodes, N, " "); allb = 1; tftp = 1; http = 1
            for (i = 1; i <= n; i++) {
                k = N[i]
                if (b["ferroboot,"k] != k || b["stack,"k] != k) allb = 0
                if (t["ferroboot,"k] < 2 * t["stack,"k]) { tftp = 0; tf = tf " N=" k }
                if (h["ferroboot,"k] < h["stack,"k]) { http = 0; hf = hf " N=" k }
            }
            printf "  every node boots at every N:  %s\n", allb ? "PASS" : "FAIL"
            printf "  TFTP >= 2x dnsmasq:           %s\n", tftp ? "PASS" : "FAIL (" tf " )"
            printf "  HTTP >= nginx:                %s\n", http ? "PASS" : "FAIL (" hf " )"
        }' "$RES"
    printf '  RSS < 64 MiB at %s + %s:    %s\n' "$RSS_NODES" "$RSS_NODES" "$([ "$hwm_kib" -lt 65536 ] && echo PASS || echo FAIL)"
} | tee "$OUT/targets.txt"

if [ "$PLOT" = 1 ]; then
    CARGO_TARGET_DIR=$REPO/target/boot_plot cargo run --release --quiet --locked --manifest-path benches/boot_plot/Cargo.toml -- \
        "$RES" "$OUT/../bench-boot.png" "$(head -1 "$OUT/machine.txt")"
    echo "plot: $(cd "$OUT/.." && pwd)/bench-boot.png"
fi
