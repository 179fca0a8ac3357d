#!/usr/bin/env bash
# dev.sh - the project's one entry point: install dependencies, build, run, test.
#
#   bash scripts/dev.sh deps    install the Debian packages the project needs
#   bash scripts/dev.sh build   deps, then configure and build into build/
#   bash scripts/dev.sh run     build, then start kvd on 127.0.0.1:7379 in the foreground
#   bash scripts/dev.sh test    deps, then the whole suite: normal build (with
#                               valgrind leak checks), ASan+UBSan build, TSan build
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
JOBS=$(nproc 2>/dev/null || echo 2)

# Every package the project builds, tests or benchmarks with (prometheus
# for promtool, which checks /metrics; wrk for bench/http; libcuckoo and
# TBB for kvbench_lib's C++ contenders; memcached for kvbench --protocol memcache;
# etcd-server and etcd-client for bench/history/compare_etcd.sh, which starts
# its own etcd on its own ports: on a systemd machine the package also
# enables an etcd service on 2379/2380, which nothing here uses or stops;
# also for bench/cluster/compare_etcd.sh, whose etcd gRPC line needs
# python3-etcd3, under Debian's /usr/bin/python3).
PACKAGES=(build-essential cmake pkg-config clang git
          libxxhash-dev liburcu-dev libuv1-dev libmsgpack-dev libinih-dev libedit-dev
          libjansson-dev libcriterion-dev valgrind redis-server redis-tools util-linux procps
          liblmdb-dev libraft-dev libsystemd-dev systemd libhiredis-dev
          libhttp-parser-dev curl prometheus wrk libcuckoo-dev libtbb-dev memcached
          python3 python3-redis etcd-server etcd-client python3-etcd3)

deps() {
    local missing=()
    for p in "${PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    echo "dev.sh: installing ${missing[*]}"
    local sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

# build DIR [cmake args...]
build() {
    local dir=$1; shift
    cmake -S "$ROOT" -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >/dev/null
    cmake --build "$dir" -j "$JOBS"
}

# ctest in DIR, with a header so the three runs are easy to tell apart.
run_suite() {
    local dir=$1 name=$2; shift 2
    echo "=== test suite: $name ==="
    (cd "$dir" && ctest --output-on-failure -j "$JOBS" "$@")
}

cmd=${1:-}
case "$cmd" in
deps) deps ;;
build) deps; build "$ROOT/build" ;;
run)
    deps; build "$ROOT/build"
    # kvd in the foreground, in memory, on localhost only; extra arguments
    # go to kvd (e.g. bash scripts/dev.sh run --port 7400).
    shift
    exec "$ROOT/build/kvd/src/kvd" --bind 127.0.0.1 --port 7379 "$@"
    ;;
test)
    deps
    build "$ROOT/build"
    run_suite "$ROOT/build" "release (with valgrind leak checks)"
    build "$ROOT/build-asan" -DKV_SANITIZE=address -DKV_BUILD_BENCH=OFF
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
        run_suite "$ROOT/build-asan" "ASan+UBSan"
    build "$ROOT/build-tsan" -DKV_SANITIZE=thread -DKV_BUILD_BENCH=OFF
    # TSan needs the address layout it was built for: run without ASLR.
    # tests/support/tsan.supp: descriptor reuse after libuv's raw close.
    TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 suppressions=$ROOT/tests/support/tsan.supp" \
        setarch "$(uname -m)" -R bash "$0" _suite "$ROOT/build-tsan" "TSan"
    echo "dev.sh: all suites passed"
    ;;
_suite) run_suite "$2" "$3" ;;
*)
    sed -n '2,9p' "${BASH_SOURCE[0]}"
    exit 2
    ;;
esac
