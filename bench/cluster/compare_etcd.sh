#!/usr/bin/env bash
# compare_etcd.sh - a 3-node kvd cluster against a 3-node etcd 3.4 cluster
# on loopback, and the cost of replication (issue 15), in one invocation.
#
#   bench/cluster/compare_etcd.sh          (settings in the environment, below)
#
# Starts, all on loopback with free ports it picks, data dirs side by side
# in one temp dir (same disk):
#   etcd    3 members of Debian's etcd 3.4 (defaults: 100 ms heartbeat,
#           1000 ms election timeout, WAL fsync per commit); its JSON
#           gateway is its client port;
#   kvd     3 kvd nodes (--cluster; --raft-election-timeout ELECTION, the
#           Raft log synced by raft before an entry counts);
#   single  one kvd --data-dir D --fsync always: a single server that syncs
#           every write before answering it, the single-node analogue of a
#           Raft node syncing its log; the base of the replication cost.
# Each gets the same KEYS keys (key:%011d, VALUE bytes) preloaded through
# its HTTP API (bench/history/sidecar.py preload: batches of 128).
#
# Load, the same generator for all three: wrk -t1 -cC -dDURATIONs with
# kv.lua, to the cluster's leader (found before every run with nodes.py):
#   put1   puts, 1 connection     (kvd PUT /v1/keys/K, etcd POST /v3/kv/put)
#   put64  puts, 64 connections
#   get64  linearizable reads, 64 connections (kvd GET /v1/keys/K, which a
#          cluster's leader answers after a Raft barrier; etcd POST
#          /v3/kv/range, linearizable by default: ReadIndex)
# Before each timed run the script waits until the disk and the CPUs are
# quiet (settle, below: at most 20 s), so that no system's background work
# lands on another's run. ROUNDS rounds; in each, the systems take turns (the order alternates
# from round to round) and each runs the three loads. Before round 1 each
# system gets WARMUP seconds of put64, untimed.
#
# With NATIVE=1 (default), the same loads also go through the native
# protocols, reported apart: kvd's cluster and the single kvd through kvd's
# own protocol with kvbench (bench/kvbench: -c1 SETs, -c64 SETs, -c64 GETs
# after --preload, 1 s warmup), and etcd's put1 through its gRPC API with
# Debian's python3-etcd3 (etcd_native.py under /usr/bin/python3; skipped,
# with a note, if the module is missing). A Python client spends some
# 100-200 us of its own per call, so only its one-connection figure is
# etcd's rather than the client's: the wrk table is the like-for-like one.
#
# Then, with FAILOVERS=N (default 3), N leader kills per cluster (the two
# alternate): nodes.py failover kills the leader with SIGKILL and puts to
# both survivors (a thread each, 0.2 s per attempt) until one put is
# acknowledged; that time is the failover time. The killed node is then
# restarted and waits until it has caught up (applied index) before the
# next kill.
#
# Reported (stdout, and into OUT): the setup, uptime before and after, the
# git revision and the exact command; every run's raw output; then the
# medians over the rounds per system and load (requests/s, latency p50,
# p99, p99.9, max in ms: wrk's, closed loop, from sending a request to its
# answer; and the servers' CPU time per request, all the system's nodes
# together, from /proc/PID/stat), the kvd/etcd ratios with the issue's
# targets (kvd >= 2x etcd's throughput, kvd's p99 below etcd's) as met or
# MISSED, and the replication cost: the kvd cluster's figures / the single
# durable kvd's for the same load. Every answer must be a 2xx (and every
# read a hit); anything else (wrk socket errors, non-2xx, misses, a node
# that died) is a PROBLEM line and makes the exit status 1.
#
# Environment (defaults): BUILD (build), KEYS (10000), VALUE (100),
# DURATION (10), ROUNDS (3), WARMUP (3), NATIVE (1), FAILOVERS (3),
# ELECTION (1000, kvd's --raft-election-timeout, etcd's
# --election-timeout; heartbeats a tenth of it), KVD_THREADS (empty: kvd's
# default, a loop per CPU), SERVER_CPU / CLIENT_CPU (empty: no pinning;
# else taskset CPU lists for the servers / for wrk, kvbench and helpers),
# OUT (empty: the next free bench/results/cluster-etcd-N.txt; "none": stdout
# only), KEEP (1: keep the temp dir, with the servers' logs; it is made
# under TMPDIR, default /var/tmp). Needs kvd, kvcli and kvbench built in BUILD, etcd
# (Debian etcd-server), wrk, curl and python3; python3-etcd3 for etcd's
# native line (all in PACKAGES of scripts/dev.sh).
#
# Takes about ROUNDS x (9 x DURATION (wrk) + 7 x (DURATION + 1) (native))
# seconds, plus about half a second per run, starts, preloads and
# failovers (about 5 s per kill): some 10 minutes with the defaults.
#
# Only the processes this script started are stopped, on exit. A Debian
# etcd-server may run a system etcd on 2379/2380: never used or touched.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
HERE=$ROOT/bench/cluster
BUILD=${BUILD:-$ROOT/build}
KEYS=${KEYS:-10000}
VALUE=${VALUE:-100}
DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-3}
WARMUP=${WARMUP:-3}
NATIVE=${NATIVE:-1}
FAILOVERS=${FAILOVERS:-3}
ELECTION=${ELECTION:-1000}
KVD_THREADS=${KVD_THREADS:-}
SERVER_CPU=${SERVER_CPU:-}
CLIENT_CPU=${CLIENT_CPU:-}
OUT=${OUT:-}
KVD=$BUILD/kvd/src/kvd
KVCLI=$BUILD/kvcli/kvcli
KVBENCH=$BUILD/bench/kvbench/kvbench
# the command as run: the settings given in the environment, then the script
COMMAND=
for v in BUILD KEYS VALUE DURATION ROUNDS WARMUP NATIVE FAILOVERS ELECTION KVD_THREADS \
         SERVER_CPU CLIENT_CPU OUT KEEP TMPDIR; do
    if printenv "$v" >/dev/null; then COMMAND+="$v=$(printf '%q' "$(printenv "$v")") "; fi
