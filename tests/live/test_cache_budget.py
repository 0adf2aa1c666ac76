"""Live test: --cache-budget drops the page cache of released models.

Budget 5 MiB; four models of about 2 MiB each.  H is read and kept
mapped (held); M1, M2, M3 are read whole and closed, in that order
(released).  Released pages then add up to about 6 MiB: the least
recently released (M1) is dropped, and only it; H never is, though it
is over budget on its own.  When H is released, the oldest released
model left (M2) goes.  .status counts the evictions per model and in
all, and mincore() confirms what the kernel caches: dropped models'
pages are gone, the others' are resident."""

import ctypes
import ctypes.util
import mmap
import os

import numpy as np

import live
from live import h

MIB = 1 << 20
ELEMS = (2 * MIB) // 8  # int64: 2 MiB per model

libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t,
                         ctypes.POINTER(ctypes.c_ubyte)]


def resident(path):
    """Fraction of @path's pages in the page cache (maps it: an open
    handle for a moment, no reads)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        mm = mmap.mmap(fd, size, prot=mmap.PROT_READ)
    finally:
        os.close(fd)
    try:
        npages = (size + mmap.PAGESIZE - 1) // mmap.PAGESIZE
        vec = (ctypes.c_ubyte * npages)()
        addr = np.frombuffer(mm, dtype=np.uint8).ctypes.data
        if libc.mincore(ctypes.c_void_p(addr), size, vec) != 0:
            h.fail("mincore: %s" % os.strerror(ctypes.get_errno()))
        return sum(v & 1 for v in vec) / npages
    finally:
        mm.close()


def read_all(path):
    with open(path, "rb") as f:
        while f.read(MIB):
            pass


def evictions(m):
    st = m.status()
    per = {x["key"]: x["page_cache_evictions"] for x in st["models"]}
    return st["totals"]["page_cache_evictions"], per


def check_options(work, store):
    """Bad sizes are usage errors; -o cache_budget= is the same option."""
    for bad in (["--cache-budget", "5X"], ["--cache-budget=-1"],
                ["-o", "cache_budget=1.5G"], ["--cache-budget"]):
        p = h.run_tool([h.MODELFS, "-f"] + bad + [store, work.path("x")],
                       check_ok=False, timeout=30)
        h.check(p.returncode == 2 and b"budget" in p.stderr,
                "%s: exit %d, %r" % (bad, p.returncode, p.stderr))
    with h.mounted(work, store, options=["cache_budget=3K"]) as m:
        st = m.status()["totals"]
        h.check(st["page_cache_budget"] == 3 << 10, "budget %r" % st)


def main(work):
    store = work.dir("store")
    check_options(work, store)
    for key, v in (("H", 1), ("M1", 2), ("M2", 3), ("M3", 4)):
        live.pack_version(work, os.path.join(store, key + ".mfs"), v,
                          sizes=(ELEMS,))
    with h.mounted(work, store, args=["--cache-budget", "5M"]) as m:
        st = m.status()["totals"]
        h.check(st["page_cache_budget"] == 5 * MIB, "budget %r" % st)
        hm = live.map_array(m.p("H", "arr0.npy"))
        # Touch every page (a copy of the mapping reads them all).
        h.check(len(hm[:]) == os.stat(m.p("H", "arr0.npy")).st_size,
                "mapping of H")
        try:
            run(m, hm)
        finally:
            hm.close()


def run(m, hm):
    for key in ("M1", "M2"):
        read_all(m.p(key, "arr0.npy"))
    h.check(evictions(m)[0] == 0, "evicted within budget: %r" %
            (evictions(m),))
    read_all(m.p("M3", "arr0.npy"))
    live.wait_for(lambda: evictions(m)[0] >= 1, 2.0, "an eviction")
    total, per = evictions(m)
    h.check(total == 1 and per == {"H": 0, "M1": 1, "M2": 0, "M3": 0},
            "after M3: %r" % (evictions(m),))
    st = live.status_model(m, "M1")
    h.check(st["page_cache_bytes"] == 0, "M1 estimate %r" % st)
    released = m.status()["totals"]["page_cache_released_bytes"]
    h.check(released <= 5 * MIB, "released bytes over budget: %d" %
            released)

    hm.close()
    live.wait_for(lambda: evictions(m)[0] >= 2, 2.0, "a second eviction")
    total, per = evictions(m)
    h.check(total == 2 and per == {"H": 0, "M1": 1, "M2": 1, "M3": 0},
            "after releasing H: %r" % (evictions(m),))
    fractions = {k: resident(m.p(k, "arr0.npy"))
                 for k in ("H", "M1", "M2", "M3")}
    h.log("resident fractions: %s" % fractions)
    h.check(fractions["M1"] < 0.1 and fractions["M2"] < 0.1,
            "dropped models still cached: %s" % fractions)
    h.check(fractions["H"] > 0.9 and fractions["M3"] > 0.9,
            "kept models not cached: %s" % fractions)
    h.check(evictions(m)[0] == 2, "mincore caused evictions: %r" %
            (evictions(m),))
    m.check_alive()


if __name__ == "__main__":
    h.run(main)
