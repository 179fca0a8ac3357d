#!/usr/bin/env python3
"""sidecar.py - compare_etcd.sh's side tasks against kvd or etcd over HTTP.

One module speaks both systems' HTTP/JSON APIs for what the benchmark does
besides wrk's timed put load, so each task is written once:

  sidecar.py SYSTEM URL preload KEYS VALUE_BYTES
      Sets keys key:00000000000 .. key:<KEYS-1> (15 bytes) to VALUE_BYTES
      bytes each, in batches of 128 (kvd: POST /v1/mset; etcd: POST
      /v3/kv/txn with 128 puts, etcd's default --max-txn-ops) over 8
      connections, then reads the last key back to check it.
  sidecar.py SYSTEM URL overwrite KEYS VALUE_BYTES COUNT
      Builds history: COUNT overwrites of the preloaded keys in the same
      batches of 128 over 8 connections, the keys in order, wrapping around
      (each overwrite keeps one earlier version, in both systems: etcd
      keeps a revision of each key a txn puts, kvd a version of each key an
      mset sets). Prints the overwrites per second.
  sidecar.py SYSTEM URL revision
      Prints the store's current revision (kvd: kvd_revision in /metrics;
      etcd: the header of a one-key range).
  sidecar.py SYSTEM URL compact-now
      Compacts to the current revision and prints the call's duration.
  sidecar.py SYSTEM URL compact-loop SECONDS BEHIND [READY_FILE]
      At every whole second before SECONDS: compact to (current revision -
      BEHIND) if that is past the last compaction. Calls never overlap: a
      call that takes longer than a second starts the next at the first
      whole second after it (the seconds it spanned are skipped).
  sidecar.py SYSTEM URL compact-at DELAY SECONDS [READY_FILE]
      After DELAY seconds, compact once to the current revision; then wait
      until SECONDS have passed and also (SECONDS - DELAY) seconds after
      the compaction ended, and exit: the caller ends the load then, so it
      runs as long after the compaction as it ran before it, however long
      the compaction took. Prints "end t=...".

With READY_FILE, the compaction tasks create that file when their clock
starts (Python has started and connected), so the caller starts the load
then: on a busy CPU Python's start alone can take seconds.

The compaction tasks print one line per compaction call:
  compact t=<s since start> rev=<target> ms=<call duration> status=<HTTP>
and, last, "compactions: N, ms median M max X" (or "compactions: 0").
etcd is asked for a physical compaction ("physical": true), so its call
returns once the old revisions are gone from its database, as kvd's does
(kvd compacts within the request, one lock stripe at a time).

Any answer that is not a 2xx is printed as a PROBLEM line and makes the
exit status 1.
"""
import base64
import http.client
import json
import math
import statistics
import sys
import threading
import time
import urllib.parse

BATCH = 128
KEY_FMT = "key:%011d"


def b64(b):
    return base64.b64encode(b).decode()


class Conn:
    """One keep-alive HTTP connection; request() answers (status, body)."""

    def __init__(self, url):
        u = urllib.parse.urlsplit(url)
        self.host, self.port = u.hostname, u.port
        self.c = http.client.HTTPConnection(self.host, self.port, timeout=600)

    def request(self, method, path, body=None):
        headers = {}
        if body is not None:
            headers["Content-Type"] = "application/json"
        self.c.request(method, path, body=body, headers=headers)
        r = self.c.getresponse()
        return r.status, r.read()


class Problem(Exception):
    pass


def check(what, status, body):
    if not 200 <= status < 300:
        raise Problem("%s: HTTP %d %s" % (what, status, body[:200].decode(errors="replace")))


class Kvd:
    def __init__(self, url):
        self.conn = Conn(url)

    def put_batch(self, pairs):
        body = json.dumps({"pairs": [{"key": b64(k), "value": b64(v)} for k, v in pairs]})
        s, b = self.conn.request("POST", "/v1/mset", body)
        check("mset", s, b)

    def get(self, key):
        s, b = self.conn.request("GET", "/v1/keys/" + urllib.parse.quote(key.decode()))
        check("get", s, b)
        return b

    def revision(self):
        s, b = self.conn.request("GET", "/metrics")
        check("metrics", s, b)
        for line in b.decode().splitlines():
            if line.startswith("kvd_revision "):
                return int(float(line.split()[1]))
        raise Problem("no kvd_revision in /metrics")

    def compact(self, rev):
        s, b = self.conn.request("POST", "/v1/compact", json.dumps({"revision": rev}))
        return s, b


