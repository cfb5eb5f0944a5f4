# shellcheck shell=bash
# Helpers to install and run the peer TFTP servers (atftpd, tftpd-hpa, dnsmasq) and ferroboot
# for side-by-side comparisons on loopback inside a network namespace of our own.
#
# Source it from a bash script that runs as root with `set -euo pipefail`:
#   . scripts/lib-peers.sh
#   peers_install                 # apt packages + tftpd-hpa unpacked under $PEERS_DIR
#   peers_netns_create NAME       # fresh netns with only `lo` (up)
#   peers_cg_create NAME          # cgroup v2 group for CPU accounting of a server tree
#   peers_server_start KIND NS ROOT PORT CPU CGNAME LOG   # sets PEER_PID
#   peers_server_stop             # stops PEER_PID (and its cgroup members)
#   peers_cleanup                 # kills what we started, deletes netns/cgroups we created
#
# Debian's atftpd and tftpd-hpa conflict (both ship /usr/sbin/in.tftpd): atftpd is installed
# as a package (its service is kept from starting), tftpd-hpa is only unpacked with dpkg -x.
# Nothing here sends traffic anywhere but loopback inside namespaces this library creates.

PEERS_DIR=${PEERS_DIR:-/tmp/ferroboot-peers}
PEERS_TFTPD_HPA=$PEERS_DIR/tftpd-hpa/usr/sbin/in.tftpd
PEERS_ATFTPD=/usr/sbin/atftpd
PEERS_DNSMASQ=/usr/sbin/dnsmasq
PEERS_CG_ROOT=""
PEERS_CG_MODE=""        # cgroup2 | proc
PEER_PID=""
PEER_KIND=""
PEER_CG=""
PEER_PORT=""            # the port the current server listens on (dnsmasq: always 69)
export PEER_PORT
_PEERS_NETNS=()
_PEERS_CGS=()
_PEERS_PIDS=()

peers_log() { printf '[peers] %s\n' "$*" >&2; }
peers_die() { printf '[peers] ERROR: %s\n' "$*" >&2; exit 1; }

# apt-get install, quietly and idempotently (nothing to do: apt is not called at all), with
# services kept from starting (atftpd would grab port 69, nginx port 80). On failure the apt
# output is shown.
peers_apt_install() {
    local missing=() p
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$' || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    peers_log "apt-get install ${missing[*]}"
    local made_policy=0 rc=0 aptlog
    aptlog=$(mktemp /tmp/ferroboot-apt.XXXXXX)
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        made_policy=1
    fi
    if [ -z "${PEERS_APT_UPDATED:-}" ]; then
        DEBIAN_FRONTEND=noninteractive apt-get update -qq >"$aptlog" 2>&1 || rc=$?
        PEERS_APT_UPDATED=1
    fi
    if [ $rc -eq 0 ]; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
            "${missing[@]}" >>"$aptlog" 2>&1 || rc=$?
    fi
    [ $made_policy -eq 1 ] && rm -f /usr/sbin/policy-rc.d
    if [ $rc -ne 0 ]; then
        sed 's/^/    /' "$aptlog" >&2
        rm -f "$aptlog"
        peers_die "apt-get install ${missing[*]} failed (rc=$rc)"
    fi
    rm -f "$aptlog"
}

# Stop and disable a packaged daemon that may have been started (atftpd's service).
peers_stop_service() {
    local svc=$1 daemon=$2 pid
    if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
        systemctl disable --now "$svc.service" "$svc.socket" >/dev/null 2>&1 || true
    fi
    if [ -x "/etc/init.d/$svc" ]; then
        "/etc/init.d/$svc" stop >/dev/null 2>&1 || true
    fi
    # Anything still running from that binary was started by the package, not by us.
    for pid in $(pgrep -x "$(basename "$daemon")" 2>/dev/null || true); do
        if [ "$(readlink -f "/proc/$pid/exe" 2>/dev/null)" = "$daemon" ]; then
            peers_log "stopping packaged $svc daemon pid $pid"
            kill "$pid" 2>/dev/null || true
        fi
    done
}

peers_install() {
    peers_apt_install atftp atftpd tftp-hpa dnsmasq-base iproute2 util-linux procps coreutils libwrap0
    peers_stop_service atftpd "$PEERS_ATFTPD"
    if [ ! -x "$PEERS_TFTPD_HPA" ]; then
        mkdir -p "$PEERS_DIR/deb"
        # apt drops to _apt for downloads; let it write there to avoid the "unsandboxed" warning.
        id _apt >/dev/null 2>&1 && chown _apt "$PEERS_DIR/deb"
        ( cd "$PEERS_DIR/deb" && rm -f tftpd-hpa_*.deb && apt-get download -qq tftpd-hpa >/dev/null ) \
            || peers_die "apt-get download tftpd-hpa failed"
        rm -rf "$PEERS_DIR/tftpd-hpa"
        dpkg -x "$PEERS_DIR"/deb/tftpd-hpa_*.deb "$PEERS_DIR/tftpd-hpa"
    fi
    [ -x "$PEERS_TFTPD_HPA" ] || peers_die "tftpd-hpa not found at $PEERS_TFTPD_HPA"
    if ldd "$PEERS_TFTPD_HPA" | grep -q 'not found'; then
        peers_die "tftpd-hpa has missing libraries: $(ldd "$PEERS_TFTPD_HPA" | grep 'not found')"
    fi
    [ -x "$PEERS_ATFTPD" ] || peers_die "atftpd missing"
    [ -x "$PEERS_DNSMASQ" ] || peers_die "dnsmasq missing"
    command -v atftp >/dev/null || peers_die "atftp client missing"
}

