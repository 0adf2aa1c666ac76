"""Shared machinery of the 'python' test suite (the modelfs package).

The package is imported from the build tree: MODELFS_BUILD_DIR (set by
meson test) / lib/python, put first on sys.path here as well, so that
``MODELFS_BUILD_DIR=$PWD/build /usr/bin/python3 -m pytest tests/python``
works without PYTHONPATH.  Run with Debian's /usr/bin/python3 (numpy,
pandas, scipy, sklearn).

``modelfs_mount`` runs the real daemon, ``BUILD/fs/modelfs -f STORE MNT``,
on a fresh store and mountpoint: it waits until /proc/mounts shows the
mount as fuse.modelfs and at teardown unmounts it (``fusermount3 -u``),
then checks that the mount was not busy (no test left a file or mapping
behind), that the daemon exited by itself with status 0 and that its log
holds no sanitizer report.  Without /dev/fuse the tests that need a mount
are skipped, with the reason shown, or fail when MODELFS_REQUIRE_FUSE=1.
"""

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np
import pytest

BUILD_DIR = os.environ.get("MODELFS_BUILD_DIR", "")
if not BUILD_DIR:
    raise RuntimeError("MODELFS_BUILD_DIR is not set: run through "
                       "'meson test' or set it to the build directory")
BUILD_DIR = os.path.abspath(BUILD_DIR)
PYTHON_DIR = os.path.join(BUILD_DIR, "lib", "python")
if PYTHON_DIR not in sys.path:
    sys.path.insert(0, PYTHON_DIR)
# Worker processes started with 'spawn' get sys.path from the parent, and
# subprocesses started by the tests get it from PYTHONPATH.
os.environ["PYTHONPATH"] = os.pathsep.join(
    [PYTHON_DIR] + [p for p in os.environ.get("PYTHONPATH", "").split(
        os.pathsep) if p and p != PYTHON_DIR])

MODELFS = os.path.join(BUILD_DIR, "fs", "modelfs")
MODELCTL = os.path.join(BUILD_DIR, "tools", "modelctl")
FSTYPE = "fuse.modelfs"
MOUNT_TIMEOUT = 10.0
EXIT_TIMEOUT = 10.0
SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                   "runtime error:", "WARNING: ThreadSanitizer",
                   "ERROR: UndefinedBehaviorSanitizer")

import modelfs  # noqa: E402  (after the path is set)
import modelfs.sharing  # noqa: E402,F401


def proc_mounts():
    """[(mountpoint, fstype)] from /proc/mounts (octal escapes decoded)."""
    out = []
    with open("/proc/mounts", "rb") as f:
        for line in f:
            parts = line.split(b" ")
            if len(parts) < 3:
                continue

            def dec(b):
                return b.decode("unicode_escape").encode("latin-1").decode(
                    "utf-8", "surrogateescape")
            out.append((dec(parts[1]), dec(parts[2])))
    return out


def mount_type(path):
    path = os.path.realpath(path)
    found = None
    for mnt, typ in proc_mounts():
        if mnt == path:
            found = typ
    return found


def require_fuse():
    """Skips (reason shown) without /dev/fuse; fails instead when
    MODELFS_REQUIRE_FUSE=1."""
    if not os.path.exists("/dev/fuse"):
        if os.environ.get("MODELFS_REQUIRE_FUSE") == "1":
            pytest.fail("/dev/fuse is missing and MODELFS_REQUIRE_FUSE=1")
        pytest.skip("/dev/fuse is missing (a modelfs mount cannot run)")
    for exe in (MODELFS, MODELCTL):
        if not os.access(exe, os.X_OK):
            pytest.fail("%s is not built" % exe)


def run_tool(args, **kw):
    """Runs a program; returns the CompletedProcess (text output) after
    checking its stderr for sanitizer reports."""
    p = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True, errors="replace", timeout=60, **kw)
    marks = [s for s in SANITIZER_MARKS if s in p.stderr]
    assert not marks, "sanitizer report from %s:\n%s" % (args[0], p.stderr)
    return p


class DaemonMount:
    """A running ``modelfs -f STORE MNT``."""

    def __init__(self, store, path, proc, log_path):
        self.store = store
        self.path = path
        self.proc = proc
        self.log_path = log_path

    def p(self, *parts):
        return os.path.join(self.path, *parts)

    def log(self):
        with open(self.log_path, "r", errors="replace") as f:
            return f.read()

    def check_alive(self):
        assert self.proc.poll() is None, \
            "daemon exited with %s; log:\n%s" % (self.proc.returncode,
                                                 self.log())
        assert mount_type(self.path) == FSTYPE, \
            "mount %s vanished; log:\n%s" % (self.path, self.log())


def _unmount(path):
    """fusermount3 -u; if that fails (busy), -uz.  Returns whether the
    plain unmount failed."""
    if mount_type(path) is None:
        return False
    subprocess.run(["fusermount3", "-u", path], stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, timeout=30)
    if mount_type(path) is None:
        return False
    subprocess.run(["fusermount3", "-uz", path], stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, timeout=30)
    return True


