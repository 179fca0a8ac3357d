#!/usr/bin/env bash
# run.sh - the durability benchmarks in one go, raw output on stdout (the
# figures in bench/README.md, "Durability", come from one such run):
#   1. write   kvdur_bench: SET throughput and latency, libkv in memory and
#              with fsync always / everysec / no, against LMDB.
#   2. recovery  kvdur_recovery: open time of a store of KEYS keys (snapshot +
#              a log tail of TAIL writes); Redis loading an RDB of the same
#              keys and values ("DB loaded from disk" in its log).
#   3. snapmem kvdur_snapmem: RSS around kv_snapshot under a 50/50 get/set
#              load; Redis: parent+child RSS and PSS around a BGSAVE under a
#              redis-benchmark SET load (kvdur_rsswatch).
#
#   bench/durability/run.sh [write] [recovery] [snapmem]   (default: all three)
#
# Builds nothing: expects the programs in $BUILD (default build/) from
#   cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo && cmake --build build -j2
# Needs redis-server, redis-cli and redis-benchmark (Debian redis-server,
# redis-tools) for parts 2 and 3. Settings (environment):
#   DIR=/var/tmp        where the stores and Redis's files go (a real disk:
#                       fsync on tmpfs measures nothing)
#   ROUNDS=3            rounds of every measurement (medians are reported)
#   RUN_SECONDS=2       per kvdur_bench run
#   THREADS=1,2,4,16,64 writer threads for kvdur_bench
#   WRITE_KEYS=100000   key space of kvdur_bench
#   KEYS=1000000        keys for parts 2 and 3
#   TAIL=100000         writes after the snapshot in part 2
#   DEFAULT_CAP_KEYS=200000  part 2 also opens a store of this many keys
#                       with libkv's default initial_capacity (0: skip)
#   COLD=0              1: drop the files from the page cache before each
#                       open/load in part 2 (only those files)
#   REDIS_CLIENTS=50    redis-benchmark connections during BGSAVE
# Everything it creates is under one mktemp directory in $DIR, removed on
# exit, and every redis-server / redis-benchmark it started is stopped.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD=${BUILD:-$ROOT/build}
BIN=$BUILD/bench/durability
DIR=${DIR:-/var/tmp}
ROUNDS=${ROUNDS:-3}
RUN_SECONDS=${RUN_SECONDS:-2}
THREADS=${THREADS:-1,2,4,16,64}
WRITE_KEYS=${WRITE_KEYS:-100000}
KEYS=${KEYS:-1000000}
TAIL=${TAIL:-100000}
DEFAULT_CAP_KEYS=${DEFAULT_CAP_KEYS:-200000}
COLD=${COLD:-0}
REDIS_CLIENTS=${REDIS_CLIENTS:-50}
PARTS=("$@")
[ ${#PARTS[@]} -gt 0 ] || PARTS=(write recovery snapmem)

die() { echo "run.sh: $*" >&2; exit 1; }
for p in "${PARTS[@]}"; do
    case $p in write | recovery | snapmem) ;; *) die "unknown part '$p' (write, recovery, snapmem)" ;; esac
done
for b in kvdur_recovery kvdur_snapmem kvdur_rsswatch; do
    [ -x "$BIN/$b" ] || die "$BIN/$b not built (cmake --build build -j2)"
done
if [[ " ${PARTS[*]} " == *" write "* ]]; then
    [ -x "$BIN/kvdur_bench" ] || die "$BIN/kvdur_bench not built (needs liblmdb-dev at configure time)"
fi
if [[ " ${PARTS[*]} " == *" recovery "* || " ${PARTS[*]} " == *" snapmem "* ]]; then
    for t in redis-server redis-cli redis-benchmark; do
        command -v $t >/dev/null || die "$t not found (apt-get install redis-server redis-tools)"
    done
fi

