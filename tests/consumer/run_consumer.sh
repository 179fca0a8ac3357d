#!/usr/bin/env bash
# run_consumer.sh BUILD_DIR SOURCE_DIR [CMAKE] [CC]
#
# Proves an out-of-tree program can build against the INSTALLED libkv:
# installs BUILD_DIR into a temporary prefix, then
#   (a) compiles consumer.c with `cc $(pkg-config --cflags --libs libkv)`
#       and runs it with LD_LIBRARY_PATH pointing at the installed libdir;
#   (b) configures cmake_project/ (find_package(libkv), libkv::kv and
#       libkv::kv_static) with CMAKE_PREFIX_PATH=<prefix>, builds and runs it.
set -euo pipefail

BUILD_DIR=${1:?usage: run_consumer.sh BUILD_DIR SOURCE_DIR [CMAKE] [CC]}
SRC_DIR=${2:?usage: run_consumer.sh BUILD_DIR SOURCE_DIR [CMAKE] [CC]}
CMAKE=${3:-cmake}
CC=${4:-cc}

WORK=$(mktemp -d "${TMPDIR:-/tmp}/kv-consumer.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
PREFIX=$WORK/prefix

step() { echo "--- $*"; }

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

FAILED=0

step "(a) pkg-config: $PC"
if ! FLAGS=$(PKG_CONFIG_PATH=$PCDIR pkg-config --cflags --libs libkv); then
    echo "FAIL: pkg-config cannot read $PC"
    FAILED=1
else
    echo "pkg-config flags: $FLAGS"
    PC_LIBDIR=$(PKG_CONFIG_PATH=$PCDIR pkg-config --variable=libdir libkv)
    PC_INCDIR=$(PKG_CONFIG_PATH=$PCDIR pkg-config --variable=includedir libkv)
    case "$PC_LIBDIR:$PC_INCDIR" in
    "$PREFIX"/*:"$PREFIX"/*) ;;
    *)
        echo "FAIL: the installed libkv.pc points at libdir=$PC_LIBDIR includedir=$PC_INCDIR,"
        echo "      not at the prefix it was installed into ($PREFIX): it is not relocatable"
        FAILED=1
        ;;
    esac
    # shellcheck disable=SC2086 # FLAGS is a list of words
    if "$CC" -std=c11 -Wall -Wextra -Werror -o "$WORK/consumer_pc" "$SRC_DIR/consumer.c" $FLAGS &&
        LD_LIBRARY_PATH=$LIBDIR "$WORK/consumer_pc"; then
        echo "(a) ok"
    else
        echo "FAIL: (a) building or running with pkg-config flags"
        FAILED=1
    fi
fi

step "(b) CMake find_package(libkv)"
if ! "$CMAKE" -S "$SRC_DIR/cmake_project" -B "$WORK/cmake-build" \
    -DCMAKE_PREFIX_PATH="$PREFIX" -DCMAKE_C_COMPILER="$CC" >"$WORK/configure.log" 2>&1; then
    cat "$WORK/configure.log"
    echo "FAIL: (b) configuring the consumer project"
    FAILED=1
elif ! "$CMAKE" --build "$WORK/cmake-build" >"$WORK/build.log" 2>&1; then
    cat "$WORK/build.log"
    echo "FAIL: (b) building the consumer project"
    FAILED=1
else
    for exe in consumer consumer_static; do
        if "$WORK/cmake-build/$exe"; then
            echo "(b) $exe ok"
        else
            echo "FAIL: (b) running $exe"
            FAILED=1
        fi
    done
fi

if [ "$FAILED" -ne 0 ]; then
    echo "consumer: FAILED"
    exit 1
fi
echo "consumer: all ok"
