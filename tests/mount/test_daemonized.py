"""The daemon in the background (no -f), as the demo and most users run
it: it forks after loading the store, and must still take in models
published afterwards (a pool thread counted across the fork once made
the first publish hang the daemon), and exit when unmounted."""

import json
import os
import signal
import subprocess
import time

import numpy as np

import harness
from harness import check, log

PUBLISH_WAIT = 10.0


def wait_for(cond, what, timeout=PUBLISH_WAIT):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return
        time.sleep(0.05)
    harness.fail(f"timed out after {timeout} s waiting for {what}")


def publish(work, store, key, n):
    npy = os.path.join(work.root, key + ".npy")
    tmp = os.path.join(work.root, key + ".mfs")
    np.save(npy, np.arange(n, dtype=np.float64))
    harness.run_tool([harness.MODELCTL, "pack", tmp, "a=" + npy])
    os.rename(tmp, os.path.join(store, key + ".mfs"))


def wait_gone(pid):
    wait_for(lambda: not os.path.exists(f"/proc/{pid}"),
             f"daemon {pid} to exit after the unmount")


def main(work):
    store = os.path.join(work.root, "store")
    mnt = os.path.join(work.root, "mnt")
    os.makedirs(store)
    os.makedirs(mnt)
    # Two models at start so that the scan runs on loader threads.
    for i in range(2):
        publish(work, store, f"start{i}", 1000 + i)
    log_path = os.path.join(work.root, "daemon.log")
    harness._our_mountpoints.add(os.path.realpath(mnt))
    pid = None
    with open(log_path, "w") as out:
        rc = subprocess.run([harness.MODELFS, store, mnt], stdout=out,
                            stderr=subprocess.STDOUT, timeout=30).returncode
    check(rc == 0, f"modelfs exited {rc} instead of going into the "
          f"background")
    try:
        wait_for(lambda: harness.mount_type(mnt) == harness.FSTYPE,
                 "the mount")
        with open(os.path.join(mnt, ".status")) as f:
            pid = json.load(f)["pid"]
        models = sorted(n for n in os.listdir(mnt) if not n.startswith("."))
        check(models == ["start0", "start1"], f"mount shows {models}")
        for i in range(3):
            key = f"late{i}"
            publish(work, store, key, 2000 + i)
            wait_for(lambda: os.path.isdir(os.path.join(mnt, key)),
                     f"model {key} published after start")
            a = np.load(os.path.join(mnt, key, "a.npy"), mmap_mode="r")
            check(a.shape == (2000 + i,) and a[-1] == 1999 + i,
                  f"{key}: wrong array {a.shape}")
            del a  # a mapping would keep the unmount busy
        log(f"daemon {pid} in the background took in 3 late publishes")
        rc = subprocess.run(["fusermount3", "-u", mnt]).returncode
        check(rc == 0, f"fusermount3 -u {mnt} failed ({rc})")
        wait_gone(pid)
    finally:
        # After a failure: the harness unmounts; the daemon is ours to end.
        if pid is not None and os.path.exists(f"/proc/{pid}"):
            harness._unmount(mnt)
            os.kill(pid, signal.SIGKILL)
    with open(log_path, errors="replace") as f:
        text = f.read()
    check(not any(m in text for m in harness.SANITIZER_MARKS),
          f"sanitizer report in the daemon's log:\n{text}")


if __name__ == "__main__":
    harness.run(main)
