#!/bin/sh
# smoke.sh KVD KVBENCH - ctest bench_kvbench_smoke: start kvd on an
# ephemeral port, run kvbench for about a second with tiny settings, once
# in the closed loop and once open loop (--rate), and check that each run
# exits 0 and reports more than 0 requests with 0 errors; for --rate also
# that the rate fields are there and the achieved rate is above 0. Then,
# if redis-server and redis-cli are installed, the same two runs with
# --protocol resp against a redis-server of its own (no persistence, a
# free port), checking also that Redis then holds exactly --keys keys;
# without them that part is skipped. Then, if memcached (and python3, to
# ask it for its stats) is installed, the same with --protocol memcache
# against a memcached of its own, checking that it holds exactly --keys
# items and that GETs of keys never set count as misses. No timing
# thresholds (the machine may be busy: whether the rate is met is not
# checked).
set -eu
kvd=$1
kvbench=$2
dir=$(mktemp -d "${TMPDIR:-/tmp}/kvbench-smoke.XXXXXX")
pid=
rpid=
mpid=
cleanup() {
    for p in $pid $rpid $mpid; do
        kill "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
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
    "$kvbench" "$@" --json -q >"$dir/out" || fail "$name: kvbench exited $?"
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

run "closed loop" -p "$port" -c 4 -t 2 -P 4 --keys 1000 --ratio 1:1 --preload --warmup 0.2 --duration 1
# compare.sh parses this output: --rate's fields must not appear in it.
if grep -q '"late"' "$dir/out"; then
    fail "closed loop: the output has --rate fields"
fi
echo "smoke: closed loop ok, $requests requests"

run "open loop" -p "$port" -c 4 -t 2 -P 4 --keys 1000 --ratio 1:1 --preload --rate 2000 --warmup 0.2 --duration 1
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

# ---- the same workload over RESP2, against Redis ----------------------
if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null; then
    echo "smoke: SKIP --protocol resp: redis-server or redis-cli not installed"
    echo "smoke: ok"
    exit 0
fi

# redis-server has no "port 0" (it means no TCP at all): try random high
# ports until one is ours. Ours = the server on it reports our process id
# (another Redis may already hold the port; then ours exits).
mkdir "$dir/redis"
rport=
for _ in 1 2 3 4 5; do
    p=$(od -An -N2 -tu2 /dev/urandom | awk '{ print 20000 + $1 % 40000 }')
    redis-server --save '' --appendonly no --port "$p" --bind 127.0.0.1 \
        --dir "$dir/redis" --logfile "$dir/redis.log" --daemonize no &
    rpid=$!
    i=0
    while kill -0 "$rpid" 2>/dev/null && [ $i -lt 50 ]; do
        if redis-cli -p "$p" info server 2>/dev/null | grep -q "^process_id:$rpid"; then
            rport=$p
            break 2
        fi
        i=$((i + 1))
        sleep 0.1
    done
    kill "$rpid" 2>/dev/null || true
    wait "$rpid" 2>/dev/null || true
    rpid=
done
[ -n "$rport" ] || fail "redis-server did not start: $(tail -3 "$dir/redis.log" 2>/dev/null)"

run "resp closed loop" --protocol resp -p "$rport" -c 4 -t 2 -P 4 --keys 1000 --ratio 1:1 \
    --preload --warmup 0.2 --duration 1
grep -q '"protocol":"resp"' "$dir/out" || fail "resp closed loop: no \"protocol\":\"resp\""
dbsize=$(redis-cli -p "$rport" dbsize)
[ "$dbsize" = 1000 ] || fail "resp closed loop: Redis holds $dbsize keys, not 1000"
echo "smoke: resp closed loop ok, $requests requests, Redis holds $dbsize keys"

run "resp open loop" --protocol resp -p "$rport" -c 4 -t 2 -P 4 --keys 1000 --ratio 1:1 \
    --rate 2000 --warmup 0.2 --duration 1
rps=$(field rps)
if [ "$(field rate)" != 2000.0 ] || ! awk -v r="$rps" 'BEGIN { exit !(r > 0) }'; then
    fail "resp open loop: rate=$(field rate) rps=$rps"
fi
echo "smoke: resp open loop ok, $requests requests, $rps req/s of 2000"

# ---- the same workload over memcached's text protocol ------------------
if ! command -v memcached >/dev/null || ! command -v python3 >/dev/null; then
    echo "smoke: SKIP --protocol memcache: memcached or python3 not installed"
    echo "smoke: ok"
    exit 0
fi

# mc_stat PORT NAME: memcached's `stats` value NAME, empty if none.
mc_stat() {
    python3 - "$1" "$2" <<'PY' 2>/dev/null || true
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=2)
s.sendall(b"stats\r\n")
data = b""
while not data.endswith(b"END\r\n"):
    chunk = s.recv(65536)
    if not chunk:
        break
    data += chunk
for line in data.decode().split("\r\n"):
    f = line.split()
    if len(f) == 3 and f[0] == "STAT" and f[1] == sys.argv[2]:
        print(f[2])
PY
}

