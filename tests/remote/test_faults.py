"""Remote test 2: a faulty and an absent origin; restarts.

The daemon reaches nginx through the fault-injecting proxy (one fixed
port, so that the daemon's URL, and with it its cache, survives stopping
and starting the origin).

- Resets, truncated and short bodies, delays, 503s, bodies without a
  length on a fraction of the requests: every byte read is right;
  /.status counts the retries.  Answers that ignore the Range header or
  carry another range: EIO at once, never their bytes.
- Daemon restarted with the origin down: it mounts from the last index
  cached (and says so), arrays already cached serve from the disk cache,
  a read of an uncached array fails with EIO within the read deadline;
  once the origin is back, the next poll takes its index and the
  uncached array reads.
- Daemon restarted with the origin up: nothing cached is fetched again
  (only index.json in nginx's log).
- A torn cache entry (a chunk overwritten in the cache file while the
  daemon was down): found by its checksum and fetched again, alone.
"""

import os

import numpy as np

import remote as r  # first: puts the mount harness on the path
import harness as h

DEADLINE_S = 2
# Chunks of the model read in random order, a fetch each.
SCATTER_CHUNKS = 200
# With faults on about a third of the requests, a fetch needs a few
# attempts now and then: a deadline that lets them happen.
FAULTS_DEADLINE_S = 30
# A read that cannot succeed fails within the deadline plus this (the
# last attempt's own timeout, scheduling).
DEADLINE_SLACK_S = 2.0
POLL_S = 1
FAULTS = [
    {"kind": "reset", "probability": 0.06},
    {"kind": "truncate", "probability": 0.06},
    {"kind": "short", "probability": 0.06},
    {"kind": "delay", "delay_ms": 200, "probability": 0.06},
    {"kind": "status", "status": 503, "probability": 0.06},
    {"kind": "nolength", "probability": 0.06},
]
# Answers that are not the range asked for, from a server that would give
# them again: EIO at once, not a retry until the deadline.
WRONG_ANSWERS = [
    {"kind": "ignore_range"},
    {"kind": "set_range", "range": "bytes=4096-8191"},
]


