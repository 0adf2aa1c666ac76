"""faultproxy.py - an HTTP/1.1 proxy for tests that forwards to an origin
(usually nginx.py's) and breaks some answers on purpose.  Standard library
only; threaded; keeps client connections alive like a real server.

In a test::

    with FaultProxy(origin.url) as fp:
        fp.set_faults([{"kind": "reset", "count": 3}], seed=1)
        ... fetch from fp.url ...
        fp.applied   # {"reset": 3}

or as a separate process: ``python3 faultproxy.py ORIGIN_URL`` prints its
URL on stdout and takes its faults as JSON from ``POST /__faults__``
(body ``{"seed": 1, "faults": [...]}``); ``GET /__faults__`` returns the
counters.

A fault is a dict:
- ``kind``:
  ``reset``     read the request, then close with RST (SO_LINGER 0)
                without answering;
  ``truncate``  send the origin's status and headers (Content-Length
                intact) and only ``keep`` body bytes (default: half), then
                close;
  ``delay``     wait ``delay_ms`` before forwarding (a slow server);
  ``stall``     send the headers and ``keep`` body bytes (default 0), then
                wait ``delay_ms`` and close (a server that stops sending);
  ``status``    answer ``status`` (default 503) with a short body, without
                asking the origin; the connection stays open;
  ``flip``      forward the answer with one body byte inverted (at
                ``at``, default the middle);
  ``nolength``  forward the answer without Content-Length, the body
                ending when the connection closes;
  ``ignore_range`` forward the request without its Range header (a
                server that answers 200 with the whole object);
  ``short``     send the origin's status and headers with Content-Length
                cut to ``keep`` (default: half) and that many body bytes;
                the connection stays open (a consistent but short answer);
  ``set_range`` forward the request with Range: ``range`` instead of the
                client's (a server answering another range than asked).
  ``status`` takes ``body_bytes`` (default: a short text) for the size of
  its error page.
- ``match``: apply only to requests whose path contains this string;
- ``count``: apply to the next N matching requests (default: all);
- ``probability``: apply to each matching request with this chance,
  drawn from a random generator seeded by ``set_faults(seed=)``.
The first fault that matches (and is not used up) applies; requests no
fault claims are forwarded unchanged.  Waits end at once when the proxy
stops.
"""

import http.client
import http.server
import json
import os
import random
import socket
import socketserver
import struct
import sys
import threading
import urllib.parse

CONTROL_PATH = "/__faults__"
# Hop-by-hop headers are the proxy's own business (RFC 9110 7.6.1).
HOP_HEADERS = {"connection", "keep-alive", "proxy-connection", "te",
               "trailer", "transfer-encoding", "upgrade"}
UPSTREAM_TIMEOUT = 30.0
DEFAULT_STATUS = 503


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request, client_address):
        # Clients that go away (a cancel, a timeout, our own resets) are
        # part of the tests, not errors of the proxy.
        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            return
        super().handle_error(request, client_address)


