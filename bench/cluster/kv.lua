-- kv.lua - wrk script for compare_etcd.sh: puts or reads of uniformly
-- random keys from the preloaded set, to kvd or to etcd over HTTP, and a
-- one-line summary.
--
--   wrk ... -s kv.lua http://127.0.0.1:PORT -- SYSTEM OP KEYS VALUE_BYTES
--
-- SYSTEM kvd,  OP put: PUT /v1/keys/key:NNNNNNNNNNN, the value as the body.
-- SYSTEM kvd,  OP get: GET /v1/keys/key:NNNNNNNNNNN (linearizable on a
--                      cluster's leader: docs/http.md "In a cluster").
-- SYSTEM etcd, OP put: POST /v3/kv/put {"key":"<base64>","value":"<base64>"}
-- SYSTEM etcd, OP get: POST /v3/kv/range {"key":"<base64>"} (etcd's default,
--                      a linearizable read; "serializable" is not set).
-- Both through the system's HTTP/JSON front (etcd's gRPC-gateway). Keys are
-- "key:%011d" (15 bytes: their base64 has no padding), numbers 0..KEYS-1,
-- as bench/history/sidecar.py preloads them; a put's value is VALUE_BYTES
-- bytes of 'w', the same for both.
--
-- done() prints one line compare_etcd.sh parses:
--   RESULT requests=N seconds=S rps=R p50_ms= p99_ms= p999_ms= max_ms=
--          non2xx=N misses=N errors=N
-- non2xx counts every answer outside 200-299 (wrk's own "Non-2xx" counts
-- only >= 400); misses are reads of a key that was not there (kvd: 404,
-- which is also a non2xx; etcd: a 200 without "kvs"); errors are wrk's
-- socket errors (connect, read, write, timeout). Latency is wrk's: from
-- sending a request to its whole answer, per connection, closed loop.

local bit = require("bit")

local system, op, nkeys, value
local bodies = {}
local threads = {}
-- globals, not locals: done() reads them from each thread with t:get()
non2xx = 0
misses = 0

local alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

local function b64(s)
    local out = {}
    for i = 1, #s, 3 do
        local a, b, c = s:byte(i, i + 2)
        local n = bit.bor(bit.lshift(a, 16), bit.lshift(b or 0, 8), c or 0)
        local q = {}
        for j = 1, 4 do
            local idx = bit.band(bit.rshift(n, 6 * (4 - j)), 63)
            q[j] = alphabet:sub(idx + 1, idx + 1)
        end
        if not b then q[3] = "=" end
        if not c then q[4] = "=" end
        out[#out + 1] = table.concat(q)
    end
    return table.concat(out)
end

function setup(thread)
    table.insert(threads, thread)
end

function init(args)
    system, op = args[1], args[2]
    nkeys = tonumber(args[3])
    value = string.rep("w", tonumber(args[4] or "0"))
    if system ~= "kvd" and system ~= "etcd" then
        error("kv.lua: SYSTEM must be kvd or etcd, not " .. tostring(system))
    end
    if op ~= "put" and op ~= "get" then
        error("kv.lua: OP must be put or get, not " .. tostring(op))
    end
    if not nkeys or nkeys < 1 then
        error("kv.lua: KEYS must be a positive number")
    end
    if system == "etcd" then
        wrk.headers["Content-Type"] = "application/json"
        value = b64(value)
    end
    math.randomseed(os.time() + os.clock() * 1e6)
end

request = function()
    local i = math.random(0, nkeys - 1)
    if system == "kvd" then
        local path = string.format("/v1/keys/key:%011d", i)
        if op == "put" then
            return wrk.format("PUT", path, nil, value)
        end
        return wrk.format("GET", path)
    end
    local body = bodies[i]
    if not body then
        local key = b64(string.format("key:%011d", i))
        if op == "put" then
            body = '{"key":"' .. key .. '","value":"' .. value .. '"}'
        else
            body = '{"key":"' .. key .. '"}'
        end
        bodies[i] = body
    end
    return wrk.format("POST", op == "put" and "/v3/kv/put" or "/v3/kv/range", nil, body)
end

response = function(status, headers, body)
    if status < 200 or status > 299 then
        non2xx = non2xx + 1
        if status == 404 then misses = misses + 1 end
    elseif op == "get" and system == "etcd" and not string.find(body, '"kvs"', 1, true) then
        misses = misses + 1
    end
end

function done(summary, latency, requests)
    local bad, miss = 0, 0
    for _, t in ipairs(threads) do
        bad = bad + (t:get("non2xx") or 0)
        miss = miss + (t:get("misses") or 0)
    end
    local e = summary.errors
    local secs = summary.duration / 1e6
    io.write(string.format(
        "RESULT requests=%d seconds=%.3f rps=%.1f p50_ms=%.3f p99_ms=%.3f p999_ms=%.3f max_ms=%.3f non2xx=%d misses=%d errors=%d\n",
        summary.requests, secs, summary.requests / secs,
        latency:percentile(50) / 1000, latency:percentile(99) / 1000,
        latency:percentile(99.9) / 1000, latency.max / 1000,
        bad, miss, e.connect + e.read + e.write + e.timeout))
end
