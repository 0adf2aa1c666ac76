"""takeover.py - helpers of the takeover tests: the supervisor's serving
child, killing it, waiting for its successor, readers (tk_reader.py)."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np

import live
from live import h

HERE = os.path.dirname(os.path.abspath(__file__))
READER = os.path.join(HERE, "tk_reader.py")
PYTHON = sys.executable


def children(pid):
    """Pids of the children of process @pid."""
    out = []
    try:
        for tid in os.listdir("/proc/%d/task" % pid):
            with open("/proc/%d/task/%s/children" % (pid, tid)) as f:
                out += [int(x) for x in f.read().split()]
    except OSError:
        pass
    return out


def serving_child(sup, timeout=10.0):
    """The serving child of supervisor @sup (waits until there is one)."""
    return live.wait_for(lambda: (children(sup) or [None])[0], timeout,
                         "a serving child of %d" % sup, step=0.001)


def fd_count(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def kill_child(sup, signo=signal.SIGKILL):
    """Kills the serving child of @sup; returns (old pid, new pid) once a
    successor runs."""
    old = serving_child(sup)
    os.kill(old, signo)
    new = live.wait_for(lambda: [c for c in children(sup) if c != old],
                        10.0, "a successor of %d" % old, step=0.001)[0]
    return old, new


def wait_serving(m, pid, timeout=10.0):
    """Waits until .status names @pid as the serving process."""
    live.wait_for(lambda: m.server_pid() == pid, timeout,
                  "serving process %d to answer" % pid)


def raw_values(n, seed):
    return np.arange(n, dtype=np.int64) * 7919 + seed


def lz4_values(n, seed):
    return np.arange(n, dtype=np.int64) // 64 + seed


def pack_model(work, store, key, kind, n, seed):
    """Packs model @key: one array "a" of @n int64 of @kind ("raw" or
    "lz4", as tk_reader.py expects) from @seed."""
    a = raw_values(n, seed) if kind == "raw" else lz4_values(n, seed)
    src = h.pack(work, os.path.join(store, key + ".mfs"), [h.Array("a", a)],
                 lz4=(kind == "lz4"))
    import shutil
    shutil.rmtree(src, ignore_errors=True)


class Reader:
    """A tk_reader.py process on @path."""

    def __init__(self, work, path, kind, seed, pace=None):
        self.stop = os.path.join(work.root, "stop-%s-%d" % (kind, seed))
        self.result = self.stop + ".json"
        args = [PYTHON, READER, path, kind, str(seed), self.stop,
                self.result]
        if pace is not None:
            args.append(str(pace))
        self.p = subprocess.Popen(args, stdout=subprocess.PIPE)
        line = self.p.stdout.readline().strip()
        h.check(line == b"ready", "reader did not start: %r" % line)

    @property
    def pid(self):
        return self.p.pid

    def finish(self, timeout=30.0):
        """Stops the reader; returns its result (a failure if it died:
        -7 is SIGBUS)."""
        with open(self.stop, "w"):
            pass
        try:
            rc = self.p.wait(timeout)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
            h.fail("reader %d hung (a request was never answered?)" %
                   self.pid)
        h.check(rc == 0, "reader %d ended with %d%s" %
                (self.pid, rc, " (SIGBUS)" if rc == -signal.SIGBUS else ""))
        with open(self.result) as f:
            return json.load(f)

    def kill(self):
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait()


def holders(m, key):
    """Holder pids of @key in .status."""
    st = live.status_model(m, key)
    return sorted(x["pid"] for x in st["holders"]) if st else []


def ctl_holders(m, key):
    """Holder pids of @key by `modelctl holders --json`."""
    p = h.run_tool([h.MODELCTL, "holders", "--json", m.path, key])
    return sorted(x["pid"] for x in json.loads(p.stdout)["holders"])