class FaultProxy:
    def __init__(self, origin_url, host="127.0.0.1", port=0):
        u = urllib.parse.urlsplit(origin_url)
        self.origin = (u.hostname, u.port or 80)
        self.origin_prefix = u.path.rstrip("/")
        self._lock = threading.Lock()
        self._faults = []
        self._rng = random.Random(0)
        self.applied = {}
        self.requests = 0
        self.stopping = threading.Event()
        proxy = self

        class Handler(_Handler):
            fp = proxy

        self._server = _Server((host, port), Handler)
        self._thread = None

    @property
    def url(self):
        host, port = self._server.server_address[:2]
        return "http://%s:%d/" % (host, port)

    def set_faults(self, faults, seed=0):
        with self._lock:
            self._faults = [dict(f) for f in faults]
            self._rng = random.Random(seed)
            self.applied = {}

    def _pick(self, path):
        """The fault for a request to @path, or None; counts it."""
        with self._lock:
            self.requests += 1
            for f in self._faults:
                if f.get("match") and f["match"] not in path:
                    continue
                if "count" in f and f["count"] <= 0:
                    continue
                if "probability" in f and \
                        self._rng.random() >= f["probability"]:
                    continue
                if "count" in f:
                    f["count"] -= 1
                kind = f["kind"]
                self.applied[kind] = self.applied.get(kind, 0) + 1
                return dict(f)
            return None

    def counters(self):
        with self._lock:
            return {"requests": self.requests, "applied": dict(self.applied)}

    def start(self):
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self):
        self.stopping.set()
        if self._thread:
            self._server.shutdown()
            self._thread.join()
            self._thread = None
        self._server.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    fp = None  # set by FaultProxy

    def log_message(self, fmt, *args):
        pass

    def do_GET(self):
        self._handle()

    def do_HEAD(self):
        self._handle()

    def do_POST(self):
        if self.path != CONTROL_PATH:
            self.send_error(405)
            return
        n = int(self.headers.get("Content-Length", "0"))
        spec = json.loads(self.rfile.read(n) or b"{}")
        self.fp.set_faults(spec.get("faults", []), spec.get("seed", 0))
        self._reply_json({"ok": True})

    def _reply_json(self, obj):
        body = json.dumps(obj).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _handle(self):
        if self.path == CONTROL_PATH:
            self._reply_json(self.fp.counters())
            return
        fault = self.fp._pick(self.path)
        kind = fault["kind"] if fault else None
        if kind == "reset":
            self._reset()
            return
        if kind == "status":
            self._status(fault.get("status", DEFAULT_STATUS),
                         fault.get("body_bytes"))
            return
        if kind == "delay":
            if self.fp.stopping.wait(fault.get("delay_ms", 0) / 1000.0):
                self.close_connection = True
                return
        status, reason, headers, body = self._forward(fault)
        if kind == "flip" and body:
            at = fault.get("at", len(body) // 2) % len(body)
            body = body[:at] + bytes([body[at] ^ 0xFF]) + body[at + 1:]
        if kind in ("truncate", "stall"):
            default_keep = len(body) // 2 if kind == "truncate" else 0
            keep = min(fault.get("keep", default_keep), len(body))
            self._send_head(status, reason, headers)
            if self.command != "HEAD":
                self.wfile.write(body[:keep])
            self.wfile.flush()
            if kind == "stall":
                self.fp.stopping.wait(fault.get("delay_ms", 0) / 1000.0)
            self.close_connection = True
            return
        if kind == "short":
            body = body[:fault.get("keep", len(body) // 2)]
            headers = [(k, v) for k, v in headers
                       if k.lower() != "content-length"]
            headers.append(("Content-Length", str(len(body))))
        if kind == "nolength":
            headers = [(k, v) for k, v in headers
                       if k.lower() != "content-length"]
            headers.append(("Connection", "close"))
            self.close_connection = True
        self._send_head(status, reason, headers)
        if self.command != "HEAD":
            self.wfile.write(body)

    def _reset(self):
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                   struct.pack("ii", 1, 0))
        self.close_connection = True
        # The descriptor is closed here, with linger 0, as an RST: not
        # by socket.close(), which leaves it open while the handler's
        # rfile and wfile still refer to it (on a kept-alive connection,
        # until they are collected: the client would wait, not see a
        # reset).
        os.close(self.connection.detach())

    def _status(self, status, body_bytes=None):
        body = ("fault injected: %d\n" % status).encode()
        if body_bytes is not None:
            body = b"x" * body_bytes
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Content-Type", "text/plain")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _forward(self, fault):
        """The origin's answer to this request (its Range header changed
        as @fault says): status, reason, headers (hop-by-hop ones
        dropped), body."""
        conn = http.client.HTTPConnection(*self.fp.origin,
                                          timeout=UPSTREAM_TIMEOUT)
        try:
            headers = {k: v for k, v in self.headers.items()
                       if k.lower() not in HOP_HEADERS}
            kind = fault["kind"] if fault else None
            if kind in ("ignore_range", "set_range"):
                headers = {k: v for k, v in headers.items()
                           if k.lower() != "range"}
            if kind == "set_range":
                headers["Range"] = fault["range"]
            conn.request(self.command, self.fp.origin_prefix + self.path,
                         headers=headers)
            resp = conn.getresponse()
            body = resp.read()
            out = [(k, v) for k, v in resp.getheaders()
                   if k.lower() not in HOP_HEADERS]
            return resp.status, resp.reason, out, body
        finally:
            conn.close()

    def _send_head(self, status, reason, headers):
        self.send_response_only(status, reason)
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()


def main(argv):
    if len(argv) != 2:
        print("usage: faultproxy.py ORIGIN_URL", file=sys.stderr)
        return 2
    fp = FaultProxy(argv[1])
    print(fp.url, flush=True)
    try:
        fp._server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
