#!/usr/bin/env bash
# compare.sh - kvd against Redis (and memcached, if installed) on
# loopback: same workload shapes, same CPU pinning, several alternating
# rounds, a table of medians.
#
#   bench/compare.sh [--build DIR] [--rounds N] [--duration S]
#
# Starts kvd (in memory, --threads 1) and redis-server (no persistence) on
# 127.0.0.1, both pinned to SERVER_CPU; the load generators (kvbench for
# kvd, redis-benchmark for Redis, one thread each) run pinned to
# CLIENT_CPU. Both servers get KEYS keys of VALUE bytes first (Redis
# twice: redis-benchmark's key names and kvbench's). Each round runs every
# shape (GET and SET at pipeline 1 and 16, 50 connections) against both
# servers, and also kvbench --protocol resp against Redis (three runs per
# shape; odd rounds run them in the order redis-benchmark, kvd, Redis by
# kvbench, even rounds in reverse); the first table shows the median
# throughput and p99 of the rounds, and kvd / Redis, as each server's own
# tool measures them.
#
# Same-generator table: p99s from two different load generators compare
# poorly, so the second table puts kvd's kvbench runs (those of the first
# table) next to the kvbench --protocol resp runs against Redis: the same
# program, connections, pinning, keys (key:%08d), values, warmup and
# duration, the same histogram; req/s, p50, p99, p99.9 and server CPU per
# request, medians of the rounds; and "paired", the median over the rounds
# of kvd's req/s over Redis's in the same round (the two runs are adjacent
# in every round, so a slow spell of the machine hits both, where the
# ratio of the medians may set one's fast round against the other's slow
# one).
#
# memcached: if it is installed, a memcached (-t 1, no persistence to
# speak of, pinned to SERVER_CPU like the others) gets kvbench's keys too,
# every round also runs kvbench --protocol memcache against it, and a
# third table puts kvd's kvbench runs next to those, as the second does
# for Redis. (memcached has no redis-benchmark of its own here, so it has
# no column in the first table and no equal-rate runs.)
#
# On a shared machine throughput depends on what else runs; the table
# therefore also gives each server's CPU time per request (from
# /proc/PID/stat over the whole run, divided by the requests the server
# answered in it), which other load disturbs much less.
#
# Equal-rate table (pipeline 1 only, after the rounds): in the closed loop
# each tool sends as fast as its server answers, so kvd, which is faster,
# runs saturated while Redis is held back by redis-benchmark, and the two
# p99s come from different loads. The script therefore runs kvbench ROUNDS
# more times per pipeline-1 shape, open loop (--rate, -P 1 as the cap per
# connection), at Redis's median throughput for that shape from the
# rounds above, and prints the medians of kvd's p50/p99/p99.9 at that
# rate next to
# Redis's closed-loop p50/p99 at the same throughput. kvbench times each
# request from its scheduled send time, so queueing in kvd or in kvbench
# counts; "reached" says whether kvd answered at least 98 % of the rate,
# "late %" how many requests fell due while their connection still
# waited for an answer (sent late, the wait included in the latencies),
# "lag p50" kvbench's own median delay from due time to write (included
# too), and "cpu" each server's share of its CPU at that throughput.
# kvbench needs more CPU per request open loop than closed: "reached" = no
# with kvd's cpu well below 1 means kvd was not short of its own work, but
# kvbench fell behind or other processes took the CPUs (see the load).
# Each of those rounds also runs kvbench --protocol resp --rate at the same
# rate against Redis (alternating which server goes first), and a second
# equal-rate table gives one line per server, both measured by kvbench
# open loop: there the two p99s at equal rate come from the same tool.
#
# Environment (defaults): BUILD (build), ROUNDS (3), DURATION (5 s per
# run), KEYS (100000), VALUE (64), CONNS (50), PIPELINES ("1 16"),
# SERVER_CPU (0), CLIENT_CPU (1), KVD_PORT (17379), REDIS_PORT (16379),
# SERVER_THREADS (1: kvd --threads N, memcached -t N, and for N > 1 Redis
# --io-threads N --io-threads-do-reads yes; with 2 on this 2-core machine
# give SERVER_CPU=0,1 CLIENT_CPU=0,1: servers and generator then share
# both CPUs),
# MEMCACHED_PORT (16211), MEMCACHED (1 if memcached is installed; 0 leaves
# it out), KVD_ARGS (none; more kvd flags, e.g. "--history off
# --busy-poll 50", named in the output; history is on unless they turn it
# off).
# Needs: taskset (util-linux), redis-server (redis-server package),
# redis-benchmark and redis-cli (redis-tools), and kvd + kvbench built in
# BUILD; memcached (memcached package) optional. The servers are stopped
# on exit.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${BUILD:-$ROOT/build}
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-5}
KEYS=${KEYS:-100000}
VALUE=${VALUE:-64}
CONNS=${CONNS:-50}
PIPELINES=${PIPELINES:-"1 16"}
SERVER_CPU=${SERVER_CPU:-0}
SERVER_THREADS=${SERVER_THREADS:-1}
CLIENT_CPU=${CLIENT_CPU:-1}
KVD_PORT=${KVD_PORT:-17379}
REDIS_PORT=${REDIS_PORT:-16379}
MEMCACHED_PORT=${MEMCACHED_PORT:-16211}
if [ -z "${MEMCACHED:-}" ]; then
    MEMCACHED=0
    command -v memcached >/dev/null && MEMCACHED=1
