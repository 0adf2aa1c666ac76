"""Live test: a writer killed with SIGKILL in the middle of writing leaves
no visible partial model.

First a writer that follows the protocol by hand: it writes half of a
valid container to a hidden temporary name in the store directory,
fsyncs and waits; it is killed.  Then the real writer (modelctl pack into
the store directory) is killed once its temporary file exists.  In both
cases the mount shows nothing of the key (no lookup, no listing entry, no
skipped entry in .status: hidden names are never containers), the other
models are untouched, and the temporary files are left for `modelctl gc`.
If modelctl finished before it could be killed, the model it published
must be complete."""

import errno
import os
import signal
import subprocess
import sys
import time

import numpy as np

import live
from live import h

HALF_WRITER = r"""
import os, sys
src, dst = sys.argv[1], sys.argv[2]
data = open(src, "rb").read()
fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
os.write(fd, data[: len(data) // 2])
os.fsync(fd)
print("ready", flush=True)
sys.stdin.readline()
"""


def hidden_files(store):
    return sorted(n for n in os.listdir(store) if n.startswith("."))


def check_invisible(m, key, before):
    time.sleep(0.2)  # time for inotify events, if any were acted on
    h.check(not live.exists(m.p(key)), "%s is visible" % key)
    h.check(sorted(os.listdir(m.path)) == before,
            "listing changed: %s" % os.listdir(m.path))
    st = m.status()
    h.check(st["skipped"] == [], "skipped: %r" % st["skipped"])
    h.check(sorted(x["key"] for x in st["models"]) ==
            [k for k in before if k != ".status"],
            "models: %r" % [x["key"] for x in st["models"]])


def main(work):
    store = work.dir("store")
    live.pack_version(work, os.path.join(store, "other.mfs"), 1)
    src = work.path("full.mfs")
    live.pack_version(work, src, 2, sizes=(1 << 20,))
    big = np.tile(np.arange(4096, dtype=np.int64), (64 << 20) // 32768)
    npy = work.path("big.npy")
    np.save(npy, big)
    with h.mounted(work, store) as m:
        before = sorted(os.listdir(m.path))
        # By hand: half a container under a temporary name, killed.
        tmp = os.path.join(store, ".half.mfs.tmp.abc123")
        p = subprocess.Popen([sys.executable, "-c", HALF_WRITER, src, tmp],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        try:
            h.check(p.stdout.readline().strip() == b"ready", "half writer")
            check_invisible(m, "half", before)
        finally:
            p.kill()
            p.wait()
        h.check(p.returncode == -signal.SIGKILL, "exit %r" % p.returncode)
        check_invisible(m, "half", before)
        h.check(hidden_files(store) == [os.path.basename(tmp)],
                "temporary files: %s" % hidden_files(store))

        # The real writer, killed while its temporary file exists.
        dst = os.path.join(store, "packed.mfs")
        p = subprocess.Popen([h.MODELCTL, "pack", "--lz4", dst,
                              "big=" + npy], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
        killed = False
        deadline = time.monotonic() + 30
        while p.poll() is None and time.monotonic() < deadline:
            if any(n.startswith(".packed.mfs") for n in os.listdir(store)):
                p.send_signal(signal.SIGKILL)
                killed = True
                break
            time.sleep(0.0005)
        p.wait()
        if killed and p.returncode == -signal.SIGKILL:
            h.log("modelctl pack killed while writing %s" %
                  hidden_files(store))
            check_invisible(m, "packed", before)
            err = h.expect_errno(errno.ENOENT, os.stat, m.p("packed"))
            h.check(err is None, err or "")
        else:
            h.log("modelctl pack finished before it could be killed "
                  "(exit %s): checking the model is whole" % p.returncode)
            live.wait_for(lambda: live.exists(m.p("packed")), 1.0,
                          "the packed model")
            mm = np.load(m.p("packed", "big.npy"), mmap_mode="r")
            h.check(np.array_equal(mm, big), "packed model differs")
            del mm
        h.check(h.load_matches(m.p("other", "arr0.npy"),
                               live.versioned_arrays(1)[0]),
                "the other model is damaged")
        m.check_alive()


if __name__ == "__main__":
    h.run(main)
