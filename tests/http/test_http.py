"""test_http.py - the fetcher of URL stores (fs/http.c) against a real
nginx on loopback and a fault-injecting proxy in front of it.

    /usr/bin/python3 test_http.py HTTP_FETCH HTTP_FETCH_OOM [TEST_NAME...]

Each test runs http_fetch (one command of the fetcher per run) and checks
its result lines, its stdout, the fetcher's log lines and nginx's access
log.  Exit 0 when every test passed, 1 otherwise.  nginx missing is a
failure: tools/bootstrap.sh installs it.  Timing bounds leave room for
sanitizer builds.
"""

import collections
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.request

from faultproxy import FaultProxy
from nginx import Nginx, make_cert, parse_range

OBJ_SIZE = 3 * 1024 * 1024 + 123
SMALL = b'{"models": ["a", "b"]}\n'
RUN_TIMEOUT = 120
# How late a call may return after its deadline, or after a cancel
# (sanitizers and a busy machine included).
DEADLINE_MARGIN_MS = 1000
CANCEL_MARGIN_MS = 500
SIGV4 = "aws:amz:us-east-1:s3"

DRIVER = None
OOM_DRIVER = None
ENV = None
# No run of the fetcher needs this many allocations.
MAX_INJECTIONS = 1000


class Failure(AssertionError):
    pass


def check(cond, msg):
    if not cond:
        raise Failure(msg)


class Result:
    def __init__(self, proc):
        self.stdout = proc.stdout
        self.log = proc.stderr.decode(errors="replace")
        self.values = {}
        for line in self.log.splitlines():
            if line.startswith("result."):
                k, _, v = line[len("result."):].partition("=")
                self.values[k] = v
        check("rc" in self.values,
              "http_fetch printed no result (exit %d):\n%s"
              % (proc.returncode, self.log))
        for mark in ("ERROR: AddressSanitizer", "runtime error:",
                     "ERROR: LeakSanitizer", "WARNING: ThreadSanitizer"):
            check(mark not in self.log, "sanitizer report:\n" + self.log)

    @property
    def rc(self):
        return self.values["rc"]

    def num(self, key):
        return float(self.values[key])

    def log_lines(self):
        return [line for line in self.log.splitlines()
                if line.startswith("modelfs: ")]

    def __repr__(self):
        return "rc=%s %s\n%s" % (self.rc, self.values, self.log)


def fetch(url, *args, conns=4, deadline=10000, headers=(), sigv4=None,
          ca_file=None, env=None, driver=None):
    cmd = [driver or DRIVER, "-c", str(conns), "-d", str(deadline)]
    if ca_file:
        cmd += ["-C", ca_file]
    for h in headers:
        cmd += ["-H", h]
    if sigv4:
        cmd += ["-s", sigv4]
    cmd += [url] + [str(a) for a in args]
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          env=env or ENV, timeout=RUN_TIMEOUT)
    check(proc.returncode == 0, "http_fetch exited %d:\n%s"
          % (proc.returncode, proc.stderr.decode(errors="replace")))
    return Result(proc)


def expect_rc(r, rc, what):
    check(r.rc == rc, "%s: expected %s, got %r" % (what, rc, r))


# --------------------------------------------------------------------------
# Fixture: one document root and one nginx for the whole run.

class Fixture:
    def __init__(self, workdir):
        self.root = os.path.join(workdir, "root")
        os.makedirs(os.path.join(self.root, "secret"))
        os.makedirs(os.path.join(self.root, "dir"))
        rng = random.Random(20261203)
        self.data = rng.randbytes(OBJ_SIZE)
        self.obj = os.path.join(self.root, "obj.bin")
        with open(self.obj, "wb") as f:
            f.write(self.data)
        with open(os.path.join(self.root, "index.json"), "wb") as f:
            f.write(SMALL)
        with open(os.path.join(self.root, "secret", "obj.bin"), "wb") as f:
            f.write(b"hidden")
        with open(os.path.join(self.root, "dir", "x"), "wb") as f:
            f.write(b"x")
        self.one = os.path.join(workdir, "one-byte")
        with open(self.one, "wb") as f:
            f.write(b"\0")
        self.nginx = Nginx(self.root, deny=("/secret/",))


FX = None


def url():
    return FX.nginx.url


# --------------------------------------------------------------------------
# Ranges

