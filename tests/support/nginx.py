"""nginx.py - a real nginx on loopback for tests (Debian's nginx-light).

Import it from any test directory: the suites that use it put
tests/support on PYTHONPATH (see ``support_python_path`` in
tests/meson.build), or a script does
``sys.path.insert(0, os.path.join(os.environ["MODELFS_SOURCE_DIR"],
"tests", "support"))``.  Standard library only.

``Nginx(root)`` serves the directory ``root`` on a free 127.0.0.1 port;
``Nginx(proxy_to=url, cache="range"|"slice")`` is a caching reverse proxy
in front of another origin.  Start and stop it with ``with Nginx(...) as
ng:`` (or ``start()`` / ``stop()``); ``ng.url`` is the base URL, ending
in '/'.  nginx runs in the foreground as a child of the test
(``nginx -p DIR -c DIR/nginx.conf -g 'daemon off;'``) with every file it
writes (config, pid, temp paths, error and access logs, cache) inside its
own temporary directory, so any number can run at once and nothing is
left behind.  nginx never outlives the test: it gets SIGTERM when the
process that started it dies, however it dies (``setpriv --pdeathsig``),
and instances still running at interpreter exit are stopped.  As root, the workers run as root too (``user root root``):
nginx would otherwise drop them to ``nobody``, who cannot read a test's
private temporary directory.

The access log has one JSON object per request (``ng.entries()``):
``conn`` ($connection, the connection's serial number: the number of
distinct values is the number of connections used), ``conn_reqs``
($connection_requests), ``method``, ``uri``, ``status``, ``range``
($http_range), ``bytes_sent``, ``body_bytes_sent``, ``authorization``,
``amz_token`` ($http_x_amz_security_token), ``amz_date``, ``if_none_match``,
``test_header`` ($http_x_modelfs_test), ``cache``
($upstream_cache_status, in proxy mode).  nginx writes an entry once the
response is sent, so a client can see its answer a moment before the
entry exists: ``entries(at_least=n)`` waits (bounded) for n entries.

``deny=("/secret/",)`` makes nginx answer 403 under those URI prefixes.

``tls=make_cert(dir)`` serves HTTPS with a self-signed certificate for
127.0.0.1 (made with the openssl command); ``ng.url`` is then https://.

Caching proxy (``cache=``): the cache lives in the proxy's directory;
``proxy_cache_lock`` makes concurrent misses for one key wait for the
first, so the origin serves each key once even when several clients ask
at the same time.
- ``cache="range"``: the key is the URI plus the client's Range header,
  which is passed on as is (``proxy_set_header Range $http_range``), and
  200 and 206 answers are cached.  The origin sees exactly the ranges the
  clients ask for, each once.  Checked by hand: three clients asking the
  same 5 ranges of one object, concurrently, through one proxy -> the
  origin's log has 5 entries, one per range, all 206; the proxy's has 15,
  10 of them with cache HIT.
- ``cache="slice"``: nginx's slice module (present in nginx-light;
  ``nginx -V`` lists --with-http_slice_module) fetches aligned slices of
  ``slice_size`` bytes from the origin, caches each, and answers any range
  from them.  The origin sees each slice once, whatever ranges clients
  ask.
tests/http/test_http.py (test_caching_proxy) checks both modes with three
fetcher processes asking the same 20 ranges at once: in range mode the
origin serves 20 requests (each range once) and the proxy answers 40
from its cache; in slice mode (256 KiB) the origin serves each slice
once.
"""

import atexit
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
# util-linux: makes the kernel send nginx SIGTERM (nginx's fast shutdown,
# which takes its workers along) when its parent dies.
SETPRIV = shutil.which("setpriv")
START_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0
ENTRY_TIMEOUT = 5.0
POLL_INTERVAL = 0.02
# Enough requests per kept-alive connection for any test (nginx's default
# of 1000 would close connections under a long stress run, and a test
# that counts connections would see more than the client opened).
KEEPALIVE_REQUESTS = 1000000
START_ATTEMPTS = 3

