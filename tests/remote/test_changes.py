"""Remote test 3: the origin's index changes; the cache's size.

Published with `modelctl index --content-names` (each version of a
container also under a name of its own, so an old version stays
fetchable), polled every second:

- a model published at the origin appears within the poll interval;
- a model replaced: new opens read the new bytes; a process that held
  the old file open keeps reading the old bytes, also those no read had
  fetched yet (from the old version's object);
- a model removed disappears;
- published with plain names (the old object overwritten at the origin),
  a holder keeps the bytes the cache holds.

With --cache-size, reading models one after another never leaves the
cache's files using more than the limit, older models are evicted
(/.status counts the bytes), and an evicted model reads right again.
Without it, a cache directory whose file system fills up evicts the same
way; a model bigger than that file system fails with EIO, logged.
"""

import os
import subprocess

import numpy as np

import remote as r  # first: puts the mount harness on the path
import harness as h

POLL_S = 1
# Models of the cache-size test and the limit: three fit, four do not.
CACHE_MODELS = 5
CACHE_MODEL_ELEMS = 150000  # 1.2 MB of float64
CACHE_LIMIT = 4 * 1024 * 1024
# Blocks left at both ends of an evicted model's range (header page,
# index, partial blocks): slack on top of the limit.
CACHE_SLACK = 64 * 1024
# The file system of the full-disk test: two of its models fit, not three.
FULL_FS_BYTES = 3 * 1024 * 1024
# A file system with room for the models' headers and indexes, less than
# one chunk of BIG_CHUNK bytes.
TINY_FS_BYTES = 192 * 1024
BIG_CHUNK = 256 * 1024


def listed(m):
    return sorted(n for n in os.listdir(m.path) if not n.startswith("."))


def publish(work, origin, key, arrays, *index_args):
    h.pack(work, os.path.join(origin, key + ".mfs"), arrays,
           chunk_size=r.CHUNK)
    r.index(origin, *index_args)


def content_names(work, m, origin, rng):
    """Publishes 'two', replaces 'one' under a holder; returns what the
    holder read before and after the replace."""
    two = [h.Array("b", rng.standard_normal(1000))]
    publish(work, origin, "two", two, "--content-names")
    r.wait_for(lambda: "two" in listed(m), "published model 'two' shown")
    h.check(h.load_matches(m.p("two", "b.npy"), two[0]), "two/b differs")

    # Replace 'one' while a process holds it, having read one chunk.
    fd = os.open(m.p("one", "a.npy"), os.O_RDONLY)
    try:
        head = os.pread(fd, r.CHUNK, h.NPY_HEADER_SIZE)
        old = m.status()
        new = [h.Array("a", rng.standard_normal(60000))]
        publish(work, origin, "one", new, "--content-names")
        r.wait_for(lambda: m.status()["models"] != old["models"] and
                   h.load_matches(m.p("one", "a.npy"), new[0]),
                   "replaced model 'one' shown with its new bytes")
        rest = os.pread(fd, 10 ** 7, h.NPY_HEADER_SIZE + r.CHUNK)
    finally:
        os.close(fd)
    return head, rest


def main(work):
    rng = np.random.default_rng(13)
    origin = work.dir("origin")
    first = [h.Array("a", rng.standard_normal(60000))]
    h.pack(work, os.path.join(origin, "one.mfs"), first, chunk_size=r.CHUNK)
    r.index(origin, "--content-names")
    cache = work.dir("cache")
    with r.Nginx(origin) as ng:
        with r.mount_url(work, ng.url, cache, ["--poll", str(POLL_S)]) as m:
            h.check(listed(m) == ["one"], "listed: %s" % listed(m))
            head, rest = content_names(work, m, origin, rng)
            h.check(head + rest == first[0].raw,
                    "the holder of the replaced 'one' did not keep its "
                    "bytes")
            os.unlink(os.path.join(origin, "two.mfs"))
            r.index(origin, "--content-names")
            r.wait_for(lambda: "two" not in listed(m),
                       "removed model 'two' gone")
            plain_names(work, m, origin, rng)
    cache_size(work, rng)
    full_disk(work, rng)