def test_exact_ranges():
    cases = [(0, 1), (0, 4096), (4095, 2), (1234567, 65536),
             (OBJ_SIZE - 1, 1), (OBJ_SIZE - 1000, 1000), (0, OBJ_SIZE)]
    mark = FX.nginx.mark()
    for off, n in cases:
        r = fetch(url(), "range", "obj.bin", off, n)
        expect_rc(r, "OK", "range %d+%d" % (off, n))
        check(r.stdout == FX.data[off:off + n],
              "range %d+%d: bytes differ from the file" % (off, n))
        check(r.num("errors") == 0 and r.num("retries") == 0, repr(r))
    entries = FX.nginx.entries_since(mark, len(cases))
    check([parse_range(e["range"]) for e in entries] ==
          [(off, off + n - 1) for off, n in cases],
          "nginx saw other ranges: %s" % [e["range"] for e in entries])
    check(all(e["status"] == 206 for e in entries), str(entries))


def test_range_past_end():
    r = fetch(url(), "range", "obj.bin", OBJ_SIZE - 10, 20)
    expect_rc(r, "ERANGE", "range across the end")
    check("the object has %d bytes" % OBJ_SIZE in r.log, r.log)
    r = fetch(url(), "range", "obj.bin", 2**64 - 1, 2)
    expect_rc(r, "ERANGE", "range past 2^64")
    check(r.num("requests") == 0 and "past 2^64" in r.log, repr(r))
    r = fetch(url(), "range", "obj.bin", 0, 0)
    expect_rc(r, "OK", "empty range")
    check(r.num("requests") == 0 and r.stdout == b"", repr(r))
    r = fetch(url(), "range", "obj.bin", OBJ_SIZE + 10, 20)
    expect_rc(r, "ERANGE", "range past the end (416)")
    check("HTTP 416" in r.log and r.num("errors") == 1, repr(r))
    check(r.num("retries") == 0, "a 416 is not retried: %r" % r)


def test_not_found():
    r = fetch(url(), "range", "missing.mfs", 0, 100)
    expect_rc(r, "ENOENT", "404")
    check(r.num("errors") == 1 and r.num("retries") == 0, repr(r))
    lines = r.log_lines()
    check(len(lines) == 1, "one log line per failure: %s" % lines)
    check(url() + "missing.mfs" in lines[0] and "bytes=0-99" in lines[0]
          and "HTTP 404" in lines[0] and "ENOENT" in lines[0], lines[0])


def test_forbidden():
    r = fetch(url(), "range", "secret/obj.bin", 0, 4)
    expect_rc(r, "EACCES", "403")
    check("HTTP 403" in r.log, r.log)
    r = fetch(url(), "object", "secret/obj.bin", 100)
    expect_rc(r, "EACCES", "403 on a whole object")


def test_redirect_not_followed():
    # nginx redirects a directory without its slash (301).
    r = fetch(url(), "range", "dir", 0, 4)
    expect_rc(r, "EIO", "301")
    check("redirects are not followed" in r.log, r.log)


def test_bad_names():
    for name in ("a b", "a\nb", ""):
        r = fetch(url(), "range", name, 0, 4)
        expect_rc(r, "EINVAL", "name %r" % name)
        check(r.num("requests") == 0 and r.num("errors") == 1, repr(r))


def test_repeated_lines_rate_limited():
    # 40 identical failures (one-byte "file": every range is 0-0).
    r = fetch(url(), "stress", "missing.mfs", FX.one, 4, 10, 1, 1)
    expect_rc(r, "ENOENT", "404s")
    check(r.num("failures") == 40 and r.num("errors") == 40, repr(r))
    lines = [x for x in r.log_lines() if "missing.mfs" in x]
    check(len(lines) == 1, "identical lines are not repeated: %s" % lines)


# --------------------------------------------------------------------------
# Whole objects

