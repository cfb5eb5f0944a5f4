#!/usr/bin/env bash
# Side-by-side TFTP download benchmark: ferroboot against atftpd, tftpd-hpa and dnsmasq.
#
#   sudo bash benches/tftp_compare.sh [options]
#
# Every server and the client run inside one network namespace made for the benchmark (only
# `lo`), one server at a time, each started fresh for each run, the server pinned to CPU 1 and
# the client (atftp) to CPU 0. Servers alternate run by run (A B C D A B C D ...). Per run: wall
# time of the client -> MB/s (10^6 bytes/s), server CPU seconds (cgroup v2 cpu.stat usage_usec
# of the server's whole process tree, before/after the transfer), sha256 of the download. A
# failed, corrupted or timed-out (120 s) transfer is recorded as FAIL, not dropped.
#
# Options:
#   --runs N              runs per server and case (default 3, at least 3 for the report)
#   --size-mib N          size of the random test file (default 64)
#   --blksizes "..."      default "512 1468 8192"
#   --windowsizes "..."   default "1 4 16 64"
#   --servers "..."       default "atftpd tftpd-hpa dnsmasq ferroboot" (ferroboot is skipped,
#                         with a note, when target/release/ferroboot has no TFTP `serve`)
#   --no-build            do not run `cargo build --release` first
#   --out FILE            markdown report (default docs/bench-tftp.md; "-" = stdout only)
#   --max-load X          wait (up to 10 min) until the 1-min load average is below X (default 3)
#   --keep                keep the scratch directory (server logs, raw runs) and print its path
#   --from DIR            no measuring: rewrite the report from a directory kept with --keep
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"
# shellcheck source=../scripts/lib-peers.sh
. "$REPO/scripts/lib-peers.sh"

CMDLINE="sudo bash benches/tftp_compare.sh"
for a in "$@"; do
    # shellcheck disable=SC2089  # literal quotes: the command is shown, not run
    if [[ $a =~ ^[A-Za-z0-9_./=:+-]+$ ]]; then CMDLINE+=" $a"; else CMDLINE+=" \"$a\""; fi
done
RUNS=3
SIZE_MIB=64
BLKSIZES="512 1468 8192"
WINDOWSIZES="1 4 16 64"
SERVERS="atftpd tftpd-hpa dnsmasq ferroboot"
BUILD=1
OUT=docs/bench-tftp.md
MAX_LOAD=3
KEEP=0
FROM=""
CLIENT_TIMEOUT=120
SERVER_CPU=1
CLIENT_CPU=0

while [ $# -gt 0 ]; do
    case $1 in
        --runs) RUNS=$2; shift 2 ;;
        --size-mib) SIZE_MIB=$2; shift 2 ;;
        --blksizes) BLKSIZES=$2; shift 2 ;;
        --windowsizes) WINDOWSIZES=$2; shift 2 ;;
        --servers) SERVERS=$2; shift 2 ;;
        --no-build) BUILD=0; shift ;;
        --out) OUT=$2; shift 2 ;;
        --max-load) MAX_LOAD=$2; shift 2 ;;
        --keep) KEEP=1; shift ;;
        --from) FROM=$2; shift 2 ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown option: $1 (see --help)" >&2; exit 2 ;;
    esac
done

FILE=bench-${SIZE_MIB}m.bin

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf '[bench] ERROR: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "run as root (network namespaces, cgroups, apt)"
[ "$(nproc)" -ge 2 ] || log "WARNING: fewer than 2 CPUs; server and client will share one"
[ "$(nproc)" -ge 2 ] || { SERVER_CPU=0; CLIENT_CPU=0; }

SCRATCH=""
NS=fbbench$$
cleanup() {
    local rc=$?
    peers_cleanup
    if [ -n "$SCRATCH" ]; then
        if [ "$KEEP" = 1 ]; then rm -f "$SCRATCH/root/$FILE" "$SCRATCH/dl/"*; log "kept $SCRATCH"; else rm -rf "$SCRATCH"; fi
    fi
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ -z "$FROM" ]; then
log "installing / checking peers"
peers_install
command -v bc >/dev/null 2>&1 || true