done
COMMAND+="bench/cluster/compare_etcd.sh"

die() { echo "compare_etcd.sh: $*" >&2; exit 2; }
for tool in etcd wrk curl python3; do
    command -v "$tool" >/dev/null || die "$tool is missing (bash scripts/dev.sh deps)"
done
for b in "$KVD" "$KVCLI" "$KVBENCH"; do
    [ -x "$b" ] || die "$b is not built (cmake --build $BUILD -j2)"
done
for n in KEYS VALUE DURATION ROUNDS ELECTION; do
    [[ ${!n} =~ ^[0-9]+$ ]] && [ "${!n}" -gt 0 ] || die "$n must be a positive integer"
done
for n in WARMUP FAILOVERS NATIVE; do
    [[ ${!n} =~ ^[0-9]+$ ]] || die "$n must be a whole number"
done
[ -z "$KVD_THREADS" ] || [[ $KVD_THREADS =~ ^[0-9]+$ ]] || die "KVD_THREADS must be a whole number"
[ "$KEYS" -ge 128 ] || die "KEYS must be at least 128"
if [ -n "$SERVER_CPU$CLIENT_CPU" ]; then
    command -v taskset >/dev/null || die "taskset is missing (util-linux)"
fi

if [ -z "$OUT" ]; then
    n=1
    while [ -e "$ROOT/bench/results/cluster-etcd-$n.txt" ]; do n=$((n + 1)); done
    OUT=$ROOT/bench/results/cluster-etcd-$n.txt
fi

TMP=$(mktemp -d "${TMPDIR:-/var/tmp}/cluster-etcd.XXXXXX")
declare -a EPID=(0 0 0) KPID=(0 0 0)
SPID=0
wrkpid=0
cleanup() {
    set +e
    for pid in "$wrkpid" "${EPID[@]}" "${KPID[@]}" "$SPID"; do
        [ "$pid" -gt 0 ] && kill -9 "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
    done
    # (no bare wait: it would also wait for the tee below, which ends
    # only when this shell does)
    if [ "${KEEP:-}" = 1 ]; then echo "kept $TMP" >&2; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ "$OUT" != none ]; then
    exec > >(tee "$OUT") 2>&1
fi

# Pinning, as command prefixes (not functions: a function started with &
# runs in a subshell, and $! would be the subshell, not the server)
SRV=()
CLI=()
[ -n "$SERVER_CPU" ] && SRV=(taskset -c "$SERVER_CPU")
[ -n "$CLIENT_CPU" ] && CLI=(taskset -c "$CLIENT_CPU")
nodes() { "${CLI[@]}" python3 "$HERE/nodes.py" "$@"; }
now_ms() { echo $(($(date +%s%N) / 1000000)); }

