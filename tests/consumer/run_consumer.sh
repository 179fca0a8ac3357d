#!/usr/bin/env bash
# run_consumer.sh BUILD_DIR SOURCE_DIR [CMAKE] [CC]
#
# Proves an out-of-tree program can build against libkv and libkvclient,
# both INSTALLED and straight from the BUILD TREE (issue 13 item 19):
#   installed: BUILD_DIR is installed into a temporary prefix, then
#     (a) consumer.c and client_consumer.c are compiled with
#         `cc $(pkg-config --cflags --libs libkv|libkvclient)` and run with
#         LD_LIBRARY_PATH pointing at the installed libdir;
#     (b) cmake_project/ (find_package(libkv): libkv::kv, libkv::kv_static,
#         libkv::kvclient) is configured with CMAKE_PREFIX_PATH=<prefix>,
#         built and run;
#   build tree, nothing installed:
#     (c) the same with PKG_CONFIG_PATH=BUILD_DIR/libkv:BUILD_DIR/kvd/client
#         (every directory the .pc files name must exist);
#     (d) the same CMake project with libkv_DIR=BUILD_DIR/libkv.
set -euo pipefail

BUILD_DIR=${1:?usage: run_consumer.sh BUILD_DIR SOURCE_DIR [CMAKE] [CC]}
SRC_DIR=${2:?usage: run_consumer.sh BUILD_DIR SOURCE_DIR [CMAKE] [CC]}
CMAKE=${3:-cmake}
CC=${4:-cc}

WORK=$(mktemp -d "${TMPDIR:-/tmp}/kv-consumer.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
PREFIX=$WORK/prefix

step() { echo "--- $*"; }
FAILED=0
fail() {
    echo "FAIL: $*"
    FAILED=1
}

# pkg_consumer LABEL PKG_CONFIG_PATH RUN_LIBRARY_PATH [UNDER]: builds and runs
# consumer.c (libkv) and client_consumer.c (libkvclient) with pkg-config's
# flags; with UNDER, every libdir and includedir must lie below it.
pkg_consumer() {
    local label=$1 pcpath=$2 runpath=$3 under=${4:-}
    local pkg prog flags dir
    for pkg in libkv libkvclient; do
        prog=consumer
        [ "$pkg" = libkvclient ] && prog=client_consumer
        if ! flags=$(PKG_CONFIG_PATH=$pcpath pkg-config --cflags --libs "$pkg"); then
            fail "($label) pkg-config cannot read $pkg.pc in $pcpath"
            continue
        fi
        echo "$pkg: $flags"
        for var in libdir includedir; do
            dir=$(PKG_CONFIG_PATH=$pcpath pkg-config --variable=$var "$pkg")
            [ -d "$dir" ] || fail "($label) $pkg.pc: $var=$dir does not exist"
            if [ -n "$under" ]; then
                case "$dir" in
                "$under"/*) ;;
                *) fail "($label) $pkg.pc: $var=$dir is not under $under: not relocatable" ;;
                esac
            fi
        done
        # shellcheck disable=SC2086 # flags is a list of words
        if "$CC" -std=c11 -Wall -Wextra -Werror -o "$WORK/$label-$prog" "$SRC_DIR/$prog.c" $flags &&
            LD_LIBRARY_PATH=$runpath "$WORK/$label-$prog"; then
            echo "($label) $pkg ok"
        else
            fail "($label) building or running $prog.c with $pkg's pkg-config flags"
        fi
    done
}

# cmake_consumer LABEL ARGS...: configures cmake_project with ARGS, builds, runs.
cmake_consumer() {
    local label=$1 exe
    shift
    local dir=$WORK/cmake-$label
    if ! "$CMAKE" -S "$SRC_DIR/cmake_project" -B "$dir" -DCMAKE_C_COMPILER="$CC" "$@" \
        >"$WORK/configure-$label.log" 2>&1; then
        cat "$WORK/configure-$label.log"
        fail "($label) configuring the consumer project"
    elif ! "$CMAKE" --build "$dir" >"$WORK/build-$label.log" 2>&1; then
        cat "$WORK/build-$label.log"
        fail "($label) building the consumer project"
    else
        for exe in consumer consumer_static client_consumer; do
            if "$dir/$exe"; then
                echo "($label) $exe ok"
            else
                fail "($label) running $exe"
            fi
        done
    fi
}

step "install $BUILD_DIR into $PREFIX"
"$CMAKE" --install "$BUILD_DIR" --prefix "$PREFIX" >"$WORK/install.log" 2>&1 || {
    cat "$WORK/install.log"
    exit 1
}
PC=$(find "$PREFIX" -name libkv.pc -print -quit)
[ -n "$PC" ] || { echo "libkv.pc was not installed"; exit 1; }
PCDIR=$(dirname "$PC")
LIBDIR=$(dirname "$PCDIR")
[ -e "$LIBDIR/libkv.so" ] || { echo "no libkv.so in $LIBDIR"; ls -R "$PREFIX"; exit 1; }
[ -e "$PREFIX/include/kv.h" ] || { echo "kv.h was not installed"; exit 1; }

step "(a) installed, pkg-config: $PCDIR"
pkg_consumer installed-pc "$PCDIR" "$LIBDIR" "$PREFIX"

step "(b) installed, CMake find_package(libkv) with CMAKE_PREFIX_PATH"
cmake_consumer installed-cmake -DCMAKE_PREFIX_PATH="$PREFIX"

step "(c) build tree, pkg-config: $BUILD_DIR/libkv, $BUILD_DIR/kvd/client"
pkg_consumer build-pc "$BUILD_DIR/libkv:$BUILD_DIR/kvd/client" "$BUILD_DIR/libkv:$BUILD_DIR/kvd/client"

step "(d) build tree, CMake find_package(libkv) with libkv_DIR=$BUILD_DIR/libkv"
cmake_consumer build-cmake -Dlibkv_DIR="$BUILD_DIR/libkv"

if [ "$FAILED" -ne 0 ]; then
    echo "consumer: FAILED"
    exit 1
fi
echo "consumer: all ok"
