#!/usr/bin/env bash
# Side-by-side: ferroboot's HTTP service vs nginx (sendfile on, one worker) serving one file to
# 1, 8 and 32 concurrent curl clients over loopback. Median of RUNS (5) runs per point, the two
# servers alternating run by run; reports MB/s (all clients together), the server's CPU seconds
# per GB sent (schedstat run time of its threads) and the whole machine's busy CPU seconds per GB
# (/proc/stat), then the ratios. Both servers run pinned to CPU 1 and every curl to CPU 0.
#
#   benches/http_compare.sh                 # 500 MiB file, release build
#   SIZE_MIB=100 PROFILE=dev benches/http_compare.sh
#   TOPOLOGY=veth benches/http_compare.sh   # root: two namespaces, like two hosts
#
# On loopback the kernel runs the receiver's TCP processing in whichever context sent the
# segment, so some of the clients' work is billed to the server and which process pays depends
# on timing. TOPOLOGY=veth puts the servers and the clients in two namespaces joined by a veth
# pair whose receive side is steered (RPS) to the receiving side's CPU: the server's CPU then
# handles its own sends and the ACKs it receives, as on a host with a NIC, and the clients' CPU
# does the rest.
#
# Needs: curl, nginx (apt-get install -y nginx curl).
set -euo pipefail
cd "$(dirname "$0")/.."

SIZE_MIB=${SIZE_MIB:-500}
RUNS=${RUNS:-5}
CONCURRENCY=${CONCURRENCY:-"1 8 32"}
PROFILE=${PROFILE:-release}
FB_PORT=${FB_PORT:-18080}
NGINX_PORT=${NGINX_PORT:-18081}
TOPOLOGY=${TOPOLOGY:-loopback}
for p in curl nginx; do
    command -v "$p" >/dev/null || { echo "$p missing: apt-get install -y $p" >&2; exit 1; }
done

work=$(mktemp -d)
fb_pid=""; nginx_pid=""; srv_ns=""; cli_ns=""
cleanup() {
    [ -n "$nginx_pid" ] && kill "$nginx_pid" 2>/dev/null || true
    [ -n "$fb_pid" ] && kill "$fb_pid" 2>/dev/null && wait "$fb_pid" 2>/dev/null || true
    [ -n "$srv_ns" ] && ip netns del "$srv_ns" 2>/dev/null || true
    [ -n "$cli_ns" ] && ip netns del "$cli_ns" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

# Where the servers listen, and how server-side and client-side commands are started.
srv=(); cli=(); addr=127.0.0.1
case $TOPOLOGY in
loopback) ;;
veth)
    [ "$(id -u)" = 0 ] || { echo "TOPOLOGY=veth needs root (network namespaces)" >&2; exit 1; }
    srv_ns=fbhc-srv-$$; cli_ns=fbhc-cli-$$; addr=10.213.0.1
    ip netns add "$srv_ns"; ip netns add "$cli_ns"
    ip link add fbhc-s netns "$srv_ns" type veth peer name fbhc-c netns "$cli_ns"
    ip -n "$srv_ns" addr add "$addr/24" dev fbhc-s; ip -n "$cli_ns" addr add 10.213.0.2/24 dev fbhc-c
    for ns in "$srv_ns" "$cli_ns"; do ip -n "$ns" link set lo up; done
    ip -n "$srv_ns" link set fbhc-s up; ip -n "$cli_ns" link set fbhc-c up
    # What arrives at the server is handled on CPU 1 (the servers'), at the clients on CPU 0.
    ip netns exec "$srv_ns" sh -c 'echo 2 > /sys/class/net/fbhc-s/queues/rx-0/rps_cpus'
    ip netns exec "$cli_ns" sh -c 'echo 1 > /sys/class/net/fbhc-c/queues/rx-0/rps_cpus'
    srv=(ip netns exec "$srv_ns"); cli=(ip netns exec "$cli_ns")
    ;;
*) echo "TOPOLOGY must be loopback or veth" >&2; exit 1 ;;
esac
mkdir -p "$work/root" "$work/nginx"
head -c "${SIZE_MIB}M" /dev/urandom > "$work/root/big.img"
bytes=$((SIZE_MIB * 1024 * 1024))

# ferroboot: the real binary, HTTP only, access log off (nginx runs with access_log off too).
bin=target/release/ferroboot
[ "$PROFILE" = release ] || bin=target/debug/ferroboot
cargo build --profile "$( [ "$PROFILE" = release ] && echo release || echo dev )" >/dev/null 2>&1
[ -x "$bin" ] || { echo "could not build ferroboot" >&2; exit 1; }
mkdir -p "$work/state"
RUST_LOG=warn "${srv[@]}" taskset -c 1 "$bin" serve --root "$work/root" --listen "$addr" --http-port "$FB_PORT" --no-tftp \
    --state-dir "$work/state" >"$work/ferroboot.log" 2>&1 &
fb_pid=$!