def _stop(proc, grace):
    if proc.poll() is not None:
        return proc.returncode
    try:
        return proc.wait(grace)
    except subprocess.TimeoutExpired:
        pass
    proc.terminate()
    try:
        return proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


@contextlib.contextmanager
def daemon_mount():
    """Context manager: a fresh store directory served by the real daemon
    on a fresh mountpoint; yields a DaemonMount and checks the teardown
    (see the module's docstring)."""
    require_fuse()
    work = tempfile.mkdtemp(prefix="modelfs-py-")
    os.chmod(work, 0o755)
    store = os.path.join(work, "store")
    mnt = os.path.join(work, "mnt")
    os.mkdir(store, 0o755)
    os.mkdir(mnt, 0o755)
    log_path = os.path.join(work, "daemon.log")
    with open(log_path, "wb") as logf:
        proc = subprocess.Popen([MODELFS, "-f", store, mnt],
                                stdin=subprocess.DEVNULL, stdout=logf,
                                stderr=logf, close_fds=True)
    m = DaemonMount(store, mnt, proc, log_path)
    ok = False
    try:
        deadline = time.monotonic() + MOUNT_TIMEOUT
        while mount_type(mnt) != FSTYPE:
            if proc.poll() is not None:
                pytest.fail("modelfs exited with %s before mounting; log:\n%s"
                            % (proc.returncode, m.log()))
            if time.monotonic() > deadline:
                pytest.fail("%s not mounted after %.0f s; log:\n%s" %
                            (mnt, MOUNT_TIMEOUT, m.log()))
            time.sleep(0.02)
        yield m
        ok = True
    finally:
        busy = _unmount(mnt)
        rc = _stop(proc, EXIT_TIMEOUT if ok and not busy else 1.0)
        text = m.log()
        gone = mount_type(mnt) is None
        if gone:
            shutil.rmtree(work, ignore_errors=True)
        if ok:
            assert gone, "could not unmount %s" % mnt
            assert not busy, ("%s was busy at unmount: a file or mapping "
                              "of the mount was still held" % mnt)
            assert rc == 0, ("daemon exit status %s after unmount "
                             "(expected 0); log:\n%s" % (rc, text))
            marks = [s for s in SANITIZER_MARKS if s in text]
            assert not marks, "sanitizer report in daemon log:\n%s" % text


def mapped_regions():
    """[(start, end, path)] of this process's file mappings."""
    out = []
    with open("/proc/self/maps") as f:
        for line in f:
            parts = line.split(None, 5)
            if len(parts) < 6:
                continue
            lo, hi = (int(x, 16) for x in parts[0].split("-"))
            out.append((lo, hi, parts[5].rstrip("\n")))
    return out


def mapping_of(addr):
    """The path of the file mapping holding address @addr, or None
    (anonymous memory)."""
    for lo, hi, path in mapped_regions():
        if lo <= addr < hi:
            return path if path.startswith("/") else None
    return None


def mapped_paths():
    return {path for _lo, _hi, path in mapped_regions()}


def pss_kib():
    """Proportional set size of this process in KiB."""
    with open("/proc/self/smaps_rollup") as f:
        for line in f:
            if line.startswith("Pss:"):
                return int(line.split()[1])
    raise AssertionError("no Pss line in /proc/self/smaps_rollup")


def model_pss_kib(key):
    """Proportional set size, in KiB, of this process's mappings of files
    of model @key (its directory on a mount or its container in a store
    directory).  Unlike the growth of the whole PSS, it does not move when
    other processes start or stop sharing the interpreter's own pages."""
    total = 0
    counting = False
    with open("/proc/self/smaps") as f:
        for line in f:
            head = line.split()
            if head and "-" in head[0] and not head[0].endswith(":"):
                path = head[5] if len(head) > 5 else ""
                counting = ("/" + key + "/" in path or
                            path.endswith("/" + key + ".mfs"))
            elif counting and line.startswith("Pss:"):
                total += int(head[1])
    return total


def listing(path):
    """Every name in directory @path, hidden ones included."""
    return sorted(os.listdir(path))


STORE_KINDS = ("noop", "file", "shm", "mount")
FILE_KINDS = ("file", "shm", "mount")


# ---------------------------------------------------------------------------
# Objects the tests share and pickle (module level, so that worker
# processes started with 'spawn' can import them).

class CachedModel:
    """A model with a derived array (``cache``) that its __getstate__ keeps
    only in share context; it records the share context of every
    __getstate__ call."""

    getstate_contexts = []

    def __init__(self, weights):
        self.weights = weights
        self.cache = weights * 2

    def __getstate__(self):
        from modelfs.sharing import in_share_context
        shared = in_share_context()
        CachedModel.getstate_contexts.append(shared)
        state = dict(self.__dict__)
        if not shared:
            del state["cache"]
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)