fi

while [ $# -gt 0 ]; do
    case $1 in
    --build) BUILD=$2; shift 2 ;;
    --rounds) ROUNDS=$2; shift 2 ;;
    --duration) DURATION=$2; shift 2 ;;
    -h | --help) sed -n '2,/^set -eu/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "compare.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
case $BUILD in /*) ;; *) BUILD=$PWD/$BUILD ;; esac

KVD=$BUILD/kvd/src/kvd
KVBENCH=$BUILD/bench/kvbench/kvbench

die() { echo "compare.sh: $*" >&2; exit 1; }
for tool in taskset redis-server redis-benchmark redis-cli; do
    command -v "$tool" >/dev/null ||
        die "$tool not found (apt-get install redis-server redis-tools util-linux)"
done
[ -x "$KVD" ] || die "no kvd at $KVD (build first, or set BUILD / --build)"
[ -x "$KVBENCH" ] || die "no kvbench at $KVBENCH (build first, or set BUILD / --build)"

TMP=$(mktemp -d "${TMPDIR:-/tmp}/kv-compare.XXXXXX")
KVD_PID=
REDIS_PID=
MC_PID=
cleanup() {
    for pid in $KVD_PID $REDIS_PID $MC_PID; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in $KVD_PID $REDIS_PID $MC_PID; do
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- servers ------------------------------------------------------------
taskset -c "$SERVER_CPU" "$KVD" --bind 127.0.0.1 --port "$KVD_PORT" \
    --port-file "$TMP/kvd.port" --threads "$SERVER_THREADS" --initial-capacity "$KEYS" \
    --log-level warn --log-file "$TMP/kvd.log" ${KVD_ARGS:-} &
KVD_PID=$!
REDIS_THREADS=()
[ "$SERVER_THREADS" -gt 1 ] && REDIS_THREADS=(--io-threads "$SERVER_THREADS" --io-threads-do-reads yes)
taskset -c "$SERVER_CPU" redis-server --save '' --appendonly no "${REDIS_THREADS[@]}" \
    --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$TMP" \
    --logfile "$TMP/redis.log" --daemonize no &
REDIS_PID=$!
# memcached's `stats` value NAME (empty if it does not answer).
mc_stat() { # name
    local line v=
    { exec 3<>"/dev/tcp/127.0.0.1/$MEMCACHED_PORT"; } 2>/dev/null || return 0
    printf 'stats\r\n' >&3
    while IFS= read -r -t 2 line <&3; do
        line=${line%$'\r'}
        [ "$line" = END ] && break
        case $line in "STAT $1 "*) v=${line#"STAT $1 "} ;; esac
    done
    exec 3<&-
    echo "$v"
}
if [ "$MEMCACHED" = 1 ]; then
    # -m: room for every key, so that no GET misses for an eviction.
    taskset -c "$SERVER_CPU" memcached -p "$MEMCACHED_PORT" -l 127.0.0.1 -U 0 -t "$SERVER_THREADS" \
        -m 1024 -u "$(id -un)" 2>"$TMP/memcached.log" &
    MC_PID=$!
    for _ in $(seq 100); do
        [ "$(mc_stat pid)" = "$MC_PID" ] && break
        kill -0 "$MC_PID" 2>/dev/null || die "memcached did not start: $(cat "$TMP/memcached.log")"
        sleep 0.1
    done
    [ "$(mc_stat pid)" = "$MC_PID" ] ||
        die "memcached on port $MEMCACHED_PORT is not ours (set MEMCACHED_PORT, or MEMCACHED=0)"
fi

for _ in $(seq 100); do
    [ -s "$TMP/kvd.port" ] && redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break
    kill -0 "$KVD_PID" 2>/dev/null || die "kvd did not start: $(cat "$TMP/kvd.log")"
    kill -0 "$REDIS_PID" 2>/dev/null || die "redis-server did not start: $(cat "$TMP/redis.log")"
    sleep 0.1
done
[ -s "$TMP/kvd.port" ] || die "kvd did not start"
redis-cli -p "$REDIS_PORT" ping >/dev/null || die "redis-server did not start"

# ---- preload ------------------------------------------------------------
# Redis: the keys redis-benchmark -r draws ("key:" and 12 digits).
awk -v n="$KEYS" -v size="$VALUE" 'BEGIN {
    v = ""; for (i = 0; i < size; i++) v = v "x";
    for (i = 0; i < n; i++) {
        k = sprintf("key:%012d", i);
        printf "*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n", length(k), k, size, v;
    }
}' | redis-cli -p "$REDIS_PORT" --pipe >/dev/null
# kvd, and Redis for kvbench --protocol resp: kvbench's keys ("key:" and
# 8 digits).
protos="kvd resp"
[ "$MEMCACHED" = 1 ] && protos="$protos memcache"
for proto in $protos; do
    port=$KVD_PORT
    [ $proto = resp ] && port=$REDIS_PORT
    [ $proto = memcache ] && port=$MEMCACHED_PORT
    taskset -c "$CLIENT_CPU" "$KVBENCH" --protocol $proto -p "$port" -c "$CONNS" \
        --keys "$KEYS" -d "$VALUE" --preload --ratio 0:1 --warmup 0 --duration 0.001 \
        -q --json >/dev/null
done
# The two key formats never name the same key (16 and 12 bytes).
redis_keys=$(redis-cli -p "$REDIS_PORT" dbsize)
[ "$redis_keys" -eq $((2 * KEYS)) ] ||
    die "Redis has $redis_keys keys after preload, not $((2 * KEYS)) (2 x $KEYS)"
if [ "$MEMCACHED" = 1 ]; then
    mc_items=$(mc_stat curr_items)
    [ "$mc_items" = "$KEYS" ] || die "memcached has ${mc_items:-?} items after preload, not $KEYS"
fi

# ---- runs ---------------------------------------------------------------
# redis-benchmark is bounded by a request count: size it from a short
# calibration run so that a run lasts about DURATION seconds.
CLK_TCK=$(getconf CLK_TCK)
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; } # utime + stime
now() { date +%s.%N; }
# -> "server_cpu_us_per_request server_cpu_share"
cpu_cost() { # pid ticks_before time_before requests
    awk -v t0="$2" -v t1="$(cpu_ticks "$1")" -v w0="$3" -v w1="$(now)" -v n="$4" -v hz="$CLK_TCK" \
        'BEGIN { cpu = (t1 - t0) / hz; printf "%.3f %.2f", cpu * 1e6 / n, cpu / (w1 - w0) }'
}
redis_run() { # op pipeline requests -> "rps p50_ms p99_ms cpu_us/req cpu_share"
    local t0 w0 r
    t0=$(cpu_ticks "$REDIS_PID"); w0=$(now)
    r=$(taskset -c "$CLIENT_CPU" redis-benchmark -h 127.0.0.1 -p "$REDIS_PORT" \
        -c "$CONNS" -P "$2" -t "$1" -r "$KEYS" -d "$VALUE" -n "$3" --csv |
        awk -F, 'NR == 2 { gsub(/"/, ""); print $2, $5, $7 }')
    echo "$r $(cpu_cost "$REDIS_PID" "$t0" "$w0" "$3")"
}
ms() { awk -v v="$1" 'BEGIN { printf "%.3f", v / 1000 }'; } # us -> ms
# kvbench against kvd, or against Redis with --protocol resp: the same
# options either way. Sets PORT, PID and PROTO for the server.
kvb_target() { # kvd|redis|memcached
    case $1 in
    kvd) PORT=$KVD_PORT PID=$KVD_PID PROTO=kvd ;;
    redis) PORT=$REDIS_PORT PID=$REDIS_PID PROTO=resp ;;
    memcached) PORT=$MEMCACHED_PORT PID=$MC_PID PROTO=memcache ;;
    esac
}
kvb_run() { # kvd|redis|memcached op pipeline -> "rps p50_ms p99_ms cpu_us/req cpu_share errors p999_ms"
    local ratio=1:0
    [ "$2" = set ] && ratio=0:1
    local out t0 w0
    kvb_target "$1"
    t0=$(cpu_ticks "$PID"); w0=$(now)
    out=$(taskset -c "$CLIENT_CPU" "$KVBENCH" --protocol "$PROTO" -p "$PORT" -c "$CONNS" \
        -t 1 -P "$3" --ratio "$ratio" --keys "$KEYS" -d "$VALUE" \
        --warmup 1 --duration "$DURATION" --json -q)
    field() { printf '%s' "$out" | sed -n "s/.*\"$1\":\([0-9.]*\).*/\1/p"; }
    local e n
    e=$(field errors); n=$(field not_found)
    printf '%s %s %s %s %s %s\n' "$(field rps)" "$(ms "$(field p50)")" "$(ms "$(field p99)")" \
        "$(cpu_cost "$PID" "$t0" "$w0" "$(field answered)")" "$((e + n))" \
        "$(ms "$(field p999)")"
}
# Open loop at a fixed rate, pipeline 1 as the cap per connection.
# -> "rps p50_ms p99_ms p999_ms late_pct backlog lag_p50_ms cpu_us/req cpu_share errors"
kvb_rate_run() { # kvd|redis op rate
    local ratio=1:0
    [ "$2" = set ] && ratio=0:1
    local out t0 w0
    kvb_target "$1"
    t0=$(cpu_ticks "$PID"); w0=$(now)
    out=$(taskset -c "$CLIENT_CPU" "$KVBENCH" --protocol "$PROTO" -p "$PORT" -c "$CONNS" \
        -t 1 -P 1 --rate "$3" --ratio "$ratio" --keys "$KEYS" -d "$VALUE" \
        --warmup 1 --duration "$DURATION" --json -q)
    field() { printf '%s' "$out" | sed -n "s/.*\"$1\":\([0-9.]*\).*/\1/p"; }
    local n e
    n=$(field requests); e=$(($(field errors) + $(field not_found)))
    printf '%s %s %s %s %s %s %s %s %s\n' "$(field rps)" "$(ms "$(field p50)")" \
        "$(ms "$(field p99)")" "$(ms "$(field p999)")" \
        "$(awk -v l="$(field late)" -v n="$n" 'BEGIN { printf "%.2f", n ? 100 * l / n : 0 }')" \
        "$(field backlog)" "$(ms "$(field send_lag_p50_us)")" \
        "$(cpu_cost "$PID" "$t0" "$w0" "$(field answered)")" "$e"
}
col() { # server op pipeline column -> median over the rounds
    awk -v s="$1" -v o="$2" -v p="$3" -v c="$4" '$2 == s && $3 == o && $4 == p { print $c }' "$TMP/raw" | median
}
median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { print a / b }'; }
# The median over the rounds of kvd's req/s over TAG's in the same round:
# the two runs of a round follow each other (see the round order), so a
# slow spell of the machine that spans them hits both, where the ratio of
# the two columns' medians can set one server's fast round against the
# other's slow one.
paired() { # tag op pipeline
    awk -v t="$1" -v o="$2" -v p="$3" '$3 == o && $4 == p && $2 == "kvd" { k[$1] = $5 }
        $3 == o && $4 == p && $2 == t { r[$1] = $5 }
        END { for (i in k) if (i in r && r[i] > 0) print k[i] / r[i] }' "$TMP/raw" | median
}

