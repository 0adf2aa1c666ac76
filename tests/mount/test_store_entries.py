"""Mount test: store entries that are not containers' regular files, slow
containers, and more containers than descriptors.

1. At start the store holds a good model next to a FIFO, a character
   device node, a socket, a symbolic link to a good container and one to
   a root-only file.  The daemon mounts, serves only the good model, lists
   each other entry as skipped saying what it is, and never opens the
   FIFO or the device (watched with inotify IN_OPEN).
2. While mounted, a FIFO and symbolic links into the mount itself (to a
   file, a model directory and the root) appear, then a good model is
   published: it shows, the root lists, lookups of the odd keys answer
   ENOENT, nothing hangs.
3. modelctl ls/verify/inspect/put on the FIFO end with an error naming
   it, instead of waiting for a writer.
4. Five containers with 16 MiB of metadata each (slow to load) are
   published at once and looked up while they load, then a small one is
   published: the small one shows before any slow one, and every slow
   one shows later.
5. Under a descriptor limit of 256, a store of 300 containers: the daemon
   mounts and serves what fits, says how many wait, and once containers
   are removed every remaining one shows."""

import ctypes
import errno
import json
import os
import shutil
import subprocess
import time

import numpy as np

import harness as h

IN_OPEN = 0x20
HANG_TIMEOUT = 20.0       # a command that takes longer hangs
APPEAR_TIMEOUT = 60.0     # a published model shows within this (ASan)
POLL = 0.005
SLOW = 5
PUBLISHES = 21
SLOW_METADATA = 16 << 20  # bytes: the format's limit
FD_LIMIT = 256
MANY = 300

_libc = ctypes.CDLL("libc.so.6", use_errno=True)


class OpenWatch:
    """inotify IN_OPEN on some paths: who opened them since."""

    def __init__(self, paths):
        self.fd = _libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        h.check(self.fd >= 0, "inotify_init1 failed")
        for p in paths:
            wd = _libc.inotify_add_watch(self.fd, p.encode(), IN_OPEN)
            h.check(wd >= 0, "inotify_add_watch %s: errno %d" %
                    (p, ctypes.get_errno()))

    def opened(self):
        try:
            return len(os.read(self.fd, 65536)) > 0
        except BlockingIOError:
            return False

    def close(self):
        os.close(self.fd)


def small_container(work, path, value):
    a = h.Array("v", np.full(1000, value, dtype=np.float32))
    h.pack(work, path, [a])


def skipped(m):
    return {s["file"]: s["error"] for s in m.status()["skipped"]}


def model_keys(m):
    return {x["key"] for x in m.status()["models"]}


def run_bounded(args):
    """Runs @args; fails if it takes longer than HANG_TIMEOUT."""
    try:
        return subprocess.run(args, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, timeout=HANG_TIMEOUT)
    except subprocess.TimeoutExpired:
        h.fail("%s hung (more than %.0f s)" % (" ".join(args),
                                                HANG_TIMEOUT))


def expect_enoent_soon(path):
    """A lookup of @path answers ENOENT, in a child bounded in time (a
    lookup stuck in the daemon would leave this process in D state)."""
    p = run_bounded(["stat", path])
    h.check(p.returncode != 0 and b"No such file" in p.stderr,
            "stat %s: %r" % (path, p.stderr))


def wait_for(what, cond, timeout=APPEAR_TIMEOUT):
    deadline = time.monotonic() + timeout
    while not cond():
        h.check(time.monotonic() < deadline, "timed out waiting for " + what)
        time.sleep(0.05)