# --- ferroboot ---------------------------------------------------------------------------
FERROBOOT_BIN=$REPO/target/release/ferroboot
FERROBOOT_NOTE=""
if [[ " $SERVERS " == *" ferroboot "* ]]; then
    if [ $BUILD -eq 1 ] && [ -f Cargo.toml ]; then
        log "cargo build --release"
        locked=(); [ -f Cargo.lock ] && locked=(--locked)
        nice -n 10 cargo build --release "${locked[@]}" -q
    fi
    if [ -x "$FERROBOOT_BIN" ] && "$FERROBOOT_BIN" serve --help 2>/dev/null | grep -q -- '--tftp-port'; then
        help=$("$FERROBOOT_BIN" serve --help 2>&1)
        extra=()
        if grep -q -- "--no-http" <<<"$help"; then extra+=(--no-http)
        elif grep -q -- "--http-port" <<<"$help"; then extra+=(--http-port 0); fi
        FERROBOOT_EXTRA_ARGS="${FERROBOOT_EXTRA_ARGS:-${extra[*]}}"
        FERROBOOT_VERSION="$("$FERROBOOT_BIN" --version 2>/dev/null || echo ferroboot) (src at commit $(git log -1 --format=%h -- src Cargo.toml Cargo.lock 2>/dev/null || echo "?"))"
    else
        FERROBOOT_NOTE="ferroboot was not measured: $FERROBOOT_BIN has no \`serve --tftp-port\` yet (branch $(git rev-parse --abbrev-ref HEAD 2>/dev/null), commit $(git rev-parse --short HEAD 2>/dev/null))."
        log "$FERROBOOT_NOTE"
        SERVERS=$(sed 's/\bferroboot\b//; s/  */ /g; s/^ //; s/ $//' <<<"$SERVERS")
    fi
fi
export FERROBOOT_BIN FERROBOOT_EXTRA_ARGS
read -r -a SERVER_LIST <<<"$SERVERS"
[ ${#SERVER_LIST[@]} -gt 0 ] || die "no servers to measure"

port_of() {
    case $1 in atftpd) echo 6901 ;; tftpd-hpa) echo 6902 ;; dnsmasq) echo 69 ;; ferroboot) echo 6904 ;; *) echo 6909 ;; esac
}

# --- wait for a quiet machine -------------------------------------------------------------
load1() { cut -d' ' -f1 /proc/loadavg; }
waited=0
while awk -v l="$(load1)" -v m="$MAX_LOAD" 'BEGIN { exit !(l >= m) }'; do
    [ $waited -ge 600 ] && { log "load still $(load1) after 10 min; running anyway (noted in the report)"; break; }
    log "load average $(load1) >= $MAX_LOAD: waiting"
    sleep 30; waited=$((waited + 30))
done
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)

# --- scratch, file, namespace -------------------------------------------------------------
SCRATCH=$(mktemp -d /tmp/ferroboot-bench.XXXXXX)
chmod 755 "$SCRATCH"
ROOT=$SCRATCH/root
mkdir -m 755 "$ROOT" "$SCRATCH/state" "$SCRATCH/logs" "$SCRATCH/dl"
log "creating $SIZE_MIB MiB random file"
head -c $((SIZE_MIB * 1024 * 1024)) /dev/urandom >"$ROOT/$FILE"
head -c 100000 /dev/urandom >"$ROOT/probe.bin"
chmod 644 "$ROOT/$FILE" "$ROOT/probe.bin"
SHA=$(sha256sum "$ROOT/$FILE" | cut -d' ' -f1)
BYTES=$(stat -c %s "$ROOT/$FILE")
export FERROBOOT_STATE=$SCRATCH/state

peers_netns_create "$NS"
peers_cg_init
[ "$PEERS_CG_MODE" = cgroup2 ] || log "WARNING: CPU accounting falls back to /proc (main process + reaped children)"

