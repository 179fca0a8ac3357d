#!/usr/bin/env bash
# crash_soak.sh - the suite's SIGKILL test (tests/durable/test_crash.c) for
# longer: the same test built as bench/durability's `crash_soak` with
# CRASH_ROUNDS=500 instead of 30. A writer process (crash_writer, two
# threads, fsync=always) is killed with SIGKILL at a random moment each
# round; after each kill the store must open with every acknowledged write
# and no multi-key change torn. Exits with the test's status.
#
#   bench/durability/crash_soak.sh [criterion options...]
#
# Builds nothing: expects $BUILD (default build/) configured with the tests
# (KV_BUILD_TESTS=ON, not a TSan build). The test's scratch directory is
# /tmp/kvdur-crash-*; the test removes it when it passes. If the run is
# interrupted or fails, this script removes the directories the run made,
# except after a failure, when it prints where they are for inspection.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD=${BUILD:-$ROOT/build}
BIN=$BUILD/bench/durability/crash_soak
[ -x "$BIN" ] || { echo "crash_soak.sh: $BIN not built (cmake --build build -j2)" >&2; exit 1; }

shopt -s nullglob
declare -A before=()
for d in /tmp/kvdur-crash-*; do before[$d]=1; done
status=130
new_dirs() {
    local d
    for d in /tmp/kvdur-crash-*; do [ -n "${before[$d]:-}" ] || echo "$d"; done
}
cleanup() {
    local d
    if [ "$status" -ne 0 ] && [ "$status" -ne 130 ]; then
        for d in $(new_dirs); do echo "crash_soak.sh: kept $d for inspection" >&2; done
    else
        for d in $(new_dirs); do rm -rf "$d"; done
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "crash_soak: $BIN (test_crash.c, 500 rounds of SIGKILL), $(date -u '+%Y-%m-%d %H:%M UTC')"
start=$(date +%s)
set +e
"$BIN" --jobs 1 "$@"
status=$?
set -e
echo "crash_soak: exit $status after $(($(date +%s) - start)) s"
exit "$status"
