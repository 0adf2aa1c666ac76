"""Remote test 4: a fleet behind one caching proxy.

Three daemons (three mountpoints, three cache directories) mount the
store through one nginx caching proxy (the slice module: aligned 1 MiB
slices, each cached once) in front of the origin nginx.  All three read
every array at the same time; every byte is right, and the origin serves
each slice of each object once.
"""

import collections
import contextlib
import os
import threading

import numpy as np

import remote as r  # first: puts the mount harness on the path
import harness as h

DAEMONS = 3
SLICE = 1 << 20  # the proxy's slice size (nginx.py's default, "1m")


def make_origin(work, rng):
    origin = work.dir("origin")
    models = {
        "raw": [h.Array("a", rng.standard_normal(400000)),
                h.Array("b", rng.integers(0, 1 << 40, 200000))],
        "lz": [h.Array("z", h.compressible_array(rng, "int64", 500000))],
    }
    for key, arrays in models.items():
        h.pack(work, os.path.join(origin, key + ".mfs"), arrays,
               lz4=key == "lz", chunk_size=r.CHUNK)
    r.index(origin)
    return origin, models


def read_everything(m, models, errors):
    for key, arrays in models.items():
        for a in arrays:
            try:
                got = r.read_all(m.p(key, a.name + ".npy"))
                if got[h.npy_header_len(a):] != a.raw:
                    errors.append("%s: %s/%s differs" % (m.path, key,
                                                          a.name))
            except OSError as e:
                errors.append("%s: %s/%s: %s" % (m.path, key, a.name, e))


def main(work):
    rng = np.random.default_rng(14)
    origin_dir, models = make_origin(work, rng)
    with r.Nginx(origin_dir) as origin, \
            r.Nginx(proxy_to=origin.url, cache="slice") as proxy, \
            contextlib.ExitStack() as stack:
        mounts = [stack.enter_context(
            r.mount_url(work, proxy.url, work.dir("cache%d" % i),
                        ["--poll", "0"], name="mnt%d" % i))
            for i in range(DAEMONS)]
        errors = []
        threads = [threading.Thread(target=read_everything,
                                    args=(m, models, errors))
                   for m in mounts]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        h.check(not errors, "\n".join(errors))
        seen = collections.Counter(
            (e["uri"], e["range"]) for e in origin.entries()
            if e["method"] == "GET")
        twice = {k: n for k, n in seen.items() if n > 1}
        h.check(not twice, "the origin served these more than once: %s" %
                twice)
        sent = sum(e["body_bytes_sent"] for e in origin.entries())
        stored = sum(os.path.getsize(os.path.join(origin_dir, k + ".mfs"))
                     for k in models)
        h.log("fleet of %d: origin sent %d bytes for %d stored, in %d "
              "requests; the proxy answered %d" %
              (DAEMONS, sent, stored, sum(seen.values()),
               len(proxy.entries())))
        # Each object at most once, in whole slices (and the index).
        h.check(sent <= stored + (len(models) + 1) * SLICE,
                "the origin sent %d bytes for %d stored" % (sent, stored))


if __name__ == "__main__":
    h.run(main)
