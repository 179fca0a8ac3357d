#!/usr/bin/env bash
# redis_benchmark.sh - kvd's Redis protocol against Redis itself, both
# driven by the same client, redis-benchmark, on loopback.
#
#   bench/resp/redis_benchmark.sh [OUT]
#
# Starts kvd (in memory, --threads 1, Redis protocol on its port) and
# redis-server (no persistence), both pinned to SERVER_CPU, as compare.sh
# pins them; redis-benchmark runs pinned to CLIENT_CPU. Each round runs
# GET and SET at every pipeline depth against both servers (alternating
# which goes first), with CONNS connections, REQUESTS requests per run,
# KEYSPACE random keys (-r) and VALUE-byte values; the table gives the
# medians over the rounds of req/s, p50 and p99 (redis-benchmark's own
# figures, --csv), and kvd / Redis; then the CPU each server and the client
# used during the runs, as a share of their one CPU each (which side was
# the limit). Raw redis-benchmark output goes to OUT (default
# bench/results/resp-redis-benchmark.txt) with the tables.
#
# Environment (defaults): BUILD (build), ROUNDS (5), REQUESTS (200000),
# CONNS (50), VALUE (64), KEYSPACE (100000), PIPELINES ("1 16"),
# SERVER_CPU (0), CLIENT_CPU (1), KVD_PORT (17380), REDIS_PORT (16380),
# KVD_ARGS (none; more kvd flags, e.g. "--history off", named in OUT).
# Needs taskset (util-linux), redis-server, redis-benchmark (redis-tools)
# and kvd built in BUILD. Both servers are stopped on exit.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD=${BUILD:-$ROOT/build}
ROUNDS=${ROUNDS:-5}
REQUESTS=${REQUESTS:-200000}
CONNS=${CONNS:-50}
VALUE=${VALUE:-64}
KEYSPACE=${KEYSPACE:-100000}
PIPELINES=${PIPELINES:-"1 16"}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
KVD_PORT=${KVD_PORT:-17380}
REDIS_PORT=${REDIS_PORT:-16380}
KVD_ARGS=${KVD_ARGS:-}
OUT=${1:-$ROOT/bench/results/resp-redis-benchmark.txt}

KVD=$BUILD/kvd/src/kvd
[ -x "$KVD" ] || { echo "redis_benchmark.sh: build kvd first ($KVD)" >&2; exit 2; }
for t in taskset redis-server redis-benchmark redis-cli; do
    command -v $t >/dev/null || { echo "redis_benchmark.sh: needs $t" >&2; exit 2; }
done

TMP=$(mktemp -d)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$TMP"
}
trap cleanup EXIT

for port in "$KVD_PORT" "$REDIS_PORT"; do # else the numbers would be some other server's
    if redis-cli -p "$port" ping >/dev/null 2>&1; then
        echo "redis_benchmark.sh: something already answers on port $port: stop it or set KVD_PORT/REDIS_PORT" >&2
        exit 2
    fi
done
taskset -c "$SERVER_CPU" "$KVD" --bind 127.0.0.1 --port "$KVD_PORT" --threads 1 \
    --log-level warn $KVD_ARGS >"$TMP/kvd.log" 2>&1 &
PIDS+=($!)
taskset -c "$SERVER_CPU" redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" \
    --appendonly no --daemonize no --logfile "$TMP/redis.log" &
PIDS+=($!)
for port in "$KVD_PORT" "$REDIS_PORT"; do
    for _ in $(seq 100); do
        redis-cli -p "$port" ping >/dev/null 2>&1 && break
        sleep 0.05
    done
done

{
    echo "# redis_benchmark.sh $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "# $(redis-benchmark --version), $(redis-server --version | cut -d' ' -f1-3)"
    echo "# kvd $("$KVD" --version 2>&1 | head -1) at $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo ?)"
    echo "# kvd flags: --threads 1${KVD_ARGS:+ $KVD_ARGS} (history is on unless they turn it off)"
    echo "# rounds=$ROUNDS requests=$REQUESTS conns=$CONNS value=$VALUE keyspace=$KEYSPACE"
    echo "# servers on cpu $SERVER_CPU, redis-benchmark on cpu $CLIENT_CPU; $(nproc) cpus"
} >"$OUT"

TCK=$(getconf CLK_TCK)
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; } # user + system

