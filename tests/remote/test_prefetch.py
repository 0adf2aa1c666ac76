"""Remote test 6: prefetching.

- `modelctl prefetch MOUNT KEY` reads the whole model through the mount:
  afterwards, with the origin stopped, every array of it reads right
  from the disk cache.  It refuses an unknown key, a mount of a local
  store and a non-mount (exit 1), and fails (exit 1, naming the file) when
  the origin cannot deliver.
- `modelfs --prefetch` fetches every model in the background: once the
  cache holds them, the origin can go away.
"""

import os
import subprocess

import numpy as np

import remote as r  # first: puts the mount harness on the path
import harness as h


def prefetch(mnt, key):
    p = subprocess.run([h.MODELCTL, "prefetch", mnt, key],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    return p.returncode, p.stdout.decode(), p.stderr.decode()


def make_origin(work, rng):
    origin = work.dir("origin")
    models = {"one": r.random_arrays(rng),
              "two": [h.Array("z", h.compressible_array(rng, "int64",
                                                        200000))]}
    for key, arrays in models.items():
        h.pack(work, os.path.join(origin, key + ".mfs"), arrays,
               lz4=key == "two", chunk_size=r.CHUNK)
    r.index(origin)
    return origin, models


def check_all(m, key, arrays):
    for a in arrays:
        got = r.read_all(m.p(key, a.name + ".npy"))
        h.check(got[h.npy_header_len(a):] == a.raw, "%s/%s differs" %
                (key, a.name))


def with_modelctl(work, origin, models):
    cache = work.dir("cache")
    ng = r.Nginx(origin).start()
    try:
        with r.mount_url(work, ng.url, cache,
                         ["--poll", "0", "--read-deadline", "1"]) as m:
            rc, out, err = prefetch(m.path, "one")
            h.check(rc == 0 and out.startswith("one: ") and "bytes in" in out,
                    "prefetch one: %d\n%s%s" % (rc, out, err))
            rc, out, err = prefetch(m.path, "nothere")
            h.check(rc == 1 and "no model 'nothere'" in err,
                    "prefetch of an unknown key: %d %s" % (rc, err))
            ng.cleanup()
            # A fresh mount (nothing in its page cache) of the same cache,
            # the origin gone: 'one' serves from the disk cache.
        with r.mount_url(work, ng.url, cache,
                         ["--poll", "0", "--read-deadline", "1"]) as m:
            check_all(m, "one", models["one"])
            rc, out, err = prefetch(m.path, "two")
            h.check(rc == 1 and "two/z.npy: reading at byte" in err and
                    "Input/output error" in err,
                    "prefetch with the origin down: %d %s" % (rc, err))
    finally:
        ng.cleanup()
    store = work.dir("local")
    with h.mounted(work, store) as m:
        rc, out, err = prefetch(m.path, "any")
        h.check(rc == 1 and "serves a local store" in err,
                "prefetch on a local mount: %d %s" % (rc, err))
    rc, out, err = prefetch(store, "any")
    h.check(rc == 1 and "is not a modelfs mount" in err,
            "prefetch on a directory: %d %s" % (rc, err))


def with_daemon(work, origin, models):
    cache = work.dir("cache-bg")
    stored = sum(os.path.getsize(os.path.join(origin, k + ".mfs"))
                 for k in models)
    ng = r.Nginx(origin).start()
    try:
        with r.mount_url(work, ng.url, cache, ["--prefetch"]) as m:
            r.wait_for(lambda: r.remote_status(m)["cache_bytes"] >=
                       0.99 * stored, "the cache filled by --prefetch")
        ng.cleanup()
        with r.mount_url(work, ng.url, cache, ["--read-deadline", "1"]) as m:
            for key, arrays in models.items():
                check_all(m, key, arrays)
    finally:
        ng.cleanup()


def main(work):
    rng = np.random.default_rng(16)
    origin, models = make_origin(work, rng)
    with_modelctl(work, origin, models)
    with_daemon(work, origin, models)


if __name__ == "__main__":
    h.run(main)
