#!/usr/bin/env bash
# run.sh - hit ratios under a memory limit: libkv against Redis 7, same
# traces, same keys and values, same limit (bench/README.md).
#
#   bash bench/evict/run.sh [BUILD_DIR] [LIMIT_BYTES]
#
# Decompresses the committed traces (bench/evict/traces/*.u32.xz) and checks
# them against the generator (kvbench_evict_trace, same seed), then for
# each trace and each policy (allkeys-lru, allkeys-lfu) starts a fresh
# redis-server on a random free high port with maxmemory = LIMIT and that
# maxmemory-policy (nothing saved to disk), replays the trace into it with
# kvbench_evict_hitratio, stops it (only the PID this script started), and
# replays the same trace into libkv with the same limit and policy.
# Hit ratios are counts, not timings: any machine gives the same figures.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD=${1:-$ROOT/build}
LIMIT=${2:-$((16 * 1024 * 1024))}
BIN=$BUILD/bench/evict
WORK=$(mktemp -d /tmp/kv-evict-bench.XXXXXX)
REDIS_PID=""

cleanup() {
    if [ -n "$REDIS_PID" ] && kill -0 "$REDIS_PID" 2>/dev/null; then
        kill "$REDIS_PID"
        wait "$REDIS_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

for b in kvbench_evict_trace kvbench_evict_hitratio; do
    [ -x "$BIN/$b" ] || { echo "run.sh: $BIN/$b missing (build first)" >&2; exit 1; }
done

# The traces: committed compressed, and exactly what the generator writes.
gen_zipf=(zipf "$WORK/gen-zipf.u32" --requests 1000000 --keys 500000 --skew 0.99 --seed 1)
gen_scan=(scan "$WORK/gen-scan.u32" --requests 1000000 --keys 500000 --skew 0.99 --seed 1
          --scan-every 100000 --scan-length 25000)
"$BIN/kvbench_evict_trace" "${gen_zipf[@]}" >/dev/null
"$BIN/kvbench_evict_trace" "${gen_scan[@]}" >/dev/null
for t in zipf scan; do
    xz -dc "$ROOT/bench/evict/traces/$t.u32.xz" >"$WORK/$t.u32"
    cmp -s "$WORK/$t.u32" "$WORK/gen-$t.u32" ||
        { echo "run.sh: traces/$t.u32.xz differs from the generator's output" >&2; exit 1; }
done

free_port() {
    local p
    while :; do
        p=$((20000 + RANDOM % 40000))
        (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
    done
}

redis_run() { # trace policy
    local port up=""
    for _ in 1 2 3 4 5; do # another server may take the port first: try another
        port=$(free_port)
        redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no \
            --maxmemory "$LIMIT" --maxmemory-policy "$2" --dir "$WORK" \
            --logfile "$WORK/redis-$port.log" &
        REDIS_PID=$!
        for _ in $(seq 100); do
            kill -0 "$REDIS_PID" 2>/dev/null || break
            [ "$(redis-cli -p "$port" PING 2>/dev/null)" = PONG ] && { up=1; break; }
            sleep 0.05
        done
        [ -n "$up" ] && break
        kill "$REDIS_PID" 2>/dev/null || true
        wait "$REDIS_PID" 2>/dev/null || true
        REDIS_PID=""
    done
    [ -n "$up" ] || { echo "run.sh: redis-server did not start" >&2; exit 1; }
    "$BIN/kvbench_evict_hitratio" --trace "$WORK/$1.u32" --limit "$LIMIT" --policy "$2" \
        --redis "127.0.0.1:$port"
    kill "$REDIS_PID"
    wait "$REDIS_PID" 2>/dev/null || true
    REDIS_PID=""
}

echo "# $(redis-server --version)"
echo "# limit $LIMIT bytes, 100-byte values, keys \"key:<id>\", batches of 64 (GETs, then SETs of the misses)"
echo "## same memory limit"
for t in zipf scan; do
    for p in allkeys-lru allkeys-lfu; do
        redis_run "$t" "$p"
        "$BIN/kvbench_evict_hitratio" --trace "$WORK/$t.u32" --limit "$LIMIT" --policy "$p"
    done
    "$BIN/kvbench_evict_hitratio" --trace "$WORK/$t.u32" --limit "$LIMIT" --policy allkeys-random
done | tee "$WORK/same-memory.txt"

# libkv holds more keys in the same memory; to compare the policies alone,
# libkv again at the limit where it holds as many keys as Redis did.
read -r rkeys lkeys < <(awk '$2 == "allkeys-lru" && $3 == "zipf.u32" {
    for (i = 1; i < NF; i++) if ($i == "keys") k[$1] = $(i + 1) }
    END { print k["redis"], k["libkv"] }' "$WORK/same-memory.txt")
SAME_KEYS=$((LIMIT * rkeys / lkeys))
echo "## libkv at limit $SAME_KEYS: about as many keys as Redis held at $LIMIT"
for t in zipf scan; do
    for p in allkeys-lru allkeys-lfu allkeys-random; do
        "$BIN/kvbench_evict_hitratio" --trace "$WORK/$t.u32" --limit "$SAME_KEYS" --policy "$p"
    done
done
