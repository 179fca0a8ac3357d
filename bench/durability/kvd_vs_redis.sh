#!/usr/bin/env bash
# kvd_vs_redis.sh - durable kvd against Redis 7 with an append-only file:
# SET throughput and p99 per fsync policy and client count, the same load
# generator for both, on the same disk; kvd in memory as the baseline.
#
#   bench/durability/kvd_vs_redis.sh [--build DIR] [--dir DIR] [--rounds N]
#       [--duration S] [--clients "1 16 64"] [--policies "always everysec no"]
#
# Each run starts a fresh server in a fresh directory and stops it after:
#   kvd    --threads 1 --data-dir D --fsync POLICY (POLICY = always,
#          everysec, no), or without --data-dir ("mem": the baseline);
#          --initial-capacity KEYS as bench/compare.sh; snapshots and log
#          size at kvd's defaults.
#   Redis  redis-server --appendonly yes --appendfsync POLICY --save ''
#          --dir D (AOF rewrite at its defaults).
# Both listen on 127.0.0.1 only (kvd on a kernel-chosen port, Redis on a
# random free port 20000-59999), both pinned to SERVER_CPU; the load
# generator is kvbench (bench/kvbench; --protocol resp for Redis) pinned to
# CLIENT_CPU: -t 1, -c CLIENTS, -P 1, --ratio 0:1 (SET only), --keys KEYS,
# -d VALUE, WARMUP s of load, then --duration s measured. No preload (as
# the issue's redis-benchmark command). Every directory is made under one
# mktemp directory in DIR, so kvd's log and Redis's AOF sit on the same
# filesystem (a real disk: fsync on tmpfs measures nothing).
#
# Each round runs every cell (policy x clients) against both servers, the
# order of the two servers alternating from round to round, and the mem
# baseline (first in odd rounds, last in even ones). The table gives the
# medians of the rounds: req/s, p99, kvd/Redis, and kvd durable / kvd in
# memory; also kvd's writes per log batch (log_records / log_batches from
# kvcli metrics: one write, and with always one fdatasync, per batch) and each server's CPU time per request (/proc/PID/stat).
# After the rounds, redis-benchmark's own figures for Redis, the issue's
# command (redis-benchmark -t set -d VALUE -r KEYS -c CLIENTS, -n sized to
# about DURATION s from the kvbench runs), once per cell, for reference.
#
# Problems are reported as PROBLEM lines (and counted at the end): a
# kvbench error or connection failure, a run that does not finish within
# WARMUP + DURATION + 30 s (replies not coming), a server that dies or does
# not stop within 10 s of SIGTERM, or exits non-zero.
#
# Environment (defaults): BUILD (build), DIR (/var/tmp), ROUNDS (3),
# DURATION (3), WARMUP (1), CLIENTS ("1 16 64"), POLICIES ("always
# everysec no"), KEYS (100000), VALUE (64), SERVER_CPU (0), CLIENT_CPU (1),
# REDIS_BENCHMARK (1; 0 skips the reference runs). The report goes to
# stdout (one line per run as it ends, then the tables), progress to
# stderr. Everything started is stopped and DIR's directory removed on
# exit. Needs taskset, redis-server, redis-cli, redis-benchmark, and kvd,
# kvcli and kvbench built in BUILD. About 6 minutes with the defaults.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD=${BUILD:-$ROOT/build}
DIR=${DIR:-/var/tmp}
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-3}
WARMUP=${WARMUP:-1}
CLIENTS=${CLIENTS:-"1 16 64"}
POLICIES=${POLICIES:-"always everysec no"}
KEYS=${KEYS:-100000}
VALUE=${VALUE:-64}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
REDIS_BENCHMARK=${REDIS_BENCHMARK:-1}

while [ $# -gt 0 ]; do
    case $1 in
    --build) BUILD=$2; shift 2 ;;
    --dir) DIR=$2; shift 2 ;;
    --rounds) ROUNDS=$2; shift 2 ;;
    --duration) DURATION=$2; shift 2 ;;
    --clients) CLIENTS=$2; shift 2 ;;
    --policies) POLICIES=$2; shift 2 ;;
    -h | --help) sed -n '2,/^set -eu/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "kvd_vs_redis.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