TMP=$(mktemp -d "$DIR/kvdur-run-XXXXXX")
REDIS_PID='' BENCH_PID='' WATCH_PID='' PORT=''
cleanup() {
    local pid
    for pid in "$WATCH_PID" "$BENCH_PID" "$REDIS_PID"; do
        [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
    done
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- Redis helpers ------------------------------------------------------
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
rcli() { redis-cli -h 127.0.0.1 -p "$PORT" "$@"; }
# redis_start DIR: redis-server on 127.0.0.1, a random free high port, no
# automatic saves; returns once it answers PING (after loading dump.rdb).
redis_start() {
    local dir=$1 try
    for try in 1 2 3 4 5; do
        PORT=$((20000 + RANDOM % 40000))
        port_free "$PORT" || continue
        : >"$dir/redis.log"
        redis-server --port "$PORT" --bind 127.0.0.1 --dir "$dir" --dbfilename dump.rdb \
            --save '' --appendonly no --logfile "$dir/redis.log" --daemonize no &
        REDIS_PID=$!
        local i
        for i in $(seq 1200); do # 120 s: loading a large RDB takes a while
            [ "$(rcli ping 2>/dev/null)" = PONG ] && return 0
            kill -0 "$REDIS_PID" 2>/dev/null || break
            sleep 0.1
        done
        kill "$REDIS_PID" 2>/dev/null; wait "$REDIS_PID" 2>/dev/null || true
        REDIS_PID=''
    done
    die "redis-server did not start: $(tail -5 "$dir/redis.log")"
}
# Stops it without saving (dump.rdb stays as it is).
redis_stop() {
    rcli shutdown nosave >/dev/null 2>&1 || true
    wait "$REDIS_PID" 2>/dev/null || true
    REDIS_PID=''
}
redis_load() { # keys tail
    "$BIN/kvdur_recovery" --emit-resp --keys "$1" --tail "$2" | rcli --pipe | tail -1
    local n
    n=$(rcli dbsize)
    [ "$n" -eq "$1" ] || die "Redis has $n keys after loading, not $1"
}
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR) print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
field() { sed -n "s/.*[ ]$1 \([0-9.]*\).*/\1/p"; } # RESULT line field
calc() { awk "BEGIN { printf \"$1\", $2 }"; }

echo "=== bench/durability/run.sh: ${PARTS[*]}"
echo "date: $(date -u '+%Y-%m-%d %H:%M UTC'); libkv at $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')"
echo "machine: $(nproc) CPUs, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1), $(free -g | awk '/^Mem:/ { print $2 }') GiB; kernel $(uname -r)"
echo "dir: $DIR ($(df -T "$DIR" | awk 'NR == 2 { print $2 " on " $1 }')); rounds $ROUNDS"
echo "redis: $(redis-server --version 2>/dev/null | head -1)"
echo "load before: $(uptime)"
echo "busiest other processes (%CPU since start, command):"
ps -eo pcpu=,args= --sort=-pcpu | awk 'NR <= 4 { printf "  %5s%% %s %s\n", $1, $2, $3 }' || true
echo

# ---- 1. write throughput ------------------------------------------------
if [[ " ${PARTS[*]} " == *" write "* ]]; then
    echo "=== 1. write throughput (kvdur_bench)"
    echo "command: kvdur_bench --dir $TMP --threads $THREADS --rounds $ROUNDS --seconds $RUN_SECONDS --keys $WRITE_KEYS"
    "$BIN/kvdur_bench" --dir "$TMP" --threads "$THREADS" --rounds "$ROUNDS" \
        --seconds "$RUN_SECONDS" --keys "$WRITE_KEYS"
    echo
fi

# ---- 2. recovery ---------------------------------------------------------
if [[ " ${PARTS[*]} " == *" recovery "* ]]; then
    echo "=== 2. recovery: libkv kv_open_config vs Redis loading an RDB, $KEYS keys"
    cold=()
    [ "$COLD" = 1 ] && cold=(--cold)
    echo "command: kvdur_recovery --keys $KEYS --tail $TAIL --rounds $ROUNDS --capacity $KEYS ${cold[*]}"
    out=$("$BIN/kvdur_recovery" --dir "$TMP" --keys "$KEYS" --tail "$TAIL" --rounds "$ROUNDS" \
        --capacity "$KEYS" "${cold[@]}")
    echo "$out"
    kv_ms=$(echo "$out" | grep '^RESULT' | field libkv_recovery_ms)
    kv_open_ms=$(echo "$out" | grep '^RESULT' | field libkv_open_ms)
    if [ "$DEFAULT_CAP_KEYS" -gt 0 ]; then
        echo
        echo "command: kvdur_recovery --keys $DEFAULT_CAP_KEYS --tail $((DEFAULT_CAP_KEYS / 10)) --rounds 1 ${cold[*]}  (default initial_capacity)"
        "$BIN/kvdur_recovery" --dir "$TMP" --keys "$DEFAULT_CAP_KEYS" \
            --tail $((DEFAULT_CAP_KEYS / 10)) --rounds 1 "${cold[@]}"
    fi
    echo
    rdir=$TMP/redis-recovery
    mkdir -p "$rdir"
    redis_start "$rdir"
    echo "redis: loading the same $KEYS keys and values (kvdur_recovery --emit-resp | redis-cli --pipe):"
    redis_load "$KEYS" "$TAIL"
    rcli save >/dev/null
    echo "redis: SAVE done; dump.rdb $(stat -c %s "$rdir/dump.rdb") bytes; used_memory $(rcli info memory | sed -n 's/^used_memory_human:\(.*\)\r$/\1/p')"
    redis_stop
    : >"$TMP/redis_load_s"
    for r in $(seq "$ROUNDS"); do
        [ "$COLD" = 1 ] && dd if="$rdir/dump.rdb" iflag=nocache count=0 status=none
        redis_start "$rdir"
        line=$(grep 'DB loaded from disk' "$rdir/redis.log" | tail -1)
        s=$(echo "$line" | sed -n 's/.*DB loaded from disk: \([0-9.]*\) seconds.*/\1/p')
        n=$(rcli dbsize)
        redis_stop
        [ -n "$s" ] || die "no 'DB loaded from disk' line in redis.log"
        [ "$n" -eq "$KEYS" ] || die "Redis loaded $n keys, not $KEYS"
        echo "redis load $r: DB loaded from disk: $s s ($n keys): $(calc '%.0f' "$KEYS / $s") keys/s"
        echo "$s" >>"$TMP/redis_load_s"
    done
    rs=$(median <"$TMP/redis_load_s")
    kv_rate=$(calc '%.0f' "$KEYS * 1000 / $kv_ms")
    kv_open_rate=$(calc '%.0f' "$KEYS * 1000 / $kv_open_ms")
    r_rate=$(calc '%.0f' "$KEYS / $rs")
    echo
    echo "recovery summary ($KEYS keys, medians of $ROUNDS; $([ "$COLD" = 1 ] && echo "files dropped from the page cache first" || echo "files in the page cache")):"
    echo "  libkv recovery elapsed_us: $kv_ms ms = $kv_rate keys/s (kv_open_config wall: $kv_open_ms ms = $kv_open_rate keys/s)"
    echo "  redis DB loaded from disk: $(calc '%.1f' "$rs * 1000") ms = $r_rate keys/s"
    echo "  libkv / redis keys/s: $(calc '%.2f' "$kv_rate / $r_rate") (recovery elapsed_us), $(calc '%.2f' "$kv_open_rate / $r_rate") (kv_open_config wall)"
    echo
fi

# ---- 3. snapshot memory --------------------------------------------------
if [[ " ${PARTS[*]} " == *" snapmem "* ]]; then
    echo "=== 3. snapshot memory: libkv kv_snapshot vs Redis BGSAVE, $KEYS keys under load"
    echo "command: kvdur_snapmem --keys $KEYS --rounds $ROUNDS --threads 2"
    out=$("$BIN/kvdur_snapmem" --dir "$TMP" --keys "$KEYS" --rounds "$ROUNDS" --threads 2)
    echo "$out"
    echo
    rdir=$TMP/redis-snapmem
    mkdir -p "$rdir"
    redis_start "$rdir"
    echo "redis: loading the same $KEYS keys (kvdur_recovery --emit-resp --tail 0 | redis-cli --pipe):"
    redis_load "$KEYS" 0
    value=$(head -c 48 /dev/urandom | base64 -w0) # 64 bytes, like the others
    echo "redis: load = redis-benchmark -c $REDIS_CLIENTS -r $KEYS SET __rand_int__ <64 bytes> (the same 12-digit keys); kvdur_rsswatch every 10 ms"
    : >"$TMP/redis_rss_ratio"
    : >"$TMP/redis_pss_ratio"
    for r in $(seq "$ROUNDS"); do
        redis-benchmark -h 127.0.0.1 -p "$PORT" -c "$REDIS_CLIENTS" -n 1000000000 -r "$KEYS" \
            SET __rand_int__ "$value" >/dev/null 2>&1 &
        BENCH_PID=$!
        sleep 2
        "$BIN/kvdur_rsswatch" --pid "$REDIS_PID" --interval-ms 10 >"$TMP/watch.out" &
        WATCH_PID=$!
        sleep 3
        before_saves=$(rcli info persistence | sed -n 's/^rdb_saves:\([0-9]*\).*/\1/p')
        rcli bgsave >/dev/null
        for _ in $(seq 1200); do
            info=$(rcli info persistence)
            saves=$(echo "$info" | sed -n 's/^rdb_saves:\([0-9]*\).*/\1/p')
            [ "$(echo "$info" | sed -n 's/^rdb_bgsave_in_progress:\([0-9]*\).*/\1/p')" = 0 ] &&
                [ "$saves" -gt "$before_saves" ] && break
            sleep 0.05
        done
        sleep 0.3
        kill -TERM "$WATCH_PID"; wait "$WATCH_PID" || true
        WATCH_PID=''
        rps=$(rcli info stats | sed -n 's/^instantaneous_ops_per_sec:\([0-9]*\).*/\1/p')
        kill "$BENCH_PID" 2>/dev/null; wait "$BENCH_PID" 2>/dev/null || true
        BENCH_PID=''
        info=$(rcli info persistence)
        cow=$(echo "$info" | sed -n 's/^rdb_last_cow_size:\([0-9]*\).*/\1/p')
        st=$(echo "$info" | sed -n 's/^rdb_last_bgsave_status:\([a-z]*\).*/\1/p')
        secs=$(echo "$info" | sed -n 's/^rdb_last_bgsave_time_sec:\([-0-9]*\).*/\1/p')
        echo "round $r: BGSAVE $st in ${secs}s, Redis's rdb_last_cow_size $(calc '%.1f' "$cow / 1048576") MiB, load ~$rps ops/s"
        sed 's/^/  /' "$TMP/watch.out"
        grep '^RESULT' "$TMP/watch.out" | field rss_ratio >>"$TMP/redis_rss_ratio"
        grep '^RESULT' "$TMP/watch.out" | field pss_ratio >>"$TMP/redis_pss_ratio"
    done
    redis_stop
    kvr=$(echo "$out" | grep '^RESULT' | field libkv_ratio)
    rr=$(median <"$TMP/redis_rss_ratio")
    rp=$(median <"$TMP/redis_pss_ratio")
    echo
    echo "snapshot memory summary (medians of $ROUNDS; peak during the snapshot / steady before it):"
    echo "  libkv kv_snapshot, RSS of the process:       $kvr"
    echo "  redis BGSAVE, parent+child RSS:               $rr (counts pages shared by the fork twice)"
    echo "  redis BGSAVE, parent+child PSS:               $rp"
    echo
fi
echo "load after: $(uptime)"
