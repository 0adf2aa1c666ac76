"""Mount test 4: 8 reader processes scan every array of one LZ4 model
(small chunks, so reads cross chunk boundaries and share the daemon's
decoded-chunk cache) with random pread()s and full sequential reads, while
dropping the page cache of the files so reads keep reaching the daemon.
Every byte must be right."""

import os
import random
import signal
import time
import traceback

import numpy as np

import harness as h

WORKERS = 8
ROUNDS = 1500         # random preads per worker
SEQ_PASSES = 3        # full sequential reads per worker


def worker(idx, mnt, key, expected, out_fd):
    """Child process body; writes a report and exits 0 on success."""
    rnd = random.Random(1000 + idx)
    problems = []
    names = sorted(expected)
    fds = {n: os.open(os.path.join(mnt, key, n + ".npy"), os.O_RDONLY)
           for n in names}
    try:
        for rnd_i in range(ROUNDS):
            n = rnd.choice(names)
            want = expected[n]
            size = len(want)
            off = rnd.randrange(0, size + 1)
            ln = rnd.choice([1, 7, 512, 4096, 5000, 12289, 65536,
                             rnd.randrange(1, 200000)])
            got = os.pread(fds[n], ln, off)
            if got != want[off:off + ln]:
                problems.append("%s: pread(%d, off %d) wrong (%d bytes)" %
                                (n, ln, off, len(got)))
            if rnd_i % 10 == 0:
                os.posix_fadvise(fds[n], 0, 0, os.POSIX_FADV_DONTNEED)
        for _p in range(SEQ_PASSES):
            for n in (names if idx % 2 == 0 else reversed(names)):
                os.posix_fadvise(fds[n], 0, 0, os.POSIX_FADV_DONTNEED)
                with open(os.path.join(mnt, key, n + ".npy"), "rb") as f:
                    data = f.read()
                if data != expected[n]:
                    problems.append("%s: sequential read differs" % n)
    except Exception:  # noqa: B902 - reported to the parent
        problems.append(traceback.format_exc())
    finally:
        for fd in fds.values():
            os.close(fd)
    os.write(out_fd, ("\n".join(problems[:20]) or "ok").encode()[:60000])
    os._exit(1 if problems else 0)


def main(work):
    rng = np.random.default_rng(4)
    arrays = [
        h.Array("zip.i32", h.compressible_array(rng, np.int32, 300001)),
        h.Array("zip.f64", h.compressible_array(rng, np.float64, 70007)),
        h.Array("noise.u8", h.random_array(rng, "uint8", (150001,))),
        h.Array("mixed.f32", np.ascontiguousarray(np.concatenate([
            h.compressible_array(rng, np.float32, 60000),
            h.random_array(rng, "float32", (40003,))]))),
        h.Array("small.i16", h.random_array(rng, "int16", (5, 7))),
    ]
    store = work.dir("store")
    src = h.pack(work, os.path.join(store, "shared.mfs"), arrays, lz4=True,
                 chunk_size=4096)
    man = h.inspect(os.path.join(store, "shared.mfs"))
    h.check(any(a["stored_size"] < a["raw_size"] for a in man["arrays"]),
            "no array was compressed: the test would not exercise LZ4")
    expected = {}
    for a in arrays:
        with open(os.path.join(src, a.name + ".npy"), "rb") as f:
            data = f.read()
        expected[a.name] = (None, data[h.npy_data_offset(
            os.path.join(src, a.name + ".npy")):])
    # A 1 MiB decoded-chunk cache for a ~2.6 MiB model: chunks are evicted
    # and decoded again while eight readers race for them.
    with h.mounted(work, store, options=["cache_mb=1"],
                   args=["--threads", "8"]) as m:
        # The expected file is header (from the mount, checked by np.load in
        # test 1) + data; take the header from the mount once.
        full = {}
        for a in arrays:
            with open(m.p("shared", a.name + ".npy"), "rb") as f:
                hdr = f.read(4096)
            h.check(len(hdr) == 4096 and hdr.startswith(b"\x93NUMPY"),
                    "%s: bad header" % a.name)
            full[a.name] = hdr + expected[a.name][1]
        before = m.status()["totals"]
        t0 = time.monotonic()
        kids = {}
        failures = []
        try:
            for i in range(WORKERS):
                r, w = os.pipe()
                pid = os.fork()
                if pid == 0:
                    os.close(r)
                    try:
                        worker(i, m.path, "shared", full, w)
                    finally:
                        os._exit(3)
                os.close(w)
                kids[pid] = (i, r)
            for pid, (i, r) in list(kids.items()):
                chunks = []
                while True:
                    b = os.read(r, 65536)
                    if not b:
                        break
                    chunks.append(b)
                os.close(r)
                _p, status = os.waitpid(pid, 0)
                del kids[pid]
                report = b"".join(chunks).decode(errors="replace")
                if status != 0:
                    failures.append("worker %d (status %#x): %s" %
                                    (i, status, report))
        finally:
            for pid in kids:  # interrupted: stop the readers
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
        h.log("%d workers done in %.1f s" % (WORKERS, time.monotonic() - t0))
        after = m.status()["totals"]
        h.log("daemon: %s" % {k: after[k] - before.get(k, 0)
                              for k in after if isinstance(after[k], int)})
        # The page cache was dropped again and again, so the daemon served
        # far more than one pass over the model.
        total = sum(len(v) for v in full.values())
        h.check(after["bytes_served"] - before["bytes_served"] > 4 * total,
                "the daemon served only %d bytes (model %d): the readers "
                "did not reach it" %
                (after["bytes_served"] - before["bytes_served"], total))
        h.check(after["chunks_decoded"] > before["chunks_decoded"],
                "no chunk was decoded while the readers ran: the cache was "
                "not exercised")
        m.check_alive()
    h.check(not failures, "\n".join(failures))


if __name__ == "__main__":
    h.run(main)
