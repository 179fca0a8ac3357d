#!/usr/bin/env bash
# failover.sh - how long a kvd cluster takes to accept writes again after
# its leader is killed, over many kills (issue 15): three kvd nodes on
# loopback; each round kills the leader with SIGKILL, then writes with
# kvcli (which follows the leader) to the surviving nodes until one write
# is acknowledged, and records the time from the kill to that
# acknowledgement; the killed node is restarted and catches up before the
# next round. Prints each round and the distribution (min, median, p90,
# max, mean) in milliseconds.
#
#   bench/cluster/failover.sh [ROUNDS (default 20)] [ELECTION_TIMEOUT_MS (default 1000)]
#
# Builds nothing: expects $BUILD (default build/) with kvd and kvcli. The
# figures include a kvcli process start per attempt (a few ms) and depend
# on the machine's load: run it on a quiet machine. The nodes' ports are
# chosen at random in 20000..29200 (client, then Raft at +100: below
# Linux's ephemeral ports); KEEP=1 keeps the scratch directory (the nodes'
# logs), which is otherwise removed at exit; only the kvd processes this
# script started are stopped.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD=${BUILD:-$ROOT/build}
KVD=$BUILD/kvd/src/kvd
KVCLI=$BUILD/kvcli/kvcli
ROUNDS=${1:-20}
ELECTION=${2:-1000}
for b in "$KVD" "$KVCLI"; do
    [ -x "$b" ] || { echo "failover.sh: $b not built (cmake --build build -j2)" >&2; exit 1; }
done

DIR=$(mktemp -d /tmp/kvd-failover.XXXXXX)
BASE=$((20000 + RANDOM % 9000))
declare -a PIDS=(0 0 0)
CLUSTER="1@127.0.0.1:$((BASE + 101)),2@127.0.0.1:$((BASE + 102)),3@127.0.0.1:$((BASE + 103))"

cleanup() {
    set +e
    for pid in "${PIDS[@]}"; do
        [ "$pid" -gt 0 ] && kill -9 "$pid" 2>/dev/null
    done
    wait 2>/dev/null
    [ -n "${KEEP:-}" ] && echo "kept $DIR" >&2 || rm -rf "$DIR"
}
trap cleanup EXIT
trap 'echo "failover.sh: stopped at line $LINENO: $BASH_COMMAND" >&2' ERR
trap 'exit 130' INT TERM

port() { echo $((BASE + $1 + 1)); }

start() { # start NODE (0..2)
    local i=$1
    "$KVD" --port "$(port "$i")" --data-dir "$DIR/node$i" --node-id $((i + 1)) \
        --raft-addr "127.0.0.1:$((BASE + 101 + i))" --cluster "$CLUSTER" \
        --raft-election-timeout "$ELECTION" >>"$DIR/node$i.log" 2>&1 &
    PIDS[$i]=$!
}

metric() { # metric NODE NAME: the value, or nothing if the node does not answer
    # (awk reads to the end: an early exit could end kvcli with SIGPIPE,
    # and pipefail and set -e then ended the whole script without a word)
    { "$KVCLI" --port "$(port "$1")" --timeout 1 metrics 2>/dev/null || true; } |
        awk -v n="$2" '$1 == n && !found { print $2; found = 1 }'
}

now_ms() { echo $(($(date +%s%N) / 1000000)); }

alive() { # every node started is still running, or exit with its log
    for i in 0 1 2; do
        if [ "${PIDS[$i]}" -gt 0 ] && ! kill -0 "${PIDS[$i]}" 2>/dev/null; then
            echo "failover.sh: node $((i + 1)) exited; its log ends:" >&2
            tail -n 5 "$DIR/node$i.log" >&2
            exit 1
        fi
    done
}

leader() { # the node that leads, waiting up to 20 s
    local deadline=$(($(now_ms) + 20000))
    while [ "$(now_ms)" -lt "$deadline" ]; do
        alive
        for i in 0 1 2; do
            [ "${PIDS[$i]}" -gt 0 ] && [ "$(metric "$i" cluster_role)" = 2 ] && { echo "$i"; return; }
        done
        sleep 0.05
    done
    echo "failover.sh: no leader within 20 s" >&2
    exit 1
}

for i in 0 1 2; do start "$i"; done
L=$(leader)
"$KVCLI" --port "$(port "$L")" set warmup 1 >/dev/null

declare -a TIMES=()
for round in $(seq 1 "$ROUNDS"); do
    L=$(leader)
    t0=$(now_ms)
    kill -9 "${PIDS[$L]}"
    wait "${PIDS[$L]}" 2>/dev/null || true
    PIDS[$L]=0
    done_at=0
    while [ "$done_at" = 0 ]; do
        for i in 0 1 2; do
            [ "${PIDS[$i]}" -gt 0 ] || continue
            if "$KVCLI" --port "$(port "$i")" --timeout 0.5 set failover "$round" >/dev/null 2>&1; then
                done_at=$(now_ms)
                break
            fi
        done
        [ $(($(now_ms) - t0)) -lt 30000 ] || { echo "failover.sh: no write within 30 s" >&2; exit 1; }
    done
    ms=$((done_at - t0))
    TIMES+=("$ms")
    echo "round $round: node $((L + 1)) killed, first acknowledged write after $ms ms"
    start "$L"
    # caught up: its applied index reaches the new leader's
    N=$(leader)
    want=$(metric "$N" cluster_applied_index)
    deadline=$(($(now_ms) + 20000))
    until got=$(metric "$L" cluster_applied_index) && [ -n "$got" ] && [ "$got" -ge "$want" ]; do
        [ "$(now_ms)" -lt "$deadline" ] || { echo "failover.sh: node $((L + 1)) never caught up" >&2; exit 1; }
        sleep 0.05
    done
done

printf '%s\n' "${TIMES[@]}" | sort -n | awk -v e="$ELECTION" '
    { t[NR] = $1; sum += $1 }
    END {
        i = int((NR * 9 + 9) / 10)   # ceil(0.9 * NR)
        if (i > NR) i = NR
        p = t[i]
        printf "%d kills, election timeout %d ms: min %d, median %d, p90 %d, max %d, mean %.0f ms\n",
               NR, e, t[1], t[int((NR + 1) / 2)], p, t[NR], sum / NR
    }'
