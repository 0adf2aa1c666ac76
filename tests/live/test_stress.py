"""Live stress test: readers check whole models while a writer publishes,
replaces and removes them.

Four reader processes repeatedly pick a random key, open its directory
once (so every later lookup goes through that one directory inode, i.e.
one container version), read metadata.json (version and CRC-32 of every
array), list the directory, then map every array and check that its
first 8 bytes hold the same version and that its CRC-32 matches.  A
writer meanwhile makes 1000 operations: publish (a new key), replace (a
new container renamed over the key) or remove, choosing among 24
pre-packed versions (raw and LZ4 arrays) so consecutive versions of a key
always differ.

Asserted: no torn or mixed read; no reader error other than ENOENT (a
key removed or replaced under the reader); the readers did real work;
the daemon's descriptors into the store return to the baseline (the
directory plus one per published model) and .status lists only published
models once the readers stop; the daemon's RSS at the end is below twice
its RSS after warm-up plus 16 MiB; no read error or checksum failure.
The figures are printed.

usage: test_stress.py                      (the test)
       test_stress.py reader MNT KEYS STOP OUT SEED   (one reader)"""

import json
import mmap
import os
import random
import subprocess
import sys
import time
import zlib

import live
from live import h

READERS = 4
OPS = 1000
KEYS = ["s%d" % i for i in range(6)]
VERSIONS = 24
PACE = 0.004  # seconds between writer operations
WARMUP_OPS = 100
RSS_SLACK_KIB = 16 * 1024


# --------------------------------------------------------------------------
# Reader process.

def check_model(dfd, st):
    fd = os.open("metadata.json", os.O_RDONLY, dir_fd=dfd)
    try:
        meta = json.loads(h.pread_all(fd, 1 << 20))
    finally:
        os.close(fd)
    version, crcs = meta["version"], meta["crc32"]
    names = sorted(n for n in os.listdir(dfd) if n.endswith(".npy"))
    if names != sorted(n + ".npy" for n in crcs):
        st["mismatches"].append("listing %s vs metadata %s" %
                                (names, sorted(crcs)))
        return
    for name in names:
        fd = os.open(name, os.O_RDONLY, dir_fd=dfd)
        try:
            size = os.fstat(fd).st_size
            mm = mmap.mmap(fd, size, prot=mmap.PROT_READ)
        finally:
            os.close(fd)
        try:
            data = mm[live.HEADER:]
        finally:
            mm.close()
        stamp = int.from_bytes(data[:8], "little", signed=True)
        if stamp != version:
            st["mismatches"].append("%s: stamp %d in version %d" %
                                    (name, stamp, version))
        elif zlib.crc32(data) != crcs[name[:-4]]:
            st["mismatches"].append("%s of version %d: bad CRC" %
                                    (name, version))
        st["arrays"] += 1
        st["bytes"] += len(data)


def reader(mnt, keys, stop, out, seed):
    rng = random.Random(int(seed))
    keys = keys.split(",")
    st = dict(ops=0, models=0, arrays=0, bytes=0, enoent=0, mismatches=[],
              errors=[])
    while not os.path.exists(stop):
        st["ops"] += 1
        try:
            dfd = os.open(os.path.join(mnt, rng.choice(keys)),
                          os.O_RDONLY | os.O_DIRECTORY)
        except FileNotFoundError:
            st["enoent"] += 1
            continue
        except OSError as e:
            st["errors"].append("open dir: %s" % e)
            continue
        try:
            check_model(dfd, st)
            st["models"] += 1
        except FileNotFoundError:
            st["enoent"] += 1
        except (OSError, ValueError, KeyError) as e:
            st["errors"].append(repr(e))
        finally:
            os.close(dfd)
    with open(out, "w") as f:
        json.dump(st, f)


# --------------------------------------------------------------------------
# The test.

def prepare(work):
    """Packs VERSIONS containers; returns {version: path}."""
    pool = {}
    for v in range(1, VERSIONS + 1):
        path = work.path("v%02d.mfs" % v)
        live.pack_version(work, path, v, sizes=(8192, 65536, 3001, 40000),
                          lz4=v % 2 == 0, chunk_size=16384)
        pool[v] = path
    return pool


class Writer:
    def __init__(self, store, pool, rng):
        self.store, self.pool, self.rng = store, pool, rng
        self.current = {}  # key -> version published
        self.counts = dict(publish=0, replace=0, remove=0)

    def op(self):
        key = self.rng.choice(KEYS)
        cur = self.current.get(key)
        if cur is not None and self.rng.random() < 0.25:
            live.remove(self.store, key)
            del self.current[key]
            self.counts["remove"] += 1
            return
        v = self.rng.choice([x for x in self.pool if x != cur])
        live.publish_file(self.pool[v], self.store, key)
        self.current[key] = v
        self.counts["replace" if cur is not None else "publish"] += 1