LOG_FORMAT = (
    '{"conn":$connection,"conn_reqs":$connection_requests,'
    '"method":"$request_method","uri":"$uri","status":$status,'
    '"range":"$http_range","bytes_sent":$bytes_sent,'
    '"body_bytes_sent":$body_bytes_sent,'
    '"authorization":"$http_authorization",'
    '"amz_token":"$http_x_amz_security_token",'
    '"amz_date":"$http_x_amz_date",'
    '"if_none_match":"$http_if_none_match",'
    '"test_header":"$http_x_modelfs_test",'
    '"cache":"$upstream_cache_status"}')


class NginxError(RuntimeError):
    pass


def require_nginx():
    """The path of nginx; raises NginxError naming the package when it is
    missing (tools/bootstrap.sh installs it, so a test fails, not skips)."""
    if not os.access(NGINX, os.X_OK):
        raise NginxError("nginx not found (Debian package nginx-light; "
                         "tools/bootstrap.sh deps installs it)")
    return NGINX


def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Nginx:
    def __init__(self, root=None, *, proxy_to=None, cache=None,
                 slice_size="1m", deny=(), tls=None, workdir=None):
        if (root is None) == (proxy_to is None):
            raise ValueError("give either root or proxy_to")
        if cache not in (None, "range", "slice"):
            raise ValueError("cache is None, 'range' or 'slice'")
        if cache and not proxy_to:
            raise ValueError("cache needs proxy_to")
        self.root = os.path.abspath(root) if root else None
        self.proxy_to = proxy_to.rstrip("/") if proxy_to else None
        self.cache = cache
        self.slice_size = slice_size
        self.deny = tuple(deny)
        self.tls = tls
        self._own_dir = workdir is None
        self.dir = workdir or tempfile.mkdtemp(prefix="modelfs-nginx-")
        self.access_log = os.path.join(self.dir, "access.log")
        self.error_log = os.path.join(self.dir, "error.log")
        self.port = None
        self.proc = None

    @property
    def url(self):
        scheme = "https" if self.tls else "http"
        return "%s://127.0.0.1:%d/" % (scheme, self.port)

    # -- configuration -------------------------------------------------

    def _location(self):
        if not self.proxy_to:
            return "root %s;" % self.root
        lines = [
            "proxy_pass %s;" % self.proxy_to,
            "proxy_http_version 1.1;",
            'proxy_set_header Connection "";',
        ]
        if self.cache:
            lines += [
                "proxy_cache modelfs;",
                "proxy_cache_methods GET HEAD;",
                "proxy_cache_valid 200 206 1h;",
                "proxy_cache_lock on;",
                "proxy_cache_lock_timeout 60s;",
                "proxy_cache_lock_age 60s;",
                "add_header X-Cache-Status $upstream_cache_status;",
            ]
        if self.cache == "range":
            lines += [
                'proxy_cache_key "$scheme$proxy_host$uri $http_range";',
                "proxy_set_header Range $http_range;",
            ]
        elif self.cache == "slice":
            lines += [
                "slice %s;" % self.slice_size,
                'proxy_cache_key "$scheme$proxy_host$uri $slice_range";',
                "proxy_set_header Range $slice_range;",
            ]
        return "\n            ".join(lines)

    def config(self):
        d = self.dir
        user = "user root root;" if os.geteuid() == 0 else ""
        cache_path = ""
        if self.cache:
            cache_path = ("proxy_cache_path %s/cache levels=1:2 "
                          "keys_zone=modelfs:10m max_size=1g inactive=1h "
                          "use_temp_path=off;" % d)
        listen = "listen 127.0.0.1:%d;" % self.port
        if self.tls:
            listen = ("listen 127.0.0.1:%d ssl;\n"
                      "        ssl_certificate %s;\n"
                      "        ssl_certificate_key %s;"
                      % (self.port, self.tls[0], self.tls[1]))
        denies = "\n".join(
            "        location ^~ %s { deny all; }" % p for p in self.deny)
        return f"""{user}
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log info;
events {{ worker_connections 1024; }}
http {{
    log_format modelfs_test escape=json '{LOG_FORMAT}';
    access_log {d}/access.log modelfs_test;
    client_body_temp_path {d}/client_body;
    proxy_temp_path {d}/proxy_temp;
    fastcgi_temp_path {d}/fastcgi_temp;
    uwsgi_temp_path {d}/uwsgi_temp;
    scgi_temp_path {d}/scgi_temp;
    {cache_path}
    default_type application/octet-stream;
    sendfile on;
    keepalive_timeout 300s;
    keepalive_requests {KEEPALIVE_REQUESTS};
    server {{
        {listen}
        server_name localhost;
{denies}
        location / {{
            {self._location()}
        }}
    }}
}}
"""

    # -- life ------------------------------------------------------------

    def start(self):
        require_nginx()
        last = ""
        for _ in range(START_ATTEMPTS):
            self.port = free_port()
            conf = os.path.join(self.dir, "nginx.conf")
            with open(conf, "w") as f:
                f.write(self.config())
            cmd = [NGINX, "-p", self.dir, "-c", conf, "-e", self.error_log,
                   "-g", "daemon off;"]
            if SETPRIV:
                cmd = [SETPRIV, "--pdeathsig", "TERM"] + cmd
            self.proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=open(os.path.join(self.dir, "stderr.log"), "w"))
            if self._wait_listening():
                _running.add(self)
                return self
            last = self._errors()
            self._kill()
            if "Address already in use" not in last:
                break
        raise NginxError("nginx did not start: %s" % last)

    def _errors(self):
        text = ""
        for name in ("stderr.log", "error.log"):
            try:
                with open(os.path.join(self.dir, name)) as f:
                    text += f.read()
            except OSError:
                pass
        return text.strip()[-2000:]

    def _wait_listening(self):
        end = time.monotonic() + START_TIMEOUT
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                return False
            try:
                with socket.create_connection(("127.0.0.1", self.port),
                                              timeout=1):
                    return True
            except OSError:
                time.sleep(POLL_INTERVAL)
        return False

    def _kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def stop(self):
        """Graceful stop (SIGQUIT), SIGKILL after STOP_TIMEOUT.  Returns
        nginx's exit status (None if it had to be killed)."""
        status = None
        if self.proc:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGQUIT)
            try:
                status = self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self._kill()
            self.proc = None
        _running.discard(self)
        return status

    def cleanup(self):
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        try:
            return self.start()
        except BaseException:
            self.cleanup()
            raise

    def __exit__(self, *exc):
        self.cleanup()

    # -- the access log ------------------------------------------------

    def entries(self, at_least=0, timeout=ENTRY_TIMEOUT):
        """The access log as a list of dicts, after waiting up to
        @timeout seconds for @at_least entries."""
        end = time.monotonic() + timeout
        while True:
            out = []
            try:
                with open(self.access_log) as f:
                    out = [json.loads(line) for line in f if line.strip()]
            except FileNotFoundError:
                pass
            if len(out) >= at_least or time.monotonic() >= end:
                return out
            time.sleep(POLL_INTERVAL)

    def mark(self):
        """The number of entries so far: pass it to ``entries_since``."""
        return len(self.entries())

    def entries_since(self, mark, at_least=0, timeout=ENTRY_TIMEOUT):
        return self.entries(mark + at_least, timeout)[mark:]


_running = set()


@atexit.register
def _stop_all():
    for ng in list(_running):
        ng.cleanup()


def make_cert(directory):
    """(cert, key): paths of a new self-signed certificate for IP
    127.0.0.1 in @directory (the certificate is its own CA)."""
    cert = os.path.join(directory, "cert.pem")
    key = os.path.join(directory, "key.pem")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
         "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", key, "-out", cert],
        check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return cert, key


def parse_range(value):
    """(first, last) of a 'bytes=FIRST-LAST' header value."""
    spec = value.split("=", 1)[1]
    first, last = spec.split("-", 1)
    return int(first), int(last)