def part_odd_entries(work, store, root_only):
    small_container(work, os.path.join(store, "good.mfs"), 1.0)
    small_container(work, os.path.join(work.root, "target.mfs"), 2.0)
    fifo = os.path.join(store, "fifo.mfs")
    dev = os.path.join(store, "dev.mfs")
    os.mkfifo(fifo)
    os.mknod(dev, 0o644 | 0o020000, os.makedev(1, 3))  # like /dev/null
    os.mknod(os.path.join(store, "sock.mfs"), 0o644 | 0o140000)
    os.symlink(os.path.join(work.root, "target.mfs"),
               os.path.join(store, "link.mfs"))
    os.symlink(root_only, os.path.join(store, "secret.mfs"))
    watch = OpenWatch([fifo, dev])
    with h.mounted(work, store) as m:
        h.check(model_keys(m) == {"good"}, "served %s" % model_keys(m))
        sk = skipped(m)
        for name, what in [("fifo.mfs", "FIFO"),
                           ("dev.mfs", "character device"),
                           ("sock.mfs", "socket"),
                           ("link.mfs", "symbolic link"),
                           ("secret.mfs", "symbolic link")]:
            h.check(what in sk.get(name, ""),
                    "%s: skip reason %r" % (name, sk.get(name)))
        for key in ("fifo", "dev", "link", "secret"):
            expect_enoent_soon(m.p(key))
        part_live(work, store, m)
        part_modelctl(work, store)
        h.check(not watch.opened(), "the FIFO or the device was opened")
        m.check_alive()
    watch.close()


def part_live(work, store, m):
    os.mkfifo(os.path.join(store, "fifo2.mfs"))
    os.symlink(m.p("good", "manifest.json"), os.path.join(store, "loop.mfs"))
    os.symlink(m.p("good"), os.path.join(store, "loopdir.mfs"))
    os.symlink(m.path, os.path.join(store, "looproot.mfs"))
    small_container(work, os.path.join(work.root, "after.tmp"), 3.0)
    os.rename(os.path.join(work.root, "after.tmp"),
              os.path.join(store, "after.mfs"))
    wait_for("'after' to show", lambda: "after" in model_keys(m))
    p = run_bounded(["ls", m.path])
    h.check(p.returncode == 0 and b"after" in p.stdout,
            "ls of the root: %r %r" % (p.stdout, p.stderr))
    data = np.load(m.p("after", "v.npy"), mmap_mode="r")
    h.check(float(data[0]) == 3.0, "after/v.npy reads %r" % data[0])
    for key in ("fifo2", "loop", "loopdir", "looproot"):
        expect_enoent_soon(m.p(key))
    wait_for("the links to be skipped",
             lambda: all("symbolic link" in skipped(m).get(n, "")
                         for n in ("loop.mfs", "loopdir.mfs",
                                   "looproot.mfs")))


def part_modelctl(work, store):
    fifo = os.path.join(store, "fifo.mfs")
    other = work.dir("other-store")
    for args in (["verify", fifo], ["inspect", fifo], ["put", other, fifo]):
        p = run_bounded([h.MODELCTL] + args)
        out = p.stdout + p.stderr
        h.check(p.returncode == 1 and b"a FIFO, not a regular file" in out,
                "modelctl %s: %d %r" % (args[0], p.returncode, out))
    p = run_bounded([h.MODELCTL, "ls", store, "--json"])
    h.check(p.returncode == 0, "modelctl ls: %r" % p.stderr)
    doc = json.loads(p.stdout)
    reasons = {x["file"]: x["error"] for x in doc["invalid"]}
    h.check("FIFO" in reasons.get("fifo.mfs", ""), "ls: %r" % reasons)
    h.check("symbolic link" in reasons.get("link.mfs", ""),
            "ls: %r" % reasons)


def slow_metadata():
    """A JSON object of at most SLOW_METADATA bytes with many small keys:
    the slowest kind of metadata to check and serve."""
    n = SLOW_METADATA // len('"k0000000": 1000000, ')
    while True:
        text = json.dumps({"k%07d" % i: i for i in range(n)}).encode()
        if len(text) <= SLOW_METADATA:
            return text
        n -= n // 100


