#!/usr/bin/env bash
# scaling.sh - do two writer threads do twice the work of one? (issue 10)
#
# Runs kvbench_lib PROCS times, each in a fresh process (memory layout and
# vCPU placement differ from process to process: the "bimodal" result), on
# the write workloads at 10k and 1M uniform keys with 1 and 2 threads, and
# prints, per process and per contender, the 2-thread / 1-thread ratio of
# the medians, then the median of those ratios over the processes. Every
# contender runs in every process and every round (kvbench_lib interleaves
# them), so a slow moment of the host hits them alike: compare contenders
# within a process.
#
#   bash bench/lib/scaling.sh [OUT]   the tables also to OUT.txt, and the raw
#                                     CSV of every process to OUT.csv
#
# Environment: BUILD (build), PROCS (5), ROUNDS (5), DURATION (0.4),
# WORKLOADS (set,get50set50,mset4), KEYS (10000,1000000),
# CONTENDERS (libkv plus cuckoo and tbb when built, and lfht).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD=${BUILD:-$ROOT/build}
BIN=$BUILD/bench/kvbench_lib
PROCS=${PROCS:-5}
ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-0.4}
WORKLOADS=${WORKLOADS:-set,get50set50,mset4}
KEYS=${KEYS:-10000,1000000}
OUT=${1:-}

[ -x "$BIN" ] || { echo "scaling.sh: $BIN not built (bash scripts/dev.sh build)" >&2; exit 1; }
if [ -z "${CONTENDERS:-}" ]; then
    CONTENDERS=libkv,lfht
    for c in cuckoo tbb; do
        "$BIN" --help 2>&1 | grep -q "\b$c\b" && CONTENDERS=$CONTENDERS,$c
    done
fi

[ -n "$OUT" ] && exec > >(tee "$OUT.txt")
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
{
    echo "# bench/lib/scaling.sh $(date -u +%FT%TZ) on $(nproc) CPUs, $(uname -r)"
    echo "# libkv $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')" \
         "PROCS=$PROCS ROUNDS=$ROUNDS DURATION=$DURATION WORKLOADS=$WORKLOADS KEYS=$KEYS" \
         "CONTENDERS=$CONTENDERS"
} >"$TMP/head"
cat "$TMP/head"
for p in $(seq "$PROCS"); do
    "$BIN" --keys "$KEYS" --dist uniform --workloads "$WORKLOADS" --contenders "$CONTENDERS" \
        --threads 1,2 --rounds "$ROUNDS" --duration "$DURATION" --no-memory --csv \
        >"$TMP/proc-$p.csv"
    echo "process $p done" >&2
done

python3 - "$TMP" "$PROCS" <<'EOF'
import csv, statistics, sys
tmp, procs = sys.argv[1], int(sys.argv[2])
runs = []  # per process: {(workload, keys, contender, threads): (mops, mops_per_cpu)}
for p in range(1, procs + 1):
    d = {}
    with open(f"{tmp}/proc-{p}.csv") as f:
        for row in csv.DictReader(f):
            if row["kind"] != "result":
                continue
            d[(row["workload"], int(row["keys"]), row["contender"], int(row["threads"]))] = (
                float(row["median_mops"]), float(row["median_mops_per_cpu_s"]))
    runs.append(d)
cells = sorted({(w, k, c) for d in runs for (w, k, c, t) in d})
print()
print("2 threads / 1 thread, per fresh process (median of the rounds in each), then the median")
print(f"{'workload':<11} {'keys':>8} {'contender':<8} " +
      " ".join(f"{'p' + str(i + 1):>6}" for i in range(procs)) + f" {'median':>7}  1-thread Mops/s (median)")
for w, k, c in cells:
    ratios, ones = [], []
    for d in runs:
        one, two = d.get((w, k, c, 1)), d.get((w, k, c, 2))
        if one and two and one[0] > 0:
            ratios.append(two[0] / one[0])
            ones.append(one[0])
    if not ratios:
        continue
    print(f"{w:<11} {k:>8} {c:<8} " + " ".join(f"{r:6.2f}" for r in ratios) +
          f" {statistics.median(ratios):7.2f}  {statistics.median(ones):.2f}")
print()
print("libkv / other contender within each process (same rounds), median over processes")
others = sorted({c for (_, _, c) in cells if c != "libkv"})
print(f"{'workload':<11} {'keys':>8} {'thr':>3} " + " ".join(f"{o:>8}" for o in others))
for w, k in sorted({(w, k) for (w, k, _) in cells}):
    for t in (1, 2):
        line = []
        for o in others:
            rs = [d[(w, k, "libkv", t)][0] / d[(w, k, o, t)][0] for d in runs
                  if (w, k, "libkv", t) in d and (w, k, o, t) in d and d[(w, k, o, t)][0] > 0]
            line.append(f"{statistics.median(rs):8.2f}" if rs else f"{'n/a':>8}")
        print(f"{w:<11} {k:>8} {t:>3} " + " ".join(line))
EOF
if [ -n "$OUT" ]; then
    { cat "$TMP/head"; for p in $(seq "$PROCS"); do echo "# process $p"; cat "$TMP/proc-$p.csv"; done; } >"$OUT.csv"
    echo "raw CSV: $OUT.csv" >&2
fi