def make_origin(work, rng):
    origin = work.dir("origin")
    models = {
        "three": r.random_arrays(rng),
        "packed": [h.Array("z", h.compressible_array(rng, "int64", 400000))],
        "cold": [h.Array("x", rng.standard_normal(30000))],
        "odd": [h.Array("y", rng.standard_normal(30000))],
        "scatter": [h.Array("s", rng.standard_normal(SCATTER_CHUNKS *
                                                     r.CHUNK // 8))],
    }
    for key, arrays in models.items():
        h.pack(work, os.path.join(origin, key + ".mfs"), arrays,
               lz4=key == "packed", chunk_size=r.CHUNK)
    r.index(origin)
    return origin, models


def check_model(m, key, arrays):
    """Every array of @key reads right, by read(2) (a failure is an
    OSError naming the file, where a mapping would die of SIGBUS)."""
    for a in arrays:
        got = r.read_all(m.p(key, a.name + ".npy"))
        h.check(got[h.npy_header_len(a):] == a.raw,
                "%s/%s.npy differs" % (key, a.name))


def scattered_reads(m, a, rng):
    """Reads every chunk of Array @a of model "scatter" in random order:
    no readahead, one fetch per chunk."""
    fd = os.open(m.p("scatter", a.name + ".npy"), os.O_RDONLY)
    try:
        for k in rng.permutation(SCATTER_CHUNKS):
            off = int(k) * r.CHUNK
            got = os.pread(fd, r.CHUNK, h.NPY_HEADER_SIZE + off)
            h.check(got == a.raw[off:off + r.CHUNK],
                    "scatter chunk %d differs" % k)
    finally:
        os.close(fd)


def faulty_reads(fp, m, models):
    fp.set_faults(FAULTS, seed=5)
    for key in ("three", "packed"):
        check_model(m, key, models[key])
    scattered_reads(m, models["scatter"][0], np.random.default_rng(3))
    applied = fp.counters()["applied"]
    fp.set_faults([])
    st = r.remote_status(m)
    h.log("faults applied: %s; retries %d" % (applied, st["retries"]))
    h.check(len(applied) >= 5, "too few kinds of faults applied: %s" %
            applied)
    h.check(st["retries"] > 0 and st["bad_chunks"] == 0,
            "status after the faults: %s" % st)
    path = m.p("odd", "y.npy")
    for fault in WRONG_ANSWERS:
        fp.set_faults([fault])
        took = r.expect_eio(lambda: r.read_all(path), fault["kind"])
        h.check(took < DEADLINE_S, "%s: EIO after %.1f s" %
                (fault["kind"], took))
    fp.set_faults([])
    check_model(m, "odd", models["odd"])


def origin_down(m, models):
    """Origin down, the mount fresh: what is cached serves from the disk
    cache; what is not fails with EIO within the deadline."""
    check_model(m, "three", models["three"])
    path = m.p("cold", "x.npy")
    took = r.expect_eio(lambda: r.read_all(path), "uncached read, origin "
                        "down")
    h.log("uncached read with the origin down: EIO after %.2f s" % took)
    h.check(took < DEADLINE_S + DEADLINE_SLACK_S,
            "EIO after %.1f s, deadline %d s" % (took, DEADLINE_S))
    m.check_alive()


def main(work):
    rng = np.random.default_rng(12)
    origin, models = make_origin(work, rng)
    cache = work.dir("cache")
    args = ["--read-deadline", str(DEADLINE_S), "--poll", str(POLL_S)]
    ng = r.Nginx(origin).start()
    fp = r.FaultProxy(ng.url).start()
    port = int(fp.url.rsplit(":", 1)[1].rstrip("/"))
    try:
        with r.mount_url(work, fp.url, cache,
                         ["--read-deadline", str(FAULTS_DEADLINE_S)]) as m:
            faulty_reads(fp, m, models)
        fp.stop()
        ng.cleanup()
        # Restarted with the origin down: the cached index.
        with r.mount_url(work, fp.url, cache, args) as m:
            h.check(r.remote_status(m)["index_from_cache"],
                    "index not taken from the cache")
            h.check("unreachable" in m.log(), "no log line: " + m.log())
            keys = sorted(n for n in os.listdir(m.path) if n[0] != ".")
            h.check(keys == sorted(models), "listed: %s" % keys)
            origin_down(m, models)
            # The origin comes back (same URL): the next poll takes it.
            ng = r.Nginx(origin).start()
            fp = r.FaultProxy(ng.url, port=port).start()
            r.wait_for(lambda: not r.remote_status(m)["index_from_cache"],
                       "the origin's index taken after it came back")
            check_model(m, "cold", models["cold"])
        # Restarted with the origin up: nothing cached is fetched again.
        mark = ng.mark()
        with r.mount_url(work, fp.url, cache, args) as m:
            for key, arrays in models.items():
                check_model(m, key, arrays)
            st = r.remote_status(m)
        uris = [e["uri"] for e in ng.entries_since(mark)]
        h.check(set(uris) <= {"/index.json"},
                "fetched again after a restart: %s" % uris)
        h.check(st["cache_hits"] > 0 and st["cache_misses"] == 0,
                "status after the restart: %s" % st)
        torn_entry(work, ng, fp, origin, cache, args, models)
    finally:
        fp.stop()
        ng.cleanup()


def torn_entry(work, ng, fp, origin, cache, args, models):
    path = os.path.join(origin, "three.mfs")
    size = os.path.getsize(path)
    [cfile] = [p for p in r.cache_files(cache)
               if p.endswith("-%d.mfs" % size)]
    lo, hi = r.chunk_span(path, "b", 1)
    with open(cfile, "r+b") as f:
        f.seek(lo + 100)
        f.write(b"\xff" * 1000)
    mark = ng.mark()
    with r.mount_url(work, fp.url, cache, args) as m:
        check_model(m, "three", models["three"])
    got = r.ranges_of(ng.entries_since(mark), "three.mfs")
    h.check(got == [(lo, hi - 1)], "torn chunk [%d, %d): fetched %s" %
            (lo, hi, got))


if __name__ == "__main__":
    h.run(main)
