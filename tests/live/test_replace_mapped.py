"""Live test: replace a model (a new container renamed over KEY.mfs) while
a process maps its arrays.

The key resolves to a new directory inode at once; the old mapping keeps
reading the old bytes, complete (pages faulted after the replacement
included); a new open reads only the new bytes; a directory opened before
the replacement still lists and opens the old version, entirely; a root
listing opened before the replacement and read after it does not make
the kernel cache the key as the old version again; .status
shows the old model as replaced, with its holder, and the new one as
published; once released, the old model's descriptor is closed."""

import json
import os
import time

import numpy as np

import live
from live import h

BIG = 4 << 20  # int64 elements: 32 MiB, more than the mount's readahead


def main(work):
    store = work.dir("store")
    old = live.pack_version(work, os.path.join(store, "k.mfs"), 1,
                            sizes=(BIG, 5000, 777))
    new_src = work.path("k2.mfs")
    new = live.pack_version(work, new_src, 2, sizes=(BIG, 5000, 777),
                            lz4=True, chunk_size=65536)
    with h.mounted(work, store) as m:
        pid = m.server_pid()
        base = live.store_fds(pid, store)
        ino_old = os.stat(m.p("k")).st_ino
        mm = live.map_array(m.p("k", "arr0.npy"))
        view = np.frombuffer(mm, dtype=np.int64, offset=live.HEADER)
        h.check(view[0] == 1, "old first element %d" % view[0])
        dfd = os.open(m.p("k"), os.O_RDONLY | os.O_DIRECTORY)
        # The root opened before the replacement: its listing snapshot
        # names the old version, yet reading it later must not make the
        # kernel cache the key as the old version again.
        rootfd = os.open(m.path, os.O_RDONLY | os.O_DIRECTORY)

        t0 = time.monotonic()
        live.publish_file(new_src, store, "k")
        live.wait_for(lambda: os.stat(m.p("k")).st_ino != ino_old, 1.0,
                      "the key to name the new version")
        ino_new = os.stat(m.p("k")).st_ino
        listed = {e.name: e.inode() for e in os.scandir(rootfd)}
        os.close(rootfd)
        h.check("k" in listed, "old root handle lists %s" % listed)
        h.check(os.stat(m.p("k")).st_ino == ino_new,
                "reading an old listing brought the old version back")
        h.log("new version visible after %.1f ms" %
              ((time.monotonic() - t0) * 1e3))
        # New opens: only the new bytes.
        for a in new:
            h.check(h.load_matches(m.p("k", a.name + ".npy"), a),
                    "new open of %s does not read the new bytes" % a.name)
        meta = json.loads(h.read_file(m.p("k", "metadata.json")))
        h.check(meta["version"] == 2, "new metadata %r" % meta)
        # The old mapping: the old bytes, all of them.
        h.check(view.tobytes() == old[0].raw,
                "the old mapping read wrong bytes after the replacement")
        # A directory opened before: still the old version, whole.
        names = sorted(os.listdir(dfd))
        h.check(names == ["arr0.npy", "arr1.npy", "arr2.npy",
                          "manifest.json", "metadata.json"],
                "old directory lists %s" % names)
        fd = os.open("metadata.json", os.O_RDONLY, dir_fd=dfd)
        meta = json.loads(h.pread_all(fd, 1 << 20))
        os.close(fd)
        h.check(meta["version"] == 1, "old directory's metadata %r" % meta)
        for a in old[1:]:
            fd = os.open(a.name + ".npy", os.O_RDONLY, dir_fd=dfd)
            data = h.pread_all(fd, 1 << 30)
            os.close(fd)
            h.check(data[live.HEADER:] == a.raw,
                    "old directory's %s has wrong bytes" % a.name)
        os.close(dfd)

        st_old = live.status_model(m, "k", "replaced")
        st_new = live.status_model(m, "k", "published")
        h.check(st_old and st_new, "status: %s" %
                [(x["key"], x["state"]) for x in m.status()["models"]])
        h.check(st_old["generation"] < st_new["generation"] and
                st_old["inode"] == ino_old and
                st_new["inode"] == os.stat(m.p("k")).st_ino,
                "generations/inodes: old %r new %r" % (st_old, st_new))
        h.check(st_old["open_handles"] == 1 and
                st_old["holders"][0]["pid"] == os.getpid() and
                st_old["holders"][0]["files"] == ["arr0.npy"],
                "old model's holders: %r" % st_old["holders"])
        h.check(st_new["open_handles"] == 0, "new: %r" % st_new)

        del view
        mm.close()
        live.wait_for(lambda: live.store_fds(pid, store) == base and
                      live.status_model(m, "k", "replaced") is None, 5.0,
                      "the replaced model to be freed")
        m.check_alive()


if __name__ == "__main__":
    h.run(main)