SHAPES=()
for p in $PIPELINES; do
    SHAPES+=("get $p" "set $p")
done

declare -A NREQ
for shape in "${SHAPES[@]}"; do
    set -- $shape
    n=$((CONNS * $2 * 400))
    rps=$(redis_run "$1" "$2" "$n" | awk '{ print int($1) }')
    n=$(awk -v r="$rps" -v d="$DURATION" 'BEGIN { printf "%d", r * d }') # d may be 0.5
    NREQ[$shape]=$(( n > 100000 ? n : 100000 ))
done

load_before=$(uptime)
echo "date:    $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "commit:  $(git -C "$(dirname "${BASH_SOURCE[0]}")" rev-parse --short HEAD 2>/dev/null || echo unknown) (of this script's checkout; BUILD's kvd: $BUILD)"
echo "machine: $(nproc) CPUs, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)"
mc_version=
[ "$MEMCACHED" = 1 ] && mc_version="; memcached $(memcached -V | awk '{ print $2 }') -t $SERVER_THREADS"
echo "servers: kvd $("$KVD" --version | head -1) --threads $SERVER_THREADS${KVD_ARGS:+ $KVD_ARGS}; redis-server $(redis-server --version | sed 's/.*v=\([^ ]*\).*/\1/') --save '' --appendonly no${REDIS_THREADS[*]:+ ${REDIS_THREADS[*]}}$mc_version; all on CPU $SERVER_CPU"
echo "clients: kvbench -t 1 (kvd; Redis with --protocol resp; memcached with --protocol memcache) / redis-benchmark (1 thread) on CPU $CLIENT_CPU; $CONNS connections, $KEYS keys, $VALUE-byte values, ~$DURATION s per run, $ROUNDS rounds"
echo "load before: $load_before"
echo "busiest other processes (%CPU since start, command):"
{ ps -eo pcpu=,psr=,args= --sort=-pcpu | grep -v -e redis-server -e memcached -e "$KVD" |
    awk 'NR <= 3 { printf "  %5s%% cpu%s %s %s\n", $1, $2, $3, $4 }'; } || true
