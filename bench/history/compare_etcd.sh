#!/usr/bin/env bash
# compare_etcd.sh - compaction's effect on write tail latency under load,
# kvd against etcd side by side in one invocation (issue 14).
#
#   bench/history/compare_etcd.sh        (settings in the environment, below)
#
# Starts its own single-member etcd (its own temp data dir, random free
# high ports, --quota-backend-bytes 16 GiB, no auto-compaction) and its own
# kvd (--threads 1, --data-dir in a temp dir, history on with no automatic
# bounds, so only explicit compaction compacts). Both sync every write
# before answering it: etcd always fsyncs its WAL before it answers a
# write; kvd runs with --fsync always. Both are pinned to SERVER_CPU; wrk
# and the helpers (sidecar.py) to CLIENT_CPU. Both get the same KEYS keys
# of VALUE bytes (sidecar.py preload, batches of 128). Then for each round
# (the system that goes first alternates) and each system, three cases of
# the same put load, wrk -t1 -cCONNS -dDURATIONs with put.lua (uniformly
# random preloaded keys, VALUE bytes; kvd: PUT /v1/keys/{key}, etcd: POST
# /v3/kv/put through its JSON gateway):
#   a  no compaction;
#   b  a compactor that every second compacts to (current revision -
#      BEHIND) through the system's own HTTP API (kvd POST /v1/compact,
#      etcd POST /v3/kv/compaction with "physical": true);
#   c  HISTORY overwrites first (batches of 128, untimed: the long history
#      etcd's compaction stalls on), then the load with ONE compaction to
#      the latest revision at DURATION/2; the load goes on until DURATION
#      and at least DURATION/2 after the compaction's answer (wrk is ended
#      with SIGINT then), so a long compaction is inside the window.
# Each case starts from a compacted store: before it, one compaction to
# the current revision (untimed, its duration is printed).
#
# Reported (stdout, and with OUT also into that file): every wrk run's raw
# output and its compactor's calls, then the medians over the rounds per
# system and case: puts/s, latency p50/p99/p99.9/max (wrk: closed loop,
# from sending a request to its whole answer), the server's CPU time per
# put, each case's ratio to the system's case a, etcd/kvd ratios, and the
# compaction calls' own durations. Every answer must be a 2xx: wrk's
# socket errors, non-2xx answers and failed helper calls are PROBLEM lines
# and make the exit status 1.
#
# Environment (defaults): BUILD (build), KEYS (100000), VALUE (100),
# CONNS (32), DURATION (30), ROUNDS (3), BEHIND (1000), HISTORY (1000000),
# SERVER_CPU (0), CLIENT_CPU (1), OUT (none). Needs kvd built in BUILD,
# etcd (Debian etcd-server), wrk, curl, taskset and python3. Takes about
# ROUNDS x 2 x (3 x DURATION + the HISTORY overwrites + 4 compactions)
# plus the preload: about 25 minutes with the defaults on a 2-core machine
# (etcd builds its history at some 10k overwrites/s there).
#
# A Debian etcd-server may run its own etcd service on 2379/2380; this
# script never uses or touches it (its ports are free ones it picks).
# Only the processes it started are stopped, on exit.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
HERE=$ROOT/bench/history
BUILD=${BUILD:-$ROOT/build}
KEYS=${KEYS:-100000}
VALUE=${VALUE:-100}
CONNS=${CONNS:-32}
DURATION=${DURATION:-30}
ROUNDS=${ROUNDS:-3}
BEHIND=${BEHIND:-1000}
HISTORY=${HISTORY:-1000000}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
OUT=${OUT:-}
KVD=$BUILD/kvd/src/kvd

for tool in etcd wrk curl taskset python3; do
    command -v "$tool" >/dev/null || { echo "compare_etcd.sh: $tool is missing (bash scripts/dev.sh deps)" >&2; exit 2; }
done
[ -x "$KVD" ] || { echo "compare_etcd.sh: no kvd at $KVD (build first)" >&2; exit 2; }
for n in KEYS VALUE CONNS DURATION ROUNDS BEHIND HISTORY; do
    [[ ${!n} =~ ^[0-9]+$ ]] && [ "${!n}" -gt 0 ] || { echo "compare_etcd.sh: $n must be a positive integer" >&2; exit 2; }