# Free ports: bound once by the kernel and released (not below its
# ephemeral range's start, so a client's port does not take them later).
declare -a PORTS=()
read -r -a PORTS <<<"$(python3 - <<'EOF'
import socket
socks = []
for _ in range(13):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
)"
# etcd client i: PORTS[i], peer i: PORTS[3+i]; kvd client i: PORTS[6+i],
# Raft i: PORTS[9+i]; PORTS[12] unused (spare)
ETCD_CLUSTER="e1=http://127.0.0.1:${PORTS[3]},e2=http://127.0.0.1:${PORTS[4]},e3=http://127.0.0.1:${PORTS[5]}"
KVD_CLUSTER="1@127.0.0.1:${PORTS[9]},2@127.0.0.1:${PORTS[10]},3@127.0.0.1:${PORTS[11]}"
declare -a EURL KURL
for i in 0 1 2; do
    EURL[$i]=http://127.0.0.1:${PORTS[$i]}
    KURL[$i]=http://127.0.0.1:${PORTS[$((6 + i))]}
done
THREADS_ARG=()
[ -n "$KVD_THREADS" ] && THREADS_ARG=(--threads "$KVD_THREADS")

start_etcd() { # start_etcd I (0..2); a restart reuses the data dir
    local i=$1
    "${SRV[@]}" etcd --name "e$((i + 1))" --data-dir "$TMP/etcd$i" \
        --listen-client-urls "${EURL[$i]}" --advertise-client-urls "${EURL[$i]}" \
        --listen-peer-urls "http://127.0.0.1:${PORTS[$((3 + i))]}" \
        --initial-advertise-peer-urls "http://127.0.0.1:${PORTS[$((3 + i))]}" \
        --initial-cluster "$ETCD_CLUSTER" --initial-cluster-token "bench-$$" \
        --initial-cluster-state new \
        --heartbeat-interval $((ELECTION / 10)) --election-timeout "$ELECTION" \
        --log-level warn >>"$TMP/etcd$i.log" 2>&1 &
    EPID[$i]=$!
}

start_kvd() { # start_kvd I (0..2)
    local i=$1
    "${SRV[@]}" "$KVD" --port "${PORTS[$((6 + i))]}" --data-dir "$TMP/kvd$i" --node-id $((i + 1)) \
        --raft-addr "127.0.0.1:${PORTS[$((9 + i))]}" --cluster "$KVD_CLUSTER" \
        --raft-election-timeout "$ELECTION" "${THREADS_ARG[@]}" \
        --initial-capacity "$KEYS" >>"$TMP/kvd$i.log" 2>&1 &
    KPID[$i]=$!
}

for i in 0 1 2; do start_etcd "$i"; start_kvd "$i"; done
mkdir "$TMP/single"
"${SRV[@]}" "$KVD" --port 0 --port-file "$TMP/single.port" --data-dir "$TMP/single" --fsync always \
    "${THREADS_ARG[@]}" --initial-capacity "$KEYS" >"$TMP/single.log" 2>&1 &
SPID=$!

alive() { # every server still runs, or exit with the log of one that died
    local i
    for i in 0 1 2; do
        if [ "${EPID[$i]}" -gt 0 ] && ! kill -0 "${EPID[$i]}" 2>/dev/null; then
            { echo "PROBLEM: etcd member $((i + 1)) exited; its log ends:"; tail -n 5 "$TMP/etcd$i.log"; } >&2; exit 1
        fi
        if [ "${KPID[$i]}" -gt 0 ] && ! kill -0 "${KPID[$i]}" 2>/dev/null; then
            { echo "PROBLEM: kvd node $((i + 1)) exited; its log ends:"; tail -n 5 "$TMP/kvd$i.log"; } >&2; exit 1
        fi
    done
    if ! kill -0 "$SPID" 2>/dev/null; then
        { echo "PROBLEM: the single kvd exited; its log ends:"; tail -n 5 "$TMP/single.log"; } >&2; exit 1
    fi
}

for _ in $(seq 300); do
    [ -s "$TMP/single.port" ] && break
    alive
    sleep 0.1