client() { # client BS WS REMOTE LOCAL PORT [extra atftp args...]
    local bs=$1 ws=$2 remote=$3 local_=$4 port=$5; shift 5
    ip netns exec "$NS" taskset -c "$CLIENT_CPU" timeout "$CLIENT_TIMEOUT" \
        atftp "$@" --option "blksize $bs" --option "windowsize $ws" \
        -g -r "$remote" -l "$local_" 127.0.0.1 "$port"
}

RAW=$SCRATCH/runs.tsv
NEG=$SCRATCH/negotiated.tsv
: >"$RAW"; : >"$NEG"

# --- probe what each server grants (OACK) -------------------------------------------------
log "probing negotiated options"
for bs in $BLKSIZES; do for ws in $WINDOWSIZES; do for srv in "${SERVER_LIST[@]}"; do
    neg="?"
    if peers_server_start "$srv" "$NS" "$ROOT" "$(port_of "$srv")" "$SERVER_CPU" "fbbench-$srv" "$SCRATCH/logs/$srv-probe.log"; then
        if client "$bs" "$ws" probe.bin "$SCRATCH/dl/probe" "$PEER_PORT" --trace >"$SCRATCH/trace" 2>&1; then
            oack=$(grep -m1 'received OACK' "$SCRATCH/trace" || true)
            gbs=$(sed -n 's/.*blksize: \([0-9]*\).*/\1/p' <<<"$oack"); gws=$(sed -n 's/.*windowsize: \([0-9]*\).*/\1/p' <<<"$oack")
            neg="${gbs:-512}/${gws:-1}"
        else
            neg="FAIL"
        fi
        peers_server_stop || true
    else
        neg="nostart"
    fi
    printf '%s\t%s\t%s\t%s\n' "$srv" "$bs" "$ws" "$neg" >>"$NEG"
done; done; done