def test_object_and_etag():
    r = fetch(url(), "object", "index.json", 1000)
    expect_rc(r, "OK", "object")
    check(r.stdout == SMALL and int(r.values["len"]) == len(SMALL), repr(r))
    check("unterminated" not in r.values, "body not NUL-terminated")
    etag = r.values["etag"]
    check(etag.startswith('"'), "nginx sends a quoted ETag: %r" % etag)
    mark = FX.nginx.mark()
    r = fetch(url(), "object", "index.json", 1000, etag)
    expect_rc(r, "NOT_MODIFIED", "conditional GET, unchanged")
    check(r.stdout == b"" and r.num("errors") == 0, repr(r))
    e = FX.nginx.entries_since(mark, 1)[-1]
    check(e["if_none_match"] == etag and e["status"] == 304, str(e))
    for bad in ("", '"a"\r\nX-Injected: 1'):
        r = fetch(url(), "object", "index.json", 1000, bad)
        expect_rc(r, "EINVAL", "ETag %r" % bad)
        check(r.num("requests") == 0 and "ETag to send" in r.log, repr(r))
    # A change: new bytes, new mtime, so a new ETag.
    path = os.path.join(FX.root, "index.json")
    new = SMALL.replace(b'"b"', b'"b", "c"')
    with open(path, "wb") as f:
        f.write(new)
    st = os.stat(path)
    os.utime(path, (st.st_atime + 10, st.st_mtime + 10))
    try:
        r = fetch(url(), "object", "index.json", 1000, etag)
        expect_rc(r, "OK", "conditional GET, changed")
        check(r.stdout == new and r.values["etag"] != etag, repr(r))
    finally:
        with open(path, "wb") as f:
            f.write(SMALL)


def test_object_max_bytes():
    r = fetch(url(), "object", "index.json", len(SMALL) - 1)
    expect_rc(r, "EFBIG", "Content-Length over max_bytes")
    check("larger than %d bytes" % (len(SMALL) - 1) in r.log, r.log)
    r = fetch(url(), "object", "index.json", len(SMALL))
    expect_rc(r, "OK", "exactly max_bytes")
    check(r.stdout == SMALL, "body")
    r = fetch(url(), "object", "index.json", 2**64 - 1)
    expect_rc(r, "OK", "max_bytes SIZE_MAX")
    check(r.stdout == SMALL, "body")
    r = fetch(url(), "object", "missing.json", 1)
    expect_rc(r, "ENOENT", "404 whole object")
    r = fetch(url(), "object", "obj.bin", 4096)
    expect_rc(r, "EFBIG", "big object")
    check(r.num("bytes_fetched") < OBJ_SIZE,
          "refused before the download: %r" % r)


def test_object_max_bytes_without_length():
    with FaultProxy(FX.nginx.url) as fp:
        fp.set_faults([{"kind": "nolength"}])
        r = fetch(fp.url, "object", "obj.bin", 100000)
        expect_rc(r, "EFBIG", "body over max_bytes, no Content-Length")
        check(r.num("bytes_fetched") < OBJ_SIZE, repr(r))
        r = fetch(fp.url, "object", "index.json", 1000)
        expect_rc(r, "OK", "body without Content-Length")
        check(r.stdout == SMALL, "body")


def test_size():
    r = fetch(url(), "size", "obj.bin")
    expect_rc(r, "OK", "HEAD")
    check(int(r.values["size"]) == OBJ_SIZE, repr(r))
    r = fetch(url(), "size", "missing.mfs")
    expect_rc(r, "ENOENT", "HEAD 404")
    with FaultProxy(FX.nginx.url) as fp:
        fp.set_faults([{"kind": "nolength"}])
        r = fetch(fp.url, "size", "obj.bin")
        expect_rc(r, "EIO", "HEAD without Content-Length")
        check("no Content-Length" in r.log, r.log)


# --------------------------------------------------------------------------
# Connections

def test_concurrency_and_pool_bound():
    mark = FX.nginx.mark()
    threads, count = 16, 200
    t0 = time.monotonic()
    r = fetch(url(), "stress", "obj.bin", FX.obj, threads, count, 65536, 7,
              conns=4, deadline=60000)
    secs = time.monotonic() - t0
    expect_rc(r, "OK", "stress")
    check(r.num("mismatches") == 0 and r.num("failures") == 0, repr(r))
    n = threads * count
    entries = FX.nginx.entries_since(mark, n)
    check(len(entries) == n, "nginx saw %d requests, expected %d"
          % (len(entries), n))
    conns = {e["conn"] for e in entries}
    check(len(conns) <= 4, "%d connections for max_connections 4"
          % len(conns))
    check(all(e["status"] == 206 for e in entries), "all 206")
    print("    %d ranges (<= 64 KiB) by %d threads over %d connections: "
          "%.2f s, %.0f ranges/s" % (n, threads, len(conns), secs, n / secs))


