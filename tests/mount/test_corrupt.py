"""Mount test 5: a corrupted chunk.

One byte of the stored data of chunk K of array "victim" is flipped, in a
raw and in an LZ4 model (chunk located from the container's chunk table,
cross-checked with `modelctl inspect --json`).  Reads covering chunk K fail
with EIO (pread and mmap: SIGBUS); every other chunk of the array, the
other arrays and another, intact model read correctly; /.status counts at
least one checksum failure; the daemon stays alive and logs the failure.
All of it with raw bytes sent by splice (the default) and by pread."""

import errno
import os
import signal

import numpy as np

import harness as h

CS = 4096
K = 3  # the corrupted chunk


def expect_eio(errors, what, fn):
    try:
        fn()
    except OSError as e:
        if e.errno != errno.EIO:
            errors.append("%s: %s, expected EIO" % (what, e))
        return
    errors.append("%s: succeeded, expected EIO" % what)


def mmap_touch_child(path, offset):
    """Forks a child that maps @path and reads the byte at @offset; returns
    its wait status."""
    pid = os.fork()
    if pid == 0:
        try:
            import mmap
            fd = os.open(path, os.O_RDONLY)
            mm = mmap.mmap(fd, 0, prot=mmap.PROT_READ)
            _ = mm[offset]
            os._exit(0)
        except BaseException:  # noqa: B902
            os._exit(2)
    _p, status = os.waitpid(pid, 0)
    return status


def check_served(work, store, arrays, options):
    """Mounts @store with @options and checks every read of it."""
    errors = []
    with h.mounted(work, store, options=options) as m:
        for key in ("raw", "lz4"):
            a = arrays[1]
            data = a.raw
            path = m.p(key, "victim.npy")
            fd = os.open(path, os.O_RDONLY)
            try:
                lo = 4096 + K * CS
                hi = lo + CS
                expect_eio(errors, "%s: pread of chunk %d" % (key, K),
                           lambda: os.pread(fd, CS, lo))
                expect_eio(errors, "%s: pread of 1 byte in chunk %d" %
                           (key, K), lambda: os.pread(fd, 1, lo + 100))
                # Across chunks K-1..K+1: EIO, or a short read that stops
                # before chunk K (read(2) may return what it got first).
                try:
                    got = os.pread(fd, 3 * CS, lo - CS)
                    if not 0 < len(got) <= CS or \
                            got != data[(K - 1) * CS:(K - 1) * CS + len(got)]:
                        errors.append("%s: pread across chunks %d..%d "
                                      "returned %d bytes (bad data served)"
                                      % (key, K - 1, K + 1, len(got)))
                except OSError as e:
                    if e.errno != errno.EIO:
                        errors.append("%s: pread across chunks: %s" %
                                      (key, e))
                expect_eio(errors, "%s: pread of chunk %d again" % (key, K),
                           lambda: os.pread(fd, 10, hi - 10))
                # Every other chunk reads fine, before and after.
                nchunks = (len(data) + CS - 1) // CS
                for c in range(nchunks):
                    if c == K:
                        continue
                    got = os.pread(fd, CS, 4096 + c * CS)
                    if got != data[c * CS:(c + 1) * CS]:
                        errors.append("%s: victim chunk %d wrong" % (key, c))
                hdr = os.pread(fd, 4096, 0)
                if not hdr.startswith(b"\x93NUMPY"):
                    errors.append("%s: victim header unreadable" % key)
                expect_eio(errors, "%s: sequential read of victim.npy" % key,
                           lambda: h.read_file(path))
            finally:
                os.close(fd)
            status = mmap_touch_child(path, 4096 + K * CS + 5)
            if not (os.WIFSIGNALED(status) and
                    os.WTERMSIG(status) == signal.SIGBUS):
                errors.append("%s: touching the corrupt chunk through mmap "
                              "gave wait status %#x, expected SIGBUS" %
                              (key, status))
            status = mmap_touch_child(path, 4096 + (K + 2) * CS + 5)
            if status != 0:
                errors.append("%s: touching a good chunk through mmap gave "
                              "wait status %#x" % (key, status))
            for other in (arrays[0], arrays[2]):
                got = h.read_file(m.p(key, other.name + ".npy"))[4096:]
                if got != other.raw:
                    errors.append("%s/%s.npy wrong" % (key, other.name))
            for n in ("manifest.json", "metadata.json"):
                h.read_file(m.p(key, n))
        for a in arrays:
            if not h.load_matches(m.p("intact", a.name + ".npy"), a):
                errors.append("intact/%s.npy wrong" % a.name)
        m.check_alive()
        st = m.status()
        total = st.get("totals", {}).get("checksum_failures")
        if not isinstance(total, int) or total < 1:
            errors.append(".status totals.checksum_failures is %r, expected"
                          " >= 1: %s" % (total, st))
        log = m.log()
    if "victim" not in log:
        errors.append("daemon log does not mention the bad chunk of "
                      "'victim':\n%s" % log)
    h.check(not errors, "options %r: %d problems:\n  %s" %
            (options, len(errors), "\n  ".join(errors)))



def main(work):
    rng = np.random.default_rng(5)
    victim = np.ascontiguousarray(np.concatenate([
        h.compressible_array(rng, np.int32, 5000),
        h.random_array(rng, "int32", (5003,))]))  # 40012 bytes: 10 chunks
    arrays = [
        h.Array("before", h.random_array(rng, "float32", (3000,))),
        h.Array("victim", victim),
        h.Array("after", h.compressible_array(rng, np.int64, 9000)),
    ]
    store = work.dir("store")
    srcs = {}
    for key, lz4 in (("raw", False), ("lz4", True), ("intact", True)):
        srcs[key] = h.pack(work, os.path.join(store, key + ".mfs"), arrays,
                           lz4=lz4, chunk_size=CS)
    # Corrupt chunk K of "victim" in "raw" and "lz4".
    for key in ("raw", "lz4"):
        path = os.path.join(store, key + ".mfs")
        parsed = h.parse_container(path)
        ins = h.inspect(path)
        ent = next(a for a in parsed["arrays"] if a["name"] == "victim")
        ient = next(a for a in ins["arrays"] if a["name"] == "victim")
        h.check(ient["container_offset"] == ent["data_offset"],
                "%s: inspect container_offset %s, chunk table says %s" %
                (key, ient["container_offset"], ent["data_offset"]))
        h.check(len(ent["chunks"]) == 10 and ient["chunks"] == 10,
                "%s: victim has %d chunks" % (key, len(ent["chunks"])))
        off, slen, _sum = ent["chunks"][K]
        # chunk K is in the compressible half in LZ4 (when K*CS < 20000)
        h.flip_byte(path, ent["data_offset"] + off + slen // 2)
    # Both ways raw bytes reach the kernel: splice and pread.
    for options in ([], ["io=pread"]):
        check_served(work, store, arrays, options)


if __name__ == "__main__":
    h.run(main)