def part_slow(work):
    store = work.dir("slow-store")
    staging = work.dir("slow-staging")
    meta = slow_metadata()
    arrays = [h.Array("v", np.arange(100, dtype=np.float32))]
    h.pack(work, os.path.join(staging, "slow0.mfs"), arrays, metadata=meta)
    for i in range(1, SLOW):
        shutil.copyfile(os.path.join(staging, "slow0.mfs"),
                        os.path.join(staging, "slow%d.mfs" % i))
    small_container(work, os.path.join(staging, "small.mfs"), 4.0)
    with h.mounted(work, store) as m:
        t0 = time.monotonic()
        for i in range(SLOW):
            os.rename(os.path.join(staging, "slow%d.mfs" % i),
                      os.path.join(store, "slow%d.mfs" % i))
        # Lookups of the slow keys while they load: none may hold a
        # request thread for the length of a load.
        lookups = [subprocess.Popen(["stat", m.p("slow%d" % i)],
                                    stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)
                   for i in range(SLOW)]
        os.rename(os.path.join(staging, "small.mfs"),
                  os.path.join(store, "small.mfs"))
        while not os.path.exists(m.p("small")):
            h.check(time.monotonic() - t0 < APPEAR_TIMEOUT,
                    "'small' did not show")
            time.sleep(POLL)
        shown = time.monotonic() - t0
        keys = model_keys(m)
        slow_shown = sorted(k for k in keys if k.startswith("slow"))
        h.log("small model visible %.1f ms after the publishes; slow ones "
              "visible then: %s" % (shown * 1000, slow_shown))
        h.check(not slow_shown, "the small model waited for %s" %
                slow_shown)
        wait_for("every slow model",
                 lambda: all("slow%d" % i in model_keys(m)
                             for i in range(SLOW)))
        h.log("all slow models visible %.1f s after the publishes" %
              (time.monotonic() - t0))
        for p in lookups:
            p.wait(timeout=HANG_TIMEOUT)
        lat = []
        for i in range(PUBLISHES):
            small_container(work, os.path.join(staging, "n.mfs"), 6.0)
            t1 = time.monotonic()
            os.rename(os.path.join(staging, "n.mfs"),
                      os.path.join(store, "n%02d.mfs" % i))
            while not os.path.exists(m.p("n%02d" % i)):
                h.check(time.monotonic() - t1 < APPEAR_TIMEOUT,
                        "n%02d did not show" % i)
                time.sleep(POLL / 10)
            lat.append(time.monotonic() - t1)
        h.log("with the slow models present, a publish shows in %.2f ms "
              "(median of %d)" % (1000 * sorted(lat)[len(lat) // 2],
                                  PUBLISHES))
        st = os.stat(m.p("slow3", "metadata.json"))
        h.check(st.st_size == len(meta), "slow3 metadata is %d bytes" %
                st.st_size)


def part_descriptors(work):
    store = work.dir("many-store")
    small_container(work, os.path.join(store, "m000.mfs"), 5.0)
    for i in range(1, MANY):
        shutil.copyfile(os.path.join(store, "m000.mfs"),
                        os.path.join(store, "m%03d.mfs" % i))
    with h.mounted(work, store, nofile=FD_LIMIT) as m:
        totals = m.status()["totals"]
        served = totals["published"]
        waiting = totals["waiting_for_descriptors"]
        h.log("limit %d: %d served, %d wait" % (FD_LIMIT, served, waiting))
        h.check(0 < served < MANY and served + waiting == MANY,
                "served %d, waiting %d" % (served, waiting))
        h.check("%d containers wait for a file descriptor" % waiting
                in m.log(), "the log does not say how many wait")
        keys = sorted(model_keys(m))
        data = np.load(m.p(keys[0], "v.npy"))
        h.check(float(data[0]) == 5.0, "reads %r" % data[0])
        # Freeing descriptors lets the waiting ones in.
        for k in keys[:waiting + 10]:
            os.unlink(os.path.join(store, k + ".mfs"))
        left = MANY - waiting - 10
        wait_for("the waiting containers to load",
                 lambda: m.status()["totals"]["published"] == left)
        h.check(m.status()["totals"]["waiting_for_descriptors"] == 0,
                "still waiting: %r" % m.status()["totals"])
        m.check_alive()

def main(work):
    root_only = os.path.join(work.root, "root-only")
    with open(root_only, "w") as f:
        f.write("secret\n")
    os.chmod(root_only, 0o600)
    part_odd_entries(work, work.dir("store"), root_only)
    part_slow(work)
    part_descriptors(work)


if __name__ == "__main__":
    h.run(main)
