#!/usr/bin/env bash
# wrk_get.sh - kvd's HTTP GET throughput measured with wrk, beside RESP
# GET on the same server, port, keys and connection counts measured with
# redis-benchmark.
#
#   bench/http/wrk_get.sh            (settings in the environment, below)
#
# One kvd (--threads 1, in memory, pinned to SERVER_CPU) is preloaded
# through redis-cli --pipe with KEYS keys "key:%012d" (redis-benchmark's
# -r key format) of VALUE bytes each, checked with curl. Then, for each
# round and each connection count C in CONNS, both clients run pinned to
# CLIENT_CPU, one thread each, no pipelining (one request in flight per
# connection), uniformly random keys:
#   HTTP  wrk -t1 -cC -dDURATIONs --latency -s get.lua
#         (get.lua asks GET /v1/keys/key:%012d, a random key each time)
#   RESP  redis-benchmark -t get -r KEYS -d VALUE -cC -P 1 -n N, with N
#         sized so the run takes about as long as wrk's did
# and the order of the two alternates from round to round. The report
# (stdout, and with OUT also into that file) has both tools' raw output,
# then a table of the medians over the rounds: req/s per protocol,
# HTTP/RESP, and kvd's CPU time per request (user + system from
# /proc/PID/stat over the run, divided by the requests answered: a figure
# that other load on the machine disturbs less than throughput does).
# redis-benchmark's cumulative latency lines are left out; its latency
# summary stays. Every response must be a 200 / a value: wrk's "Non-2xx" or
# socket errors are reported as PROBLEM lines.
#
# Environment (defaults): BUILD (build), KEYS (100000), VALUE (64),
# DURATION (5), CONNS ("1 16 64"), ROUNDS (3), SERVER_CPU (0),
# CLIENT_CPU (1), OUT (none). Needs kvd built in BUILD, wrk, curl,
# redis-cli, redis-benchmark, taskset and python3. About
# ROUNDS x |CONNS| x 2 x DURATION seconds (1.5 minutes by default).
# Everything started is stopped on exit.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD=${BUILD:-$ROOT/build}
KEYS=${KEYS:-100000}
VALUE=${VALUE:-64}
DURATION=${DURATION:-5}
CONNS=${CONNS:-"1 16 64"}
ROUNDS=${ROUNDS:-3}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
OUT=${OUT:-}
KVD=$BUILD/kvd/src/kvd

for tool in wrk curl redis-cli redis-benchmark taskset python3; do
    command -v "$tool" >/dev/null || { echo "wrk_get.sh: $tool is missing (bash scripts/dev.sh deps)" >&2; exit 2; }
done
[ -x "$KVD" ] || { echo "wrk_get.sh: no kvd at $KVD (build first)" >&2; exit 2; }

TMP=$(mktemp -d)
KVD_PID=
cleanup() {
    if [ -n "$KVD_PID" ] && kill -0 "$KVD_PID" 2>/dev/null; then
        kill "$KVD_PID"
        wait "$KVD_PID" 2>/dev/null || true
    fi
    rm -rf "$TMP"
}
trap cleanup EXIT

if [ -n "$OUT" ]; then
    exec > >(tee "$OUT")
fi

taskset -c "$SERVER_CPU" "$KVD" --port 0 --port-file "$TMP/port" --threads 1 \
    --initial-capacity "$KEYS" 2>"$TMP/kvd.log" &
KVD_PID=$!
for _ in $(seq 100); do [ -s "$TMP/port" ] && break; sleep 0.05; done
PORT=$(cat "$TMP/port")

echo "date:    $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo "kvd:     $("$KVD" --version | head -1), commit $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?'), --threads 1 on CPU $SERVER_CPU, in memory"
echo "clients: $(wrk --version 2>&1 | head -1 | cut -d' ' -f1-2) -t1 / redis-benchmark $(redis-benchmark --version | cut -d' ' -f2) on CPU $CLIENT_CPU, no pipelining"
echo "load:    $KEYS keys of $VALUE bytes, uniform random GETs, $DURATION s per run, $ROUNDS rounds, connections: $CONNS"
echo "uptime:  $(uptime)"
echo

# Preload: SETs in RESP through redis-cli --pipe.
python3 - "$KEYS" "$VALUE" >"$TMP/load.resp" <<'EOF'
import sys
keys, size = int(sys.argv[1]), int(sys.argv[2])
val = b"x" * size
out = sys.stdout.buffer
for i in range(keys):
    k = b"key:%012d" % i
    out.write(b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (len(k), k, len(val), val))
