#!/usr/bin/env bash
# The test command of ferroboot:
#
#   sudo bash scripts/test.sh
#
# On a Debian 12 machine, as root: installs what the tests need (apt packages, cargo-fuzz),
# builds the release binary, runs every cargo test, then a 20-second fuzz smoke per fuzz target.
# Any failure fails the whole run. Environment:
#   CI                  exported as "true" when unset, so tests that need a missing tool fail
#                       loudly instead of skipping
#   FUZZ_SECONDS        per-target fuzz time (default 20)
#   SKIP_INSTALL=1      do not touch apt or cargo install (for quick local reruns)
#   SKIP_FUZZ=1         skip the fuzz smoke (local reruns only; CI never sets it)
#   SKIP_TESTS=1        skip build and cargo test (local reruns of the fuzz smoke only)
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"
# shellcheck source=lib-peers.sh
. "$REPO/scripts/lib-peers.sh"

export DEBIAN_FRONTEND=noninteractive
FUZZ_SECONDS=${FUZZ_SECONDS:-20}
# Generous caps so a hung step fails instead of eating CI's 90 minutes.
TEST_TIMEOUT=${TEST_TIMEOUT:-2400}
FUZZ_TARGET_TIMEOUT=${FUZZ_TARGET_TIMEOUT:-600}

