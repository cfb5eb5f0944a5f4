#!/usr/bin/env bash
# Demo: ferroboot serving a boot file over TFTP on 127.0.0.1 with the built-in defaults.
#
#   sudo bash scripts/demo.sh        (root only to install the `ipxe` and `tftp-hpa` packages;
#                                     without root, a generated file stands in for iPXE)
#
# Builds the release binary, puts a boot file (iPXE's real undionly.kpxe when the `ipxe`
# package is there, else a generated one) in a temporary root, starts `ferroboot serve` on
# 127.0.0.1 with a free TFTP port, fetches the file the way the runbook checks it
# (tftp ... -c get undionly.kpxe /tmp/test.kpxe), compares sha256, then stops ferroboot with
# SIGTERM and checks that it exits 0. Environment: DEMO_OUT (default /tmp/test.kpxe).
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
    peers_apt_install ipxe tftp-hpa iproute2
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
port_free() { ! ss -Hlun "sport = :$1" 2>/dev/null | grep -q .; }
PORT=""
for _ in $(seq 50); do
    p=$(( 20000 + RANDOM % 40000 ))
    if port_free "$p"; then PORT=$p; break; fi
done
[ -n "$PORT" ] || fail "no free UDP port found"
help=$("$BIN" serve --help 2>&1)
args=(serve --root "$TMP/root" --listen 127.0.0.1 --tftp-port "$PORT" --state-dir "$TMP/state")
if grep -q -- '--no-http' <<<"$help"; then args+=(--no-http)
elif grep -q -- '--http-port' <<<"$help"; then args+=(--http-port 0)
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
ok "ferroboot (pid $FB_PID) listening on 127.0.0.1:$PORT/udp"

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

printf '\nDEMO OK: ferroboot served undionly.kpxe over TFTP on 127.0.0.1:%s and stopped cleanly.\n' "$PORT"
