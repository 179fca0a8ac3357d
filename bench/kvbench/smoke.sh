#!/bin/sh
# smoke.sh KVD KVBENCH - ctest bench_kvbench_smoke: start kvd on an
# ephemeral port, run kvbench for about a second with tiny settings, and
# check that it exits 0 and reports more than 0 requests with 0 errors.
# No timing thresholds.
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

"$kvd" --port 0 --port-file "$dir/port" --threads 1 --log-level warn &
pid=$!
i=0
while [ ! -s "$dir/port" ]; do
    i=$((i + 1))
    if [ $i -gt 100 ] || ! kill -0 "$pid" 2>/dev/null; then
        echo "smoke: kvd did not start" >&2
        exit 1
    fi
    sleep 0.1
done
port=$(cat "$dir/port")

"$kvbench" -p "$port" -c 4 -t 2 -P 4 --keys 1000 --ratio 1:1 --preload \
    --warmup 0.2 --duration 1 --json -q >"$dir/out"
cat "$dir/out"
# One JSON object on one line: pull out the counters.
field() { sed -n "s/.*\"$1\":\([0-9]*\).*/\1/p" "$dir/out"; }
requests=$(field requests)
errors=$(field errors)
conn_errors=$(field conn_errors)
not_found=$(field not_found)
if [ -z "$requests" ] || [ "$requests" -eq 0 ]; then
    echo "smoke: no requests answered" >&2
    exit 1
fi
if [ "$errors" != 0 ] || [ "$conn_errors" != 0 ] || [ "$not_found" != 0 ]; then
    echo "smoke: errors=$errors conn_errors=$conn_errors not_found=$not_found" >&2
    exit 1
fi
echo "smoke: ok, $requests requests"
