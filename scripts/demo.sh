#!/usr/bin/env bash
# Demo: ferroboot serving a boot file over TFTP on 127.0.0.1 with the built-in defaults.
#
#   sudo bash scripts/demo.sh        (root only to install the `ipxe` and `tftp-hpa` packages;
#                                     without root, a generated file stands in for iPXE)
#
# Builds the release binary, puts a boot file (iPXE's real undionly.kpxe when the `ipxe`
# package is there, else a generated one) in a temporary root, starts `ferroboot serve` on
# 127.0.0.1 with a free TFTP port and a free HTTP port, fetches the file the way the runbook
# checks it (tftp ... -c get undionly.kpxe /tmp/test.kpxe; curl /health; curl -I /boot/...),
# compares sha256 (TFTP and HTTP), then stops ferroboot with SIGTERM and checks that it exits 0.
# Only 127.0.0.1 is used. Then, as root, one UEFI VM network-boots Linux from ferroboot in a
# network namespace of its own and its timeline is printed (DEMO_VM=0 skips that). Environment: DEMO_OUT (default /tmp/test.kpxe).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"
# shellcheck source=lib-peers.sh
. "$REPO/scripts/lib-peers.sh"

OUT=${DEMO_OUT:-/tmp/test.kpxe}
BIN=$REPO/target/release/ferroboot
TMP=""
FB_PID=""

