"""remote.py - shared machinery of the 'remote' test suite: stores at a
real nginx on loopback, mounted by URL with the real daemon.

Tests run with tests/remote as the working directory; this module puts
tests/mount (the mount harness) and tests/support (nginx, the fault proxy)
on the import path.
"""

import errno
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "mount"))
sys.path.insert(0, os.path.join(HERE, "..", "support"))

import numpy as np  # noqa: E402

import harness as h  # noqa: E402
from nginx import Nginx, free_port  # noqa: E402,F401
from faultproxy import FaultProxy  # noqa: E402,F401

CHUNK = 65536
# Seconds a test waits for the daemon to take in an index change.
CHANGE_TIMEOUT = 10.0
POLL_INTERVAL = 0.05


def index(store, *extra):
    """modelctl index @store (the origin's directory)."""
    h.run_tool([h.MODELCTL, "index", store] + list(extra))


def mount_url(work, url, cache, args=(), name="mnt"):
    """Mounts the store at @url with the disk cache in @cache."""
    return h.mounted(work, url, args=["--cache-dir", cache] + list(args),
                     name=name)


def remote_status(m):
    return m.status()["remote"]


def ranges_of(entries, obj):
    """(first, last) of every GET of object @obj in @entries (nginx
    access-log entries), in order."""
    out = []
    for e in entries:
        if e["uri"] != "/" + obj or e["method"] != "GET":
            continue
        h.check(e["status"] == 206, "GET %s answered %s (range %r)" %
                (obj, e["status"], e["range"]))
        spec = e["range"].split("=", 1)[1]
        first, last = spec.split("-", 1)
        out.append((int(first), int(last)))
    return out


def array_span(container, name):
    """[start, end) of the stored bytes of array @name of @container."""
    for a in h.parse_container(container)["arrays"]:
        if a["name"] == name:
            return a["data_offset"], a["data_offset"] + a["stored_length"]
    h.fail("%s has no array %s" % (container, name))


def chunk_span(container, name, k):
    """[start, end) of stored chunk @k of array @name."""
    for a in h.parse_container(container)["arrays"]:
        if a["name"] == name:
            off, slen, _sum = a["chunks"][k]
            start = a["data_offset"] + off
            return start, start + slen
    h.fail("%s has no array %s" % (container, name))


def read_all(path):
    with open(path, "rb") as f:
        return f.read()


def expect_eio(fn, what):
    """@fn() must fail with EIO; returns the seconds it took."""
    t0 = time.monotonic()
    try:
        fn()
    except OSError as e:
        h.check(e.errno == errno.EIO, "%s: %s, expected EIO" % (what, e))
        return time.monotonic() - t0
    h.fail("%s: succeeded, expected EIO" % what)


def wait_for(cond, what, timeout=CHANGE_TIMEOUT):
    """Waits until @cond() is true; fails naming @what after @timeout."""
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            h.fail("after %.0f s: %s" % (timeout, what))
        time.sleep(POLL_INTERVAL)


def cache_files(cache):
    """Paths of the cache's container files (one origin per cache)."""
    out = []
    for site in os.listdir(cache):
        objs = os.path.join(cache, site, "objects")
        if os.path.isdir(objs):
            out += [os.path.join(objs, n) for n in os.listdir(objs)
                    if not n.startswith(".")]
    return out


def cache_bytes(cache):
    """Disk space the cache's container files take."""
    return sum(os.stat(p).st_blocks * 512 for p in cache_files(cache))


def has_data(path, off):
    """True if the file at @path holds data (not a hole) at @off."""
    fd = os.open(path, os.O_RDONLY)
    try:
        return os.lseek(fd, off, os.SEEK_DATA) == off
    except OSError as e:
        if e.errno == errno.ENXIO:
            return False
        raise
    finally:
        os.close(fd)


def manifest(m, key):
    with open(m.p(key, "manifest.json"), "rb") as f:
        return json.loads(f.read())


def random_arrays(rng, n_big=3):
    """Three float/int arrays of a few chunks each plus a small one."""
    return [h.Array("a", rng.standard_normal(40000)),
            h.Array("b", rng.integers(-2**31, 2**31, (300, 200),
                                      dtype=np.int64)),
            h.Array("c", np.asfortranarray(
                rng.standard_normal((120, 90)).astype(np.float32)))]
