"""Remote test 1: a store at a real nginx, mounted by URL.

- The models the index lists appear once their header page and index are
  fetched: two Range requests per model, nothing else.
- Reading one array of a three-array model fetches only that array's
  byte ranges, at most 5 % more than its stored bytes.
- Raw and LZ4 arrays of every dtype read bit-identical through
  np.load(mmap_mode="r") and read(2); /.status counts the fetches.
- A byte flipped at the origin: EIO for the chunk that holds it (fetched
  twice, never cached: the cache file keeps a hole there), the other
  arrays fine; once the origin is repaired the same read succeeds.
- A model the index lists whose object is missing (404) is skipped with
  the reason in the log; the others are served.
"""

import os
import shutil
import subprocess

import numpy as np

import remote as r  # first: puts the mount harness on the path
import harness as h

# Page cache a cache file may keep after everything was served: its header
# page, its index, and the partial pages at the ends of the ranges dropped.
ONE_COPY_SLACK = 64 * 1024


def make_origin(work, rng):
    origin = work.dir("origin")
    three = r.random_arrays(rng)
    h.pack(work, os.path.join(origin, "three.mfs"), three,
           chunk_size=r.CHUNK)
    lz = [h.Array("z", h.compressible_array(rng, "int64", 300000)),
          h.Array("f", rng.standard_normal(50000).astype(np.float32))]
    h.pack(work, os.path.join(origin, "packed.mfs"), lz, lz4=True,
           chunk_size=r.CHUNK)
    dts = h.dtype_arrays(rng)
    h.pack(work, os.path.join(origin, "dtypes.mfs"), dts, chunk_size=4096)
    lost = [h.Array("x", np.arange(1000, dtype=np.int32))]
    h.pack(work, os.path.join(origin, "lost.mfs"), lost)
    r.index(origin)
    # Listed, but the object is gone from the origin.
    os.unlink(os.path.join(origin, "lost.mfs"))
    return origin, {"three": three, "packed": lz, "dtypes": dts}


def check_lazy_start(ng, m, origin):
    keys = sorted(n for n in os.listdir(m.path) if not n.startswith("."))
    h.check(keys == ["dtypes", "packed", "three"],
            "models shown: %s" % keys)
    ents = ng.entries()
    for key in ("dtypes", "packed", "three"):
        got = r.ranges_of(ents, key + ".mfs")
        size = os.path.getsize(os.path.join(origin, key + ".mfs"))
        idx = h.parse_container(os.path.join(origin, key + ".mfs"))
        h.check(got == [(0, 4095), (idx["index_offset"], size - 1)],
                "%s: fetched %s at start, expected the header page and "
                "the index" % (key, got))
    h.check("model lost (" in m.log() and "skipped" in m.log(),
            "the 404 object is not named in the log:\n" + m.log())


def check_one_array(ng, m, origin, three):
    mark = ng.mark()
    h.check(h.load_matches(m.p("three", "b.npy"), three[1]),
            "three/b.npy differs")
    got = r.ranges_of(ng.entries_since(mark), "three.mfs")
    lo, hi = r.array_span(os.path.join(origin, "three.mfs"), "b")
    fetched = sum(last - first + 1 for first, last in got)
    h.check(got, "reading three/b fetched nothing")
    h.check(all(lo <= first and last < hi for first, last in got),
            "reading three/b fetched %s, outside its bytes [%d, %d)" %
            (got, lo, hi))
    h.check(fetched <= 1.05 * (hi - lo),
            "reading three/b fetched %d bytes for %d stored" %
            (fetched, hi - lo))
    h.log("one array of three: %d bytes fetched for %d stored (%.3f)" %
          (fetched, hi - lo, fetched / (hi - lo)))


def check_everything(m, models):
    before = r.remote_status(m)
    for key, arrays in models.items():
        for a in arrays:
            path = m.p(key, a.name + ".npy")
            h.check(h.load_matches(path, a), "%s/%s.npy differs (mmap)" %
                    (key, a.name))
            h.check(r.read_all(path)[h.npy_header_len(a):] == a.raw,
                    "%s/%s.npy differs (read)" % (key, a.name))
    st = r.remote_status(m)
    h.check(st["cache_misses"] > before["cache_misses"] and
            st["bytes_fetched"] > before["bytes_fetched"] and
            st["bad_chunks"] == before["bad_chunks"] and
            st["fetch_errors"] == before["fetch_errors"],
            "status before reading everything: %s, after: %s" %
            (before, st))


def check_flipped(work, ng, m, origin, cache, models):
    """A byte of three/a's chunk 2 flipped at the origin."""
    path = os.path.join(origin, "three.mfs")
    good = work.path("three.good")
    shutil.copyfile(path, good)
    lo, hi = r.chunk_span(path, "a", 2)
    h.flip_byte(path, lo + 10)
    before = r.remote_status(m)["bad_chunks"]
    fd = os.open(m.p("three", "a.npy"), os.O_RDONLY)
    try:
        npy_off = 4096 + 2 * r.CHUNK
        r.expect_eio(lambda: os.pread(fd, 100, npy_off), "chunk 2 of a")
        st = r.remote_status(m)
        h.check(st["bad_chunks"] >= before + 2,
                "bad chunk not fetched twice and counted: %s" % st)
        [cfile] = [p for p in r.cache_files(cache)
                   if p.endswith("-%d.mfs" % os.path.getsize(path))]
        h.check(not r.has_data(cfile, lo),
                "the bad chunk was written into the cache")
        # The rest of the array, before and after it, reads fine.
        a = models["three"][0]
        got = os.pread(fd, r.CHUNK, 4096)
        h.check(got == a.raw[:r.CHUNK], "chunk 0 of a differs")
        got = os.pread(fd, r.CHUNK, 4096 + 3 * r.CHUNK)
        h.check(got == a.raw[3 * r.CHUNK:4 * r.CHUNK], "chunk 3 differs")
        h.check("fails its checksum" in m.log(),
                "no log line for the bad chunk:\n" + m.log())
        # Repaired at the origin: nothing bad was cached, so it reads.
        shutil.copyfile(good, path)
        got = os.pread(fd, 100, npy_off)
        h.check(got == a.raw[2 * r.CHUNK:2 * r.CHUNK + 100],
                "chunk 2 after the repair differs")
    finally:
        os.close(fd)


def check_one_copy(cache):
    """Everything was read: the mount's pages hold the bytes, the cache
    files' pages were dropped once served (util-linux fincore)."""
    files = r.cache_files(cache)
    out = subprocess.run(["fincore", "--bytes", "--noheadings", "--raw",
                          "--output", "RES"] + files, check=True,
                         stdout=subprocess.PIPE, text=True).stdout
    resident = sum(int(x) for x in out.split())
    stored = sum(os.path.getsize(p) for p in files)
    h.log("cache files: %d bytes in the page cache of %d" %
          (resident, stored))
    h.check(resident <= ONE_COPY_SLACK * len(files),
            "the cache files keep %d bytes in the page cache" % resident)


def main(work):
    rng = np.random.default_rng(11)
    origin, models = make_origin(work, rng)
    cache = work.dir("cache")
    with r.Nginx(origin) as ng:
        # Nothing is read yet but what the mount needs to list the models:
        # the flipped-byte test needs a chunk no read has cached.
        with r.mount_url(work, ng.url, cache, ["--poll", "0"]) as m:
            check_lazy_start(ng, m, origin)
            check_one_array(ng, m, origin, models["three"])
            check_flipped(work, ng, m, origin, cache, models)
            check_everything(m, models)
            check_one_copy(cache)
            m.check_alive()


if __name__ == "__main__":
    h.run(main)
