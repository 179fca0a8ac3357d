#!/usr/bin/python3
"""redis_py_test.py - kvd's Redis front-end driven by a real client library,
Debian's python3-redis (redis-py 4.3.4), not by hand-written bytes.

Run by test_redis_py.c (which starts kvd):  redis_py_test.py PORT [PASSWORD]

Covers pipelines without and with MULTI/EXEC, WATCH with another client
changing the watched key (WatchError), the transaction() helper retrying
after such a change, a value with every byte 0..255 and NULs, INCRBYFLOAT,
SCAN iteration with MATCH (scan_iter), MSETNX's all-or-nothing, key
expiry (SET EX/KEEPTTL/EXAT, TTL, PTTL, EXPIRE with GT/LT, PERSIST,
GETEX, EXPIRETIME, inside MULTI/EXEC), errors as exceptions, AUTH and
CLIENT SETNAME through the connection options.

redis-py 4.3.4 has no RESP3 (redis.Redis(protocol=3) arrived in 5.0): RESP3
is tested with redis-cli -3 (test_redis_cli.c). KVD.WATCH's subscription
messages are read with a connection's own reader. Ends with one line
"redis-py: N passed, N failed" and exits non-zero on any failure.
"""
import os
import sys
import unittest

import redis

PORT = 0
PASSWORD = None


def client(**kw):
    return redis.Redis(host="127.0.0.1", port=PORT, password=PASSWORD,
                       socket_timeout=20, **kw)