done
[ -s "$TMP/single.port" ] || { echo "PROBLEM: the single kvd did not write its port"; exit 1; }
SURL=http://127.0.0.1:$(cat "$TMP/single.port")
SPORT=$(cat "$TMP/single.port")

# leader SYSTEM: the leading node's index (0..2)
leader() {
    local out
    alive
    if [ "$1" = kvd ]; then out=$(nodes kvd leader "${KURL[@]}"); else out=$(nodes etcd leader "${EURL[@]}"); fi ||
        { echo "$out" >&2; exit 1; }
    echo "$out"
}

# url SYSTEM: where the loads go (the leader's client URL)
url() {
    local l
    case $1 in
        single) echo "$SURL" ;;
        kvd) l=$(leader kvd) && echo "${KURL[$l]}" ;;
        etcd) l=$(leader etcd) && echo "${EURL[$l]}" ;;
    esac
}

# pids SYSTEM: the system's server processes
pids() {
    case $1 in
        single) echo "$SPID" ;;
        kvd) echo "${KPID[@]}" ;;
        etcd) echo "${EPID[@]}" ;;
    esac
}

# ticks SYSTEM: CPU time of its servers so far (user + system, clock ticks)
ticks() {
    local t=0 p
    for p in $(pids "$1"); do
        [ "$p" -gt 0 ] && t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat")))
    done
    echo "$t"
}
TICK_US=$((1000000 / $(getconf CLK_TCK)))

