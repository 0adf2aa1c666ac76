"""Live test: release tracking.

Two holder processes hold files of a model (one maps an array, one keeps
two files open); .status and the model directory's xattrs
(user.modelfs.open_handles, user.modelfs.holders) list exactly their
pids, with command names, handle counts and the files held.  When one
lets go (its process still alive), only the other is listed; when both
have, nobody is.  A mapping counts until it is unmapped, though its
descriptor was closed at once.  Looking at the model (stat, listing,
xattrs, .status) holds nothing.  The root tells the store directory
(user.modelfs.store_dir)."""

import os
import subprocess
import sys

import live
from live import h

HOLDER = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                      "holder.py")


class Holder:
    def __init__(self, mode, paths):
        self.p = subprocess.Popen([sys.executable, HOLDER, mode] + paths,
                                  stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE)
        self.expect("ready")

    def expect(self, word):
        line = self.p.stdout.readline().decode().strip()
        h.check(line == word, "holder %d said %r, expected %r" %
                (self.p.pid, line, word))

    def release(self):
        self.p.stdin.write(b"\n")
        self.p.stdin.flush()
        self.expect("released")

    def finish(self):
        if self.p.poll() is None:
            try:
                self.p.stdin.write(b"\n\n")
                self.p.stdin.close()
            except OSError:
                pass
            try:
                self.p.wait(5)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()


def usage(m, key):
    """(open_handles, [(pid, comm, handles, files)]) from .status, and
    (open_handles, holders) from the xattrs."""
    st = live.status_model(m, key)
    h.check(st is not None, "%s not in .status" % key)
    hs = [(x["pid"], x["comm"], x["handles"], x["files"])
          for x in st["holders"]]
    xo = os.getxattr(m.p(key), "user.modelfs.open_handles").decode()
    xh = os.getxattr(m.p(key), "user.modelfs.holders").decode()
    return (st["open_handles"], hs), (int(xo), xh)


def main(work):
    store = work.dir("store")
    live.pack_version(work, os.path.join(store, "held.mfs"), 3)
    holders = []
    with h.mounted(work, store) as m:
        try:
            run(m, store, holders)
        finally:
            for x in holders:
                x.finish()


def run(m, store, holders):
    h.check(os.getxattr(m.path, "user.modelfs.store_dir").decode() ==
            os.path.realpath(store), "store_dir xattr")
    h.check("user.modelfs.store_dir" in os.listxattr(m.path),
            "root xattrs: %s" % os.listxattr(m.path))
    h.check(m.status()["store_dir"] == os.path.realpath(store),
            ".status store_dir")
    h.check(sorted(os.listxattr(m.p("held"))) ==
            ["user.modelfs.holders", "user.modelfs.open_handles"],
            "model xattrs: %s" % os.listxattr(m.p("held")))
    os.listdir(m.p("held"))
    h.check(usage(m, "held") == ((0, []), (0, "")), "idle: %r" %
            (usage(m, "held"),))

    a = Holder("map", [m.p("held", "arr0.npy")])
    holders.append(a)
    b = Holder("open", [m.p("held", "arr1.npy"),
                        m.p("held", "metadata.json")])
    holders.append(b)
    pa, pb = a.p.pid, b.p.pid
    st, xa = usage(m, "held")
    want = sorted([(pa, "python3", 1, ["arr0.npy"]),
                   (pb, "python3", 2, ["metadata.json", "arr1.npy"])])
    h.check(st == (3, want), ".status with two holders: %r, want %r" %
            (st, (3, want)))
    h.check(xa == (3, ",".join(str(p) for p in sorted([pa, pb]))),
            "xattrs with two holders: %r" % (xa,))

    a.release()
    live.wait_for(lambda: usage(m, "held")[0][0] == 2, 2.0,
                  "the mapping's release")
    st, xa = usage(m, "held")
    h.check(st == (2, [(pb, "python3", 2, ["metadata.json", "arr1.npy"])]),
            ".status with one holder: %r" % (st,))
    h.check(xa == (2, str(pb)), "xattrs with one holder: %r" % (xa,))
    b.release()
    live.wait_for(lambda: usage(m, "held") == ((0, []), (0, "")), 2.0,
                  "every release")
    totals = m.status()["totals"]
    h.check(totals["open_handles"] == 0, "totals %r" % totals)
    m.check_alive()


if __name__ == "__main__":
    h.run(main)