class RedisPy(unittest.TestCase):
    def setUp(self):
        self.r = client()
        self.r.flushdb()

    def tearDown(self):
        self.r.close()

    def test_basic_types(self):
        r = self.r
        self.assertTrue(r.ping())
        self.assertTrue(r.set("k", "v"))
        self.assertEqual(r.get("k"), b"v")
        self.assertIsNone(r.get("missing"))
        self.assertEqual(r.mget("k", "missing"), [b"v", None])
        self.assertEqual(r.exists("k", "k", "missing"), 2)
        self.assertEqual(r.strlen("k"), 1)
        self.assertEqual(r.append("k", "w"), 2)
        self.assertEqual(r.type("k"), b"string")
        self.assertEqual(r.type("missing"), b"none")
        self.assertEqual(r.getset("k", "x"), b"vw")
        self.assertEqual(r.getdel("k"), b"x")
        self.assertIsNone(r.getdel("k"))
        self.assertTrue(r.setnx("n", 1))
        self.assertFalse(r.setnx("n", 2))
        self.assertIsNone(r.set("n", 3, nx=True))
        self.assertTrue(r.set("n", 3, xx=True))
        self.assertEqual(r.set("n", 4, get=True), b"3")
        self.assertTrue(r.rename("n", "m"))
        self.assertEqual(r.get("m"), b"4")
        self.assertEqual(r.delete("m", "missing"), 1)
        self.assertEqual(r.unlink("missing"), 0)
        self.assertEqual(r.dbsize(), 0)
        self.assertEqual(r.echo("hi"), b"hi")
        self.assertEqual(r.client_id() > 0, True)
        self.assertIn("redis_version", r.info())

    def test_counters(self):
        r = self.r
        self.assertEqual(r.incr("c"), 1)
        self.assertEqual(r.incrby("c", 41), 42)
        self.assertEqual(r.decr("c"), 41)
        self.assertEqual(r.decrby("c", 50), -9)
        r.set("big", 2**63 - 1)
        with self.assertRaises(redis.ResponseError):
            r.incr("big")
        self.assertEqual(r.get("big"), b"9223372036854775807")
        r.set("text", "abc")
        with self.assertRaisesRegex(redis.ResponseError, "not an integer"):
            r.incr("text")

    def test_incrbyfloat(self):
        r = self.r
        r.set("f", "10.50")
        self.assertEqual(r.incrbyfloat("f", 0.1), 10.6)
        if not os.environ.get("RESP_TEST_UNDER_VALGRIND"):
            # as Redis: long double, no binary noise (valgrind emulates
            # long double at double precision: other digits there)
            self.assertEqual(r.get("f"), b"10.6")
        r.set("g", "5.0e3")
        self.assertEqual(r.incrbyfloat("g", 2.0e2), 5200.0)
        self.assertEqual(r.get("g"), b"5200")
        self.assertEqual(r.incrbyfloat("new", -1.5), -1.5)
        self.assertEqual(r.incrbyfloat("int", 3), 3.0)
        self.assertEqual(r.get("int"), b"3")
        r.set("text", "abc")
        with self.assertRaisesRegex(redis.ResponseError, "not a valid float"):
            r.incrbyfloat("text", 1)

    def test_binary_value_every_byte(self):
        r = self.r
        value = bytes(range(256)) * 4 + b"\x00\x00\r\n\x00"
        key = b"bin\x00key\r\n\xff"
        self.assertTrue(r.set(key, value))
        self.assertEqual(r.get(key), value)
        self.assertEqual(r.strlen(key), len(value))
        self.assertEqual(r.mget([key, b"bin"]), [value, None])
        self.assertEqual(r.append(key, b"\x00"), len(value) + 1)
        self.assertEqual(r.get(key), value + b"\x00")
        self.assertEqual(r.getset(key, b"\x00"), value + b"\x00")
        self.assertEqual(r.get(key), b"\x00")
        # an integer followed by a NUL is not an integer
        r.set("nul", b"5\x00x")
        with self.assertRaises(redis.ResponseError):
            r.incr("nul")
        self.assertEqual(r.get("nul"), b"5\x00x")

    def test_pipeline_without_transaction(self):
        r = self.r
        p = r.pipeline(transaction=False)
        for i in range(500):
            p.set(f"p{i}", i)
        for i in range(500):
            p.get(f"p{i}")
        p.incr("p0")
        p.get("missing")
        p.incr("p0", 1)
        out = p.execute()
        self.assertEqual(out[:500], [True] * 500)
        self.assertEqual(out[500:1000], [str(i).encode() for i in range(500)])
        self.assertEqual(out[1000:], [1, None, 2])
        # an error in the middle is raised, the rest still ran
        p = r.pipeline(transaction=False)
        p.set("t", "abc").incr("t").set("u", 1)
        with self.assertRaises(redis.ResponseError):
            p.execute()
        self.assertEqual(r.get("u"), b"1")
        out = r.pipeline(transaction=False).set("t", "abc").incr("t").get("t").execute(
            raise_on_error=False)
        self.assertTrue(out[0])
        self.assertIsInstance(out[1], redis.ResponseError)
        self.assertEqual(out[2], b"abc")

    def test_pipeline_with_transaction(self):
        r = self.r
        out = r.pipeline(transaction=True).set("a", 1).incr("a").get("a").mget(
            "a", "zz").execute()
        self.assertEqual(out, [True, 2, b"2", [b"2", None]])
        # a command that fails inside EXEC answers its error, the others apply
        p = r.pipeline(transaction=True)
        p.set("s", "abc").incr("s").set("after", "yes")
        with self.assertRaises(redis.ResponseError):
            p.execute()
        self.assertEqual(r.get("after"), b"yes")
        # a command refused while queueing aborts the whole transaction
        p = r.pipeline(transaction=True)
        p.set("never", 1)
        p.execute_command("SET", "x")  # wrong arity
        with self.assertRaises(redis.ResponseError):
            p.execute()
        self.assertIsNone(r.get("never"))

    def test_watch_then_another_client_changes_the_key(self):
        r = self.r
        other = client()
        r.set("w", 1)
        with r.pipeline() as p:
            p.watch("w")
            self.assertEqual(p.get("w"), b"1")  # immediate mode after WATCH
            other.set("w", 100)
            p.multi()
            p.set("w", 2)
            p.set("side", "effect")
            with self.assertRaises(redis.WatchError):
                p.execute()
        self.assertEqual(r.get("w"), b"100")
        self.assertIsNone(r.get("side"))
        # without interference the same transaction commits
        with r.pipeline() as p:
            p.watch("w")
            v = int(p.get("w"))
            p.multi()
            p.set("w", v + 1)
            self.assertEqual(p.execute(), [True])
        self.assertEqual(r.get("w"), b"101")
        # a watched key that was absent and then created also aborts
        with r.pipeline() as p:
            p.watch("fresh")
            other.set("fresh", "x")
            p.multi()
            p.set("fresh", "y")
            with self.assertRaises(redis.WatchError):
                p.execute()
        # UNWATCH forgets the watch
        with r.pipeline() as p:
            p.watch("w")
            other.set("w", 7)
            p.unwatch()
            p.multi()
            p.incr("w")
            self.assertEqual(p.execute(), [8])
        other.close()

    def test_transaction_helper_retries(self):
        r = self.r
        other = client()
        r.set("acct", 10)
        calls = []

        def move(pipe):
            cur = int(pipe.get("acct"))
            if not calls:
                other.incrby("acct", 5)  # interferes once: the helper retries
            calls.append(cur)
            pipe.multi()
            pipe.set("acct", cur * 2)

        r.transaction(move, "acct")
        self.assertEqual(calls, [10, 15])
        self.assertEqual(r.get("acct"), b"30")
        other.close()

    def test_scan_iter_with_match(self):
        r = self.r
        with r.pipeline(transaction=False) as p:
            for i in range(1200):
                p.set(f"user:{i}", i)
            for i in range(300):
                p.set(f"other:{i}", i)
            p.execute()
        seen = [k for k in r.scan_iter(match="user:*", count=50)]
        self.assertEqual(len(seen), 1200)
        self.assertEqual(set(seen), {f"user:{i}".encode() for i in range(1200)})
        self.assertEqual(len(list(r.scan_iter(count=1000))), 1500)
        self.assertEqual(list(r.scan_iter(match="nope*")), [])
        self.assertEqual(sorted(r.keys("other:1?")),
                         sorted(f"other:1{i}".encode() for i in range(10)))
        cursor, page = r.scan(0, match="user:1*", count=10)
        self.assertIsInstance(cursor, int)

    def test_msetnx_is_all_or_nothing(self):
        r = self.r
        self.assertTrue(r.msetnx({"x1": 1, "x2": 2}))
        self.assertFalse(r.msetnx({"x3": 3, "x2": 20, "x4": 4}))
        self.assertEqual(r.mget("x1", "x2", "x3", "x4"), [b"1", b"2", None, None])
        self.assertTrue(r.mset({"x3": 3, "x4": 4}))
        self.assertEqual(r.mget("x3", "x4"), [b"3", b"4"])

    def test_errors_are_exceptions(self):
        r = self.r
        with self.assertRaisesRegex(redis.ResponseError, "unknown command 'NOSUCH'"):
            r.execute_command("NOSUCH", "a")
        with self.assertRaisesRegex(redis.ResponseError, "wrong number of arguments"):
            r.execute_command("GET")
        with self.assertRaisesRegex(redis.ResponseError, "no such key"):
            r.rename("missing", "x")
        with self.assertRaisesRegex(redis.ResponseError, "invalid expire time in 'set'"):
            r.execute_command("SET", "k", "v", "EX", "0")
        with self.assertRaisesRegex(redis.ResponseError, "not an integer"):
            r.execute_command("EXPIRE", "k", "soon")
        self.assertIsNone(r.get("k"))  # the refused SET changed nothing
        self.assertTrue(r.ping())  # the connection is still good

    def test_expiry(self):
        r = self.r
        self.assertTrue(r.set("k", "v", ex=100))
        self.assertEqual(r.ttl("k"), 100)
        self.assertTrue(0 < r.pttl("k") <= 100000)
        self.assertEqual(r.ttl("missing"), -2)
        self.assertTrue(r.persist("k"))
        self.assertFalse(r.persist("k"))
        self.assertEqual(r.ttl("k"), -1)
        self.assertTrue(r.expire("k", 50))
        self.assertFalse(r.expire("k", 60, lt=True))
        self.assertTrue(r.expire("k", 60, gt=True))
        self.assertEqual(r.ttl("k"), 60)
        self.assertTrue(r.pexpireat("k", 4102444800123))
        self.assertEqual(r.pexpiretime("k"), 4102444800123)
        self.assertEqual(r.expiretime("k"), 4102444800)
        self.assertTrue(r.set("k", "w", keepttl=True))
        self.assertEqual(r.pexpiretime("k"), 4102444800123)
        self.assertEqual(r.getex("k", persist=True), b"w")
        self.assertEqual(r.ttl("k"), -1)
        self.assertTrue(r.setex("s", 100, "v"))
        self.assertTrue(r.psetex("p", 100000, "v"))
        self.assertEqual(r.ttl("p"), 100)
        self.assertEqual(r.incr("c"), 1)
        self.assertTrue(r.expire("c", 100))
        self.assertEqual(r.incr("c"), 2)
        self.assertEqual(r.ttl("c"), 100)  # INCR keeps it, as in Redis
        self.assertTrue(r.set("x", "v", exat=1))  # a time past: gone at once
        self.assertIsNone(r.get("x"))
        # a transaction: relative times count from EXEC; a key written in
        # it keeps the expiry given there
        p = r.pipeline(transaction=True)
        p.set("t", "1", ex=100)
        p.incr("t")
        p.ttl("t")
        self.assertEqual(p.execute(), [True, 2, 100])
        self.assertEqual(r.ttl("t"), 100)


    def test_kvd_watch_subscription(self):
        """KVD.WATCH (docs/resp.md, "Watch"): a prefix's changes pushed as
        subscription messages, read with the connection's own reader as
        pubsub does; only KVD.WATCH/KVD.UNWATCH/PING/QUIT meanwhile."""
        r = self.r
        rev = int(r.info("history")["revision"])
        r.set("w:a", "1")
        conn = r.connection_pool.get_connection("KVD.WATCH")
        try:
            conn.send_command("KVD.WATCH", "w:", "PREFIX", "FROM", rev + 1)
            self.assertEqual(conn.read_response(), [b"kvd.watch", b"w:", rev + 1])
            # revisions as the events give them: the store may make changes
            # of its own (expiry) between these
            ev = conn.read_response()
            r1 = ev[2]
            self.assertGreater(r1, rev)
            self.assertEqual(ev, [b"kvd.event", b"w:", r1, b"put", b"w:a", b"1", 1, r1])
            r.mset({"w:b": "2", "x": "3"})
            r.delete("w:a")
            ev = conn.read_response()
            r2 = ev[2]
            self.assertGreater(r2, r1)
            self.assertEqual(ev, [b"kvd.event", b"w:", r2, b"put", b"w:b", b"2", 1, r2])
            ev = conn.read_response()
            r3 = ev[2]
            self.assertGreater(r3, r2)
            self.assertEqual(ev, [b"kvd.event", b"w:", r3, b"del", b"w:a", None, 0, 0])
            conn.send_command("GET", "w:b")
            with self.assertRaises(redis.ResponseError) as e:
                conn.read_response()
            self.assertIn("only KVD.WATCH", str(e.exception))
            conn.send_command("KVD.UNWATCH")
            end = conn.read_response()
            self.assertEqual(end[:2], [b"kvd.unwatch", b"w:"])
            self.assertGreater(end[2], r3)
            self.assertEqual(conn.read_response(), 1)
            conn.send_command("GET", "w:b")
            self.assertEqual(conn.read_response(), b"2")
        finally:
            r.connection_pool.release(conn)

    def test_client_name_option(self):
        c = client(client_name="py-test")
        self.assertEqual(c.client_getname(), "py-test")
        c.close()