echo

for round in $(seq "$ROUNDS"); do
    for shape in "${SHAPES[@]}"; do
        set -- $shape
        # redis = redis-benchmark; redis-kvbench = kvbench --protocol resp;
        # memcached-kvbench = kvbench --protocol memcache
        mc=
        [ "$MEMCACHED" = 1 ] && mc=memcached-kvbench
        if [ $((round % 2)) -eq 1 ]; then
            order="redis kvd redis-kvbench $mc"
        else
            order="$mc redis-kvbench kvd redis"
        fi
        for server in $order; do
            case $server in
            redis) r=$(redis_run "$1" "$2" "${NREQ[$shape]}") ;;
            kvd) r=$(kvb_run kvd "$1" "$2") ;;
            redis-kvbench) r=$(kvb_run redis "$1" "$2") ;;
            memcached-kvbench) r=$(kvb_run memcached "$1" "$2") ;;
            esac
            echo "$round $server $1 $2 $r" >>"$TMP/raw"
            echo "round $round: $server ${1^^} -P $2: $r" >&2
        done
    done
done

# ---- equal rate ---------------------------------------------------------
# kvd open loop at Redis's median pipeline-1 throughput (see the header),
# and Redis open loop by kvbench at the same rate.
rate_medians() { # op rate raw_file -> one line: op rate, the median of each column, errors summed
    local op=$1 file=$3 line="$1 $2" c
    for c in 4 5 6 7 8 9 10 11 12; do
        line="$line $(awk -v o="$op" -v c="$c" '$2 == o { print $c }' "$file" | median)"
    done
    echo "$line $(awk -v o="$op" '$2 == o { s += $13 } END { print s + 0 }' "$file")"
}
if [[ " $PIPELINES " == *" 1 "* ]]; then
    for op in get set; do
        rate=$(col redis "$op" 1 5 | awk '{ printf "%d", $1 }')
        [ "${rate:-0}" -gt 0 ] || { echo "equal rate: no Redis ${op^^} -P 1 throughput" >&2; continue; }
        for round in $(seq 1 "$ROUNDS"); do
            if [ $((round % 2)) -eq 1 ]; then order="kvd redis"; else order="redis kvd"; fi
            for server in $order; do
                r=$(kvb_rate_run "$server" "$op" "$rate")
                if [ $server = kvd ]; then
                    echo "$round $op $rate $r" >>"$TMP/rate_raw"
                    echo "equal rate, round $round: kvd ${op^^} -P 1 at $rate req/s: $r" >&2
                else
                    echo "$round $op $rate $r" >>"$TMP/rate_raw_redis"
                    echo "equal rate, round $round: Redis (kvbench) ${op^^} -P 1 at $rate req/s: $r" >&2
                fi
            done
        done
        rate_medians "$op" "$rate" "$TMP/rate_raw" >>"$TMP/rate"
        rate_medians "$op" "$rate" "$TMP/rate_raw_redis" >>"$TMP/rate_redis"
    done