def all_dtype_arrays():
    """A dict of NumPy arrays: every numeric dtype (several shapes, Fortran
    order, 0-d, empty), plus datetime, timedelta, bytes, unicode,
    structured, long double and object arrays."""
    rng = np.random.default_rng(7)
    out = {}
    numeric = ["bool", "int8", "int16", "int32", "int64", "uint8", "uint16",
               "uint32", "uint64", "float16", "float32", "float64",
               "complex64", "complex128", "longdouble", "clongdouble"]
    for dt in numeric:
        d = np.dtype(dt)
        n = 1000 * 3
        raw = rng.integers(0, 256, n * d.itemsize, dtype=np.uint8)
        if d.kind in "fc":
            # ordinary values (bit patterns of long doubles have padding)
            a = (rng.standard_normal(n) * 1e3).astype(d)
            if d.kind == "c":
                a = (a + 1j * rng.standard_normal(n)).astype(d)
        elif d.kind == "b":
            a = raw[:n] % 2 == 1
        else:
            a = raw.view(d)
        out[dt + ".2d"] = a.reshape(1000, 3)
        out[dt + ".fortran"] = np.asfortranarray(a[:105].reshape(7, 5, 3))
        out[dt + ".scalar"] = np.array(a[0])
        out[dt + ".empty"] = a[:0]
    out["datetime64"] = np.arange("2020-01-01", "2020-03-01",
                                  dtype="datetime64[D]")
    out["timedelta64"] = np.arange(100).astype("timedelta64[s]")
    out["bytes"] = np.array([b"abc", b"", b"xyz\x00w"], dtype="S5")
    out["unicode"] = np.array(["\u00e9t\u00e9", "x", "\U0001f600"])
    out["structured"] = np.array(
        [(1, 2.5, b"a"), (3, -1.0, b"bc")],
        dtype=[("i", "<i4"), ("f", "<f8"), ("s", "S2")])
    out["object"] = np.array([1, "two", None, (3,)], dtype=object)
    out["bigendian"] = np.arange(50, dtype=">i4")
    out["strided"] = np.arange(100, dtype=np.int64)[::3]
    return out


def same_array(a, b):
    """@a and @b have the same dtype, shape and contents (bit for bit,
    NaNs included; elementwise for object arrays)."""
    if not isinstance(b, np.ndarray) or a.dtype != b.dtype or \
            a.shape != b.shape:
        return False
    if a.dtype.hasobject:
        return all(x == y for x, y in zip(a.ravel(), b.ravel()))
    return a.tobytes() == b.tobytes()


# ---------------------------------------------------------------------------
# Worker processes (multiprocessing pools).  The client and the key are
# given to the pool's initializer; each worker gets the model once.

_worker = {}


def init_worker(client, key):
    from modelfs.sharing import in_share_context
    _worker["shared"] = client.get_model(key)
    _worker["in_share_context"] = in_share_context()


def worker_checksum(name):
    """(pid, sum of array @name as float, whether it is read-only, the
    path of the mapping holding it)."""
    a = _worker["shared"].object[name]
    return (os.getpid(), float(a.sum()), not a.flags.writeable,
            mapping_of(a.ctypes.data), _worker["in_share_context"])


def init_pss_worker(client, key, barrier):
    _worker["client"] = client
    _worker["key"] = key
    _worker["barrier"] = barrier


def pss_task(name):
    """Gets the model, reads every byte of array @name, and once every
    worker holds it, measures how much this process's PSS grew and how
    much of it is its share of the model's mapping.  Returns (pid, growth
    in KiB, sum of the array, model share in KiB)."""
    barrier = _worker["barrier"]
    before = pss_kib()
    shared = _worker["client"].get_model(_worker["key"])
    a = shared.object[name]
    total = int(a.sum())
    barrier.wait(120)
    grown = pss_kib() - before
    share = model_pss_kib(_worker["key"])
    barrier.wait(120)
    del a
    shared.release()
    return os.getpid(), grown, total, share


def init_estimator_worker(client, key, barrier):
    # Imports before the measure, as a long-lived worker has them.
    import sklearn.neighbors  # noqa: F401
    _worker["client"] = client
    _worker["key"] = key
    _worker["barrier"] = barrier


def estimator_task(query):
    """Gets the shared estimator, reads every page of its training data
    and answers one query; once every worker holds the model, measures
    how much this process's PSS grew and how much of it is its share of
    the model's mapping.  Returns (pid, growth in KiB, neighbour indices
    of @query, sum of the training data, model share in KiB)."""
    barrier = _worker["barrier"]
    before = pss_kib()
    shared = _worker["client"].get_model(_worker["key"])
    knn = shared.object
    total = float(knn._fit_X.sum())
    _dist, idx = knn.kneighbors([query], n_neighbors=3)
    barrier.wait(120)
    grown = pss_kib() - before
    share = model_pss_kib(_worker["key"])
    barrier.wait(120)
    del knn
    shared.release()
    return os.getpid(), grown, idx[0].tolist(), total, share