def start_readers(work, m):
    stop = work.path("stop")
    procs = []
    for i in range(READERS):
        out = work.path("reader%d.json" % i)
        procs.append((subprocess.Popen(
            [sys.executable, "-B", os.path.abspath(__file__), "reader",
             m.path, ",".join(KEYS), stop, out, str(i)]), out))
    return stop, procs


def stop_readers(stop, procs):
    with open(stop, "w"):
        pass
    results = []
    for p, out in procs:
        try:
            p.wait(60)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            h.fail("reader %d did not stop" % p.pid)
        h.check(p.returncode == 0, "reader %d exit %d" %
                (p.pid, p.returncode))
        with open(out) as f:
            results.append(json.load(f))
    return results


def main(work):
    live.quiet_sanitizer_quarantine()
    store = work.dir("store")
    pool = prepare(work)
    rng = random.Random(1234)
    w = Writer(store, pool, rng)
    for key in KEYS[:3]:
        live.publish_file(pool[1], store, key)
        w.current[key] = 1
    procs = []
    with h.mounted(work, store) as m:
        pid = m.server_pid()
        stop, procs = start_readers(work, m)
        try:
            figures = run(m, w, pid, store)
        finally:
            results = stop_readers(stop, procs)
        check_end(m, w, pid, store, results, figures)


def run(m, w, pid, store):
    t0 = time.monotonic()
    rss_warm = None
    for i in range(OPS):
        w.op()
        if i + 1 == WARMUP_OPS:
            rss_warm = live.rss_kib(pid)
        time.sleep(PACE)
    m.check_alive()
    return dict(seconds=time.monotonic() - t0, rss_warm=rss_warm,
                rss_end=live.rss_kib(pid))


def check_end(m, w, pid, store, results, fig):
    total = {k: sum(r[k] for r in results)
             for k in ("ops", "models", "arrays", "bytes", "enoent")}
    mismatches = [x for r in results for x in r["mismatches"]]
    errors = [x for r in results for x in r["errors"]]
    published = sorted(w.current)
    want_fds = 1 + len(published)
    t0 = time.monotonic()

    def settled():
        models = m.status()["models"]
        return (live.store_fds(pid, store) == want_fds and
                sorted(x["key"] for x in models) == published and
                all(x["state"] == "published" for x in models))
    try:
        live.wait_for(settled, 10.0, "descriptors back to the baseline")
    except h.TestFailure:
        h.fail("after the stress: %d store descriptors, want %d; .status "
               "models %s" % (live.store_fds(pid, store), want_fds,
                              [(x["key"], x["state"], x["open_handles"],
                                x["lookups"])
                               for x in m.status()["models"]]))
    settle = time.monotonic() - t0
    st = m.status()
    rss_final = live.rss_kib(pid)
    h.log("stress: %d writer ops (%s) in %.1f s; readers: %d model "
          "checks, %d arrays mapped, %.1f MiB checked, %d ENOENT, %d "
          "mismatches, %d other errors" %
          (OPS, w.counts, fig["seconds"], total["models"], total["arrays"],
           total["bytes"] / 2**20, total["enoent"], len(mismatches),
           len(errors)))
    h.log("daemon store descriptors at the end: %d (baseline %d = dir + "
          "%d published; settled %.0f ms after the readers stopped); RSS "
          "after warm-up %d KiB, after the ops %d KiB, at the end %d KiB; "
          "retired models %d, store changes %d, notifications %d" %
          (live.store_fds(pid, store), want_fds, len(published),
           settle * 1e3, fig["rss_warm"], fig["rss_end"], rss_final,
           st["totals"]["retired_models"], st["totals"]["store_changes"],
           st["totals"]["notifications"]))
    h.check(not mismatches, "torn or mixed reads: %s" % mismatches[:10])
    h.check(not errors, "reader errors: %s" % errors[:10])
    h.check(total["models"] >= 100 and total["arrays"] >= 400,
            "readers did too little: %r" % total)
    h.check(sorted(os.listdir(m.path)) == sorted([".status"] + published),
            "listing %s, published %s" % (os.listdir(m.path), published))
    h.check(st["totals"]["read_errors"] == 0 and
            st["totals"]["checksum_failures"] == 0,
            "daemon errors: %r" % st["totals"])
    limit = 2 * fig["rss_warm"] + RSS_SLACK_KIB
    h.check(max(fig["rss_end"], rss_final) <= limit,
            "daemon RSS grew: %d KiB after warm-up, %d / %d KiB at the "
            "end (limit %d)" % (fig["rss_warm"], fig["rss_end"], rss_final,
                                limit))
    m.check_alive()


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "reader":
        reader(*sys.argv[2:7])
    else:
        h.run(main)