fi

echo "load after:  $(uptime)"
echo
misses=$(redis-cli -p "$REDIS_PORT" info stats | sed -n 's/^keyspace_misses:\([0-9]*\).*/\1/p')
echo "Redis GET misses over all runs: ${misses:-?} (0 = every key was preloaded)"
[ "$MEMCACHED" = 1 ] &&
    echo "memcached GET misses over all runs: $(mc_stat get_misses) (0 = every key was preloaded)"
echo
printf '%-9s %10s %10s %6s | %8s %8s | %8s %8s | %9s %9s %6s\n' shape "kvd req/s" \
    "Redis" "kvd/R" "kvd p99" "R p99" "kvd p50" "R p50" "kvd us/rq" "R us/rq" "kvd/R"
for shape in "${SHAPES[@]}"; do
    set -- $shape
    krps=$(col kvd "$1" "$2" 5); rrps=$(col redis "$1" "$2" 5)
    k99=$(col kvd "$1" "$2" 7); r99=$(col redis "$1" "$2" 7)
    k50=$(col kvd "$1" "$2" 6); r50=$(col redis "$1" "$2" 6)
    kcpu=$(col kvd "$1" "$2" 8); rcpu=$(col redis "$1" "$2" 8)
    printf '%-9s %10.0f %10.0f %6.2f | %8.3f %8.3f | %8.3f %8.3f | %9.2f %9.2f %6.2f\n' \
        "${1^^} -P$2" "$krps" "$rrps" "$(awk -v a="$krps" -v b="$rrps" 'BEGIN { print a / b }')" \
        "$k99" "$r99" "$k50" "$r50" "$kcpu" "$rcpu" \
        "$(awk -v a="$kcpu" -v b="$rcpu" 'BEGIN { print a / b }')"
