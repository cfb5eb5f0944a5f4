#!/usr/bin/env bash
# Side-by-side: ferroboot's HTTP service vs nginx (sendfile on, one worker) serving one file to
# 1, 8 and 32 concurrent curl clients over loopback. Median of 3 runs per point, the two servers
# alternating run by run; reports MB/s
# (all clients together) and server CPU seconds per GB sent (utime+stime from /proc). Both
# servers run pinned to CPU 1 and every curl to CPU 0.
#
#   benches/http_compare.sh                 # 500 MiB file, release build
#   SIZE_MIB=100 PROFILE=dev benches/http_compare.sh
#
# Needs: curl, nginx (apt-get install -y nginx curl).
set -euo pipefail
cd "$(dirname "$0")/.."

SIZE_MIB=${SIZE_MIB:-500}
RUNS=${RUNS:-3}
CONCURRENCY=${CONCURRENCY:-"1 8 32"}
PROFILE=${PROFILE:-release}
FB_PORT=${FB_PORT:-18080}
NGINX_PORT=${NGINX_PORT:-18081}
for p in curl nginx; do
    command -v "$p" >/dev/null || { echo "$p missing: apt-get install -y $p" >&2; exit 1; }
done

work=$(mktemp -d)
fb_pid=""; nginx_pid=""
cleanup() {
    [ -n "$nginx_pid" ] && kill "$nginx_pid" 2>/dev/null || true
    [ -n "$fb_pid" ] && kill "$fb_pid" 2>/dev/null && wait "$fb_pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
mkdir -p "$work/root" "$work/nginx"
head -c "${SIZE_MIB}M" /dev/urandom > "$work/root/big.img"
bytes=$((SIZE_MIB * 1024 * 1024))

# ferroboot: the real binary, HTTP only, access log off (nginx runs with access_log off too).
bin=target/release/ferroboot
[ "$PROFILE" = release ] || bin=target/debug/ferroboot
cargo build --profile "$( [ "$PROFILE" = release ] && echo release || echo dev )" >/dev/null 2>&1
[ -x "$bin" ] || { echo "could not build ferroboot" >&2; exit 1; }
mkdir -p "$work/state"
RUST_LOG=warn taskset -c 1 "$bin" serve --root "$work/root" --listen 127.0.0.1 --http-port "$FB_PORT" --no-tftp \
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
    server { listen 127.0.0.1:$NGINX_PORT; location /boot/ { alias $work/root/; } }
}
CONF
taskset -c 1 nginx -c "$work/nginx/nginx.conf" -p "$work/nginx" &
nginx_pid=$!

wait_up() { for _ in $(seq 100); do curl -sf -o /dev/null -r 0-0 "$1" && return 0; sleep 0.1; done; return 1; }
wait_up "http://127.0.0.1:$FB_PORT/boot/big.img"
wait_up "http://127.0.0.1:$NGINX_PORT/boot/big.img" || { cat "$work/nginx/error.log" >&2; exit 1; }
nginx_worker=$(pgrep -P "$nginx_pid" | head -1)

# CPU ticks (utime+stime) of a pid.
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)

run_once() { # url conc pid -> "MBps cpu_s_per_GB"
    local url=$1 conc=$2 pid=$3 t0 t1 c0 c1
    c0=$(ticks "$pid"); t0=$(date +%s.%N)
    local pids=()
    for _ in $(seq "$conc"); do taskset -c 0 curl -s -o /dev/null "$url" & pids+=($!); done
    wait "${pids[@]}"
    t1=$(date +%s.%N); c1=$(ticks "$pid")
    awk -v b="$bytes" -v n="$conc" -v t="$(echo "$t1 - $t0" | bc -l)" -v c=$((c1 - c0)) -v hz="$hz" \
        'BEGIN { printf "%.0f %.3f\n", b * n / 1e6 / t, (c / hz) / (b * n / 1e9) }'
}

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

url_of() { if [ "$1" = ferroboot ]; then echo "http://127.0.0.1:$FB_PORT/boot/big.img"; else echo "http://127.0.0.1:$NGINX_PORT/boot/big.img"; fi; }
pid_of() { if [ "$1" = ferroboot ]; then echo "$fb_pid"; else echo "$nginx_worker"; fi; }
for name in ferroboot nginx; do curl -s -o /dev/null "$(url_of "$name")"; done # warm the page cache

# Servers alternate run by run (A B A B ...) so drift on a shared machine hits both alike.
declare -A results
for conc in $CONCURRENCY; do
    for _ in $(seq "$RUNS"); do
        for name in ferroboot nginx; do
            results[$name/$conc]+="$(run_once "$(url_of "$name")" "$conc" "$(pid_of "$name")")"$'\n'
        done
    done
done

printf '%-10s %5s %10s %12s\n' server clients "MB/s" "CPU s/GB"
for name in ferroboot nginx; do
    for conc in $CONCURRENCY; do
        r=${results[$name/$conc]}
        mbps=$(printf '%s' "$r" | awk 'NF {print $1}' | median)
        cpu=$(printf '%s' "$r" | awk 'NF {print $2}' | median)
        printf '%-10s %5s %10s %12s\n' "$name" "$conc" "$mbps" "$cpu"
    done
done
