#!/usr/bin/env python3
"""nodes.py - compare_etcd.sh's questions to a 3-node kvd or etcd cluster
over HTTP: which node leads, and how long a leader's kill keeps writes out.

  nodes.py SYSTEM leader URL...
      Prints the index (0-based, in the order given) of the node that
      leads, waiting up to 30 s for one. kvd: the node that answers a
      linearizable GET (200 or 404; a follower answers 503 NOT_LEADER);
      etcd: the node whose POST /v3/maintenance/status names itself
      (header.member_id) as the leader.
  nodes.py SYSTEM failover PID URL...
      Kills PID (the leader) with SIGKILL, then puts the key "failover"
      to every URL (the survivors), one thread per URL, each retrying at
      once after a failed answer (kvd: 503 NOT_LEADER from a follower or
      a candidate) and after no answer within 0.2 s (etcd holds a put
      while it has no leader), until one put is acknowledged (2xx).
      Prints "failover_ms N": from the kill to that acknowledgement. Gives
      up after 30 s.
  nodes.py etcd applied URL
      Prints the node's raftAppliedIndex (POST /v3/maintenance/status).

Exit status 1 (with a PROBLEM line) when there is no leader or no
acknowledged write in time.
"""
import base64
import http.client
import json
import os
import signal
import sys
import threading
import time
import urllib.parse

TRY_TIMEOUT = 0.2
GIVE_UP = 30.0


def conn(url, timeout):
    u = urllib.parse.urlsplit(url)
    return http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)


def ask(url, method, path, body=None, timeout=2.0):
    """(status, body) of one request on a new connection; (0, b"") when
    the node does not answer."""
    c = conn(url, timeout)
    try:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        c.request(method, path, body=body, headers=headers)
        r = c.getresponse()
        return r.status, r.read()
    except (OSError, http.client.HTTPException):
        return 0, b""
    finally:
        c.close()


def etcd_status(url):
    s, b = ask(url, "POST", "/v3/maintenance/status", "{}")
    if s != 200:
        return None
    try:
        return json.loads(b)
    except ValueError:
        return None


def is_leader(system, url):
    if system == "kvd":
        s, _ = ask(url, "GET", "/v1/keys/leader-probe")
        return s in (200, 404)
    st = etcd_status(url)
    return bool(st) and st.get("leader") not in (None, "0") and \
        st.get("leader") == st.get("header", {}).get("member_id")


def leader(system, urls):
    deadline = time.monotonic() + GIVE_UP
    while time.monotonic() < deadline:
        for i, u in enumerate(urls):
            if is_leader(system, u):
                print(i)
                return 0
        time.sleep(0.05)
    print("PROBLEM: %s: no leader among %s within %d s" % (system, " ".join(urls), GIVE_UP))
    return 1


def put_request(system, value):
    if system == "kvd":
        return "PUT", "/v1/keys/failover", value
    body = json.dumps({"key": base64.b64encode(b"failover").decode(),
                       "value": base64.b64encode(value.encode()).decode()})
    return "POST", "/v3/kv/put", body


def failover(system, pid, urls):
    done = threading.Event()
    result = {}
    lock = threading.Lock()
    t0 = time.monotonic()
    os.kill(pid, signal.SIGKILL)

    def worker(url):
        c = None
        n = 0
        while not done.is_set() and time.monotonic() - t0 < GIVE_UP:
            n += 1
            method, path, body = put_request(system, "%s-%d" % (url, n))
            try:
                if c is None:
                    c = conn(url, TRY_TIMEOUT)
                c.request(method, path, body=body)
                r = c.getresponse()
                r.read()
                if 200 <= r.status < 300:
                    with lock:
                        if "ms" not in result:
                            result["ms"] = (time.monotonic() - t0) * 1000
                            result["url"] = url
                    done.set()
                    return
                # a refusal (kvd: 503 at once): the next try a little later,
                # so as not to take the CPU the election needs
                time.sleep(0.002)
            except (OSError, http.client.HTTPException):
                if c is not None:
                    c.close()
                c = None

    threads = [threading.Thread(target=worker, args=(u,)) for u in urls]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if "ms" not in result:
        print("PROBLEM: %s: no acknowledged put within %d s of the kill" % (system, GIVE_UP))
        return 1
    print("failover_ms %.1f at %s" % (result["ms"], result["url"]))
    return 0


def main(argv):
    if len(argv) < 4 or argv[1] not in ("kvd", "etcd"):
        print(__doc__, file=sys.stderr)
        return 2
    system, task, args = argv[1], argv[2], argv[3:]
    if task == "leader":
        return leader(system, args)
    if task == "failover" and len(args) >= 2:
        return failover(system, int(args[0]), args[1:])
    if task == "applied" and system == "etcd" and len(args) == 1:
        st = etcd_status(args[0])
        if not st:
            print("PROBLEM: etcd at %s gives no status" % args[0])
            return 1
        print(st.get("raftAppliedIndex", st.get("raftIndex", "0")))
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