case $BUILD in /*) ;; *) BUILD=$PWD/$BUILD ;; esac

KVD=$BUILD/kvd/src/kvd
KVCLI=$BUILD/kvcli/kvcli
KVBENCH=$BUILD/bench/kvbench/kvbench

die() { echo "kvd_vs_redis.sh: $*" >&2; exit 1; }
for tool in taskset redis-server redis-cli redis-benchmark; do
    command -v "$tool" >/dev/null ||
        die "$tool not found (apt-get install redis-server redis-tools util-linux)"
done
for bin in "$KVD" "$KVCLI" "$KVBENCH"; do
    [ -x "$bin" ] || die "no $bin (build first, or set BUILD / --build)"
done
[ -d "$DIR" ] || die "no directory $DIR"

TMP=$(mktemp -d "$DIR/kvd-vs-redis-XXXXXX")
SERVER_PID=
cleanup() {
    if [ -n "$SERVER_PID" ]; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

PROBLEMS=0
problem() { echo "PROBLEM: $*"; echo "PROBLEM: $*" >&2; PROBLEMS=$((PROBLEMS + 1)); }
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR) print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; else print "nan" }'; }
CLK_TCK=$(getconf CLK_TCK)
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; }
jfield() { printf '%s' "$2" | sed -n "s/.*\"$1\":\([0-9.]*\).*/\1/p"; } # name json

# ---- servers --------------------------------------------------------------
# Each sets SERVER_PID and PORT, or reports a problem and returns 1.
kvd_start() { # mem|always|everysec|no dir
    local policy=$1 dir=$2 i
    local durable=()
    [ "$policy" = mem ] || durable=(--data-dir "$dir/data" --fsync "$policy")
    mkdir -p "$dir"
    taskset -c "$SERVER_CPU" "$KVD" --bind 127.0.0.1 --port 0 --port-file "$dir/port" \
        --threads 1 --initial-capacity "$KEYS" "${durable[@]}" \
        --log-level warn --log-file "$dir/kvd.log" &
    SERVER_PID=$!
    for i in $(seq 100); do
        [ -s "$dir/port" ] && { PORT=$(cat "$dir/port"); return 0; }
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.1
    done
    problem "kvd ($policy) did not start: $(tail -3 "$dir/kvd.log" 2>/dev/null)"
    server_stop kvd "$dir"
    return 1
}
redis_start() { # always|everysec|no dir
    local policy=$1 dir=$2 try i
    mkdir -p "$dir"
    for try in 1 2 3 4 5; do
        PORT=$((20000 + RANDOM % 40000))
        port_free "$PORT" || continue
        taskset -c "$SERVER_CPU" redis-server --port "$PORT" --bind 127.0.0.1 --dir "$dir" \
            --appendonly yes --appendfsync "$policy" --save '' \
            --logfile "$dir/redis.log" --daemonize no &
        SERVER_PID=$!
        for i in $(seq 100); do
            [ "$(redis-cli -h 127.0.0.1 -p "$PORT" ping 2>/dev/null)" = PONG ] && return 0
            kill -0 "$SERVER_PID" 2>/dev/null || break
            sleep 0.1
        done
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
        SERVER_PID=
    done
    problem "redis-server ($policy) did not start: $(tail -3 "$dir/redis.log" 2>/dev/null)"
    return 1
}
# SIGTERM, then up to 10 s for a clean exit; removes the directory.
server_stop() { # kvd|redis dir
    local i rc=0
    if [ -n "$SERVER_PID" ]; then
        if ! kill -0 "$SERVER_PID" 2>/dev/null; then
            wait "$SERVER_PID" 2>/dev/null || rc=$?
            problem "$1 (pid $SERVER_PID) had died before the end of its run, status $rc; last log lines: $(tail -3 "$2"/*.log 2>/dev/null | tr '\n' ' ')"
        else
            kill "$SERVER_PID" 2>/dev/null || true
            for i in $(seq 100); do
                kill -0 "$SERVER_PID" 2>/dev/null || break
                sleep 0.1
            done
            if kill -0 "$SERVER_PID" 2>/dev/null; then
                problem "$1 (pid $SERVER_PID) still running 10 s after SIGTERM; SIGKILL"
                kill -9 "$SERVER_PID" 2>/dev/null || true
            fi
            wait "$SERVER_PID" 2>/dev/null || rc=$?
            # redis-server exits 0 on SIGTERM; kvd too (see its --help).
            [ "$rc" -eq 0 ] || [ "$rc" -eq 137 ] ||
                problem "$1 exited with status $rc after SIGTERM; last log lines: $(tail -3 "$2"/*.log 2>/dev/null | tr '\n' ' ')"
        fi
        SERVER_PID=
    fi
    rm -rf "$2"
}

