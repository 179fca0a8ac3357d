#!/usr/bin/env python3
"""kvd_fuzz.py - a soak of kvd under hostile input (not a test: it runs for
as long as it is told and reports what it saw).

Starts a kvd (best an ASan or TSan build), then for DURATION seconds keeps
8 connections busy with pipelined frames that are random, half-valid or
corrupted: every op with wrong argument shapes and types, oversized and
empty keys, bit flips inside frames, garbage after frames. A connection kvd
closes is reopened. At the end it checks that kvd still answers a normal
SET/GET, stops it with SIGTERM, and fails unless kvd exits 0 with no
sanitizer report in its log.

  bench/soak/kvd_fuzz.py --kvd build-asan/kvd/src/kvd [--seconds 60] [--seed 1]
  setarch $(uname -m) -R bench/soak/kvd_fuzz.py --kvd build-tsan/kvd/src/kvd

The MessagePack here is written by hand on purpose: the point is to send
what no correct encoder would.
"""
import argparse, os, random, signal, socket, struct, subprocess, sys, tempfile, time

ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
ap.add_argument("--kvd", required=True, help="path of the kvd binary to start")
ap.add_argument("--seconds", type=float, default=60.0)
ap.add_argument("--seed", type=int, default=1)
opts = ap.parse_args()
rnd = random.Random(opts.seed)


# MessagePack of a Python value (None, bool, int, float, bytes, str, list,
# dict), any size the format allows.
def mp(v):
    if v is None: return b'\xc0'
    if v is True: return b'\xc3'
    if v is False: return b'\xc2'
    if isinstance(v, int):
        if 0 <= v < 128: return bytes([v])
        if -32 <= v < 0: return struct.pack('b', v)
        if 0 <= v < 2**64: return b'\xcf' + struct.pack('>Q', v)
        return b'\xd3' + struct.pack('>q', max(-2**63, v))
    if isinstance(v, float): return b'\xcb' + struct.pack('>d', v)
    if isinstance(v, bytes):
        n = len(v)
        return (b'\xc4' + bytes([n]) if n < 256 else b'\xc5' + struct.pack('>H', n) if n < 65536 else b'\xc6' + struct.pack('>I', n)) + v
    if isinstance(v, str):
        b = v.encode(); n = len(b)
        return (bytes([0xa0 | n]) if n < 32 else b'\xd9' + bytes([n]) if n < 256 else b'\xda' + struct.pack('>H', n)) + b
    if isinstance(v, list):
        n = len(v)
        h = bytes([0x90 | n]) if n < 16 else b'\xdc' + struct.pack('>H', n)
        return h + b''.join(mp(x) for x in v)
    if isinstance(v, dict):
        n = len(v)
        h = bytes([0x80 | n]) if n < 16 else b'\xde' + struct.pack('>H', n)
        return h + b''.join(mp(k) + mp(x) for k, x in v.items())
    raise TypeError

# A key as kvd may or may not accept it: str or bin, empty, over 64 KiB.
def rkey():
    return rnd.choice([b'k%d' % rnd.randrange(50), 'k%d' % rnd.randrange(50), b'', b'x' * rnd.choice([1, 100, 70000]), rnd.randbytes(rnd.randrange(1, 20))])

# Any value, nested a little.
def rval(depth=0):
    c = rnd.randrange(10 if depth < 2 else 7)
    if c == 0: return None
    if c == 1: return rnd.randrange(-5, 2**64)
    if c == 2: return rkey()
    if c == 3: return rnd.randbytes(rnd.randrange(0, 300))
    if c == 4: return rnd.random()
    if c == 5: return rnd.choice([True, False])
    if c == 6: return 'str'
    if c == 7: return [rval(depth + 1) for _ in range(rnd.randrange(0, 6))]
    if c == 8: return [[rnd.randrange(0, 5), rkey(), rval(depth + 1)] for _ in range(rnd.randrange(0, 4))]
    return {rkey() if rnd.random() < .5 else 'a': rval(depth + 1)}