L0=$(leader etcd)
L1=$(leader kvd)
echo "=== bench/cluster/compare_etcd.sh"
echo "command:  $COMMAND"
echo "date:     $(date -u '+%Y-%m-%d %H:%M UTC'); kvd at $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$ROOT" diff --quiet HEAD -- 2>/dev/null || echo ' (with uncommitted changes)')"
echo "machine:  $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'); kernel $(uname -r)"
echo "disk:     $TMP ($(df -T "$TMP" | awk 'NR == 2 {print $2 " on " $1}')): every server's data dir"
echo "etcd:     $(etcd --version | head -1), 3 members, heartbeat $((ELECTION / 10)) ms, election timeout $ELECTION ms, WAL fsync per commit (its only mode); JSON gateway on its client port${SERVER_CPU:+; CPU $SERVER_CPU}"
echo "kvd:      $("$KVD" --version | head -1), 3 nodes, --raft-election-timeout $ELECTION${KVD_THREADS:+ --threads $KVD_THREADS}; Raft log synced before an entry counts${SERVER_CPU:+; CPU $SERVER_CPU}"
echo "single:   the same kvd alone, --data-dir --fsync always${KVD_THREADS:+ --threads $KVD_THREADS}"
echo "client:   $(wrk --version 2>&1 | head -1 | cut -d' ' -f1-2) -t1, kv.lua, to the leader${CLIENT_CPU:+; CPU $CLIENT_CPU}$([ "$NATIVE" = 1 ] && echo "; kvbench (kvd's protocol) apart")"
echo "load:     $KEYS keys, $VALUE-byte values, uniform random; put1, put64, get64 (linearizable); $DURATION s each, $ROUNDS rounds, $WARMUP s warmup"
echo "leaders:  etcd member $((L0 + 1)), kvd node $((L1 + 1)) at start"
if (exec 3<>/dev/tcp/127.0.0.1/2379) 2>/dev/null; then
    echo "note:     something (a system etcd?) listens on 2379; not used here"
fi
echo "uptime before: $(uptime)"
echo

problems=0
problem() { echo "PROBLEM: $*"; problems=$((problems + 1)); }

for s in etcd kvd single; do
    u=$(url "$s")
    t0=$(now_ms)
    "${CLI[@]}" python3 "$ROOT/bench/history/sidecar.py" "${s/single/kvd}" "$u" preload "$KEYS" "$VALUE" >"$TMP/out" ||
        { cat "$TMP/out"; problem "$s preload"; exit 1; }
    echo "preload $s: $KEYS keys in $(($(now_ms) - t0)) ms"
done

RESULTS=$TMP/results
: >"$RESULTS"

# settle: before each timed run, wait until the machine is quiet: the
# data disk wrote under 256 KiB and the CPUs were under 10% busy over
# the last half second (at most 20 s). A system's background work after
# its own run (etcd's backend commits and snapshots, kvd's Raft
# snapshots) otherwise lands on the next system's run: in
# cluster-etcd-4.txt kvd's put1 p99 was 12-13 ms in the two rounds that
# followed etcd's reads and 3.3 ms in the one that followed the single
# kvd's. The wait is printed with the run.
DISK_STAT=
dev=$(df --output=source "$TMP" | tail -n 1)
dev=${dev##*/}
[ -r "/sys/class/block/$dev/stat" ] && DISK_STAT=/sys/class/block/$dev/stat
quiet_sample() { # prints "SECTORS_WRITTEN BUSY_JIFFIES TOTAL_JIFFIES"
    local w=0
    [ -n "$DISK_STAT" ] && w=$(awk '{print $7}' "$DISK_STAT")
    awk -v w="$w" '$1 == "cpu" { t = 0; for (i = 2; i <= NF; i++) t += $i;
                    print w, t - $5 - $6, t; exit }' /proc/stat
}
settle() {
    local t0 a b
    t0=$(now_ms)
    read -r -a a <<<"$(quiet_sample)"
    while :; do
        sleep 0.5
        read -r -a b <<<"$(quiet_sample)"
        if [ $(((b[0] - a[0]) * 512)) -lt 262144 ] &&
            [ $(((b[1] - a[1]) * 100)) -lt $(((b[2] - a[2]) * 10)) ]; then
            break
        fi
        [ $(($(now_ms) - t0)) -lt 20000 ] || { echo "(settle: not quiet after 20 s; going on)"; return; }
        a=("${b[@]}")
    done
    echo "(settled in $(($(now_ms) - t0)) ms)"
}

# wrk_run SYSTEM LOAD ROUND (ROUND 0: the warmup, not recorded)
wrk_run() {
    local s=$1 load=$2 r=$3 u conns op out line t0 t1 d=$DURATION
    case $load in
        put1) conns=1 op=put ;;
        put64) conns=64 op=put ;;
        get64) conns=64 op=get ;;
    esac
    [ "$r" -gt 0 ] || d=$WARMUP
    u=$(url "$s")
    settle
    echo "--- round $r, $s, $load: wrk -t1 -c$conns -d${d}s --timeout 10s --latency -s kv.lua $u -- ${s/single/kvd} $op $KEYS $VALUE"
    t0=$(ticks "$s")
    "${CLI[@]}" wrk -t1 -c"$conns" -d"${d}s" --timeout 10s --latency -s "$HERE/kv.lua" \
        "$u" -- "${s/single/kvd}" "$op" "$KEYS" "$VALUE" >"$TMP/wrk" 2>&1 &
    wrkpid=$!
    wait "$wrkpid" || problem "$s $load: wrk exited with $? (round $r)"
    wrkpid=0
    t1=$(ticks "$s")
    alive
    out=$(cat "$TMP/wrk")
    echo "$out"
    line=$(grep '^RESULT ' <<<"$out" || true)
    if [ -z "$line" ]; then
        problem "$s $load: no RESULT line from wrk (round $r)"
        return
    fi
    grep -q 'non2xx=0 misses=0 errors=0$' <<<"$line" || problem "$s $load: failed requests (round $r): $line"
    echo "$s servers' CPU: $(((t1 - t0) * TICK_US)) us"
    [ "$r" -gt 0 ] || { echo; return; }
    python3 - "$s" "$load" "$line" "$(((t1 - t0) * TICK_US))" >>"$RESULTS" <<'EOF'
import sys
s, load, line, cpu_us = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
f = dict(kv.split("=") for kv in line.split()[1:])
for k in ("rps", "p50_ms", "p99_ms", "p999_ms", "max_ms"):
    print("wrk", s, load, k, f[k])
print("wrk", s, load, "cpu_us_per_req", cpu_us / max(1, int(f["requests"])))
EOF
    echo
}