done
[ "$KEYS" -ge 128 ] || { echo "compare_etcd.sh: KEYS must be at least 128" >&2; exit 2; }
[ "$DURATION" -ge 2 ] || { echo "compare_etcd.sh: DURATION must be at least 2 (the compactor's first call is at 1 s)" >&2; exit 2; }

TMP=$(mktemp -d)
KVD_PID=
ETCD_PID=
wrkpid=
sidepid=
stop() {  # stop PID: SIGTERM, then wait for it
    if [ -n "$1" ] && kill -0 "$1" 2>/dev/null; then
        kill "$1"
        wait "$1" 2>/dev/null || true
    fi
}
cleanup() {
    stop "$wrkpid"
    stop "$sidepid"
    stop "$KVD_PID"
    stop "$ETCD_PID"
    rm -rf "$TMP"
}
trap cleanup EXIT

if [ -n "$OUT" ]; then
    exec > >(tee "$OUT")
fi

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
client() { taskset -c "$CLIENT_CPU" "$@"; }
side() { client python3 "$HERE/sidecar.py" "$@"; }

# ---- servers -----------------------------------------------------------------
ETCD_PORT=$(free_port)
ETCD_PEER=$(free_port)
while [ "$ETCD_PEER" = "$ETCD_PORT" ]; do ETCD_PEER=$(free_port); done
ETCD_URL=http://127.0.0.1:$ETCD_PORT
taskset -c "$SERVER_CPU" etcd --name bench --data-dir "$TMP/etcd" \
    --listen-client-urls "$ETCD_URL" --advertise-client-urls "$ETCD_URL" \
    --listen-peer-urls "http://127.0.0.1:$ETCD_PEER" \
    --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER" \
    --initial-cluster "bench=http://127.0.0.1:$ETCD_PEER" \
    --quota-backend-bytes $((16 * 1024 * 1024 * 1024)) --auto-compaction-retention 0 \
    --log-level warn 2>"$TMP/etcd.log" &
ETCD_PID=$!

mkdir "$TMP/kvd"
taskset -c "$SERVER_CPU" "$KVD" --port 0 --port-file "$TMP/kvd.port" --threads 1 \
    --data-dir "$TMP/kvd" --fsync always \
    --history on --history-versions 0 --history-bytes 0 --history-age 0 \
    --initial-capacity "$KEYS" 2>"$TMP/kvd.log" &
KVD_PID=$!

for _ in $(seq 200); do
    [ -s "$TMP/kvd.port" ] && curl -sf "$ETCD_URL/health" >/dev/null 2>&1 && break
    kill -0 "$KVD_PID" 2>/dev/null || { echo "kvd did not start:" >&2; cat "$TMP/kvd.log" >&2; exit 1; }
    kill -0 "$ETCD_PID" 2>/dev/null || { echo "etcd did not start:" >&2; cat "$TMP/etcd.log" >&2; exit 1; }
    sleep 0.1
done
curl -sf "$ETCD_URL/health" >/dev/null || { echo "etcd is not healthy:" >&2; cat "$TMP/etcd.log" >&2; exit 1; }
[ -s "$TMP/kvd.port" ] || { echo "kvd did not write its port" >&2; exit 1; }
KVD_URL=http://127.0.0.1:$(cat "$TMP/kvd.port")
declare -A URL=([kvd]=$KVD_URL [etcd]=$ETCD_URL) PID=([kvd]=$KVD_PID [etcd]=$ETCD_PID)

echo "date:    $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(df -T "$TMP" | awk 'NR == 2 {print $2}') under $TMP"
echo "kvd:     $("$KVD" --version | head -1), commit $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?'), --threads 1, --fsync always, history on without bounds, CPU $SERVER_CPU"
echo "etcd:    $(etcd --version | head -1), single member, WAL fsync per write (etcd's only mode), no auto-compaction, snapshot-count default, CPU $SERVER_CPU"
echo "client:  $(wrk --version 2>&1 | head -1 | cut -d' ' -f1-2) -t1 -c$CONNS, put.lua, CPU $CLIENT_CPU"
echo "load:    $KEYS keys, $VALUE-byte values, uniform random puts, $DURATION s per case, $ROUNDS rounds"
echo "cases:   a none; b every 1 s to (revision - $BEHIND); c one to the latest at $((DURATION / 2)) s after $HISTORY overwrites, load until $((DURATION - DURATION / 2)) s after it"
if (exec 3<>/dev/tcp/127.0.0.1/2379) 2>/dev/null; then
    echo "note:    something (a system etcd?) listens on 2379; not used here"