# ---- one run --------------------------------------------------------------
# Appends to $TMP/raw: round server policy clients rps p50_ms p99_ms
# p999_ms max_ms errors cpu_us/req writes/batch keys. Prints the same line.
RUN=0
one_run() { # round kvd|redis policy clients
    local round=$1 server=$2 policy=$3 clients=$4 dir proto out rc=0 t0 w0 t1 w1
    RUN=$((RUN + 1))
    dir=$TMP/run-$RUN
    if [ "$server" = kvd ]; then
        kvd_start "$policy" "$dir" || return 0
        proto=kvd
    else
        redis_start "$policy" "$dir" || return 0
        proto=resp
    fi
    t0=$(cpu_ticks "$SERVER_PID"); w0=$(date +%s.%N)
    out=$(timeout $((${WARMUP%.*} + ${DURATION%.*} + 30)) \
        taskset -c "$CLIENT_CPU" "$KVBENCH" --protocol "$proto" -p "$PORT" -c "$clients" \
        -t 1 -P 1 --ratio 0:1 --keys "$KEYS" -d "$VALUE" \
        --warmup "$WARMUP" --duration "$DURATION" --json -q 2>"$dir/kvbench.err") || rc=$?
    t1=$(cpu_ticks "$SERVER_PID"); w1=$(date +%s.%N)
    local what="$server $policy -c $clients (round $round)"
    if [ "$rc" -eq 124 ]; then
        problem "$what: kvbench did not finish within $((${WARMUP%.*} + ${DURATION%.*} + 30)) s (replies not coming?)"
    elif [ "$rc" -ne 0 ]; then
        problem "$what: kvbench exit status $rc: $(tr '\n' ' ' <"$dir/kvbench.err")"
    fi
    local rps p50 p99 p999 max err answered cpu wps=- keys=-
    rps=$(jfield rps "$out"); p50=$(jfield p50 "$out"); p99=$(jfield p99 "$out")
    p999=$(jfield p999 "$out"); max=$(jfield max "$out"); answered=$(jfield answered "$out")
    local e1 e2
    e1=$(jfield errors "$out"); e2=$(jfield conn_errors "$out")
    err=$(( ${e1:-0} + ${e2:-0} ))
    [ "$err" -eq 0 ] || problem "$what: $err errors: $out"
    cpu=$(awk -v t=$((t1 - t0)) -v n="${answered:-0}" -v hz="$CLK_TCK" \
        'BEGIN { printf "%.2f", n ? t / hz * 1e6 / n : 0 }')
    if [ "$server" = kvd ] && kill -0 "$SERVER_PID" 2>/dev/null; then
        local m
        m=$("$KVCLI" --port "$PORT" --timeout 5 --json metrics 2>/dev/null) || true
        keys=$(jfield keys "$m")
        [ "$policy" = mem ] || wps=$(awk -v r="$(jfield log_records "$m")" -v b="$(jfield log_batches "$m")" \
            'BEGIN { printf "%.1f", (b > 0) ? r / b : 0 }')
    elif [ "$server" = redis ]; then
        keys=$(redis-cli -h 127.0.0.1 -p "$PORT" dbsize 2>/dev/null) || keys=-
    fi
    server_stop "$server" "$dir"
    [ -n "$rps" ] || { problem "$what: no result from kvbench"; return 0; }
    local line
    line=$(awk -v r="$round" -v s="$server" -v p="$policy" -v c="$clients" -v rps="$rps" \
        -v a="$p50" -v b="$p99" -v d="$p999" -v m="$max" -v e="$err" -v u="$cpu" \
        -v w="$wps" -v k="${keys:--}" \
        'BEGIN { printf "%s %s %s %s %.0f %.3f %.3f %.3f %.3f %s %s %s %s", r, s, p, c, rps,
                 a / 1000, b / 1000, d / 1000, m / 1000, e, u, w, k }')
    echo "$line" >>"$TMP/raw"
    echo "run $line"
}