# nginx: one worker, sendfile on, same file under /boot/.
cat > "$work/nginx/nginx.conf" <<CONF
worker_processes 1;
$( [ "$(id -u)" = 0 ] && echo 'user root;')
daemon off;
master_process on;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log;
events { worker_connections 1024; }
http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_timeout 30;
    client_body_temp_path $work/nginx; proxy_temp_path $work/nginx; fastcgi_temp_path $work/nginx;
    uwsgi_temp_path $work/nginx; scgi_temp_path $work/nginx;
    server { listen $addr:$NGINX_PORT; location /boot/ { alias $work/root/; } }
}
CONF
"${srv[@]}" taskset -c 1 nginx -c "$work/nginx/nginx.conf" -p "$work/nginx" &
nginx_pid=$!

wait_up() { for _ in $(seq 100); do "${cli[@]}" curl -sf -o /dev/null -r 0-0 "$1" && return 0; sleep 0.1; done; return 1; }
wait_up "http://$addr:$FB_PORT/boot/big.img"
wait_up "http://$addr:$NGINX_PORT/boot/big.img" || { cat "$work/nginx/error.log" >&2; exit 1; }
nginx_worker=$(pgrep -P "$nginx_pid" | head -1)

# CPU time of a pid in ns: the sum over its threads of schedstat's run time (exact, where
# /proc/PID/stat's utime+stime comes in 10 ms ticks). On loopback this includes the receive
# processing the kernel does in the sender's context, so the whole machine's busy time per GB is
# printed too: that does not depend on which process the kernel charged it to.
cpu_ns() { cat /proc/"$1"/task/*/schedstat | awk '{s += $1} END {printf "%.0f\n", s}'; }
busy_ticks() { awk '/^cpu / {print $2 + $3 + $4 + $6 + $7 + $8}' /proc/stat; }
hz=$(getconf CLK_TCK)

run_once() { # url conc pid -> "MBps server_cpu_s_per_GB machine_cpu_s_per_GB"
    local url=$1 conc=$2 pid=$3 t0 t1 c0 c1 m0 m1
    c0=$(cpu_ns "$pid"); m0=$(busy_ticks); t0=$(date +%s.%N)
    local pids=()
    for _ in $(seq "$conc"); do "${cli[@]}" taskset -c 0 curl -s -o /dev/null "$url" & pids+=($!); done
    wait "${pids[@]}"
    t1=$(date +%s.%N); c1=$(cpu_ns "$pid"); m1=$(busy_ticks)
    awk -v b="$bytes" -v n="$conc" -v t="$(echo "$t1 - $t0" | bc -l)" -v c=$((c1 - c0)) \
        -v m=$((m1 - m0)) -v hz="$hz" \
        'BEGIN { gb = b * n / 1e9; printf "%.0f %.3f %.3f\n", gb * 1000 / t, c / 1e9 / gb, m / hz / gb }'
}

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

url_of() { if [ "$1" = ferroboot ]; then echo "http://$addr:$FB_PORT/boot/big.img"; else echo "http://$addr:$NGINX_PORT/boot/big.img"; fi; }
pid_of() { if [ "$1" = ferroboot ]; then echo "$fb_pid"; else echo "$nginx_worker"; fi; }
for name in ferroboot nginx; do "${cli[@]}" curl -s -o /dev/null "$(url_of "$name")"; done # warm the page cache

# Servers alternate run by run (A B A B ...) so drift on a shared machine hits both alike.
declare -A results
for conc in $CONCURRENCY; do
    for _ in $(seq "$RUNS"); do
        for name in ferroboot nginx; do
            results[$name/$conc]+="$(run_once "$(url_of "$name")" "$conc" "$(pid_of "$name")")"$'\n'
        done
    done
done

echo "topology: $TOPOLOGY, $SIZE_MIB MiB, median of $RUNS runs"
printf '%-10s %5s %10s %14s %15s\n' server clients "MB/s" "server s/GB" "machine s/GB"
for name in ferroboot nginx; do
    for conc in $CONCURRENCY; do
        r=${results[$name/$conc]}
        mbps=$(printf '%s' "$r" | awk 'NF {print $1}' | median)
        cpu=$(printf '%s' "$r" | awk 'NF {print $2}' | median)
        mach=$(printf '%s' "$r" | awk 'NF {print $3}' | median)
        printf '%-10s %5s %10s %14s %15s\n' "$name" "$conc" "$mbps" "$cpu" "$mach"
    done
done

med_of() { printf '%s' "${results[$1/$2]}" | awk -v f="$3" 'NF {print $f}' | median; }
echo
printf '%5s %22s %24s %25s\n' clients "MB/s ferroboot/nginx" "server s/GB fb/nginx" "machine s/GB fb/nginx"
for conc in $CONCURRENCY; do
    awk -v c="$conc" -v a="$(med_of ferroboot "$conc" 1)" -v b="$(med_of nginx "$conc" 1)" \
        -v d="$(med_of ferroboot "$conc" 2)" -v e="$(med_of nginx "$conc" 2)" \
        -v f="$(med_of ferroboot "$conc" 3)" -v g="$(med_of nginx "$conc" 3)" \
        'BEGIN { printf "%5s %22.2f %24.2f %25.2f\n", c, a / b, d / e, f / g }'
done