class Etcd:
    def __init__(self, url):
        self.conn = Conn(url)

    def put_batch(self, pairs):
        ops = [{"request_put": {"key": b64(k), "value": b64(v)}} for k, v in pairs]
        s, b = self.conn.request("POST", "/v3/kv/txn", json.dumps({"success": ops}))
        check("txn", s, b)

    def get(self, key):
        s, b = self.conn.request("POST", "/v3/kv/range", json.dumps({"key": b64(key)}))
        check("range", s, b)
        kvs = json.loads(b).get("kvs", [])
        return base64.b64decode(kvs[0]["value"]) if kvs else b""

    def revision(self):
        s, b = self.conn.request("POST", "/v3/kv/range", json.dumps({"key": b64(b"key:")}))
        check("range", s, b)
        return int(json.loads(b)["header"]["revision"])

    def compact(self, rev):
        body = json.dumps({"revision": str(rev), "physical": True})
        return self.conn.request("POST", "/v3/kv/compaction", body)


SYSTEMS = {"kvd": Kvd, "etcd": Etcd}


def put_all(system, url, keys, size, count, fill):
    """count puts of keys numbered (n % keys) for n in 0..count-1, in
    batches that never hold a key twice (etcd refuses that)."""
    value = fill * size
    lock = threading.Lock()
    state = {"next": 0, "error": None}

    def worker():
        api = SYSTEMS[system](url)
        while True:
            with lock:
                if state["error"] or state["next"] >= count:
                    return
                lo = state["next"]
                hi = min(count, lo + BATCH, (lo // keys + 1) * keys)
                state["next"] = hi
            try:
                api.put_batch([((KEY_FMT % (n % keys)).encode(), value) for n in range(lo, hi)])
            except Exception as e:  # reported once, after the threads end
                with lock:
                    state["error"] = e
                return

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if state["error"]:
        raise Problem(str(state["error"]))
    got = SYSTEMS[system](url).get((KEY_FMT % ((count - 1) % keys)).encode())
    if got != value:
        raise Problem("check read %r..., not %d bytes of %r" % (got[:8], size, fill))


class Compactor:
    def __init__(self, system, url, ready_file=None):
        self.api = SYSTEMS[system](url)
        self.api.conn.c.connect()
        self.t0 = time.monotonic()
        if ready_file:
            open(ready_file, "w").close()
        self.done = 0
        self.ms = []
        self.problems = 0

    def compact(self, rev):
        t = time.monotonic()
        status, body = self.api.compact(rev)
        ms = (time.monotonic() - t) * 1000
        print("compact t=%.2f rev=%d ms=%.2f status=%d" % (t - self.t0, rev, ms, status), flush=True)
        if not 200 <= status < 300:
            print("PROBLEM: compact to %d: HTTP %d %s" % (rev, status, body[:200].decode(errors="replace")),
                  flush=True)
            self.problems += 1
        else:
            self.done = rev
            self.ms.append(ms)

    def sleep_until(self, t):
        d = self.t0 + t - time.monotonic()
        if d > 0:
            time.sleep(d)

    def summary(self):
        if self.ms:
            print("compactions: %d, ms median %.2f max %.2f" %
                  (len(self.ms), statistics.median(self.ms), max(self.ms)), flush=True)
        else:
            print("compactions: 0", flush=True)


def main(argv):
    if len(argv) < 4 or argv[1] not in SYSTEMS:
        print(__doc__, file=sys.stderr)
        return 2
    system, url, task, args = argv[1], argv[2], argv[3], argv[4:]
    try:
        if task == "preload":
            put_all(system, url, int(args[0]), int(args[1]), int(args[0]), b"v")
        elif task == "overwrite":
            t = time.monotonic()
            put_all(system, url, int(args[0]), int(args[1]), int(args[2]), b"o")
            print("overwrites: %d in %.1f s, %.0f/s" % (int(args[2]), time.monotonic() - t,
                                                     int(args[2]) / (time.monotonic() - t)))
        elif task == "revision":
            print(SYSTEMS[system](url).revision())
        elif task == "compact-now":
            c = Compactor(system, url)
            c.compact(c.api.revision())
            return 1 if c.problems else 0
        elif task == "compact-loop":
            seconds, behind = float(args[0]), int(args[1])
            c = Compactor(system, url, args[2] if len(args) > 2 else None)
            tick = 1
            while tick < seconds:
                c.sleep_until(tick)
                target = c.api.revision() - behind
                if target > c.done:
                    c.compact(target)
                else:
                    print("skip t=%.2f rev=%d (compacted to %d already)" %
                          (time.monotonic() - c.t0, target, c.done), flush=True)
                tick = max(tick + 1, math.ceil(time.monotonic() - c.t0))
            c.summary()
            return 1 if c.problems else 0
        elif task == "compact-at":
            delay, seconds = float(args[0]), float(args[1])
            c = Compactor(system, url, args[2] if len(args) > 2 else None)
            c.sleep_until(delay)
            c.compact(c.api.revision())
            c.summary()
            c.sleep_until(max(seconds, time.monotonic() - c.t0 + seconds - delay))
            print("end t=%.2f" % (time.monotonic() - c.t0), flush=True)
            return 1 if c.problems else 0
        else:
            print(__doc__, file=sys.stderr)
            return 2
    except (Problem, OSError, http.client.HTTPException, ValueError, KeyError, IndexError) as e:
        print("PROBLEM: %s %s: %s" % (system, task, e), flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