# ---- report header --------------------------------------------------------
echo "=== bench/durability/kvd_vs_redis.sh"
# The commit the servers were built from: BUILD's source tree, which need
# not be this script's.
SRC=$(sed -n 's/^CMAKE_HOME_DIRECTORY:INTERNAL=//p' "$BUILD/CMakeCache.txt" 2>/dev/null)
echo "date:    $(date -u '+%Y-%m-%d %H:%M UTC'); libkv at $(git -C "${SRC:-$ROOT}" rev-parse --short HEAD 2>/dev/null || echo '?') (built in $BUILD)"
echo "machine: $(nproc) CPUs, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1); kernel $(uname -r)"
echo "disk:    $DIR ($(df -T "$DIR" | awk 'NR == 2 { print $2 " on " $1 }')), kvd's --data-dir and Redis's --dir both under $TMP"
echo "servers: kvd $("$KVD" --version | head -1) --threads 1 --initial-capacity $KEYS [--data-dir D --fsync P]; redis-server $(redis-server --version | sed 's/.*v=\([^ ]*\).*/\1/') --appendonly yes --appendfsync P --save ''; fresh per run, on CPU $SERVER_CPU"
echo "load:    kvbench -t 1 -P 1 --ratio 0:1 --keys $KEYS -d $VALUE --warmup $WARMUP --duration $DURATION -c {$CLIENTS} (--protocol resp for Redis) on CPU $CLIENT_CPU; $ROUNDS rounds"
echo "load before: $(uptime)"
echo "busiest other processes (%CPU since start, cpu, command):"
{ ps -eo pcpu=,psr=,args= --sort=-pcpu | awk 'NR <= 4 { printf "  %5s%% cpu%s %s %s\n", $1, $2, $3, $4 }'; } || true
echo
echo "run: round server policy clients req/s p50_ms p99_ms p99.9_ms max_ms errors server_cpu_us/req kvd_writes/log_batch keys_at_end"

# ---- rounds ---------------------------------------------------------------
for round in $(seq "$ROUNDS"); do
    echo "round $round of $ROUNDS" >&2
    if [ $((round % 2)) -eq 1 ]; then order="kvd redis"; else order="redis kvd"; fi
    if [ $((round % 2)) -eq 1 ]; then
        for c in $CLIENTS; do one_run "$round" kvd mem "$c"; done
    fi
    for policy in $POLICIES; do
        for c in $CLIENTS; do
            for server in $order; do
                one_run "$round" "$server" "$policy" "$c"
            done
        done
    done
    if [ $((round % 2)) -eq 0 ]; then
        for c in $CLIENTS; do one_run "$round" kvd mem "$c"; done
    fi
done
echo "load after rounds: $(uptime)"

# ---- tables ---------------------------------------------------------------
col() { # server policy clients column -> median over the rounds
    awk -v s="$1" -v p="$2" -v c="$3" -v k="$4" '$2 == s && $3 == p && $4 == c { print $k }' "$TMP/raw" | median
}
div() { awk -v a="$1" -v b="$2" 'BEGIN { if ((b + 0 > 0) && a != "nan") printf "%.2f", a / b; else printf "-" }'; }
echo
echo "=== medians of $ROUNDS rounds (kvbench for both servers; SET, -P 1, $VALUE-byte values, $KEYS keys)"
printf '%-8s %7s | %9s %9s %6s | %8s %8s | %9s %6s | %7s | %6s %6s\n' policy clients \
    "kvd req/s" "Redis" kvd/R "kvd p99" "R p99" "kvd mem" dur/mem "wr/bat" "kvd us" "R us"
printf '%-8s %7s | %9s %9s %6s | %8s %8s | %9s %6s | %7s | %6s %6s\n' "" "" "" "req/s" "" ms ms \
    "req/s" "" "" "/req" "/req"