done
kerr=$(awk '$2 == "kvd" { s += $10 } END { print s + 0 }' "$TMP/raw")
[ -s "$TMP/rate" ] && kerr=$((kerr + $(awk '{ s += $NF } END { print s + 0 }' "$TMP/rate")))
rerr=$(awk '$2 == "redis-kvbench" { s += $10 } END { print s + 0 }' "$TMP/raw")
[ -s "$TMP/rate_redis" ] &&
    rerr=$((rerr + $(awk '{ s += $NF } END { print s + 0 }' "$TMP/rate_redis")))
echo
echo "kvbench errors + misses over all runs: $kerr"
echo "medians of $ROUNDS rounds; p99/p50 in ms as each tool measures them; us/rq = server"
echo "CPU microseconds per request (lower is better; kvd/R < 1 means kvd is cheaper)."
echo
# same_generator TAG LETTER: kvd's kvbench runs next to kvbench's runs
# against another server (TAG in the raw rounds), medians of the rounds.
same_generator() {
    local tag=$1 x=$2
    printf '%-9s %10s %10s %6s %6s | %8s %8s | %8s %8s | %9s %9s | %9s %9s %6s\n' shape \
        "kvd req/s" "$x req/s" "kvd/$x" paired "kvd p50" "$x p50" "kvd p99" "$x p99" \
        "kvd p99.9" "$x p99.9" "kvd us/rq" "$x us/rq" "kvd/$x"
    for shape in "${SHAPES[@]}"; do
        set -- $shape
        krps=$(col kvd "$1" "$2" 5); rrps=$(col "$tag" "$1" "$2" 5)
        kcpu=$(col kvd "$1" "$2" 8); rcpu=$(col "$tag" "$1" "$2" 8)
        printf '%-9s %10.0f %10.0f %6.2f %6.2f | %8.3f %8.3f | %8.3f %8.3f | %9.3f %9.3f | %9.2f %9.2f %6.2f\n' \
            "${1^^} -P$2" "$krps" "$rrps" "$(ratio "$krps" "$rrps")" "$(paired "$tag" "$1" "$2")" \
            "$(col kvd "$1" "$2" 6)" "$(col "$tag" "$1" "$2" 6)" \
            "$(col kvd "$1" "$2" 7)" "$(col "$tag" "$1" "$2" 7)" \
            "$(col kvd "$1" "$2" 11)" "$(col "$tag" "$1" "$2" 11)" \
            "$kcpu" "$rcpu" "$(ratio "$kcpu" "$rcpu")"
    done
}
echo "Same generator: kvbench -t 1 against both servers (Redis over RESP2, --protocol"
echo "resp), same connections, pinning, keys, values, warmup and duration; kvd's runs"
echo "are those of the table above. Medians of $ROUNDS rounds:"
same_generator redis-kvbench R
echo "kvbench errors + misses against Redis over all runs (closed and open loop): $rerr"
echo "latencies in ms, all measured by kvbench the same way; us/rq as above; paired ="
echo "the median over the rounds of kvd / R within each round (the two runs are adjacent)."
if [ "$MEMCACHED" = 1 ]; then
    merr=$(awk '$2 == "memcached-kvbench" { s += $10 } END { print s + 0 }' "$TMP/raw")
    echo
    echo "Same generator, memcached: kvbench -t 1 against kvd and memcached -t 1 (its text"
    echo "protocol, --protocol memcache), otherwise as above; kvd's runs are those of the"
    echo "tables above. Medians of $ROUNDS rounds:"
    same_generator memcached-kvbench M
    echo "kvbench errors + misses against memcached over all runs: $merr"
    echo "latencies in ms, all measured by kvbench the same way; us/rq and paired as above"
    echo "(memcached's run is one run away from kvd's in each round)."
