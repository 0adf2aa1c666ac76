"""Live test: remove a model while a process maps one of its arrays.

The mapping keeps reading correct bytes (pages faulted after the removal
are served from the removed model); the key disappears from listing and
lookup at once, a new open fails with ENOENT; .status lists the model as
removed with its holder; once the mapping goes, the daemon closes the
backing file (its descriptors into the store return to the baseline) and
.status no longer lists the model.

Entries of a removed model are deleted in the kernel (notify_delete), so
the kernel forgets its inodes as soon as nothing uses them; the test
therefore does not need `echo 2 > /proc/sys/vm/drop_caches`.  If the
descriptor is still open after the wait, it retries once after
drop_caches and says so in the failure message, to tell a lifetime bug
from a dentry the kernel merely kept cached."""

import errno
import os
import time

import numpy as np

import live
from live import h

BIG = 4 << 20  # int64 elements: 32 MiB, more than the mount's readahead


def main(work):
    store = work.dir("store")
    arrays = live.pack_version(work, os.path.join(store, "gone.mfs"), 7,
                               sizes=(BIG, 1000))
    live.pack_version(work, os.path.join(store, "stays.mfs"), 8)
    big = arrays[0]
    with h.mounted(work, store) as m:
        pid = m.server_pid()
        base = live.store_fds(pid, store)
        h.check(base == 3, "baseline: %d store descriptors (dir + 2)" % base)
        mm = live.map_array(m.p("gone", "arr0.npy"))
        view = np.frombuffer(mm, dtype=np.int64, offset=live.HEADER)
        h.check(view[0] == 7, "first element before removal: %d" % view[0])
        st = live.status_model(m, "gone")
        h.check(st and st["open_handles"] == 1,
                "before removal: %r" % st)

        t0 = time.monotonic()
        live.remove(store, "gone")
        live.wait_for(lambda: not live.exists(m.p("gone")), 1.0,
                      "the removed key to disappear")
        h.log("key gone after %.1f ms" % ((time.monotonic() - t0) * 1e3))
        h.check("gone" not in os.listdir(m.path),
                "removed key still listed: %s" % os.listdir(m.path))
        err = h.expect_errno(errno.ENOENT, os.open,
                             m.p("gone", "arr0.npy"), os.O_RDONLY)
        h.check(err is None, err or "")
        # Most pages fault now, served by the removed model.
        h.check(view.tobytes() == big.raw,
                "the mapping read wrong bytes after the removal")
        st = live.status_model(m, "gone", "removed")
        h.check(st is not None, "removed model not in .status: %s" %
                [(x["key"], x["state"]) for x in m.status()["models"]])
        h.check(st["open_handles"] == 1 and not st["in_store"] and
                [x["pid"] for x in st["holders"]] == [os.getpid()] and
                st["holders"][0]["files"] == ["arr0.npy"],
                "removed model's usage: %r" % st)
        h.check(live.store_fds(pid, store) == base,
                "the held model's descriptor must stay open")

        del view
        mm.close()
        t1 = time.monotonic()

        def released():
            return (live.store_fds(pid, store) == base - 1 and
                    not any(x["key"] == "gone"
                            for x in m.status()["models"]))
        try:
            live.wait_for(released, 5.0, "the removed model to be freed")
        except h.TestFailure:
            live.drop_dentries()
            time.sleep(0.5)
            h.fail("removed model still open 5 s after its last unmap "
                   "(after drop_caches: %d descriptors, baseline %d); "
                   ".status: %s" % (live.store_fds(pid, store), base - 1,
                                    m.status()["models"]))
        h.log("backing descriptor closed %.1f ms after the unmap" %
              ((time.monotonic() - t1) * 1e3))
        h.check(h.load_matches(m.p("stays", "arr0.npy"),
                               live.versioned_arrays(8)[0]),
                "the other model is damaged")
        m.check_alive()


if __name__ == "__main__":
    h.run(main)