# etcd_native_run ROUND: etcd's put1 through its gRPC API (etcd_native.py)
etcd_native_run() {
    local r=$1 u out line t0 t1
    u=$(url etcd)
    settle
    echo "--- round $r, etcd, put1 (native): etcd_native.py ${u#http://} put $KEYS $VALUE $DURATION 1"
    t0=$(ticks etcd)
    out=$("${CLI[@]}" timeout $((DURATION + 60)) /usr/bin/python3 "$HERE/etcd_native.py" "${u#http://}" put "$KEYS" "$VALUE" "$DURATION" 1 2>&1) ||
        problem "etcd put1 native: exit status $?"
    t1=$(ticks etcd)
    alive
    echo "$out"
    line=$(grep '^RESULT ' <<<"$out" || true)
    [ -n "$line" ] || { problem "etcd put1 native: no RESULT line"; return; }
    grep -q 'non2xx=0 misses=0 errors=0$' <<<"$line" || { problem "etcd put1 native: failed calls: $line"; return; }
    python3 - "$line" "$(((t1 - t0) * TICK_US))" >>"$RESULTS" <<'EOF'
import sys
f = dict(kv.split("=") for kv in sys.argv[1].split()[1:])
for k in ("rps", "p50_ms", "p99_ms", "p999_ms", "max_ms"):
    print("native", "etcd", "put1", k, f[k])
print("native", "etcd", "put1", "cpu_us_per_req", int(sys.argv[2]) / max(1, int(f["requests"])))
EOF
    echo
}

# native_run SYSTEM LOAD ROUND: kvbench through kvd's own protocol
native_run() {
    local s=$1 load=$2 r=$3 u port args out rc=0 t0 t1
    case $load in
        put1) args=(-c 1 --ratio 0:1) ;;
        put64) args=(-c 64 --ratio 0:1) ;;
        get64) args=(-c 64 --ratio 1:0 --preload) ;;
    esac
    u=$(url "$s")
    port=${u##*:}
    settle
    echo "--- round $r, $s, $load (native): kvbench -p $port ${args[*]} --keys $KEYS -d $VALUE --warmup 1 --duration $DURATION --json"
    t0=$(ticks "$s")
    out=$("${CLI[@]}" timeout $((DURATION + 60)) "$KVBENCH" -p "$port" "${args[@]}" --keys "$KEYS" -d "$VALUE" \
        --warmup 1 --duration "$DURATION" --json -q 2>"$TMP/kvbench.err") || rc=$?
    t1=$(ticks "$s")
    alive
    echo "$out"
    [ "$rc" -eq 0 ] || { problem "$s $load native: kvbench exit status $rc: $(tr '\n' ' ' <"$TMP/kvbench.err")"; return; }
    if rec=$(python3 - "$s" "$load" "$out" "$(((t1 - t0) * TICK_US))" "$DURATION" 2>&1 <<'EOF'

import json, sys
s, load, cpu_us, dur = sys.argv[1], sys.argv[2], int(sys.argv[4]), float(sys.argv[5])
j = json.loads(sys.argv[3])
if j["errors"] or j["conn_errors"] or j["not_found"]:
    print("errors=%d conn_errors=%d not_found=%d" % (j["errors"], j["conn_errors"], j["not_found"]))
    sys.exit(1)
l = j["latency_us"]
for k, v in (("rps", j["rps"]), ("p50_ms", l["p50"] / 1000), ("p99_ms", l["p99"] / 1000),
             ("p999_ms", l["p999"] / 1000), ("max_ms", l["max"] / 1000)):
    print("native", s, load, k, v)
# the CPU time spans the warmup (and a preload) too: per request answered
# in all, the measured rate times (warmup + duration) estimates it
print("native", s, load, "cpu_us_per_req", cpu_us / max(1, j["rps"] * (dur + 1) + j["preloaded"]))
EOF
    ); then
        echo "$rec" >>"$RESULTS"
    else
        problem "$s $load native: $rec"
    fi
    echo
}

LOADS="put1 put64 get64"
if [ "$WARMUP" -gt 0 ]; then
    for s in etcd kvd single; do wrk_run "$s" put64 0; done
fi
for r in $(seq "$ROUNDS"); do
    if [ $((r % 2)) -eq 1 ]; then order="etcd kvd single"; else order="single kvd etcd"; fi
    for s in $order; do
        for load in $LOADS; do wrk_run "$s" "$load" "$r"; done
    done
done
ETCD_NATIVE=0
if [ "$NATIVE" = 1 ] && /usr/bin/python3 -c 'import etcd3' 2>/dev/null; then ETCD_NATIVE=1; fi
if [ "$NATIVE" = 1 ]; then
    [ "$ETCD_NATIVE" = 1 ] || echo "note: no python3-etcd3 for /usr/bin/python3: etcd is not measured through gRPC"
    for r in $(seq "$ROUNDS"); do
        if [ $((r % 2)) -eq 1 ]; then order="etcd kvd single"; else order="single kvd etcd"; fi
        for s in $order; do
            if [ "$s" = etcd ]; then
                [ "$ETCD_NATIVE" = 1 ] && etcd_native_run "$r"
                continue
            fi
            for load in $LOADS; do native_run "$s" "$load" "$r"; done
        done
    done