peers_versions() {
    printf 'atftpd:    %s\n' "$(dpkg-query -W -f='${Version}' atftpd)"
    printf 'tftpd-hpa: %s\n' "$(dpkg-deb -f "$PEERS_DIR"/deb/tftpd-hpa_*.deb Version 2>/dev/null || echo unknown)"
    printf 'dnsmasq:   %s\n' "$(dpkg-query -W -f='${Version}' dnsmasq-base)"
    printf 'atftp:     %s (client)\n' "$(dpkg-query -W -f='${Version}' atftp)"
}

# --- network namespaces -------------------------------------------------------------------

peers_netns_create() {
    local ns=$1
    ip netns del "$ns" 2>/dev/null || true
    ip netns add "$ns"
    _PEERS_NETNS+=("$ns")
    ip -n "$ns" link set lo up
    # glibc's AI_ADDRCONFIG counts no IPv4 as configured when 127.0.0.1 is the only address,
    # and tftpd-hpa's getaddrinfo("127.0.0.1") then fails (exit 66). A second loopback address
    # fixes that; it is still on `lo`.
    ip -n "$ns" addr add 127.0.0.2/8 dev lo
    # No other interface exists in it: traffic cannot leave the namespace.
}

peers_netns_delete() {
    local ns=$1 pid
    for pid in $(ip netns pids "$ns" 2>/dev/null || true); do kill -KILL "$pid" 2>/dev/null || true; done
    ip netns del "$ns" 2>/dev/null || true
}

# --- CPU accounting -----------------------------------------------------------------------

# Finds a cgroup v2 hierarchy (pure v2 at /sys/fs/cgroup or hybrid's /sys/fs/cgroup/unified).
# cpu.stat's usage_usec is a core statistic in v2: present even without the cpu controller.
peers_cg_init() {
    [ -n "$PEERS_CG_MODE" ] && return 0
    local mnt
    mnt=$(awk '$3 == "cgroup2" { print $2; exit }' /proc/mounts)
    if [ -n "$mnt" ] && [ -w "$mnt" ] && mkdir "$mnt/ferroboot-probe-$$" 2>/dev/null; then
        if [ -r "$mnt/ferroboot-probe-$$/cpu.stat" ]; then
            PEERS_CG_ROOT=$mnt
            PEERS_CG_MODE=cgroup2
        fi
        rmdir "$mnt/ferroboot-probe-$$"
    fi
    if [ -z "$PEERS_CG_MODE" ]; then
        PEERS_CG_MODE=proc
        peers_log "WARNING: no usable cgroup v2; server CPU = utime+stime+cutime+cstime of the main process"
    fi
}

peers_cg_create() {
    peers_cg_init
    [ "$PEERS_CG_MODE" = cgroup2 ] || return 0
    local cg=$PEERS_CG_ROOT/$1
    [ -d "$cg" ] && peers_cg_delete "$1"
    mkdir "$cg"
    _PEERS_CGS+=("$1")
}