fi
echo "uptime:  $(uptime)"
echo

problems=0
problem() { echo "PROBLEM: $*"; problems=$((problems + 1)); }

for s in kvd etcd; do
    t0=$(date +%s.%N)
    side "$s" "${URL[$s]}" preload "$KEYS" "$VALUE" >"$TMP/out" || { cat "$TMP/out"; problem "$s preload"; exit 1; }
    echo "preload $s: $KEYS keys in $(python3 -c "print(round($(date +%s.%N) - $t0, 1))") s, revision $(side "$s" "${URL[$s]}" revision)"
done
echo

# CPU time of a server so far (user + system, clock ticks).
ticks() { awk '{print $14 + $15}' "/proc/${PID[$1]}/stat"; }
TICK_US=$((1000000 / $(getconf CLK_TCK)))

RESULTS=$TMP/results
: >"$RESULTS"

# run_case SYSTEM CASE ROUND
run_case() {
    local s=$1 c=$2 r=$3 u=${URL[$1]} out t0 t1 line rc d
    sidepid=
    wrkpid=  # both global: cleanup stops them
    echo "--- round $r, $s, case $c"
    side "$s" "$u" compact-now >"$TMP/out" || problem "$s reset compaction (round $r, case $c)"
    sed 's/^compact /reset compaction: /' "$TMP/out"
    if [ "$c" = c ]; then
        side "$s" "$u" overwrite "$KEYS" "$VALUE" "$HISTORY" >"$TMP/out" ||
            problem "$s overwrites (round $r)"
        cat "$TMP/out"
    fi
    rm -f "$TMP/ready"
    case $c in
        b) side "$s" "$u" compact-loop "$DURATION" "$BEHIND" "$TMP/ready" >"$TMP/side" & sidepid=$! ;;
        c) side "$s" "$u" compact-at "$((DURATION / 2))" "$DURATION" "$TMP/ready" >"$TMP/side" & sidepid=$! ;;
    esac
    if [ -n "$sidepid" ]; then  # the load starts when the compactor's clock does
        while [ ! -e "$TMP/ready" ] && kill -0 "$sidepid" 2>/dev/null; do sleep 0.01; done
    fi
    # Case c's load runs until the compactor exits (SIGINT: wrk stops and
    # reports); its -d is only a backstop.
    d=$DURATION
    if [ "$c" = c ]; then d=$((DURATION * 20)); fi
    t0=$(ticks "$s")
    # taskset execs wrk, so $! is wrk's own PID (a function would put a
    # subshell, which ignores SIGINT, in between)
    taskset -c "$CLIENT_CPU" wrk -t1 -c"$CONNS" -d"${d}s" --timeout 120s --latency -s "$HERE/put.lua" \
        "$u" -- "$s" "$KEYS" "$VALUE" >"$TMP/wrk" 2>&1 &
    wrkpid=$!
    if [ -n "$sidepid" ]; then
        rc=0
        wait "$sidepid" || rc=$?
        if [ "$c" = c ]; then kill -INT "$wrkpid" 2>/dev/null || true; fi
    fi
    wait "$wrkpid" || problem "$s wrk exited with $? (round $r, case $c)"
    t1=$(ticks "$s")
    out=$(cat "$TMP/wrk")
    echo "wrk -t1 -c$CONNS -d${d}s --timeout 120s --latency -s put.lua $u -- $s $KEYS $VALUE"
    echo "$out"
    if [ -n "$sidepid" ]; then
        cat "$TMP/side"
        [ "$rc" -eq 0 ] || problem "$s compactor exited with $rc (round $r, case $c)"
        grep -q '^compact ' "$TMP/side" || problem "$s compactor made no compaction (round $r, case $c)"
        awk -v s="$s" -v c="$c" '/^compact / {sub("ms=", "", $4); print s, c, "compact_ms", $4}' \
            "$TMP/side" >>"$RESULTS"
    fi
    line=$(grep '^RESULT ' <<<"$out" || true)
    if [ -z "$line" ]; then
        problem "$s: no RESULT line from wrk (round $r, case $c)"
        return
    fi
    grep -q 'non2xx=0 errors=0$' <<<"$line" || problem "$s: wrk saw failed requests (round $r, case $c): $line"
    echo "$s CPU: $(((t1 - t0) * TICK_US)) us"
    python3 - "$s" "$c" "$line" "$(((t1 - t0) * TICK_US))" >>"$RESULTS" <<'EOF'