class WrongPassword(unittest.TestCase):
    def test_wrong_password(self):
        if PASSWORD is None:
            self.skipTest("kvd runs without a password")
        # redis-py 4.3.4 raises WRONGPASS as a ResponseError, NOAUTH as an
        # AuthenticationError (as with Redis itself)
        c = redis.Redis(host="127.0.0.1", port=PORT, password="wrong", socket_timeout=20)
        with self.assertRaisesRegex(redis.ResponseError, "^WRONGPASS invalid username-password"):
            c.get("k")
        c.close()
        c = redis.Redis(host="127.0.0.1", port=PORT, socket_timeout=20)
        with self.assertRaisesRegex(redis.AuthenticationError, "Authentication required"):
            c.get("k")
        c.close()


def main():
    global PORT, PASSWORD
    PORT = int(sys.argv[1])
    PASSWORD = sys.argv[2] if len(sys.argv) > 2 else None
    suite = unittest.defaultTestLoader.loadTestsFromModule(sys.modules[__name__])
    res = unittest.TextTestRunner(verbosity=2, stream=sys.stdout).run(suite)
    failed = len(res.failures) + len(res.errors)
    print(f"redis-py: {res.testsRun - failed - len(res.skipped)} passed, {failed} failed, "
          f"{len(res.skipped)} skipped")
    sys.exit(0 if res.wasSuccessful() else 1)


if __name__ == "__main__":
    main()