peers_cg_delete() {
    [ "$PEERS_CG_MODE" = cgroup2 ] || return 0
    local cg=$PEERS_CG_ROOT/$1 pid
    [ -d "$cg" ] || return 0
    for pid in $(cat "$cg/cgroup.procs" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null || true; done
    for _ in $(seq 50); do rmdir "$cg" 2>/dev/null && return 0; sleep 0.1; done
    peers_log "WARNING: could not remove cgroup $cg"
}

# CPU microseconds used so far by the server (whole process tree when cgroup2 is used).
peers_server_cpu_usec() {
    if [ "$PEERS_CG_MODE" = cgroup2 ]; then
        awk '$1 == "usage_usec" { print $2 }' "$PEERS_CG_ROOT/$PEER_CG/cpu.stat"
    else
        local tck stat
        tck=$(getconf CLK_TCK)
        stat=$(cat "/proc/$PEER_PID/stat")
        stat=${stat##*) }   # fields after "(comm) "; utime is field 14 overall = 12th here
        # shellcheck disable=SC2086
        set -- $stat
        echo $(( (${12} + ${13} + ${14} + ${15}) * 1000000 / tck ))
    fi
}

# --- servers ------------------------------------------------------------------------------

# Waits until something listens on UDP PORT (127.0.0.1) in namespace NS.
peers_wait_udp() {
    local ns=$1 port=$2
    for _ in $(seq 100); do
        if ip netns exec "$ns" ss -Hlun "sport = :$port" 2>/dev/null | grep -q .; then return 0; fi
        if [ -n "$PEER_PID" ] && ! kill -0 "$PEER_PID" 2>/dev/null; then return 1; fi
        sleep 0.05
    done
    return 1
}

# peers_server_start KIND NS ROOT PORT CPU CGNAME LOG
# KIND: atftpd | tftpd-hpa | dnsmasq | ferroboot (FERROBOOT_BIN, FERROBOOT_STATE must be set).
# dnsmasq always listens on 69 (its TFTP port is fixed); PORT is ignored for it.
peers_server_start() {
    local kind=$1 ns=$2 root=$3 port=$4 cpu=$5 cg=$6 log=$7
    local -a cmd
    case $kind in
        atftpd)
            # Threaded, one process. Options as Debian ships them, minus multicast and syslog.
            cmd=("$PEERS_ATFTPD" --daemon --no-fork --port "$port" --bind-address 127.0.0.1
                 --user root --group root --no-multicast --maxthread 100
                 --logfile /dev/null --verbose=1 "$root") ;;
        tftpd-hpa)
            # -L: standalone in the foreground; forks a child per transfer. -B: allow 64 KiB blocks.
            cmd=("$PEERS_TFTPD_HPA" -4 -L -a "127.0.0.1:$port" -s -u root -B 65464 "$root") ;;
        dnsmasq)
            # --port=0 disables DNS; the blocksize cap is the DNS packet buffer
            # (edns-packet-max + 1035 - 4, i.e. 2263 by default), so raise it.
            port=69
            cmd=("$PEERS_DNSMASQ" --no-daemon --conf-file=/dev/null --no-resolv --no-hosts
                 --port=0 --listen-address=127.0.0.1 --bind-interfaces --user=root --group=root
                 --pid-file= --enable-tftp --tftp-root="$root" --edns-packet-max=65000
                 --tftp-max=1000 --log-facility=- --quiet-tftp) ;;
        ferroboot)
            [ -n "${FERROBOOT_BIN:-}" ] && [ -x "$FERROBOOT_BIN" ] || peers_die "FERROBOOT_BIN not set or not executable"
            [ -n "${FERROBOOT_STATE:-}" ] || peers_die "FERROBOOT_STATE not set"
            # FERROBOOT_EXTRA_ARGS is split into words on purpose.
            # shellcheck disable=SC2206
            cmd=("$FERROBOOT_BIN" serve --root "$root" --listen 127.0.0.1 --tftp-port "$port"
                 --state-dir "$FERROBOOT_STATE" ${FERROBOOT_EXTRA_ARGS:-}) ;;
        *) peers_die "unknown server kind: $kind" ;;
    esac
    PEER_KIND=$kind
    PEER_CG=$cg
    PEER_PORT=$port
    peers_cg_create "$cg"
    local cgprocs=/dev/null
    [ "$PEERS_CG_MODE" = cgroup2 ] && cgprocs=$PEERS_CG_ROOT/$cg/cgroup.procs
    # The pid of this background job is the server itself: bash, ip netns exec and taskset all
    # exec. The shell joins the cgroup before exec, so every child the server forks is counted.
    # Join the cgroup before `ip netns exec`: that remounts /sys, hiding the cgroup tree.
    bash -c 'echo $$ >"$1" || exit 125; shift; exec "$@"' _ "$cgprocs" \
        ip netns exec "$ns" taskset -c "$cpu" "${cmd[@]}" </dev/null >"$log" 2>&1 &
    PEER_PID=$!
    _PEERS_PIDS+=("$PEER_PID")
    if ! peers_wait_udp "$ns" "$port"; then
        peers_log "$kind did not start listening on 127.0.0.1:$port; log:"
        sed 's/^/    /' "$log" >&2 || true
        peers_server_stop
        return 1
    fi
}

# Stops the current server with SIGTERM (then SIGKILL) and returns its exit status.
peers_server_stop() {
    [ -n "$PEER_PID" ] || return 0
    local pid=$PEER_PID rc=0
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
        peers_log "$PEER_KIND (pid $pid) ignored SIGTERM for 5 s; killing"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || rc=$?
    [ -n "$PEER_CG" ] && peers_cg_delete "$PEER_CG"
    PEER_PID=""
    return $rc
}

peers_cleanup() {
    local pid ns cg
    for pid in "${_PEERS_PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
    for cg in "${_PEERS_CGS[@]}"; do peers_cg_delete "$cg"; done
    for ns in "${_PEERS_NETNS[@]}"; do peers_netns_delete "$ns"; done
    _PEERS_PIDS=(); _PEERS_CGS=(); _PEERS_NETNS=()
}
