#!/bin/sh
# smoke.sh KVD KVBENCH - ctest bench_kvbench_smoke: start kvd on an
# ephemeral port, run kvbench for about a second with tiny settings, once
# in the closed loop and once open loop (--rate), and check that each run
# exits 0 and reports more than 0 requests with 0 errors; for --rate also
# that the rate fields are there and the achieved rate is above 0. No
# timing thresholds (the machine may be busy: whether the rate is met is
# not checked).
set -eu
kvd=$1
kvbench=$2
dir=$(mktemp -d "${TMPDIR:-/tmp}/kvbench-smoke.XXXXXX")
pid=
cleanup() {
    if [ -n "$pid" ]; then
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    fi
    rm -rf "$dir"
}
trap cleanup EXIT INT TERM

fail() {
    echo "smoke: $*" >&2
    exit 1
}

"$kvd" --port 0 --port-file "$dir/port" --threads 1 --log-level warn &
pid=$!
i=0
while [ ! -s "$dir/port" ]; do
    i=$((i + 1))
    if [ $i -gt 100 ] || ! kill -0 "$pid" 2>/dev/null; then
        fail "kvd did not start"
    fi
    sleep 0.1
done
port=$(cat "$dir/port")

# One JSON object on one line: pull out a number.
field() { sed -n "s/.*\"$1\":\([0-9.]*\).*/\1/p" "$dir/out"; }

# run NAME KVBENCH-ARGS...: runs kvbench, checks requests > 0 and no
# errors of any kind.
run() {
    name=$1
    shift
    "$kvbench" -p "$port" "$@" --json -q >"$dir/out" || fail "$name: kvbench exited $?"
    cat "$dir/out"
    requests=$(field requests)
    errors=$(field errors)
    conn_errors=$(field conn_errors)
    not_found=$(field not_found)
    if [ -z "$requests" ] || [ "$requests" -eq 0 ]; then
        fail "$name: no requests answered"
    fi
    if [ "$errors" != 0 ] || [ "$conn_errors" != 0 ] || [ "$not_found" != 0 ]; then
        fail "$name: errors=$errors conn_errors=$conn_errors not_found=$not_found"
    fi
}

run "closed loop" -c 4 -t 2 -P 4 --keys 1000 --ratio 1:1 --preload --warmup 0.2 --duration 1
# compare.sh parses this output: --rate's fields must not appear in it.
if grep -q '"late"' "$dir/out"; then
    fail "closed loop: the output has --rate fields"
fi
echo "smoke: closed loop ok, $requests requests"

run "open loop" -c 4 -t 2 -P 4 --keys 1000 --ratio 1:1 --preload --rate 2000 --warmup 0.2 --duration 1
rate=$(field rate)
rps=$(field rps)
late=$(field late)
backlog=$(field backlog)
lag=$(field send_lag_p50_us)
if [ "$rate" != 2000.0 ] || [ -z "$late" ] || [ -z "$backlog" ] || [ -z "$lag" ]; then
    fail "open loop: rate=$rate late=$late backlog=$backlog send_lag_p50_us=$lag"
fi
if ! awk -v r="$rps" 'BEGIN { exit !(r > 0) }'; then
    fail "open loop: achieved rate $rps"
fi
echo "smoke: open loop ok, $requests requests, $rps req/s of 2000, $late late, $backlog backlog"

# A bad rate is a usage error (exit 2), before any connection.
status=0
"$kvbench" -p "$port" --rate -5 >/dev/null 2>&1 || status=$?
[ "$status" -eq 2 ] || fail "--rate -5: exit $status, not 2"
echo "smoke: ok"