fi
if [ -s "$TMP/rate" ]; then
    echo
    echo "Equal rate: kvd open loop (kvbench --rate, -P 1) at Redis's median throughput,"
    echo "latency from each request's scheduled send time, medians of $ROUNDS runs; Redis"
    echo "as in the first table (redis-benchmark, closed loop):"
    printf '%-9s %10s %10s %7s | %8s %8s %9s | %8s %8s | %6s %7s | %7s %5s\n' shape \
        "rate req/s" "kvd req/s" reached "kvd p50" "kvd p99" "kvd p99.9" "R p50" "R p99" \
        "late %" "lag p50" "kvd cpu" "R cpu"
    while read -r op rate rps p50 p99 p999 late _ lag _ cpu_share _; do
        reached=$(awk -v a="$rps" -v r="$rate" \
            'BEGIN { p = 100 * a / r; if (p >= 98) print "yes"; else printf "no %d%%", p }')
        printf '%-9s %10d %10.0f %7s | %8.3f %8.3f %9.3f | %8.3f %8.3f | %6.2f %7.3f | %7.2f %5.2f\n' \
            "${op^^} -P1" "$rate" "$rps" "$reached" "$p50" "$p99" "$p999" \
            "$(col redis "$op" 1 6)" "$(col redis "$op" 1 7)" "$late" "$lag" \
            "$cpu_share" "$(col redis "$op" 1 9)"
    done <"$TMP/rate"
    echo "latencies in ms; reached = kvd answered >= 98 % of the rate; late % = requests"
    echo "due while their connection still waited for an answer (their wait is in the"
    echo "latencies); lag p50 = kvbench's median delay from due time to write (also in the"
    echo "latencies); cpu = the server's share of CPU $SERVER_CPU at that throughput."
    echo "Raw (round op rate rps p50 p99 p99.9 late% backlog lag_p50 us/rq cpu_share errors):"
    cat "$TMP/rate_raw"
