"""Live test: changes to the store besides plain publishing.

- chmod of a container changes the mode shown (same inode: the bytes did
  not change), chmod of the store directory the root's mode;
- an invalid container renamed over a served one removes the key (the
  file at KEY.mfs is no valid model): logged, listed as skipped in
  .status, a process holding the old version keeps reading it; a valid
  one brings the key back under a new inode;
- a store directory moved away is still followed: containers put into
  it appear, while a new directory at the old path is ignored;
- a removed model whose directory a process still uses (its working
  directory) retires after the grace period: its container is closed,
  its directory looks empty, and it is freed when the process leaves;
- reads racing with the release of their handle, and with the end of
  their model (short reads of .status, manifest.json and metadata.json,
  closed at once, while the models are replaced): the daemon must stay
  clean under AddressSanitizer (the harness checks its log)."""

import os
import stat
import subprocess
import sys
import time

import numpy as np

import live
from live import h

RACERS = 3
RACE_SECONDS = 3.0

RACER = r"""
import os, sys, time
mnt, end = sys.argv[1], time.monotonic() + float(sys.argv[2])
names = [".status", "a/manifest.json", "a/metadata.json",
         "b/manifest.json", "b/metadata.json"]
n = 0
while time.monotonic() < end:
    for name in names:
        try:
            fd = os.open(os.path.join(mnt, name), os.O_RDONLY)
        except FileNotFoundError:
            continue
        try:
            os.read(fd, 64)
        except OSError as e:
            print("read %s: %s" % (name, e), flush=True)
            sys.exit(1)
        os.close(fd)
        n += 1
print(n, flush=True)
"""


def mode_of(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def check_chmod(m, store):
    path = os.path.join(store, "a.mfs")
    ino = os.stat(m.p("a")).st_ino
    h.check(mode_of(m.p("a", "arr0.npy")) == 0o444, "initial mode %o" %
            mode_of(m.p("a", "arr0.npy")))
    os.chmod(path, 0o640)
    live.wait_for(lambda: mode_of(m.p("a", "arr0.npy")) == 0o440, 1.0,
                  "the new mode of a/arr0.npy")
    h.check(mode_of(m.p("a")) == 0o550, "dir mode %o" % mode_of(m.p("a")))
    h.check(os.stat(m.p("a")).st_ino == ino, "chmod changed the inode")
    os.chmod(path, 0o644)
    os.chmod(store, 0o751)
    live.wait_for(lambda: mode_of(m.path) == 0o551, 1.0, "the root's mode")
    os.chmod(store, 0o755)


def check_invalid(work, m, store):
    mm = live.map_array(m.p("b", "arr0.npy"))
    try:
        bad = work.path("bad.mfs")
        with open(bad, "wb") as f:
            f.write(b"\x89MFS\r\n\x1a\n" + b"\0" * 5000)
        live.publish_file(bad, store, "b")
        live.wait_for(lambda: not live.exists(m.p("b")), 1.0,
                      "the invalid key to disappear")
        skipped = m.status()["skipped"]
        h.check([x["file"] for x in skipped] == ["b.mfs"] and
                skipped[0]["error"], "skipped: %r" % skipped)
        h.check("skipping" in m.log() and "b.mfs" in m.log(),
                "the invalid container was not logged:\n%s" % m.log())
        view = np.frombuffer(mm, dtype=np.int64, offset=live.HEADER)
        h.check(view.tobytes() == live.versioned_arrays(2)[0].raw,
                "the holder of the old version reads wrong bytes")
        st = live.status_model(m, "b", "removed")
        h.check(st and st["open_handles"] == 1, "old b: %r" % st)
        del view
    finally:
        mm.close()
    good = work.path("good.mfs")
    live.pack_version(work, good, 12)
    live.publish_file(good, store, "b")
    live.wait_for(lambda: live.exists(m.p("b")), 1.0, "b to come back")
    h.check(m.status()["skipped"] == [], "still skipped")
    h.check(h.load_matches(m.p("b", "arr0.npy"),
                           live.versioned_arrays(12)[0]), "new b")


def check_moved(work, m, store):
    moved = store + ".moved"
    os.rename(store, moved)
    os.mkdir(store)
    src = work.path("c.mfs")
    live.pack_version(work, src, 21)
    live.publish_file(src, store, "impostor")
    live.publish_file(src, moved, "followed")
    live.wait_for(lambda: live.exists(m.p("followed")), 1.0,
                  "a model put into the moved directory")
    time.sleep(0.2)
    h.check(not live.exists(m.p("impostor")),
            "a model in the new directory at the old path is served")
    h.check(h.load_matches(m.p("followed", "arr0.npy"),
                           live.versioned_arrays(21)[0]), "followed")
    os.unlink(os.path.join(store, "impostor.mfs"))
    os.rmdir(store)
    os.rename(moved, store)


def check_retire(work, m, store):
    """A process whose working directory is a removed model's directory
    keeps the kernel from forgetting it; after the grace period the
    model retires (container closed) and the directory looks empty."""
    live.pack_version(work, os.path.join(store, "cwd.mfs"), 41)
    base = live.store_fds(m.server_pid(), store)
    p = subprocess.Popen(["sh", "-c", "cd '%s' && echo in && read x && "
                          "ls -a" % m.p("cwd")], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE)
    try:
        h.check(p.stdout.readline().strip() == b"in", "shell")
        live.remove(store, "cwd")
        live.wait_for(lambda: live.store_fds(m.server_pid(), store) == base - 1,
                      10.0, "the removed model to retire")
        h.check(m.status()["totals"]["retired_models"] == 1 and
                live.status_model(m, "cwd", "removed") is None,
                "status after retiring: %r" % m.status()["totals"])
        out, _ = p.communicate(b"\n", timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    h.check(p.returncode == 0 and out.split() == [b".", b".."],
            "listing of the retired directory: %r" % out)
    live.wait_for(lambda: m.status()["totals"]["retired_models"] == 0, 5.0,
                  "the retired model to be forgotten")


def race(work, m, store):
    srcs = [work.path("r%d.mfs" % v) for v in (31, 32)]
    for v, p in zip((31, 32), srcs):
        live.pack_version(work, p, v, sizes=(1000,))
    procs = [subprocess.Popen([sys.executable, "-c", RACER, m.path,
                               str(RACE_SECONDS)], stdout=subprocess.PIPE)
             for _ in range(RACERS)]
    end = time.monotonic() + RACE_SECONDS
    i = 0
    while time.monotonic() < end:
        live.publish_file(srcs[i % 2], store, "ab"[i % 2])
        i += 1
        time.sleep(0.002)
    reads = 0
    for p in procs:
        out, _ = p.communicate(timeout=60)
        h.check(p.returncode == 0, "racer: %s" % out)
        reads += int(out)
    h.log("race: %d short reads closed at once, %d replacements" %
          (reads, i))


def main(work):
    store = work.dir("store")
    live.pack_version(work, os.path.join(store, "a.mfs"), 1)
    live.pack_version(work, os.path.join(store, "b.mfs"), 2)
    os.chmod(os.path.join(store, "a.mfs"), 0o644)
    with h.mounted(work, store) as m:
        check_chmod(m, store)
        check_invalid(work, m, store)
        check_moved(work, m, store)
        check_retire(work, m, store)
        race(work, m, store)
        m.check_alive()


if __name__ == "__main__":
    h.run(main)
