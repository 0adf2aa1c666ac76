"""live.py - shared helpers of the 'live' test suite (store changes while
mounted, release tracking, the page-cache budget).

The tests reuse the mount suite's harness (tests/mount/harness.py): its
run() policies (skip without /dev/fuse unless MODELFS_REQUIRE_FUSE=1,
cleanup on every exit) and mounted(), which always unmounts and stops the
daemon.  Containers are published the way writers must: packed (modelctl
pack) or copied to a hidden temporary name in the store directory, then
renamed into place.
"""

import json
import mmap
import os
import shutil
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "mount"))
import harness as h  # noqa: E402

PAGE = 4096
HEADER = 4096  # data offset of a non-empty array in the mount's .npy view


def publish_file(src, store, key):
    """Publishes container @src as @key: copy to a temporary name in the
    store directory, then rename (a new inode, as every writer makes)."""
    tmp = os.path.join(store, ".%s.mfs.tmp.%d" % (key, os.getpid()))
    shutil.copyfile(src, tmp)
    os.rename(tmp, os.path.join(store, key + ".mfs"))


def remove(store, key):
    os.unlink(os.path.join(store, key + ".mfs"))


def versioned_arrays(version, sizes=(65536, 262144, 12289), lz4_like=True):
    """Arrays whose first 8 bytes hold @version (int64 little endian) and
    whose other bytes depend on it; returns a list of harness.Array."""
    rng = np.random.default_rng(version)
    out = []
    for i, n in enumerate(sizes):
        if lz4_like and i % 2 == 1:
            # runs of small values: compresses, several LZ4 chunks
            a = np.repeat(rng.integers(0, 7, n // 64 + 1), 64)[:n]
            a = a.astype(np.int64)
        else:
            a = rng.integers(-2**62, 2**62, n, dtype=np.int64)
        a[0] = version
        out.append(h.Array("arr%d" % i, a))
    return out


def checksums(arrays):
    import zlib
    return {a.name: zlib.crc32(a.raw) for a in arrays}


def pack_version(work, path, version, sizes=(65536, 262144, 12289),
                 lz4=False, chunk_size=None):
    """Packs a versioned model into container @path: arrays from
    versioned_arrays, metadata {"version", "crc32": {name: crc}}."""
    arrays = versioned_arrays(version, sizes)
    meta = {"version": version, "crc32": checksums(arrays)}
    src = h.pack(work, path, arrays, lz4=lz4, chunk_size=chunk_size,
                 metadata=json.dumps(meta).encode())
    shutil.rmtree(src, ignore_errors=True)
    return arrays


def store_fds(pid, store):
    """Descriptors of process @pid open on files under @store (the
    directory itself included; deleted files too)."""
    real = os.path.realpath(store)
    n = 0
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            target = os.readlink("/proc/%d/fd/%s" % (pid, fd))
        except OSError:
            continue
        if target == real or target.startswith(real + "/"):
            n += 1
    return n


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def wait_for(cond, timeout, what, step=0.005):
    """Polls @cond until it returns a true value (returned) or @timeout
    seconds pass (failure naming @what)."""
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            h.fail("timed out after %.1f s waiting for %s" % (timeout, what))
        time.sleep(step)


def exists(path):
    try:
        os.stat(path)
        return True
    except FileNotFoundError:
        return False


def status_model(m, key, state="published"):
    """The .status entry of @key in @state, or None."""
    for x in m.status()["models"]:
        if x["key"] == key and x["state"] == state:
            return x
    return None


def map_array(path):
    """Opens and maps .npy file @path read-only; returns (mmap, data
    view as uint8 from the data offset).  The file is closed: the mapping
    alone holds the handle."""
    fd = os.open(path, os.O_RDONLY)
    try:
        mm = mmap.mmap(fd, 0, prot=mmap.PROT_READ)
    finally:
        os.close(fd)
    return mm


def drop_dentries():
    """Asks the kernel to drop unused dentries and inodes (so it sends
    FORGET for the mount's cached entries).  Needs root."""
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("2\n")


def quiet_sanitizer_quarantine():
    """Under ASan a daemon keeps freed memory in a quarantine (256 MB by
    default) that looks like growth in RSS measurements: keep it small
    for the daemons this process starts (ignored without ASan)."""
    opts = os.environ.get("ASAN_OPTIONS", "")
    if "quarantine_size_mb" not in opts:
        os.environ["ASAN_OPTIONS"] = (opts + ":" if opts else "") + \
            "quarantine_size_mb=8"