step() { printf '\n==> %s\n' "$*"; }
ok() { printf '    ok: %s\n' "$*"; }
fail() { printf '\nDEMO FAILED: %s\n' "$*" >&2; [ -n "$TMP" ] && [ -s "$TMP/ferroboot.log" ] && { echo "--- ferroboot log:" >&2; tail -n 30 "$TMP/ferroboot.log" >&2; }; exit 1; }
cleanup() {
    local rc=$?
    if [ -n "$FB_PID" ] && kill -0 "$FB_PID" 2>/dev/null; then kill -KILL "$FB_PID" 2>/dev/null || true; fi
    [ -n "$TMP" ] && rm -rf "$TMP"
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

step "tools"
if [ "$(id -u)" -eq 0 ]; then
    peers_apt_install ipxe tftp-hpa curl iproute2
fi
command -v tftp >/dev/null 2>&1 || fail "the tftp-hpa client (tftp) is missing: apt-get install tftp-hpa (or run as root)"
ok "tftp client: $(command -v tftp)"

step "cargo build --release"
locked=(); [ -f Cargo.lock ] && locked=(--locked)
cargo build --release "${locked[@]}" -q
"$BIN" serve --help >/dev/null 2>&1 || fail "$BIN has no 'serve' command yet"
ok "$("$BIN" --version 2>/dev/null || echo "$BIN")"

step "boot root"
TMP=$(mktemp -d /tmp/ferroboot-demo.XXXXXX)
mkdir -p "$TMP/root" "$TMP/state"
if [ -f /usr/lib/ipxe/undionly.kpxe ]; then
    cp /usr/lib/ipxe/undionly.kpxe "$TMP/root/undionly.kpxe"
    ok "using iPXE's /usr/lib/ipxe/undionly.kpxe ($(stat -c %s "$TMP/root/undionly.kpxe") bytes)"
else
    head -c 70000 /dev/urandom >"$TMP/root/undionly.kpxe"
    ok "ipxe package not installed: generated a 70000-byte stand-in undionly.kpxe"
fi
SHA=$(sha256sum "$TMP/root/undionly.kpxe" | cut -d' ' -f1)

step "start ferroboot"
free_port() { # free_port u|t -> a port nothing listens on (UDP or TCP)
    local p
    for _ in $(seq 50); do
        p=$(( 20000 + RANDOM % 40000 ))
        if ! ss -Hl"$1"n "sport = :$p" 2>/dev/null | grep -q .; then echo "$p"; return 0; fi
    done
    return 1
}
PORT=$(free_port u) || fail "no free UDP port found"
help=$("$BIN" serve --help 2>&1)
args=(serve --root "$TMP/root" --listen 127.0.0.1 --tftp-port "$PORT" --state-dir "$TMP/state")
HPORT=""
if grep -q -- '--http-port' <<<"$help"; then
    HPORT=$(free_port t) || fail "no free TCP port found"
    args+=(--http-port "$HPORT")
fi
grep -q -- '--dhcp' <<<"$help" && args+=(--dhcp off)
echo "    $ ferroboot ${args[*]}"
"$BIN" "${args[@]}" >"$TMP/ferroboot.log" 2>&1 &
FB_PID=$!
for _ in $(seq 100); do
    ss -Hlun "sport = :$PORT" 2>/dev/null | grep -q . && break
    kill -0 "$FB_PID" 2>/dev/null || fail "ferroboot exited during startup"
    sleep 0.05
done
ss -Hlun "sport = :$PORT" 2>/dev/null | grep -q . || fail "ferroboot is not listening on 127.0.0.1:$PORT after 5 s"
ok "ferroboot (pid $FB_PID) listening on 127.0.0.1:$PORT/udp (TFTP)"
if [ -n "$HPORT" ]; then
    for _ in $(seq 60); do ss -Hltn "sport = :$HPORT" 2>/dev/null | grep -q . && break; sleep 0.05; done
    if ss -Hltn "sport = :$HPORT" 2>/dev/null | grep -q .; then
        ok "listening on 127.0.0.1:$HPORT/tcp (HTTP)"
    else
        echo "    note: this build does not serve HTTP (nothing on 127.0.0.1:$HPORT/tcp): HTTP checks skipped"
        HPORT=""
    fi
fi

step "the runbook's check: tftp 127.0.0.1 $PORT -c get undionly.kpxe $OUT"
rm -f "$OUT"
echo "    $ tftp -m binary 127.0.0.1 $PORT -c get undionly.kpxe $OUT"
rc=0
timeout 30 tftp -m binary 127.0.0.1 "$PORT" -c get undionly.kpxe "$OUT" || rc=$?
[ $rc -eq 0 ] || fail "tftp exited with $rc"
[ -f "$OUT" ] || fail "tftp did not write $OUT"
GOT=$(sha256sum "$OUT" | cut -d' ' -f1)
[ "$GOT" = "$SHA" ] || fail "sha256 mismatch: served $SHA, got $GOT"
ok "$(stat -c %s "$OUT") bytes, sha256 $SHA matches"

if [ -n "$HPORT" ]; then
    step "the runbook's HTTP checks (port $HPORT instead of 8080)"
    echo "    $ curl http://127.0.0.1:$HPORT/health"
    health=$(curl -sS --max-time 10 -w '\n%{http_code}' "http://127.0.0.1:$HPORT/health") || fail "curl /health failed"
    code=${health##*$'\n'}; health=${health%$'\n'*}
    echo "    $health"
    [ "$code" = 200 ] || fail "/health answered HTTP $code"
    ok "/health: 200"
    echo "    $ curl -I http://127.0.0.1:$HPORT/boot/undionly.kpxe"
    head=$(curl -sS --max-time 10 -I "http://127.0.0.1:$HPORT/boot/undionly.kpxe") || fail "curl -I failed"
    sed 's/\r$//; s/^/    /' <<<"$head"
    grep -q '^HTTP/1\.[01] 200' <<<"$head" || fail "HEAD /boot/undionly.kpxe is not 200"
    len=$(tr -d '\r' <<<"$head" | awk -F': *' 'tolower($1) == "content-length" { print $2 }')
    [ "$len" = "$(stat -c %s "$TMP/root/undionly.kpxe")" ] || fail "Content-Length $len, file has $(stat -c %s "$TMP/root/undionly.kpxe") bytes"
    ok "HEAD: 200, Content-Length $len"
    curl -fsS --max-time 30 -o "$TMP/http.kpxe" "http://127.0.0.1:$HPORT/boot/undionly.kpxe" || fail "HTTP GET failed"
    [ "$(sha256sum "$TMP/http.kpxe" | cut -d' ' -f1)" = "$SHA" ] || fail "HTTP download sha256 mismatch"
    ok "GET /boot/undionly.kpxe: sha256 matches"
fi

step "stop ferroboot with SIGTERM"
kill -TERM "$FB_PID"
rc=0
for _ in $(seq 100); do kill -0 "$FB_PID" 2>/dev/null || break; sleep 0.05; done
kill -0 "$FB_PID" 2>/dev/null && fail "ferroboot still running 5 s after SIGTERM"
wait "$FB_PID" || rc=$?
FB_PID=""
[ $rc -eq 0 ] || fail "ferroboot exited with status $rc after SIGTERM (expected 0)"
ok "ferroboot exited 0"
echo "--- ferroboot log:"
sed 's/^/    /' "$TMP/ferroboot.log"

printf '\nDEMO OK: ferroboot served undionly.kpxe over TFTP (127.0.0.1:%s)%s and stopped cleanly.\n' "$PORT" "${HPORT:+ and HTTP (127.0.0.1:$HPORT)}"

# The product at work: one UEFI VM (QEMU, TCG, OVMF without a NIC ROM) network-boots a Debian
# kernel from ferroboot inside a network namespace of its own (EDK2 PXE -> TFTP ipxe.efi ->
# HTTP script, kernel, initrd -> Linux calls back), and its timeline is printed. Needs root
# (namespaces, taps); DEMO_VM=0 skips it.
if [ "${DEMO_VM:-1}" = 0 ]; then
    echo "DEMO_VM=0: the VM network boot is skipped"
elif [ "$(id -u)" -ne 0 ]; then
    echo "(not root: the VM network boot is skipped; run 'sudo bash scripts/demo.sh' to see it)"
else
    step "network-boot a VM from ferroboot (tests/e2e_qemu.rs, demo mode)"
    peers_apt_install qemu-system-x86 ipxe-qemu seabios ovmf ipxe dnsmasq-base curl gzip
    rm -f "$TMP/ferroboot.log"
    echo "    $ CI=true cargo test --release --test e2e_qemu demo_one_vm_network_boots -- --ignored --nocapture"
    rc=0
    CI=true cargo test --release "${locked[@]}" -q --test e2e_qemu demo_one_vm_network_boots \
        -- --ignored --nocapture --test-threads=1 >"$TMP/vm.log" 2>&1 || rc=$?
    if [ "$rc" -eq 0 ]; then
        grep -E '^(demo-vm|DEMO|    )' "$TMP/vm.log" || true
    else
        grep -v '^ *[0-9]*: \|^             at ' "$TMP/vm.log" | tail -n 80 >&2
    fi
    [ "$rc" -eq 0 ] || fail "the VM did not network-boot (cargo test exit $rc; rerun with --nocapture for the full log)"
fi