T0=$SECONDS
SECTION=""
SECTION_T0=$SECONDS
SUMMARY=()
elapsed() { local s=$(( $1 )); printf '%02d:%02d' $((s / 60)) $((s % 60)); }
end_section() {
    local how=${1:-done}
    if [ -n "$SECTION" ]; then
        SUMMARY+=("$(printf '%-34s %s%s' "$SECTION" "$(elapsed $((SECONDS - SECTION_T0)))" "${1:+  $how}")")
        printf '==> %s %s in %s\n' "$SECTION" "$how" "$(elapsed $((SECONDS - SECTION_T0)))"
    fi
}
section() {
    end_section
    SECTION=$1
    SECTION_T0=$SECONDS
    printf '\n==================== [%s] %s ====================\n' "$(elapsed $((SECONDS - T0)))" "$1"
}
PASSED=""
FAILED=""
print_summary() {
    local rc=$? failed_in=$SECTION
    if [ $rc -ne 0 ]; then end_section FAILED; else end_section; fi
    printf '\n==================== summary (total %s) ====================\n' "$(elapsed $((SECONDS - T0)))"
    [ ${#SUMMARY[@]} -gt 0 ] && printf '  %s\n' "${SUMMARY[@]}"
    [ -n "${TMP_LOG:-}" ] && rm -f "$TMP_LOG"
    [ -n "${FUZZ_LOG:-}" ] && rm -f "$FUZZ_LOG"
    if [ $rc -ne 0 ]; then
        printf 'FAILED (exit %s) in section: %s\n' "$rc" "$failed_in"
    else
        echo "OK"
    fi
    # The closing line CI reads (cargo test's totals).
    [ -n "$PASSED" ] && echo "tests: $PASSED passed, $FAILED failed"
    exit $rc
}
trap print_summary EXIT

# Under `sudo`, PATH loses ~/.cargo/bin: find the invoking user's (or root's) toolchain.
if ! command -v cargo >/dev/null 2>&1; then
    for h in "$HOME" "$(getent passwd "${SUDO_USER:-root}" | cut -d: -f6)" /root; do
        if [ -n "$h" ] && [ -x "$h/.cargo/bin/cargo" ]; then
            export PATH="$h/.cargo/bin:$PATH"
            export CARGO_HOME=${CARGO_HOME:-$h/.cargo} RUSTUP_HOME=${RUSTUP_HOME:-$h/.rustup}
            break
        fi
    done
fi

section "environment"
[ "$(id -u)" -eq 0 ] || { echo "scripts/test.sh must run as root: sudo bash scripts/test.sh" >&2; exit 1; }
command -v cargo >/dev/null 2>&1 || { echo "cargo not found (install Rust with rustup)" >&2; exit 1; }
if [ -z "${CI:-}" ]; then export CI=true; fi
echo "repo:    $REPO ($(git rev-parse --short HEAD 2>/dev/null || echo 'not a git checkout'))"
echo "machine: $(nproc) CPUs, $(. /etc/os-release && echo "$PRETTY_NAME"), kernel $(uname -r)"
echo "cargo:   $(cargo --version)"
echo "CI=$CI"
# The slowloris test holds 1,000 client and 1,000 server sockets in one process.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" || true
echo "open files limit: $(ulimit -n)"

if [ "${SKIP_INSTALL:-0}" != 1 ]; then
    section "apt packages"
    # Clients and tools the integration tests (and later issues) drive: TFTP clients (tftp-hpa,
    # atftp), HTTP clients, netns/tc, dnsmasq for comparisons, nginx, busybox/udhcpc and
    # dhclient as DHCP clients, nmap, and iPXE's boot files for the demo.
    # jq reads cluster-config.json the way the first-boot README does. The end-to-end
    # matrix (tests/e2e_qemu.rs) boots QEMU (TCG) with SeaBIOS + ipxe-qemu's NIC ROMs and OVMF;
    # its payload (Debian's cloud kernel and busybox-static) is fetched with `apt-get download`
    # and unpacked under target/, never installed: busybox-static conflicts with busybox.
    APT_PACKAGES=(tftp-hpa atftp curl wget aria2 iproute2 procps util-linux dnsmasq-base
                  busybox isc-dhcp-client udhcpc nmap ipxe ca-certificates jq
                  qemu-system-x86 ipxe-qemu seabios ovmf gzip)
    if dpkg-query -W -f='${Status}' nginx-light 2>/dev/null | grep -q 'install ok installed'; then
        :
    else
        APT_PACKAGES+=(nginx)
    fi
    peers_apt_install "${APT_PACKAGES[@]}"
    echo "apt packages present: ${APT_PACKAGES[*]}"
    # A packaged dnsmasq/nginx service is not ours to run; tests start their own instances.

    section "cargo-fuzz"
    if cargo fuzz --version >/dev/null 2>&1; then
        echo "cargo-fuzz present: $(cargo fuzz --version)"
    else
        echo "installing cargo-fuzz (cargo install cargo-fuzz --locked)"
        cargo install cargo-fuzz --locked --quiet
        echo "cargo-fuzz: $(cargo fuzz --version)"
    fi
fi

LOCKED=()
[ -f Cargo.lock ] && LOCKED=(--locked)

if [ "${SKIP_TESTS:-0}" != 1 ]; then
section "cargo build --release ${LOCKED[*]}"
cargo build --release "${LOCKED[@]}"

section "cargo test --release ${LOCKED[*]}"
TMP_LOG=$(mktemp /tmp/ferroboot-test.XXXXXX)
# Integration tests that need fixed resources (ports, namespaces) serialize themselves.
set +e
timeout "$TEST_TIMEOUT" cargo test --release "${LOCKED[@]}" 2>&1 | tee "$TMP_LOG"
rc=${PIPESTATUS[0]}
set -e
[ "$rc" -eq 124 ] && echo "cargo test timed out after ${TEST_TIMEOUT}s" >&2
PASSED=$(awk '/^test result:/ { for (i = 1; i <= NF; i++) if ($(i) ~ /^passed;?$/) s += $(i - 1) } END { print s + 0 }' "$TMP_LOG")
FAILED=$(awk '/^test result:/ { for (i = 1; i <= NF; i++) if ($(i) ~ /^failed;?$/) s += $(i - 1) } END { print s + 0 }' "$TMP_LOG")
[ "$rc" -eq 0 ] || exit "$rc"
fi

section "fuzz smoke (${FUZZ_SECONDS}s per target)"
FUZZ_RAN=0
if [ "${SKIP_FUZZ:-0}" = 1 ]; then
    echo "SKIP_FUZZ=1: fuzz smoke skipped"
elif [ ! -f fuzz/Cargo.toml ]; then
    echo "no fuzz/Cargo.toml yet: fuzz smoke skipped (nothing to fuzz)"
elif ! cargo +nightly --version >/dev/null 2>&1; then
    echo "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!" >&2
    echo "!!! WARNING: 'cargo +nightly' is not available: the fuzz smoke is SKIPPED.        !!!" >&2
    echo "!!! Install it with: rustup toolchain install nightly                              !!!" >&2
    echo "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!" >&2
else
    mapfile -t TARGETS < <(cargo +nightly fuzz list)
    if [ ${#TARGETS[@]} -eq 0 ]; then
        echo "fuzz/ exists but 'cargo +nightly fuzz list' lists no target" >&2
        exit 1
    fi
    echo "targets: ${TARGETS[*]}"
    FUZZ_LOG=$(mktemp /tmp/ferroboot-fuzz.XXXXXX)
    cargo +nightly fuzz build
    for t in "${TARGETS[@]}"; do
        # New inputs go to fuzz/corpus/<target> (ignored by git); fuzz/seeds/<target> is
        # read-only input, so the committed seeds are never rewritten.
        corpus=(fuzz/corpus/"$t")
        mkdir -p fuzz/corpus/"$t"
        if [ -d fuzz/seeds/"$t" ]; then corpus+=(fuzz/seeds/"$t"); seeded="seeded from fuzz/seeds/$t"; else seeded="no seeds"; fi
        echo "--- fuzz $t (${FUZZ_SECONDS}s, $seeded)"
        t_start=$SECONDS
        set +e
        timeout "$FUZZ_TARGET_TIMEOUT" \
            cargo +nightly fuzz run "$t" "${corpus[@]}" -- -max_total_time="$FUZZ_SECONDS" >"$FUZZ_LOG" 2>&1
        rc=$?
        set -e
        if [ "$rc" -ne 0 ]; then
            tail -n 80 "$FUZZ_LOG" >&2
            echo "fuzz target $t FAILED (exit $rc); crash inputs are in fuzz/artifacts/$t/" >&2
            exit "$rc"
        fi
        grep -E '^(#[0-9]+\s+DONE|Done [0-9]+ runs)' "$FUZZ_LOG" | sed 's/^/    /' || true
        echo "--- fuzz $t ok ($((SECONDS - t_start))s)"
        FUZZ_RAN=$((FUZZ_RAN + 1))
    done
fi
echo "fuzz targets run: $FUZZ_RAN"