def plain_names(work, m, origin, rng):
    """Plain names: the old object is overwritten; a holder keeps what
    the cache has of it."""
    arrays = [h.Array("p", rng.standard_normal(40000))]
    publish(work, origin, "plain", arrays)
    r.wait_for(lambda: "plain" in listed(m), "model 'plain' shown")
    fd = os.open(m.p("plain", "p.npy"), os.O_RDONLY)
    try:
        got = os.pread(fd, 10 ** 7, h.NPY_HEADER_SIZE)
        h.check(got == arrays[0].raw, "plain/p differs")
        newer = [h.Array("p", rng.standard_normal(40000))]
        publish(work, origin, "plain", newer)
        r.wait_for(lambda: h.load_matches(m.p("plain", "p.npy"), newer[0]),
                   "replaced 'plain' shown with its new bytes")
        # The mount's pages of the old file dropped: the daemon serves
        # the old bytes from its cache.
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        got = os.pread(fd, 10 ** 7, h.NPY_HEADER_SIZE)
        h.check(got == arrays[0].raw,
                "the holder of the old 'plain' lost its cached bytes")
    finally:
        os.close(fd)


def cache_size(work, rng):
    origin = work.dir("origin-cache")
    models = {}
    for i in range(CACHE_MODELS):
        key = "c%d" % i
        models[key] = [h.Array("v", rng.standard_normal(CACHE_MODEL_ELEMS))]
        h.pack(work, os.path.join(origin, key + ".mfs"), models[key],
               chunk_size=r.CHUNK)
    r.index(origin)
    cache = work.dir("cache-limited")
    args = ["--cache-size", str(CACHE_LIMIT), "--poll", "0"]
    with r.Nginx(origin) as ng:
        with r.mount_url(work, ng.url, cache, args) as m:
            for key, arrays in list(models.items()) + [("c0", models["c0"])]:
                h.check(h.load_matches(m.p(key, "v.npy"), arrays[0]),
                        "%s/v differs" % key)
                used = r.cache_bytes(cache)
                h.check(used <= CACHE_LIMIT + CACHE_SLACK,
                        "after reading %s the cache uses %d bytes, limit %d;"
                        " status: %s" % (key, used, CACHE_LIMIT,
                                         r.remote_status(m)))
            st = r.remote_status(m)
            h.log("cache limited to %d: uses %d, evicted %d" %
                  (CACHE_LIMIT, r.cache_bytes(cache), st["evicted_bytes"]))
            h.check(st["evicted_bytes"] > 0 and
                    st["cache_size"] == CACHE_LIMIT,
                    "status: %s" % st)


def tmpfs_cache(work, name, size):
    """A cache directory on a tmpfs of @size bytes (unmount it after)."""
    cache = work.dir(name)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%d" % size,
                    "modelfs-test-cache", cache], check=True)
    return cache


def full_disk(work, rng):
    """The cache directory's file system fills up (no --cache-size): the
    least recently read models make room, and a model bigger than the
    whole file system still reads, its chunks evicted behind the reader.
    A chunk that cannot fit at all fails with EIO and a log line saying
    what to do."""
    origin = work.dir("origin-full")
    models = {}
    for i in range(3):
        key = "f%d" % i
        models[key] = [h.Array("v", rng.standard_normal(CACHE_MODEL_ELEMS))]
    models["huge"] = [h.Array("v", rng.standard_normal(FULL_FS_BYTES // 4))]
    for key, arrays in models.items():
        h.pack(work, os.path.join(origin, key + ".mfs"), arrays,
               chunk_size=r.CHUNK)
    big_chunks = [h.Array("v", rng.standard_normal(TINY_FS_BYTES // 2))]
    h.pack(work, os.path.join(origin, "bigchunks.mfs"), big_chunks,
           chunk_size=BIG_CHUNK)
    r.index(origin)
    with r.Nginx(origin) as ng:
        cache = tmpfs_cache(work, "cache-full", FULL_FS_BYTES)
        try:
            with r.mount_url(work, ng.url, cache, ["--poll", "0"]) as m:
                for key in ("f0", "f1", "f2", "f0", "huge"):
                    h.check(h.load_matches(m.p(key, "v.npy"),
                                           models[key][0]),
                            "%s/v differs with the cache disk full" % key)
                h.check(r.remote_status(m)["evicted_bytes"] > 0,
                        "nothing evicted on a full disk")
        finally:
            subprocess.run(["umount", cache], check=False)
        cache = tmpfs_cache(work, "cache-tiny", TINY_FS_BYTES)
        try:
            with r.mount_url(work, ng.url, cache, ["--poll", "0"]) as m:
                r.expect_eio(lambda: r.read_all(m.p("bigchunks", "v.npy")),
                             "a chunk bigger than the cache's disk")
                h.check("even after evicting: set --cache-size below the "
                        "free space" in m.log(), m.log())
        finally:
            subprocess.run(["umount", cache], check=False)


if __name__ == "__main__":
    h.run(main)