EOF
redis-cli -p "$PORT" --pipe <"$TMP/load.resp" | tail -1
got=$(curl -s "http://127.0.0.1:$PORT/v1/keys/key:$(printf %012d $((KEYS - 1)))" | wc -c)
[ "$got" -eq "$VALUE" ] || { echo "PROBLEM: preload check read $got bytes, not $VALUE" >&2; exit 1; }

cat >"$TMP/get.lua" <<EOF
-- a uniformly random preloaded key per request
request = function()
    return wrk.format("GET", string.format("/v1/keys/key:%012d", math.random(0, $KEYS - 1)))
end
EOF

# kvd's CPU time so far (user + system, clock ticks).
kvd_ticks() { awk '{print $14 + $15}' "/proc/$KVD_PID/stat"; }
TICK_US=$((1000000 / $(getconf CLK_TCK)))

declare -A HTTP RESP HTTP_CPU RESP_CPU
problems=0
run_http() {
    local c=$1 r=$2 out t0 t1 n
    t0=$(kvd_ticks)
    out=$(taskset -c "$CLIENT_CPU" wrk -t1 -c"$c" -d"${DURATION}s" --latency -s "$TMP/get.lua" \
          "http://127.0.0.1:$PORT")
    t1=$(kvd_ticks)
    n=$(awk '/requests in/ {print $1}' <<<"$out")
    echo "--- round $r: HTTP, $c connections: wrk -t1 -c$c -d${DURATION}s --latency -s get.lua"
    echo "$out"
    echo "kvd CPU: $(((t1 - t0) * TICK_US)) us for $n requests"
    if grep -q 'Non-2xx\|Socket errors' <<<"$out"; then
        echo "PROBLEM: wrk saw errors (round $r, $c connections)"
        problems=$((problems + 1))
    fi
    HTTP[$c]+="$(awk '/^Requests\/sec:/ {print $2}' <<<"$out") "
    HTTP_CPU[$c]+="$(python3 -c "print($((t1 - t0)) * $TICK_US / $n)") "
}
run_resp() {
    local c=$1 r=$2 n out rps t0 t1
    rps=$(awk '{print $NF}' <<<"${HTTP[$c]:-20000}")
    n=$(python3 -c "print(max(10000, int(float('$rps') * $DURATION)))")
    t0=$(kvd_ticks)
    out=$(taskset -c "$CLIENT_CPU" redis-benchmark -p "$PORT" -t get -r "$KEYS" -d "$VALUE" \
          -c "$c" -P 1 -n "$n" 2>&1 | tr '\r' '\n' | grep -v '^GET: rps=\|% <= \|^Cumulative' |
          sed '/^$/d')
    t1=$(kvd_ticks)
    echo "--- round $r: RESP, $c connections: redis-benchmark -t get -r $KEYS -d $VALUE -c $c -P 1 -n $n"
    echo "$out"
    echo "kvd CPU: $(((t1 - t0) * TICK_US)) us for $n requests"
    RESP[$c]+="$(awk '/requests per second/ {print $(NF-3)}' <<<"$out" | tail -1) "
    RESP_CPU[$c]+="$(python3 -c "print($((t1 - t0)) * $TICK_US / $n)") "
}

for r in $(seq "$ROUNDS"); do
    for c in $CONNS; do
        if [ $((r % 2)) -eq 1 ]; then
            run_http "$c" "$r"
            run_resp "$c" "$r"
        else
            run_resp "$c" "$r"
            run_http "$c" "$r"
        fi
    done
done

median() { tr ' ' '\n' | sed '/^$/d' | sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
echo
echo "=== GET, medians of $ROUNDS rounds: throughput (req/s) and kvd's CPU time per request (us) ==="
printf '%-12s %12s %12s %10s %12s %12s\n' connections "HTTP req/s" "RESP req/s" HTTP/RESP \
    "HTTP us/req" "RESP us/req"
for c in $CONNS; do
    h=$(median <<<"${HTTP[$c]}")
    s=$(median <<<"${RESP[$c]}")
    hc=$(median <<<"${HTTP_CPU[$c]}")
    sc=$(median <<<"${RESP_CPU[$c]}")
    printf '%-12s %12.0f %12.0f %10.2f %12.2f %12.2f\n' "$c" "$h" "$s" \
        "$(python3 -c "print($h / $s if $s else 0)")" "$hc" "$sc"
done
echo "uptime:  $(uptime)"
echo "problems: $problems"
kill "$KVD_PID"
wait "$KVD_PID" || { echo "PROBLEM: kvd exited with $?"; exit 1; }
KVD_PID=
[ "$problems" -eq 0 ]