# As for Redis: random high ports until the server on one reports our pid.
mport=
for _ in 1 2 3 4 5; do
    p=$(od -An -N2 -tu2 /dev/urandom | awk '{ print 20000 + $1 % 40000 }')
    memcached -p "$p" -l 127.0.0.1 -U 0 -t 1 -m 64 -u "$(id -un)" 2>"$dir/memcached.log" &
    mpid=$!
    i=0
    while kill -0 "$mpid" 2>/dev/null && [ $i -lt 50 ]; do
        if [ "$(mc_stat "$p" pid)" = "$mpid" ]; then
            mport=$p
            break 2
        fi
        i=$((i + 1))
        sleep 0.1
    done
    kill "$mpid" 2>/dev/null || true
    wait "$mpid" 2>/dev/null || true
    mpid=
done
[ -n "$mport" ] || fail "memcached did not start: $(tail -3 "$dir/memcached.log" 2>/dev/null)"

run "memcache closed loop" --protocol memcache -p "$mport" -c 4 -t 2 -P 4 --keys 1000 \
    --ratio 1:1 --preload --warmup 0.2 --duration 1
grep -q '"protocol":"memcache"' "$dir/out" || fail "memcache closed loop: no \"protocol\":\"memcache\""
items=$(mc_stat "$mport" curr_items)
[ "$items" = 1000 ] || fail "memcache closed loop: memcached holds $items items, not 1000"
echo "smoke: memcache closed loop ok, $requests requests, memcached holds $items items"

run "memcache open loop" --protocol memcache -p "$mport" -c 4 -t 2 -P 4 --keys 1000 \
    --ratio 1:1 --rate 2000 --warmup 0.2 --duration 1
rps=$(field rps)
if [ "$(field rate)" != 2000.0 ] || ! awk -v r="$rps" 'BEGIN { exit !(r > 0) }'; then
    fail "memcache open loop: rate=$(field rate) rps=$rps"
fi
echo "smoke: memcache open loop ok, $requests requests, $rps req/s of 2000"

# GETs over twice the keys set: about half are misses (END without VALUE),
# none an error.
"$kvbench" --protocol memcache -p "$mport" -c 2 --keys 2000 --ratio 1:0 --warmup 0 \
    --duration 0.5 --json -q >"$dir/out" || fail "memcache misses: kvbench exited $?"
cat "$dir/out"
gets=$(field gets)
not_found=$(field not_found)
if [ "$(field errors)" != 0 ] || [ -z "$not_found" ] || [ "$not_found" -eq 0 ] ||
    [ "$not_found" -ge "$gets" ]; then
    fail "memcache misses: gets=$gets not_found=$not_found errors=$(field errors)"
fi
echo "smoke: memcache misses ok, $not_found of $gets GETs missed"

# memcached's text protocol has no AUTH: --password is a usage error.
status=0
"$kvbench" --protocol memcache -p "$mport" --password x >/dev/null 2>&1 || status=$?
[ "$status" -eq 2 ] || fail "memcache --password: exit $status, not 2"
echo "smoke: ok"