# --- the runs -----------------------------------------------------------------------------
ncases=$(( $(wc -w <<<"$BLKSIZES") * $(wc -w <<<"$WINDOWSIZES") ))
total=$(( ncases * RUNS * ${#SERVER_LIST[@]} ))
n=0
T_START=$EPOCHREALTIME
for bs in $BLKSIZES; do for ws in $WINDOWSIZES; do
    for run in $(seq "$RUNS"); do for srv in "${SERVER_LIST[@]}"; do
        n=$((n + 1))
        out=$SCRATCH/dl/$FILE
        rm -f "$out"
        status=OK; secs=""; mbps=""; cpu=""; notes=""
        if ! peers_server_start "$srv" "$NS" "$ROOT" "$(port_of "$srv")" "$SERVER_CPU" "fbbench-$srv" "$SCRATCH/logs/$srv.log"; then
            status="FAIL(start)"
        else
            c0=$(peers_server_cpu_usec)
            t0=$EPOCHREALTIME
            rc=0
            client "$bs" "$ws" "$FILE" "$out" "$PEER_PORT" >"$SCRATCH/client.log" 2>&1 || rc=$?
            t1=$EPOCHREALTIME
            sleep 0.1   # let a forked transfer process see the last ACK and exit
            alive=1; kill -0 "$PEER_PID" 2>/dev/null || alive=0
            c1=$(peers_server_cpu_usec 2>/dev/null || echo "$c0")
            peers_server_stop >/dev/null 2>&1 || true
            secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
            cpu=$(awk -v a="$c0" -v b="$c1" 'BEGIN { printf "%.3f", (b - a) / 1e6 }')
            if [ $rc -eq 124 ]; then status="FAIL(timeout)"
            elif [ $rc -ne 0 ]; then status="FAIL(rc=$rc)"
            elif [ ! -f "$out" ] || [ "$(sha256sum "$out" | cut -d' ' -f1)" != "$SHA" ]; then status="FAIL(sha256)"
            elif [ $alive -eq 0 ]; then status="FAIL(server died)"
            else mbps=$(awk -v s="$secs" -v b="$BYTES" 'BEGIN { printf "%.1f", b / s / 1e6 }')
            fi
            if [ "$srv" = ferroboot ]; then
                # ferroboot logs one line per transfer: packets and retransmits.
                notes=$(grep -o '[0-9]* packets, [0-9]* retransmits' "$SCRATCH/logs/$srv.log" | tail -n 1 || true)
            fi
            if [ "$status" != OK ]; then
                { echo "--- $srv bs=$bs ws=$ws run=$run: $status"; tail -5 "$SCRATCH/client.log"; } >>"$SCRATCH/failures.log"
            fi
        fi
        printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$srv" "$bs" "$ws" "$run" "$status" \
            "${secs:--}" "${mbps:--}" "${cpu:--}" "$(load1)" "${notes:-}" >>"$RAW"
        log "[$n/$total] $srv bs=$bs ws=$ws run $run: $status ${secs:+${secs}s} ${mbps:+${mbps} MB/s} ${cpu:+cpu ${cpu}s} ${notes}"
    done; done
done; done
ELAPSED=$(awk -v a="$T_START" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.0f", b - a }')
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)
FAILS=$SCRATCH/failures.log
DATE=$(date -u '+%Y-%m-%d %H:%M UTC')
MACHINE="$(nproc) CPUs, $(lscpu | sed -n 's/^Model name: *//p' | head -1), kernel $(uname -r), $(. /etc/os-release && echo "$PRETTY_NAME")"
VERSIONS="$(peers_versions | sed 's/  */ /g' | paste -sd ';' | sed 's/;/; /g')${FERROBOOT_VERSION:+; ferroboot: $FERROBOOT_VERSION}"
ATFTP_VERSION=$(dpkg-query -W -f='${Version}' atftp)
RMEM=$(sysctl -n net.core.rmem_default)
# shellcheck disable=SC2090
declare -p CMDLINE RUNS SIZE_MIB BYTES BLKSIZES WINDOWSIZES SERVER_LIST FERROBOOT_NOTE \
    FERROBOOT_VERSION FERROBOOT_EXTRA_ARGS LOAD_START LOAD_END ELAPSED DATE MACHINE VERSIONS \
    ATFTP_VERSION RMEM PEERS_CG_MODE SERVER_CPU CLIENT_CPU CLIENT_TIMEOUT 2>/dev/null \
    | sed 's/^declare -[a-z]* /declare -g /; s/^declare -g -/declare -g/' >"$SCRATCH/meta.sh"
else
    # Report only, from a kept scratch directory.
    # shellcheck disable=SC1091
    . "$FROM/meta.sh"
    RAW=$FROM/runs.tsv; NEG=$FROM/negotiated.tsv; FAILS=$FROM/failures.log
fi

# --- report -------------------------------------------------------------------------------
median() { # median [printf format], one number a line on stdin
    sort -g | awk -v f="${1:-%.3f}" 'NF { v[++n] = $1 } END { if (n == 0) print ""; else if (n % 2) printf f "\n", v[(n + 1) / 2]; else printf f "\n", (v[n / 2] + v[n / 2 + 1]) / 2 }'
}
cell_mbps() { # srv bs ws -> "median" or "median (k FAIL)" or "FAIL"
    local ok fails m
    ok=$(awk -F'\t' -v s="$1" -v b="$2" -v w="$3" '$1==s && $2==b && $3==w && $5=="OK" { print $7 }' "$RAW")
    fails=$(awk -F'\t' -v s="$1" -v b="$2" -v w="$3" '$1==s && $2==b && $3==w && $5!="OK"' "$RAW" | wc -l)
    m=$(median %.1f <<<"$ok" | grep . || true)
    if [ -z "$m" ]; then echo "FAIL"; elif [ "$fails" -gt 0 ]; then echo "$m ($fails FAIL)"; else echo "$m"; fi
}
med_field() { # srv bs ws field(7=mbps,8=cpu) -> median over OK runs, empty if none
    local fmt=%.3f; [ "$4" = 7 ] && fmt=%.1f
    awk -F'\t' -v s="$1" -v b="$2" -v w="$3" -v f="$4" '$1==s && $2==b && $3==w && $5=="OK" { print $f }' "$RAW" | median "$fmt" | grep . || true
}
neg_of() { awk -F'\t' -v s="$1" -v b="$2" -v w="$3" '$1==s && $2==b && $3==w { print $4 }' "$NEG"; }

has_fb=0; [[ " ${SERVER_LIST[*]} " == *" ferroboot "* ]] && has_fb=1
peers=(); for s in "${SERVER_LIST[@]}"; do [ "$s" = ferroboot ] || peers+=("$s"); done

table() {
    local hdr="| blksize | windowsize |" sep="|---:|---:|" s
    for s in "${SERVER_LIST[@]}"; do hdr+=" $s MB/s | $s CPU s |"; sep+="---:|---:|"; done
    if [ $has_fb -eq 1 ]; then hdr+=" ferroboot ÷ best peer (MB/s) | ferroboot ÷ least-CPU peer (CPU s) |"; sep+="---:|---:|"; fi
    echo "$hdr"; echo "$sep"
    local bs ws row best bestcpu fbm fbc m c
    for bs in $BLKSIZES; do for ws in $WINDOWSIZES; do
        row="| $bs | $ws |"
        for s in "${SERVER_LIST[@]}"; do
            c=$(med_field "$s" "$bs" "$ws" 8)
            row+=" $(cell_mbps "$s" "$bs" "$ws") | ${c:-FAIL} |"
        done
        if [ $has_fb -eq 1 ]; then
            best=""; bestcpu=""
            for s in "${peers[@]}"; do
                m=$(med_field "$s" "$bs" "$ws" 7); c=$(med_field "$s" "$bs" "$ws" 8)
                [ -n "$m" ] && best=$(awk -v a="$best" -v b="$m" 'BEGIN { print (a == "" || b > a) ? b : a }')
                [ -n "$c" ] && bestcpu=$(awk -v a="$bestcpu" -v b="$c" 'BEGIN { print (a == "" || b < a) ? b : a }')
            done
            fbm=$(med_field ferroboot "$bs" "$ws" 7); fbc=$(med_field ferroboot "$bs" "$ws" 8)
            if [ -n "$fbm" ] && [ -n "$best" ]; then row+=" $(awk -v a="$fbm" -v b="$best" 'BEGIN { printf "%.2f", a / b }') |"; else row+=" n/a |"; fi
            if [ -n "$fbc" ] && [ -n "$bestcpu" ] && awk -v b="$bestcpu" 'BEGIN { exit !(b > 0) }'; then
                row+=" $(awk -v a="$fbc" -v b="$bestcpu" 'BEGIN { printf "%.2f", a / b }') |"
            else row+=" n/a |"; fi
        fi
        echo "$row"
    done; done
}
neg_table() {
    local hdr="| blksize | windowsize |" sep="|---:|---:|" s bs ws row
    for s in "${SERVER_LIST[@]}"; do hdr+=" $s |"; sep+="---|"; done
    echo "$hdr"; echo "$sep"
    for bs in $BLKSIZES; do for ws in $WINDOWSIZES; do
        row="| $bs | $ws |"
        for s in "${SERVER_LIST[@]}"; do row+=" $(neg_of "$s" "$bs" "$ws") |"; done
        echo "$row"
    done; done
}

TABLE=$(table)
echo
echo "$TABLE"
echo

if [ "$OUT" != "-" ]; then
    mkdir -p "$(dirname "$OUT")"
    {
        echo "# TFTP download benchmark: ferroboot and peers"
        echo
        echo "Generated by \`benches/tftp_compare.sh\`; do not edit by hand, rerun it."
        echo
        echo "- Command: \`$CMDLINE\` (from the repository root, as root)"
        echo "- Date: $DATE"
        echo "- Machine: $MACHINE"
        echo "- Load average (1/5/15 min): $LOAD_START at start, $LOAD_END at end (a shared 2-core machine: other work may add noise)"
        echo "- Servers: $VERSIONS"
        [ -n "$FERROBOOT_NOTE" ] && echo "- **$FERROBOOT_NOTE**"
        echo "- File: one $SIZE_MIB MiB ($BYTES bytes) file of random data (/dev/urandom), sha256 of every download checked; served from the page cache"
        echo "- $RUNS runs per server and case; medians over successful runs; a failed, corrupted or timed-out (${CLIENT_TIMEOUT} s) transfer counts as FAIL (shown next to the median); each server started fresh for every run; servers alternate run by run; total $ELAPSED s"
        echo
        echo "## Method"
        echo
        echo "All servers and the client run in one network namespace made for the benchmark, which has only \`lo\` (127.0.0.1, plus 127.0.0.2 so that glibc's AI_ADDRCONFIG lets tftpd-hpa resolve its bind address). Servers listen on 127.0.0.1, one at a time (atftpd :6901, tftpd-hpa :6902, ferroboot :6904; dnsmasq on :69, its TFTP port is fixed). Each server is pinned to CPU $SERVER_CPU and the client to CPU $CLIENT_CPU with \`taskset\`."
        echo
        echo "- Client: \`atftp --option \"blksize B\" --option \"windowsize W\" -g -r FILE -l OUT 127.0.0.1 PORT\` (atftp $ATFTP_VERSION, RFC 7440 capable). MB/s = $BYTES bytes / client wall time / 10^6, including the request and option negotiation."
        echo "- Server CPU s: \`usage_usec\` of a cgroup v2 group holding only the server's process tree (tftpd-hpa forks one process per transfer, atftpd uses threads), read right before the client starts and 0.1 s after it exits. Mode here: $PEERS_CG_MODE."
        echo "- Server options: atftpd \`--daemon --no-fork --no-multicast --maxthread 100\`; tftpd-hpa \`-L -s -B 65464\` (unpacked with \`dpkg -x\`, as it conflicts with atftpd); dnsmasq \`--port=0 --enable-tftp --edns-packet-max=65000\` (without that option dnsmasq caps blksize at 2263)${FERROBOOT_VERSION:+; ferroboot \`serve --root ROOT --listen 127.0.0.1 --tftp-port PORT --state-dir DIR ${FERROBOOT_EXTRA_ARGS:-}\`}."
        echo
        echo "## Results (medians)"
        echo
        echo "$TABLE"
        echo
        echo "Loss on loopback: the client's UDP receive buffer is the kernel default (net.core.rmem_default = $RMEM bytes). A window of windowsize × blksize bytes larger than that (8192 × 64 = 512 KiB, 8192 × 16 = 128 KiB plus overhead) can overflow it when the client falls behind, and such a row then measures the server's loss recovery (its retransmit timeout and what it resends) more than raw speed. That is the same for every server."
        echo
        echo "Ratios: ferroboot's median MB/s over the fastest peer's in that row (> 1: ferroboot faster); ferroboot's median CPU s over the peer using the least CPU in that row (< 1: ferroboot cheaper)."
        echo
        echo "## Options the servers granted (OACK blksize/windowsize)"
        echo
        echo "A server that does not implement RFC 7440 ignores \`windowsize\` and the transfer runs lock-step (windowsize 1), whatever the client asked for."
        echo
        neg_table
        echo
        echo "## Every run"
        echo
        echo "| server | blksize | windowsize | run | status | seconds | MB/s | server CPU s | load1 | server's own log |"
        echo "|---|---:|---:|---:|---|---:|---:|---:|---:|---|"
        awk -F'\t' '{ printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", $1, $2, $3, $4, $5, $6, $7, $8, $9, $10 }' "$RAW"
        if [ -s "$FAILS" ]; then
            echo
            echo "## Failures (last client lines)"
            echo
            echo '```'
            cat "$FAILS"
            echo '```'
        fi
    } >"$OUT"
    log "report written to $OUT"
fi
nfail=$(awk -F'\t' '$5 != "OK"' "$RAW" | wc -l)
log "done: $(wc -l <"$RAW") runs, $nfail FAIL, ${ELAPSED}s"