import sys
s, c, line, cpu_us = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
f = dict(kv.split("=") for kv in line.split()[1:])
for k in ("rps", "p50_ms", "p99_ms", "p999_ms", "max_ms"):
    print(s, c, k, f[k])
print(s, c, "cpu_us_per_put", cpu_us / max(1, int(f["requests"])))
EOF
    echo
}

for r in $(seq "$ROUNDS"); do
    if [ $((r % 2)) -eq 1 ]; then order="kvd etcd"; else order="etcd kvd"; fi
    for s in $order; do
        for c in a b c; do
            run_case "$s" "$c" "$r"
        done
    done
done

echo "=== puts, medians of $ROUNDS rounds ($KEYS keys, $VALUE-byte values, $CONNS connections, $DURATION s; latency in ms) ==="
python3 - "$RESULTS" <<'EOF'
import collections, statistics, sys
v = collections.defaultdict(list)
for line in open(sys.argv[1]):
    s, c, k, x = line.split()
    v[s, c, k].append(float(x))
med = lambda s, c, k: statistics.median(v[s, c, k]) if v[s, c, k] else float("nan")
names = {"a": "a no compaction", "b": "b compactor 1/s", "c": "c one big"}
metrics = ("rps", "p50_ms", "p99_ms", "p999_ms", "max_ms", "cpu_us_per_put")
head = "%-6s %-17s %10s %9s %9s %9s %9s %10s" % ("system", "case", "puts/s", "p50", "p99", "p99.9", "max", "CPU us/put")
print(head)
for s in ("kvd", "etcd"):
    for c in "abc":
        print("%-6s %-17s %10.0f %9.2f %9.2f %9.2f %9.2f %10.1f" % ((s, names[c]) + tuple(med(s, c, k) for k in metrics)))
print()
print("=== each case / the same system's case a (medians) ===")
print(head)
div = lambda a, b: a / b if b else float("nan")
for s in ("kvd", "etcd"):
    for c in "bc":
        print("%-6s %-17s %10.2f %9.2f %9.2f %9.2f %9.2f %10.2f" %
              ((s, names[c]) + tuple(div(med(s, c, k), med(s, "a", k)) for k in metrics)))
print()
print("=== etcd / kvd (medians; above 1: etcd slower, except puts/s) ===")
print(head)
for c in "abc":
    print("%-6s %-17s %10.2f %9.2f %9.2f %9.2f %9.2f %10.2f" %
          (("both", names[c]) + tuple(div(med("etcd", c, k), med("kvd", c, k)) for k in metrics)))
print()
print("=== the compaction calls' own durations (ms, all rounds) ===")
print("%-6s %-17s %6s %9s %9s %9s" % ("system", "case", "calls", "median", "p90", "max"))
for s in ("kvd", "etcd"):
    for c in "bc":
        x = sorted(v[s, c, "compact_ms"])
        if x:
            print("%-6s %-17s %6d %9.2f %9.2f %9.2f" %
                  (s, names[c], len(x), statistics.median(x), x[min(len(x) - 1, int(0.9 * len(x)))], x[-1]))
        else:
            print("%-6s %-17s %6d" % (s, names[c], 0))
EOF
echo
echo "uptime:  $(uptime)"
for s in kvd etcd; do
    echo "$s RSS at the end: $(awk '/VmRSS/ {print $2, $3}' "/proc/${PID[$s]}/status")"
done
echo "kvd at the end: $(curl -s "$KVD_URL/metrics" | grep -E '^kvd_(revision|compact_revision|history_versions|history_bytes) ' | tr '\n' ' ')"
if command -v etcdctl >/dev/null; then
    echo "etcd at the end (db size: the bolt file, which compaction alone does not shrink):"
    ETCDCTL_API=3 etcdctl --endpoints "$ETCD_URL" endpoint status -w table 2>&1 || true
fi
kill "$KVD_PID"
wait "$KVD_PID" || problem "kvd exited with $?"
KVD_PID=
kill "$ETCD_PID"
rc=0
wait "$ETCD_PID" || rc=$?
[ "$rc" -eq 0 ] || [ "$rc" -eq 143 ] || problem "etcd exited with $rc"  # 143: etcd ends by SIGTERM after its cleanup
ETCD_PID=
echo "problems: $problems"
[ "$problems" -eq 0 ]