def test_keepalive_reuse():
    mark = FX.nginx.mark()
    r = fetch(url(), "stress", "obj.bin", FX.obj, 1, 50, 4096, 3, conns=2)
    expect_rc(r, "OK", "sequential ranges")
    check(r.num("mismatches") == 0, repr(r))
    entries = FX.nginx.entries_since(mark, 50)
    conns = collections.Counter(e["conn"] for e in entries)
    check(len(conns) == 1, "one kept-alive connection, got %s" % conns)
    check(max(e["conn_reqs"] for e in entries) == 50, "requests per "
          "connection: %s" % [e["conn_reqs"] for e in entries])


def test_connection_refused():
    with socket.socket() as s:
        # The port stays bound but never listens: connections are
        # refused, and no other test can take it meanwhile.
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        t0 = time.monotonic()
        r = fetch("http://127.0.0.1:%d/" % port, "range", "obj.bin", 0, 4,
                  deadline=1000)
        ms = (time.monotonic() - t0) * 1000
    expect_rc(r, "ETIMEDOUT", "refused until the deadline")
    check(r.num("retries") >= 2, "retried: %r" % r)
    check("connect" in r.log.lower(), r.log)
    check(ms < 1000 + DEADLINE_MARGIN_MS + 500, "took %.0f ms" % ms)


def test_wait_for_connection_times_out():
    # One connection, eight threads at once, a server slower than the
    # deadline: the first thread's transfer holds the connection until
    # its deadline, when the others have less than one attempt's time
    # left: they fail waiting for the connection, without a request.
    # (A thread that a loaded machine starts 50 ms late may still get
    # its turn; all eight never do.)
    with FaultProxy(FX.nginx.url) as fp:
        fp.set_faults([{"kind": "delay", "delay_ms": 3000}])
        t0 = time.monotonic()
        r = fetch(fp.url, "stress", "obj.bin", FX.obj, 8, 1, 100, 1,
                  conns=1, deadline=800)
        ms = (time.monotonic() - t0) * 1000
        expect_rc(r, "ETIMEDOUT", "waiting for a connection")
        check(r.num("failures") == 8 and r.num("requests") < 8, repr(r))
        check("no free connection (of 1)" in r.log, r.log)
        check(ms < 800 + DEADLINE_MARGIN_MS + 500, "took %.0f ms" % ms)


# --------------------------------------------------------------------------
# Faults

def retried_fetch(fp, faults, off=1000, n=300000, **kw):
    fp.set_faults(faults, seed=5)
    r = fetch(fp.url, "range", "obj.bin", off, n, **kw)
    expect_rc(r, "OK", "through %s" % faults)
    check(r.stdout == FX.data[off:off + n], "bytes differ after retries")
    return r


def test_retries():
    with FaultProxy(FX.nginx.url) as fp:
        for fault in ({"kind": "reset", "count": 3},
                      {"kind": "truncate", "count": 3},
                      {"kind": "stall", "count": 1, "keep": 1000,
                       "delay_ms": 100},
                      {"kind": "status", "status": 503, "count": 3},
                      {"kind": "status", "status": 429, "count": 2},
                      {"kind": "status", "status": 500, "count": 1,
                       "body_bytes": 200000}):
            r = retried_fetch(fp, [fault])
            want = fault["count"]
            check(fp.applied.get(fault["kind"]) == want, fp.applied)
            check(r.num("retries") == want and r.num("requests") == want + 1
                  and r.num("errors") == 0,
                  "%s: counters %r" % (fault, r.values))


def test_short_body_is_retried():
    # A well-formed 206 with fewer bytes than asked.
    with FaultProxy(FX.nginx.url) as fp:
        r = retried_fetch(fp, [{"kind": "short", "count": 2}])
        check(r.num("retries") == 2, repr(r))
        fp.set_faults([{"kind": "short"}])
        r = fetch(fp.url, "range", "obj.bin", 0, 1000, deadline=700)
        expect_rc(r, "ETIMEDOUT", "short bodies until the deadline")
        check("short body: 500 of 1000 bytes" in r.log, r.log)


def test_mixed_faults_under_concurrency():
    with FaultProxy(FX.nginx.url) as fp:
        fp.set_faults([{"kind": "reset", "probability": 0.05},
                       {"kind": "truncate", "probability": 0.05},
                       {"kind": "status", "status": 503,
                        "probability": 0.05}], seed=11)
        r = fetch(fp.url, "stress", "obj.bin", FX.obj, 8, 40, 65536, 9,
                  conns=4, deadline=30000)
        expect_rc(r, "OK", "stress through faults")
        check(r.num("mismatches") == 0 and r.num("failures") == 0, repr(r))
        injected = sum(fp.applied.values())
        # libcurl itself retries a request once when a reused kept-alive
        # connection dies before any answer, so some resets cost no
        # retry of ours; a truncated body or a 503 always does.
        must = fp.applied.get("truncate", 0) + fp.applied.get("status", 0)
        check(injected > 0 and must <= r.num("retries") <= injected,
              "retries %s, faults %s" % (r.values["retries"], fp.applied))
        print("    320 ranges, %d faults injected (%s), %s retries"
              % (injected, fp.applied, r.values["retries"]))


