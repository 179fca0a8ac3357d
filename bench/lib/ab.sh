#!/usr/bin/env bash
# ab.sh - did a change to the library make it faster? An A/B of two builds
# of kvbench_lib, alternating them RUNS times in fresh processes, so that a
# slow moment of the host (this VM has them: see bench/README.md) hits both
# alike; then the median over the runs of each build's median, the ratio
# new / base, and the median of the runs' own new / base ("paired"), per
# workload, key count, thread count and contender. Short processes (one
# key count and thread count, --rounds 1) and many runs pair best.
#
#   BASE=/path/to/base/build bash bench/lib/ab.sh [kvbench_lib options]
#
# Environment: BASE (a build directory of the base commit; required),
# BUILD (the new one: build), RUNS (3). The options go to kvbench_lib as
# they are (default: --keys 10000,1000000 --dist uniform --workloads
# set,get50set50,mset4,rmw_txn --threads 1,2 --contenders libkv,rwlock
# --rounds 3 --duration 0.3 --no-memory).
#
# To build a base: git worktree add /tmp/base <commit> &&
#   cmake -S /tmp/base -B /tmp/base/build -DCMAKE_BUILD_TYPE=RelWithDebInfo &&
#   cmake --build /tmp/base/build --target kvbench_lib
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD=${BUILD:-$ROOT/build}
RUNS=${RUNS:-3}
: "${BASE:?BASE=<build directory of the base commit>}"
for b in "$BASE" "$BUILD"; do
    [ -x "$b/bench/kvbench_lib" ] || { echo "ab.sh: $b/bench/kvbench_lib not built" >&2; exit 1; }
done
ARGS=("$@")
[ ${#ARGS[@]} -eq 0 ] && ARGS=(--keys 10000,1000000 --dist uniform
    --workloads set,get50set50,mset4,rmw_txn --threads 1,2 --contenders libkv,rwlock
    --rounds 3 --duration 0.3 --no-memory)

commit_of() { git -C "$(sed -n 's/^CMAKE_HOME_DIRECTORY:INTERNAL=//p' "$1/CMakeCache.txt")" \
    rev-parse --short HEAD 2>/dev/null || echo unknown; }
echo "# ab.sh: base $BASE ($(commit_of "$BASE")) against new $BUILD ($(commit_of "$BUILD")), $RUNS runs each, alternating"
echo "# kvbench_lib ${ARGS[*]}   ($(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) CPUs)"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
for i in $(seq 1 "$RUNS"); do
    for side in base new; do
        b=$BASE
        [ $side = new ] && b=$BUILD
        echo
        echo "### $side, run $i"
        "$b/bench/kvbench_lib" "${ARGS[@]}" --csv > "$TMP/$side-$i.csv" 2>/dev/null
        # kind,workload,keys,dist,threads,contender,median_mops,...
        awk -F, '$1 == "result" { printf "%-12s %8s %-8s %2s  %-8s %8.3f\n", $2, $3, $4, $5, $6, $7 }' \
            "$TMP/$side-$i.csv"
    done
done

echo
echo "## medians over the runs (Mops/s), new / base"
for side in base new; do
    for f in "$TMP"/$side-*.csv; do
        run=${f##*-}
        awk -F, -v side=$side -v run="${run%.csv}" \
            '$1 == "result" { print side "," run "," $2 "," $3 "," $5 "," $6 "," $7 }' "$f"
    done
done | python3 -c '
import sys, statistics, collections
d = collections.defaultdict(dict)
order = []
for line in sys.stdin:
    side, run, w, k, t, c, v = line.strip().split(",")
    key = (w, k, t, c)
    if key not in order:
        order.append(key)
    d[(side,) + key][run] = float(v)
print("%-12s %8s %3s  %-8s %9s %9s %7s %7s" % ("workload", "keys", "thr", "contender", "base", "new",
                                               "ratio", "paired"))
for key in order:
    b, n = d.get(("base",) + key), d.get(("new",) + key)
    if not b or not n:
        continue
    mb, mn = statistics.median(b.values()), statistics.median(n.values())
    pairs = [n[r] / b[r] for r in b if r in n and b[r]]
    print("%-12s %8s %3s  %-8s %9.3f %9.3f %7.2f %7.2f" % (key + (mb, mn, mn / mb if mb else 0,
                                                          statistics.median(pairs))))
print("ratio = median of new / median of base; paired = median over the runs of new / base")
print("within a run (its base and new processes follow each other: a slow spell of the")
print("machine that spans them hits both)")
'
