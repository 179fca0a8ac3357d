-- put.lua - wrk script for compare_etcd.sh: puts of uniformly random keys
-- from the preloaded set, to kvd or to etcd, and a one-line summary.
--
--   wrk ... -s put.lua http://127.0.0.1:PORT -- SYSTEM KEYS VALUE_BYTES
--
-- SYSTEM kvd:  PUT /v1/keys/key:NNNNNNNNNNN with the value as the body.
-- SYSTEM etcd: POST /v3/kv/put {"key":"<base64>","value":"<base64>"}
--              (etcd's gRPC-gateway; keys and values are base64 in JSON).
-- Keys are "key:%011d" (15 bytes, so their base64 has no padding), numbers
-- 0..KEYS-1; the value is VALUE_BYTES bytes of 'w', the same for both.
--
-- done() prints one line compare_etcd.sh parses:
--   RESULT requests=N seconds=S rps=R p50_ms= p99_ms= p999_ms= max_ms=
--          non2xx=N errors=N
-- non2xx counts every answer outside 200-299 (wrk's own "Non-2xx" counts
-- only >= 400); errors are wrk's socket errors (connect, read, write,
-- timeout). Latency is wrk's: from sending a request to its whole answer,
-- per connection, closed loop (a stalled server delays the requests after
-- the stall instead of timing them: the max shows a stall's length).

local bit = require("bit")

local system, nkeys, value
local bodies = {}
local threads = {}
-- a global, not a local: done() reads it from each thread with t:get()
non2xx = 0

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
    system = args[1]
    nkeys = tonumber(args[2])
    value = string.rep("w", tonumber(args[3]))
    if system ~= "kvd" and system ~= "etcd" then
        error("put.lua: SYSTEM must be kvd or etcd, not " .. tostring(system))
    end
    if system == "etcd" then
        wrk.method = "POST"
        wrk.path = "/v3/kv/put"
        wrk.headers["Content-Type"] = "application/json"
        value = b64(value)
    else
        wrk.method = "PUT"
        wrk.body = value
    end
    math.randomseed(os.time())
end

request = function()
    local i = math.random(0, nkeys - 1)
    local key = string.format("key:%011d", i)
    if system == "kvd" then
        return wrk.format("PUT", "/v1/keys/" .. key, nil, value)
    end
    local body = bodies[i]
    if not body then
        body = '{"key":"' .. b64(key) .. '","value":"' .. value .. '"}'
        bodies[i] = body
    end
    return wrk.format("POST", "/v3/kv/put", nil, body)
end

response = function(status, headers, body)
    if status < 200 or status > 299 then
        non2xx = non2xx + 1
    end
end

function done(summary, latency, requests)
    local bad = 0
    for _, t in ipairs(threads) do
        bad = bad + (t:get("non2xx") or 0)
    end
    local e = summary.errors
    local secs = summary.duration / 1e6
    io.write(string.format(
        "RESULT requests=%d seconds=%.3f rps=%.1f p50_ms=%.3f p99_ms=%.3f p999_ms=%.3f max_ms=%.3f non2xx=%d errors=%d\n",
        summary.requests, secs, summary.requests / secs,
        latency:percentile(50) / 1000, latency:percentile(99) / 1000,
        latency:percentile(99.9) / 1000, latency.max / 1000,
        bad, e.connect + e.read + e.write + e.timeout))
end