def test_flipped_byte_is_delivered():
    # The fetcher moves bytes; checksums are the reader's.  The proxy's
    # flip must reach the caller (later tests rely on it).
    with FaultProxy(FX.nginx.url) as fp:
        fp.set_faults([{"kind": "flip", "count": 1, "at": 7}])
        r = fetch(fp.url, "range", "obj.bin", 100, 16)
        expect_rc(r, "OK", "flipped")
        want = bytearray(FX.data[100:116])
        want[7] ^= 0xFF
        check(r.stdout == bytes(want), "one byte flipped")


def test_server_ignoring_range():
    with FaultProxy(FX.nginx.url) as fp:
        fp.set_faults([{"kind": "ignore_range"}])
        r = fetch(fp.url, "range", "obj.bin", 0, 5000)
        expect_rc(r, "OK", "200 for a range at 0")
        check(r.stdout == FX.data[:5000], "head of the object")
        check(r.num("bytes_fetched") < OBJ_SIZE, "rest not downloaded")
        r = fetch(fp.url, "range", "obj.bin", 10, 5000)
        expect_rc(r, "EIO", "200 for a range not at 0")
        check("ignored the Range header" in r.log, r.log)
        r = fetch(fp.url, "range", "index.json", 0, 5000)
        expect_rc(r, "ERANGE", "200 shorter than a range at 0")


def test_wrong_range_answers():
    with FaultProxy(FX.nginx.url) as fp:
        fp.set_faults([{"kind": "set_range", "range": "bytes=101-200"}])
        r = fetch(fp.url, "range", "obj.bin", 100, 100)
        expect_rc(r, "EIO", "shifted Content-Range")
        check("Content-Range 101-200" in r.log, r.log)
        fp.set_faults([{"kind": "set_range", "range": "bytes=100-300"}])
        r = fetch(fp.url, "range", "obj.bin", 100, 100)
        expect_rc(r, "EIO", "longer body")
        check("body longer than the range" in r.log, r.log)


# --------------------------------------------------------------------------
# Deadline and cancel

def test_deadline():
    with FaultProxy(FX.nginx.url) as fp:
        for fault in ({"kind": "delay", "delay_ms": 5000},
                      {"kind": "stall", "keep": 10, "delay_ms": 5000},
                      {"kind": "status", "status": 503}):
            fp.set_faults([fault])
            t0 = time.monotonic()
            r = fetch(fp.url, "range", "obj.bin", 0, 100, deadline=1000)
            ms = (time.monotonic() - t0) * 1000
            expect_rc(r, "ETIMEDOUT", "deadline with %s" % fault)
            check(ms < 1000 + DEADLINE_MARGIN_MS,
                  "%s: returned after %.0f ms" % (fault, ms))
            check(r.num("elapsed_ms") >= 700,
                  "%s: gave up early (%s ms)" % (fault, r.values["elapsed_ms"]))
            check(r.num("errors") == 1 and len(r.log_lines()) == 1, repr(r))
            print("    %s: -ETIMEDOUT after %s ms (deadline 1000)"
                  % (fault["kind"], r.values["elapsed_ms"]))
        check("HTTP 503" in r.log and "until the deadline" in r.log, r.log)
        check(r.num("retries") >= 3, "503s retried with backoff: %r" % r)


def test_stalled_server_is_left():
    # A server that stops sending mid-body is given up on after the
    # stall time (5 s), well before a long deadline, and the range
    # fetched again.
    with FaultProxy(FX.nginx.url) as fp:
        fp.set_faults([{"kind": "stall", "keep": 100, "delay_ms": 60000,
                        "count": 1}])
        r = fetch(fp.url, "range", "obj.bin", 0, 1000, deadline=30000)
        expect_rc(r, "OK", "after a stall")
        check(r.stdout == FX.data[:1000] and r.num("retries") == 1, repr(r))
        check(4500 < r.num("elapsed_ms") < 8000, repr(r))
        print("    stalled answer left after %s ms, then fetched"
              % r.values["elapsed_ms"])


