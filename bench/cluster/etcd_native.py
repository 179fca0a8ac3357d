#!/usr/bin/python3
"""etcd_native.py - compare_etcd.sh's load on etcd through its own gRPC API
(Debian's python3-etcd3), without the JSON gateway.

  etcd_native.py HOST:PORT OP KEYS VALUE_BYTES SECONDS [CONNS]

OP put: Put of a uniformly random key key:%011d (0..KEYS-1) with
VALUE_BYTES bytes of 'w', as kv.lua's puts; OP get: Range of one such key,
linearizable (etcd's default; python3-etcd3's get() sends serializable
false). CONNS (default 1) threads, each with its own client (its own gRPC
channel), closed loop for SECONDS after one untimed request each.

Prints one line in kv.lua's format, which compare_etcd.sh parses:
  RESULT requests=N seconds=S rps=R p50_ms= p99_ms= p999_ms= max_ms=
         non2xx=N misses=N errors=N
(non2xx: calls that raised; misses: gets that found no key; errors: 0).

The client is Python: each call costs some 100-200 us of client CPU (gRPC's
Python stack), which is in the latency and, on a 2-core machine, competes
with the servers. Only one connection gives an etcd figure not bounded by
the client; compare_etcd.sh runs it so (put1). It is run with Debian's
/usr/bin/python3, where python3-etcd3 is installed.
"""
import random
import sys
import threading
import time

import etcd3


def main(argv):
    if len(argv) not in (6, 7) or argv[2] not in ("put", "get"):
        print(__doc__, file=sys.stderr)
        return 2
    host, port = argv[1].rsplit(":", 1)
    op, keys, size, seconds = argv[2], int(argv[3]), int(argv[4]), float(argv[5])
    conns = int(argv[6]) if len(argv) == 7 else 1
    value = b"w" * size
    lat = [[] for _ in range(conns)]
    bad = [0] * conns
    miss = [0] * conns
    start = threading.Barrier(conns + 1)
    t_end = [0.0]

    def worker(k):
        c = etcd3.client(host=host, port=int(port), timeout=10)
        rnd = random.Random(k * 7919 + int(time.time()))
        c.get(b"key:%011d" % 0)  # connect: untimed
        start.wait()
        mine = lat[k]
        while True:
            key = b"key:%011d" % rnd.randrange(keys)
            t0 = time.perf_counter()
            if t0 >= t_end[0]:
                break
            try:
                if op == "put":
                    c.put(key, value)
                else:
                    v, _ = c.get(key)
                    if v is None:
                        miss[k] += 1
            except Exception:  # a failed call: counted, reported by the caller
                bad[k] += 1
            mine.append(time.perf_counter() - t0)
        c.close()

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(conns)]
    for t in threads:
        t.start()
    t_end[0] = time.perf_counter() + 3600
    start.wait()
    t0 = time.perf_counter()
    t_end[0] = t0 + seconds
    for t in threads:
        t.join()
    secs = time.perf_counter() - t0
    x = sorted(v for l in lat for v in l)
    n = len(x)
    if not n:
        print("RESULT requests=0 seconds=%.3f rps=0 p50_ms=0 p99_ms=0 p999_ms=0 max_ms=0 non2xx=%d misses=%d errors=0"
              % (secs, sum(bad), sum(miss)))
        return 1

    def pct(p):
        return x[min(n - 1, int(p / 100.0 * n))] * 1000

    print("RESULT requests=%d seconds=%.3f rps=%.1f p50_ms=%.3f p99_ms=%.3f p999_ms=%.3f max_ms=%.3f "
          "non2xx=%d misses=%d errors=0" % (n, secs, n / secs, pct(50), pct(99), pct(99.9), x[-1] * 1000,
                                            sum(bad), sum(miss)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