fi

# ---- failover -----------------------------------------------------------------
# caught_up SYSTEM I: wait until node I has applied what the leader had
caught_up() {
    local s=$1 i=$2 l want got deadline=$(($(now_ms) + 30000))
    l=$(leader "$s")
    if [ "$s" = kvd ]; then
        want=$("$KVCLI" --port "${PORTS[$((6 + l))]}" --timeout 1 metrics |
            awk '$1 == "cluster_applied_index" {print $2}') || true
    else
        want=$(nodes etcd applied "${EURL[$l]}") || true
    fi
    [[ $want =~ ^[0-9]+$ ]] || { problem "$s: no applied index from the leader"; return 1; }
    while :; do
        if [ "$s" = kvd ]; then
            got=$("$KVCLI" --port "${PORTS[$((6 + i))]}" --timeout 1 metrics 2>/dev/null |
                awk '$1 == "cluster_applied_index" {print $2}') || true
        else
            got=$(nodes etcd applied "${EURL[$i]}" 2>/dev/null | grep -E '^[0-9]+$') || true
        fi
        [ -n "$got" ] && [ "$got" -ge "$want" ] && return 0
        if [ "$(now_ms)" -ge "$deadline" ]; then
            problem "$s node $((i + 1)) did not catch up in 30 s (applied ${got:-nothing} of $want)"
            if [ "$s" = kvd ]; then # what it and the leader say, and its log's end
                "$KVCLI" --port "${PORTS[$((6 + i))]}" --timeout 1 cluster status 2>&1 | sed 's/^/  node: /'
                "$KVCLI" --port "${PORTS[$((6 + l))]}" --timeout 1 cluster status 2>&1 | sed 's/^/  leader: /'
                tail -n 20 "$TMP/kvd$i.log" | sed 's/^/  log: /'
            fi
            return 1
        fi
        sleep 0.1
    done
}

# failover SYSTEM K: kill the leader, time the first acknowledged put, restart it
failover() {
    local s=$1 k=$2 l pid out i
    local -a urls=()
    l=$(leader "$s")
    for i in 0 1 2; do
        [ "$i" = "$l" ] && continue
        if [ "$s" = kvd ]; then urls+=("${KURL[$i]}"); else urls+=("${EURL[$i]}"); fi
    done
    if [ "$s" = kvd ]; then pid=${KPID[$l]}; else pid=${EPID[$l]}; fi
    out=$(nodes "$s" failover "$pid" "${urls[@]}") || { echo "$out"; problem "$s failover $k"; }
    wait "$pid" 2>/dev/null || true
    if [ "$s" = kvd ]; then KPID[$l]=0; start_kvd "$l"; else EPID[$l]=0; start_etcd "$l"; fi
    echo "failover $k, $s: node $((l + 1)) killed; $out"
    if [[ $out =~ failover_ms\ ([0-9.]+) ]]; then echo "failover $s kill failover_ms ${BASH_REMATCH[1]}" >>"$RESULTS"; fi
    caught_up "$s" "$l" || true
}

if [ "$FAILOVERS" -gt 0 ]; then
    echo "--- failover: the leader killed (SIGKILL), time to the first acknowledged put on a survivor"
    for k in $(seq "$FAILOVERS"); do
        if [ $((k % 2)) -eq 1 ]; then order="etcd kvd"; else order="kvd etcd"; fi
        for s in $order; do failover "$s" "$k"; done
    done
    echo
fi

echo "uptime after: $(uptime)"
echo
python3 - "$RESULTS" "$ROUNDS" "$DURATION" "$KEYS" "$VALUE" <<'EOF'
import collections, statistics, sys
path, rounds, duration, keys, value = sys.argv[1:]
v = collections.defaultdict(list)
for line in open(path):
    gen, s, load, k, x = line.split()
    v[gen, s, load, k].append(float(x))

def med(gen, s, load, k):
    x = v[gen, s, load, k]
    return statistics.median(x) if x else float("nan")

def div(a, b):
    return a / b if b else float("nan")