# One request frame: a real op with plausible or wrong arguments, an
# unknown op, or a non-integer op; sometimes with bytes flipped.
def req():
    op = rnd.choice([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 200, -1])
    rid = rnd.randrange(0, 2**64)
    if op == 3: args = [rkey()]
    elif op == 4: args = [[rkey() for _ in range(rnd.randrange(0, 8))]]
    elif op == 5: args = [rkey(), rnd.randbytes(rnd.randrange(0, 200))] + ([rnd.randrange(0, 100)] if rnd.random() < .3 else [])
    elif op == 6: args = [[[rkey(), rnd.randbytes(10)] for _ in range(rnd.randrange(0, 5))]]
    elif op == 7: args = [[rkey() for _ in range(rnd.randrange(0, 5))]]
    elif op == 8: args = [[[rnd.randrange(0, 6), rkey(), rval(1)] for _ in range(rnd.randrange(0, 4))], [[rnd.randrange(0, 4), rkey(), rval(1)] for _ in range(rnd.randrange(0, 4))], [[rnd.randrange(0, 4), rkey(), rval(1)] for _ in range(rnd.randrange(0, 3))]]
    elif op == 9: args = [rkey(), rnd.randrange(0, 2**64), rnd.randrange(0, 2000)]
    else: args = [rval() for _ in range(rnd.randrange(0, 4))]
    if rnd.random() < 0.3: args = [rval() for _ in range(rnd.randrange(0, 5))]
    body = mp([op if op >= 0 else 'x', rid] + args)
    if rnd.random() < 0.1:
        b = bytearray(body)
        for _ in range(rnd.randrange(1, 4)):
            if b: b[rnd.randrange(len(b))] = rnd.randrange(256)
        body = bytes(b)
    return struct.pack('>I', len(body)) + body

# A connection that said HELLO; its answers are read and dropped.
def conn():
    s = socket.create_connection(("127.0.0.1", port))
    s.setblocking(False)
    s.send(frame(mp([0, 1, 1, 1, "fuzz"])))
    return s


def frame(body):
    return struct.pack(">I", len(body)) + body


def call(s, body):
    """One well-formed request on a blocking socket: the response body."""
    s.sendall(frame(body))
    hdr = b""
    while len(hdr) < 4:
        hdr += s.recv(4 - len(hdr))
    n = struct.unpack(">I", hdr)[0]
    data = b""
    while len(data) < n:
        data += s.recv(n - len(data))
    return data


tmp = tempfile.mkdtemp(prefix="kvdfuzz.")
portfile, logpath = os.path.join(tmp, "port"), os.path.join(tmp, "kvd.log")
log = open(logpath, "w")
kvd = subprocess.Popen([opts.kvd, "--port", "0", "--port-file", portfile, "--threads", "2"],
                       stdout=log, stderr=log)
for _ in range(2000):
    if os.path.exists(portfile):
        break
    time.sleep(0.01)
port = int(open(portfile).read())

socks = [conn() for _ in range(8)]
end = time.time() + opts.seconds
sent = reconnects = 0
while time.time() < end and kvd.poll() is None:
    for i, s in enumerate(socks):
        try:
            while s.recv(65536):
                pass
            raise ConnectionError  # recv returned b"": kvd closed it
        except BlockingIOError:
            pass
        except OSError:
            s.close()
            socks[i] = conn()
            reconnects += 1
            continue
        data = b"".join(req() for _ in range(rnd.randrange(1, 20)))
        if rnd.random() < 0.02:
            data += rnd.randbytes(rnd.randrange(1, 50))
        try:
            s.send(data)
            sent += 1
        except BlockingIOError:
            pass
        except OSError:
            s.close()
            socks[i] = conn()
            reconnects += 1
for s in socks:
    s.close()

ok = kvd.poll() is None
if ok:
    s = socket.create_connection(("127.0.0.1", port))
    call(s, mp([0, 1, 1, 1, "fuzz-check"]))
    call(s, mp([5, 2, "after", b"fuzz"]))
    got = call(s, mp([3, 3, "after"]))
    ok = b"fuzz" in got
    s.close()
    kvd.send_signal(signal.SIGTERM)
try:
    rc = kvd.wait(timeout=30)
except subprocess.TimeoutExpired:
    kvd.kill()
    rc = "hung"
log.close()
report = [l for l in open(logpath) if "Sanitizer" in l or "runtime error" in l]
print("batches sent %d, reconnects %d, kvd answered after: %s, exit status %s, "
      "sanitizer lines %d (log %s)" % (sent, reconnects, ok, rc, len(report), logpath))
sys.exit(0 if ok and rc == 0 and not report else 1)