for policy in $POLICIES; do
    for c in $CLIENTS; do
        k=$(col kvd "$policy" "$c" 5); r=$(col redis "$policy" "$c" 5)
        k99=$(col kvd "$policy" "$c" 7); r99=$(col redis "$policy" "$c" 7)
        m=$(col kvd mem "$c" 5)
        printf '%-8s %7s | %9.0f %9.0f %6s | %8.3f %8.3f | %9.0f %6s | %7s | %6.2f %6.2f\n' \
            "$policy" "$c" "$k" "$r" "$(div "$k" "$r")" "$k99" "$r99" "$m" "$(div "$k" "$m")" \
            "$(col kvd "$policy" "$c" 12)" "$(col kvd "$policy" "$c" 11)" "$(col redis "$policy" "$c" 11)"
    done
done
for c in $CLIENTS; do
    printf '%-8s %7s | %9.0f %9s %6s | %8.3f %8s | %9s %6s | %7s | %6.2f %6s\n' mem "$c" \
        "$(col kvd mem "$c" 5)" - - "$(col kvd mem "$c" 7)" - - - - "$(col kvd mem "$c" 11)" -
done
echo "(kvd/R: kvd req/s / Redis req/s; dur/mem: kvd with this policy / kvd in memory, same clients;"
echo " wr/bat: kvd's log records per log batch (one write + with always one fdatasync);"
echo " us/req: server CPU time per answered request)"

echo
echo "targets (from the medians above):"
if [[ " $POLICIES " == *" always "* ]]; then
    cmax=$(echo $CLIENTS | tr ' ' '\n' | sort -n | tail -1)
    k=$(col kvd always "$cmax" 5); r=$(col redis always "$cmax" 5)
    k99=$(col kvd always "$cmax" 7); r99=$(col redis always "$cmax" 7)
    awk -v c="$cmax" -v k="$k" -v r="$r" -v a="$k99" -v b="$r99" 'BEGIN {
        t = (k / r >= 1.5); l = (a < b)
        printf "  always, %s clients: kvd/Redis %.2fx (target >= 1.5x: %s), p99 %.3f vs %.3f ms (target lower: %s)\n",
            c, k / r, t ? "met" : "MISSED", a, b, l ? "met" : "MISSED" }'
fi
for policy in everysec no; do
    [[ " $POLICIES " == *" $policy "* ]] || continue
    for c in $CLIENTS; do
        k=$(col kvd "$policy" "$c" 5); m=$(col kvd mem "$c" 5)
        awk -v p="$policy" -v c="$c" -v k="$k" -v m="$m" 'BEGIN {
            printf "  %s, %s clients: kvd durable / in memory %.2f (target >= 0.90: %s)\n",
                p, c, k / m, (k / m >= 0.9) ? "met" : "MISSED" }'
    done
done

# ---- redis-benchmark reference ---------------------------------------------
if [ "$REDIS_BENCHMARK" = 1 ]; then
    echo
    echo "=== redis-benchmark's own figures for Redis (reference; one run per cell, -n ~ $DURATION s)"
    printf '%-8s %7s | %9s %8s %8s | %s\n' policy clients "req/s" "p50 ms" "p99 ms" command
    for policy in $POLICIES; do
        for c in $CLIENTS; do
            RUN=$((RUN + 1))
            dir=$TMP/run-$RUN
            redis_start "$policy" "$dir" || continue
            r=$(col redis "$policy" "$c" 5)
            n=$(awk -v r="$r" -v d="$DURATION" 'BEGIN { n = int(r * d); if (n < 1000) n = 1000; print n }')
            cmd="redis-benchmark -t set -d $VALUE -r $KEYS -c $c -n $n"
            out=$(timeout $((${DURATION%.*} * 10 + 60)) taskset -c "$CLIENT_CPU" \
                redis-benchmark -h 127.0.0.1 -p "$PORT" -t set -d "$VALUE" -r "$KEYS" -c "$c" -n "$n" --csv \
                2>&1) || problem "redis-benchmark ($policy, -c $c) failed: $(echo "$out" | tail -2 | tr '\n' ' ')"
            server_stop redis "$dir"
            echo "$out" | awk -F, -v p="$policy" -v c="$c" -v cmd="$cmd" 'NR == 2 { gsub(/"/, "");
                printf "%-8s %7s | %9.0f %8.3f %8.3f | %s\n", p, c, $2, $5, $7, cmd }'
        done
    done
fi

echo
echo "load at the end: $(uptime)"
echo "problems: $PROBLEMS"