# run SERVER PORT PID TEST PIPELINE -> "rps p50 p99 server-cpu% client-cpu%"
# (also appends the raw csv and the CPU shares to OUT)
run() {
    local name=$1 port=$2 pid=$3 t=$4 p=$5
    local csv t0 t1 u s real srv cli
    t0=$(cpu_ticks "$pid")
    TIMEFORMAT='%U %S %R'
    { time taskset -c "$CLIENT_CPU" redis-benchmark -p "$port" -t "$t" -P "$p" -c "$CONNS" \
        -n "$REQUESTS" -r "$KEYSPACE" -d "$VALUE" --csv >"$TMP/csv" 2>/dev/null; } 2>"$TMP/time"
    t1=$(cpu_ticks "$pid")
    csv=$(grep -v '^"test"' "$TMP/csv")
    read -r u s real <"$TMP/time"
    srv=$(awk "BEGIN { printf \"%.0f\", 100 * ($t1 - $t0) / $TCK / $real }")
    cli=$(awk "BEGIN { printf \"%.0f\", 100 * ($u + $s) / $real }")
    echo "raw $name $t P$p: $csv server_cpu=$srv% client_cpu=$cli%" >>"$OUT"
    echo "$csv" | awk -F, -v srv="$srv" -v cli="$cli" '{gsub(/"/, ""); print $2, $5, $7, srv, cli}'
}

# preload so that GETs hit
for port in "$KVD_PORT" "$REDIS_PORT"; do
    taskset -c "$CLIENT_CPU" redis-benchmark -p "$port" -t set -n "$KEYSPACE" -r "$KEYSPACE" \
        -d "$VALUE" -P 64 -q >/dev/null 2>&1
done

declare -A R M
for r in $(seq "$ROUNDS"); do
    for p in $PIPELINES; do
        for t in get set; do
            if [ $((r % 2)) -eq 1 ]; then order="kvd redis"; else order="redis kvd"; fi
            for s in $order; do
                port=$KVD_PORT pid=${PIDS[0]}
                [ "$s" = redis ] && port=$REDIS_PORT pid=${PIDS[1]}
                R[$s,$t,$p,$r]=$(run "$s" "$port" "$pid" "$t" "$p")
            done
        done
    done
done

median() { sort -g | awk '{ a[NR] = $1 } END { h = int(NR / 2); if (NR % 2) print a[h + 1]; else print (a[h] + a[h + 1]) / 2 }'; }

{
    echo
    printf "%-6s %-3s | %12s %8s %8s | %12s %8s %8s | %9s %9s\n" test P "kvd req/s" p50ms p99ms \
        "redis req/s" p50ms p99ms "rps ratio" "p99 ratio"
    for p in $PIPELINES; do
        for t in get set; do
            for s in kvd redis; do
                for f in 1 2 3 4 5; do
                    M[$s,$f]=$(for r in $(seq "$ROUNDS"); do echo "${R[$s,$t,$p,$r]}" | cut -d' ' -f$f; done | median)
                done
            done
            printf "%-6s %-3s | %12.0f %8.3f %8.3f | %12.0f %8.3f %8.3f | %8.2fx %8.2fx\n" "$t" "$p" \
                "${M[kvd,1]}" "${M[kvd,2]}" "${M[kvd,3]}" "${M[redis,1]}" "${M[redis,2]}" "${M[redis,3]}" \
                "$(awk "BEGIN {print ${M[kvd,1]} / ${M[redis,1]}}")" \
                "$(awk "BEGIN {print ${M[kvd,3]} / ${M[redis,3]}}")"
        done
    done
    echo "(medians of $ROUNDS rounds; rps ratio = kvd / Redis, higher is better; p99 ratio = kvd / Redis, lower is better)"
    echo
    printf "%-6s %-3s | %14s %14s | %14s %14s\n" test P "kvd server" "its client" \
        "redis server" "its client"
    for p in $PIPELINES; do
        for t in get set; do
            for s in kvd redis; do
                for f in 4 5; do
                    M[$s,$f]=$(for r in $(seq "$ROUNDS"); do echo "${R[$s,$t,$p,$r]}" | cut -d' ' -f$f; done | median)
                done
            done
            printf "%-6s %-3s | %13.0f%% %13.0f%% | %13.0f%% %13.0f%%\n" "$t" "$p" \
                "${M[kvd,4]}" "${M[kvd,5]}" "${M[redis,4]}" "${M[redis,5]}"
        done
    done
    echo "(CPU used during the runs, medians, as a share of one CPU: server on cpu $SERVER_CPU, redis-benchmark on cpu $CLIENT_CPU; the side near 100% is the limit)"
} | tee -a "$OUT"