def test_cancel():
    with FaultProxy(FX.nginx.url) as fp:
        for fault, conns, threads in (
                ({"kind": "delay", "delay_ms": 30000}, 4, 1),
                ({"kind": "stall", "keep": 10, "delay_ms": 30000}, 4, 1),
                ({"kind": "status", "status": 503}, 4, 1),
                ({"kind": "delay", "delay_ms": 30000}, 1, 3)):
            fp.set_faults([fault])
            r = fetch(fp.url, "cancel", "obj.bin", 0, 100, 300, threads,
                      conns=conns, deadline=60000)
            expect_rc(r, "ECANCELED", "cancel with %s" % fault)
            ms = r.num("cancel_to_return_ms")
            check(ms < CANCEL_MARGIN_MS, "%s: %d threads returned %.0f ms "
                  "after the cancel" % (fault, threads, ms))
            print("    cancel %s (%d threads, %d conns): returned %.1f ms "
                  "after" % (fault["kind"], threads, conns, ms))


# --------------------------------------------------------------------------
# Headers and credentials

def test_extra_headers():
    mark = FX.nginx.mark()
    r = fetch(url(), "range", "obj.bin", 0, 10,
              headers=["X-Modelfs-Test: hello there"])
    expect_rc(r, "OK", "extra header")
    e = FX.nginx.entries_since(mark, 1)[-1]
    check(e["test_header"] == "hello there", str(e))


def test_sigv4():
    env = dict(ENV, AWS_ACCESS_KEY_ID="AKIDEXAMPLE",
               AWS_SECRET_ACCESS_KEY="wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
               AWS_SESSION_TOKEN="token-123")
    mark = FX.nginx.mark()
    r = fetch(url(), "range", "obj.bin", 0, 10, sigv4=SIGV4, env=env)
    expect_rc(r, "OK", "SigV4")
    e = FX.nginx.entries_since(mark, 1)[-1]
    auth = e["authorization"]
    # The signature itself can only be checked by S3; here: its form.
    check(re.match(r"AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/\d{8}/"
                   r"us-east-1/s3/aws4_request, SignedHeaders=[a-z0-9;-]+, "
                   r"Signature=[0-9a-f]{64}$", auth), "Authorization: %r" % auth)
    check("x-amz-date" in auth and re.match(r"\d{8}T\d{6}Z$", e["amz_date"]),
          str(e))
    check(e["amz_token"] == "token-123", str(e))
    check("wJalrXUtnFEMI" not in r.log, "secret in the log")
    # Without a session token: no x-amz-security-token header.
    del env["AWS_SESSION_TOKEN"]
    mark = FX.nginx.mark()
    r = fetch(url(), "range", "obj.bin", 0, 10, sigv4=SIGV4, env=env)
    expect_rc(r, "OK", "SigV4 without token")
    e = FX.nginx.entries_since(mark, 1)[-1]
    check(e["amz_token"] == "" and e["authorization"].startswith(
        "AWS4-HMAC-SHA256 "), str(e))


def test_sigv4_missing_keys():
    env = {k: v for k, v in ENV.items() if not k.startswith("AWS_")}
    r = fetch(url(), "open", sigv4=SIGV4, env=env)
    expect_rc(r, "EINVAL", "SigV4 without keys")
    check("AWS_ACCESS_KEY_ID" in r.log and "AWS_SECRET_ACCESS_KEY" in r.log,
          r.log)
    env["AWS_ACCESS_KEY_ID"] = "AKIDEXAMPLE"
    r = fetch(url(), "open", sigv4=SIGV4, env=env)
    expect_rc(r, "EINVAL", "SigV4 without the secret")
    env["AWS_SECRET_ACCESS_KEY"] = "s"
    env["AWS_SESSION_TOKEN"] = "bad token"
    r = fetch(url(), "open", sigv4=SIGV4, env=env)
    expect_rc(r, "EINVAL", "session token with a blank")
    check("AWS_SESSION_TOKEN" in r.log, r.log)