fi
if [ -s "$TMP/rate_redis" ]; then
    echo
    echo "Equal rate, same generator: kvbench open loop (--rate, -P 1) against each server"
    echo "at the rate above, latency from the scheduled send time, medians of $ROUNDS runs"
    echo "(kvd: the runs of the table above; Redis: kvbench --protocol resp):"
    printf '%-9s %-6s %10s %10s %7s | %8s %8s %9s | %6s %7s | %5s\n' shape server \
        "rate req/s" "req/s" reached p50 p99 p99.9 "late %" "lag p50" cpu
    for op in get set; do
        for server in kvd Redis; do
            file=$TMP/rate
            [ $server = Redis ] && file=$TMP/rate_redis
            awk -v o="$op" '$1 == o' "$file" |
                while read -r _ rate rps p50 p99 p999 late _ lag _ cpu_share _; do
                    reached=$(awk -v a="$rps" -v r="$rate" \
                        'BEGIN { p = 100 * a / r; if (p >= 98) print "yes"; else printf "no %d%%", p }')
                    printf '%-9s %-6s %10d %10.0f %7s | %8.3f %8.3f %9.3f | %6.2f %7.3f | %5.2f\n' \
                        "${op^^} -P1" "$server" "$rate" "$rps" "$reached" "$p50" "$p99" "$p999" \
                        "$late" "$lag" "$cpu_share"
                done
        done
    done
    echo "columns as in the equal-rate table above, for each server (reached = the server"
    echo "answered >= 98 % of the rate; cpu = its share of CPU $SERVER_CPU)."
    echo "Raw, Redis by kvbench (round op rate rps p50 p99 p99.9 late% backlog lag_p50 us/rq"
    echo "cpu_share errors):"
    cat "$TMP/rate_raw_redis"
fi
[ -s "$TMP/rate" ] && echo
echo "Raw rounds (round server op pipeline rps p50 p99 us/rq cpu_share [errors p99.9];"
echo "redis = redis-benchmark, redis-kvbench = kvbench --protocol resp,"
echo "memcached-kvbench = kvbench --protocol memcache):"
cat "$TMP/raw"