loads = ("put1", "put64", "get64")
names = {"put1": "put, 1 conn", "put64": "put, 64 conns", "get64": "lin. read, 64 conns"}
metrics = ("rps", "p50_ms", "p99_ms", "p999_ms", "max_ms", "cpu_us_per_req")
head = "%-8s %-20s %10s %8s %8s %8s %8s %11s" % ("system", "load", "req/s", "p50", "p99", "p99.9", "max", "CPU us/req")
row = "%-8s %-20s %10.0f %8.2f %8.2f %8.2f %8.2f %11.1f"
rrow = "%-8s %-20s %10.2f %8.2f %8.2f %8.2f %8.2f %11.2f"

print("=== wrk over HTTP, medians of %s rounds (%s keys, %s-byte values, %s s; latency in ms;"
      " CPU: all the system's server processes) ===" % (rounds, keys, value, duration))
print(head)
for s in ("etcd", "kvd", "single"):
    for load in loads:
        print(row % ((s, names[load]) + tuple(med("wrk", s, load, k) for k in metrics)))
print()
print("=== kvd cluster / etcd cluster (medians; req/s above 1 and latency below 1: kvd better) ===")
print(head)
for load in loads:
    print(rrow % (("kvd/etcd", names[load]) + tuple(div(med("wrk", "kvd", load, k), med("wrk", "etcd", load, k)) for k in metrics)))
print()
print("=== targets (issue 15): kvd cluster >= 2x etcd cluster's throughput, with a lower p99 ===")
met = missed = 0
for load in loads:
    r = div(med("wrk", "kvd", load, "rps"), med("wrk", "etcd", load, "rps"))
    ok = r >= 2.0
    met += ok
    missed += not ok
    print("  %-20s throughput kvd/etcd %6.2f (target >= 2.00)  %s" % (names[load], r, "met" if ok else "MISSED"))
    pk, pe = med("wrk", "kvd", load, "p99_ms"), med("wrk", "etcd", load, "p99_ms")
    ok = pk < pe
    met += ok
    missed += not ok
    print("  %-20s p99 kvd %.2f ms, etcd %.2f ms (target: kvd lower)  %s" % (names[load], pk, pe, "met" if ok else "MISSED"))
print("  %d met, %d missed" % (met, missed))
print()
print("=== replication cost: kvd cluster / single durable kvd (--fsync always), same load (medians) ===")
print(head)
for load in loads:
    print(rrow % (("cl/sgl", names[load]) + tuple(div(med("wrk", "kvd", load, k), med("wrk", "single", load, k)) for k in metrics)))
if any(k[0] == "native" for k in v):
    print()
    print("=== native protocols, medians of %s rounds: kvd's through kvbench; etcd's gRPC through python3-etcd3,"
          " one connection only (a Python client: its own CPU is in the latency) ===" % rounds)
    print(head)
    for s in ("etcd", "kvd", "single"):
        for load in loads:
            if v["native", s, load, "rps"]:
                print(row % ((s, names[load]) + tuple(med("native", s, load, k) for k in metrics)))
    if v["native", "etcd", "put1", "rps"]:
        print(rrow % (("kvd/etcd", names["put1"]) + tuple(div(med("native", "kvd", "put1", k), med("native", "etcd", "put1", k)) for k in metrics)))
    for load in loads:
        print(rrow % (("cl/sgl", names[load]) + tuple(div(med("native", "kvd", load, k), med("native", "single", load, k)) for k in metrics)))
    print("(native CPU us/req: the servers' CPU over warmup and run, per request at the measured rate; a rough figure)")
if any(k[0] == "failover" for k in v):
    print()
    print("=== failover: leader killed to first acknowledged put (ms) ===")
    for s in ("etcd", "kvd"):
        x = sorted(v.get(("failover", s, "kill", "failover_ms"), []))
        if x:
            print("  %-5s %d kills: min %.0f, median %.0f, max %.0f" % (s, len(x), x[0], statistics.median(x), x[-1]))
        else:
            print("  %-5s no successful failover" % s)
EOF
echo
for s in etcd kvd single; do
    rss=0
    for p in $(pids "$s"); do
        [ "$p" -gt 0 ] && rss=$((rss + $(awk '/VmRSS/ {print $2}' "/proc/$p/status")))
    done
    echo "$s RSS at the end (all its processes): $((rss / 1024)) MiB"
done
echo "problems: $problems"
[ "$problems" -eq 0 ]