def test_bad_options():
    cases = [
        (("http://127.0.0.1:1/x",), {}, "must end in '/'"),
        (("ftp://127.0.0.1/",), {}, "is not http:// or https://"),
        (("http:///",), {}, "has no host"),
        (("http://a b/",), {}, "blank or a control"),
        ((url(),), {"conns": 0}, "max_connections 0"),
        ((url(),), {"conns": 100000}, "max_connections 100000"),
        ((url(),), {"deadline": 0}, "deadline_ms 0 is shorter"),
        ((url(),), {"deadline": 49}, "deadline_ms 49 is shorter"),
        ((url(),), {"headers": ["NoColon"]}, "is not one 'Name: value'"),
        ((url(),), {"headers": [": empty name"]}, "is not one"),
    ]
    for args, kw, msg in cases:
        r = fetch(*args, "open", **kw)
        expect_rc(r, "EINVAL", "options %s %s" % (args, kw))
        check(msg in r.log, "%s %s: %r not in %r" % (args, kw, msg, r.log))
    r = fetch(url(), "open", headers=["X-Ok: fine"])
    expect_rc(r, "OK", "good options")
    r = fetch("HTTPS://example.invalid/", "open")
    expect_rc(r, "OK", "https, scheme in capitals")


def test_faultproxy_as_a_process():
    # The proxy run on its own, controlled over HTTP (for tests that
    # put it in front of daemons in other processes).
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                          "..", "support", "faultproxy.py")
    proc = subprocess.Popen([sys.executable, script, FX.nginx.url],
                            stdout=subprocess.PIPE, text=True)
    try:
        purl = proc.stdout.readline().strip()
        check(purl.startswith("http://127.0.0.1:"), repr(purl))
        control = purl + "__faults__"
        req = urllib.request.Request(control, data=json.dumps(
            {"seed": 3, "faults": [{"kind": "status", "status": 503,
                                    "count": 2}]}).encode(), method="POST")
        with urllib.request.urlopen(req, timeout=10) as resp:
            check(resp.status == 200, "control POST")
        r = fetch(purl, "range", "obj.bin", 77, 1000)
        expect_rc(r, "OK", "through the proxy process")
        check(r.stdout == FX.data[77:1077] and r.num("retries") == 2,
              repr(r))
        with urllib.request.urlopen(control, timeout=10) as resp:
            counters = json.load(resp)
        check(counters["applied"] == {"status": 2}
              and counters["requests"] == 3, str(counters))
    finally:
        proc.terminate()
        proc.wait(10)


# --------------------------------------------------------------------------
# A caching proxy between fetchers and the origin (nginx.py's cache modes)

def fetch_many(n, url, *args, **kw):
    """@n drivers at once with the same arguments; their results."""
    cmd = [DRIVER, "-c", "2", "-d", "30000", url] + [str(a) for a in args]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, env=ENV)
             for _ in range(n)]
    out = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=RUN_TIMEOUT)
        check(p.returncode == 0, "http_fetch exited %d:\n%s"
              % (p.returncode, stderr.decode(errors="replace")))
        out.append(Result(subprocess.CompletedProcess(
            cmd, p.returncode, stdout, stderr)))
    return out


def test_caching_proxy():
    # Three fetchers asking the same ranges at once (same seed: the same
    # random ranges) through one caching proxy: the origin serves each
    # range (or slice) once.
    for mode in ("range", "slice"):
        with Nginx(proxy_to=FX.nginx.url, cache=mode,
                   slice_size="256k") as px:
            mark = FX.nginx.mark()
            results = fetch_many(3, px.url, "stress", "obj.bin", FX.obj,
                                 2, 10, 65536, 42)
            for r in results:
                expect_rc(r, "OK", "through the %s cache" % mode)
                check(r.num("mismatches") == 0, repr(r))
            # The proxy logs a request after the origin's answer to it
            # has come; then the origin's entries are (nearly) there.
            hits = sum(e["cache"] == "HIT" for e in px.entries(60))
            time.sleep(0.2)
            origin = FX.nginx.entries_since(mark)
            ranges = collections.Counter(e["range"] for e in origin)
            check(max(ranges.values()) == 1,
                  "%s cache: the origin served some ranges twice: %s"
                  % (mode, ranges))
            if mode == "range":
                check(len(ranges) == 20 and hits == 40,
                      "20 distinct ranges, 40 hits: %d, %d"
                      % (len(ranges), hits))
            else:
                check(all((parse_range(k)[0] % (256 << 10)) == 0
                          for k in ranges), "aligned slices: %s" % ranges)
            print("    %s cache: 60 requests, origin served %d (each once), "
                  "%d cache hits" % (mode, len(origin), hits))


