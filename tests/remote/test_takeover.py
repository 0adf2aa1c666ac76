"""Remote test: a store at a URL outlives its serving process.

A model at nginx, mounted by URL, is mapped and half read; the serving
process is killed (SIGKILL); its successor takes the mount over (the
same cache directory, the container descriptors from the supervisor)
and the rest of the mapping, never read before, and an LZ4 model
opened afterwards read the origin's bytes.  .status counts the
takeover and still reports the remote store."""

import mmap
import os
import signal
import time

import numpy as np

import remote as r
from remote import h

RAW_N = 1 << 20  # int64 elements: 8 MiB
TIMEOUT = 10.0


def children(pid):
    out = []
    for tid in os.listdir("/proc/%d/task" % pid):
        with open("/proc/%d/task/%s/children" % (pid, tid)) as f:
            out += [int(x) for x in f.read().split()]
    return out


def main(work):
    rng = np.random.default_rng(5)
    origin = work.dir("origin")
    raw = h.Array("a", np.arange(RAW_N, dtype=np.int64) * 3 + 1)
    lz = h.Array("z", h.compressible_array(rng, "int64", 300000))
    h.pack(work, os.path.join(origin, "raw.mfs"), [raw], chunk_size=r.CHUNK)
    h.pack(work, os.path.join(origin, "lz.mfs"), [lz], lz4=True,
           chunk_size=r.CHUNK)
    r.index(origin)
    cache = work.dir("cache")
    with r.Nginx(origin) as ng:
        with r.mount_url(work, ng.url, cache, ["--poll", "0"]) as m:
            fd = os.open(m.p("raw", "a.npy"), os.O_RDONLY)
            mm = mmap.mmap(fd, 0, prot=mmap.PROT_READ)
            os.close(fd)
            view = np.frombuffer(mm, dtype=np.int64, offset=4096)
            half = RAW_N // 2
            h.check(np.array_equal(view[:half], raw.data[:half]),
                    "first half before the kill")
            sup = m.proc.pid
            old = children(sup)[0]
            os.kill(old, signal.SIGKILL)
            deadline = time.monotonic() + TIMEOUT
            while not [c for c in children(sup) if c != old]:
                h.check(time.monotonic() < deadline, "no successor")
                time.sleep(0.005)
            h.check(np.array_equal(view[half:], raw.data[half:]),
                    "second half, read from the successor")
            del view
            mm.close()
            h.check(h.load_matches(m.p("lz", "z.npy"), lz),
                    "LZ4 model read after the takeover")
            st = m.status()
            h.check(st["takeovers"] == 1 and "remote" in st and
                    st["server_pid"] != old,
                    "after the takeover: %r" %
                    {k: st.get(k) for k in ("takeovers", "server_pid")})
            h.log("URL store: serving process %d killed, %d took over; "
                  "the mapping and a new open read the origin's bytes" %
                  (old, st["server_pid"]))
            m.check_alive()


if __name__ == "__main__":
    h.run(main)