# --------------------------------------------------------------------------
# TLS

def test_tls():
    with tempfile.TemporaryDirectory(prefix="modelfs-tls-") as d:
        cert, key = make_cert(d)
        with Nginx(FX.root, tls=(cert, key)) as ng:
            check(ng.url.startswith("https://"), ng.url)
            r = fetch(ng.url, "range", "obj.bin", 5000, 70000, ca_file=cert)
            expect_rc(r, "OK", "HTTPS with the server's CA")
            check(r.stdout == FX.data[5000:75000], "bytes over TLS")
            mark = ng.mark()
            r = fetch(ng.url, "stress", "obj.bin", FX.obj, 4, 20, 4096, 2,
                      conns=2, ca_file=cert)
            expect_rc(r, "OK", "HTTPS, concurrent")
            check(r.num("mismatches") == 0, repr(r))
            conns = {e["conn"] for e in ng.entries_since(mark, 80)}
            check(len(conns) <= 2, "%d TLS connections for 2" % len(conns))
            # The system's CAs do not know a self-signed certificate:
            # a permanent failure, not retried.
            r = fetch(ng.url, "range", "obj.bin", 0, 10)
            expect_rc(r, "EIO", "HTTPS, unknown CA")
            check(r.num("retries") == 0 and "certificate" in r.log, repr(r))
            r = fetch(ng.url, "range", "obj.bin", 0, 10,
                      ca_file=os.path.join(d, "missing.pem"))
            expect_rc(r, "EIO", "HTTPS, missing CA file")
            check("CA cert" in r.log, r.log)


# --------------------------------------------------------------------------
# Allocation failures

def test_allocation_failures():
    env = dict(ENV, AWS_ACCESS_KEY_ID="AKIDEXAMPLE",
               AWS_SECRET_ACCESS_KEY="secret", AWS_SESSION_TOKEN="tok")
    cases = [
        (("open",), {"headers": ["X-A: 1", "X-B: 2"], "sigv4": SIGV4},
         "OK"),
        (("object", "index.json", 1000, '"old-etag"'),
         {"headers": ["X-A: 1"]}, "OK"),
        (("object", "obj.bin", OBJ_SIZE), {}, "OK"),
        (("range", "obj.bin", 10, 100), {"headers": ["X-A: 1"]}, "OK"),
        (("size", "obj.bin"), {}, "OK"),
        (("range", "missing.mfs", 0, 10), {}, "ENOENT"),
    ]
    for args, kw, want in cases:
        for n in range(MAX_INJECTIONS):
            env["HF_FAIL_ALLOC"] = str(n)
            r = fetch(url(), *args, env=env, driver=OOM_DRIVER, **kw)
            if r.values["alloc_hit"] == "0":
                expect_rc(r, want, "%s, no allocation failed" % (args,))
                break
            expect_rc(r, "ENOMEM", "%s, allocation %d failed" % (args, n))
        else:
            raise Failure("%s: more than %d allocations"
                          % (args, MAX_INJECTIONS))
        print("    %s: %d allocations, each failed once" % (args[0], n))


TESTS = [v for k, v in list(globals().items()) if k.startswith("test_")]


def main(argv):
    global DRIVER, OOM_DRIVER, ENV, FX
    if len(argv) < 3:
        print("usage: test_http.py HTTP_FETCH HTTP_FETCH_OOM [TEST...]",
              file=sys.stderr)
        return 2
    DRIVER = os.path.abspath(argv[1])
    OOM_DRIVER = os.path.abspath(argv[2])
    ENV = dict(os.environ)
    chosen = [t for t in TESTS if len(argv) == 3 or t.__name__ in argv[3:]]
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("terminated"))
    failed = []
    with tempfile.TemporaryDirectory(prefix="modelfs-http-") as work:
        FX = Fixture(work)
        with FX.nginx:
            for t in chosen:
                t0 = time.monotonic()
                try:
                    t()
                    print("ok   %s (%.2f s)" % (t.__name__,
                                                time.monotonic() - t0),
                          flush=True)
                except Exception:
                    failed.append(t.__name__)
                    print("FAIL %s" % t.__name__, flush=True)
                    traceback.print_exc()
                    sys.stdout.flush()
            status = FX.nginx.stop()
    check_ok = status == 0
    if not check_ok:
        print("FAIL nginx exit status %r" % status)
        failed.append("nginx-exit")
    print("%d tests, %d failed %s" % (len(chosen), len(failed), failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
