"""harness.py - shared machinery of the 'mount' test suite.

Every test script calls ``harness.run(main)``.  ``run`` applies the skip
policy (no /dev/fuse: exit 77, unless MODELFS_REQUIRE_FUSE=1), turns
SIGTERM/SIGINT (meson's timeout) into an exception so that every cleanup
runs, gives ``main`` a fresh work directory, and afterwards asserts that no
mount made by the test is left in /proc/mounts and that every daemon it
started has exited.

``mounted(store, ...)`` is the context manager that runs the real daemon:
``modelfs -f [options] STORE MNT`` with stdout+stderr captured to a file,
waits (10 s) until /proc/mounts shows the mount as fuse.modelfs, and always
unmounts (``fusermount3 -u``, then ``-uz``), stops the daemon and removes
the mountpoint.  On a normal exit it also asserts that the daemon left by
itself with status 0 once unmounted and printed no sanitizer report.

Run with the Python that has numpy (PYTHON_NUMPY, /usr/bin/python3).
"""

import atexit
import contextlib
import errno
import io
import json
import os
import random
import resource
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import traceback

import numpy as np

SKIP = 77
BUILD_DIR = os.environ.get("MODELFS_BUILD_DIR", "")
MODELFS = os.path.join(BUILD_DIR, "fs", "modelfs")
MODELCTL = os.path.join(BUILD_DIR, "tools", "modelctl")
FSTYPE = "fuse.modelfs"
MOUNT_TIMEOUT = 10.0
SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                   "runtime error:", "WARNING: ThreadSanitizer",
                   "ERROR: UndefinedBehaviorSanitizer")


class TestFailure(AssertionError):
    pass


class Interrupted(BaseException):
    """Raised from the SIGTERM/SIGINT handler so finally blocks run."""


def fail(msg):
    raise TestFailure(msg)


def check(cond, msg):
    if not cond:
        raise TestFailure(msg)


def log(*args):
    print(*args, flush=True)


# ---------------------------------------------------------------------------
# Bookkeeping of what this process mounted/started, for the final checks and
# for last-resort cleanup at exit.
_our_mountpoints = set()
_our_daemons = []


def proc_mounts():
    """[(source, mountpoint, fstype)] from /proc/mounts (octal escapes
    decoded)."""
    out = []
    with open("/proc/mounts", "rb") as f:
        for line in f:
            parts = line.split(b" ")
            if len(parts) < 3:
                continue

            def dec(b):
                return b.decode("unicode_escape").encode("latin-1").decode(
                    "utf-8", "surrogateescape")
            out.append((dec(parts[0]), dec(parts[1]), dec(parts[2])))
    return out


def mount_type(path):
    path = os.path.realpath(path)
    found = None
    for _src, mnt, typ in proc_mounts():
        if mnt == path:
            found = typ  # the last one is the top of the stack
    return found


def _unmount(path):
    """Unmounts @path: fusermount3 -u, falling back to lazy unmounts.
    Returns (gone, lazy): whether it is no longer a mountpoint, and whether
    the plain unmount failed (the mount was busy)."""
    lazy = False
    for args in (["fusermount3", "-u", path], ["fusermount3", "-uz", path],
                 ["umount", "-l", path]):
        if mount_type(path) is None:
            return True, lazy
        if args[1] != "-u":
            lazy = True
        try:
            subprocess.run(args, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            pass
    return mount_type(path) is None, lazy


def _stop(proc, grace=5.0):
    """Waits @grace seconds for @proc, then SIGTERM, then SIGKILL."""
    if proc.poll() is not None:
        return proc.returncode
    try:
        return proc.wait(grace)
    except subprocess.TimeoutExpired:
        pass
    proc.terminate()
    try:
        return proc.wait(3)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


@atexit.register
def _last_resort_cleanup():
    for mnt in list(_our_mountpoints):
        _unmount(mnt)
    for proc in _our_daemons:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _on_signal(signum, _frame):
    raise Interrupted("signal %d" % signum)


# ---------------------------------------------------------------------------
# Running a test script.

def require_fuse():
    if not os.path.exists("/dev/fuse"):
        if os.environ.get("MODELFS_REQUIRE_FUSE") == "1":
            fail("/dev/fuse is missing and MODELFS_REQUIRE_FUSE=1")
        log("SKIP: /dev/fuse is missing")
        sys.exit(SKIP)


def require_binaries():
    check(BUILD_DIR, "MODELFS_BUILD_DIR is not set (run through meson test)")
    for exe in (MODELFS, MODELCTL):
        check(os.access(exe, os.X_OK), "%s is not built" % exe)


class Work:
    """A fresh directory (mode 0755, so another user can reach a mountpoint
    in it) that is removed at the end."""

    def __init__(self):
        self.root = tempfile.mkdtemp(prefix="modelfs-mt-")
        os.chmod(self.root, 0o755)

    def path(self, *parts):
        return os.path.join(self.root, *parts)

    def dir(self, name, mode=0o755):
        p = self.path(name)
        os.makedirs(p, exist_ok=True)
        os.chmod(p, mode)
        return p

    def cleanup(self):
        # Never recurse into a live mount.
        for mnt in list(_our_mountpoints):
            if mnt.startswith(self.root + os.sep):
                _unmount(mnt)
        shutil.rmtree(self.root, ignore_errors=True)


def run(main):
    """Runs main(work) with the suite's policies; exits with its status."""
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    status = 0
    work = None
    try:
        require_fuse()
        require_binaries()
        work = Work()
        main(work)
    except SystemExit as e:
        status = e.code if isinstance(e.code, int) else 1
    except Interrupted as e:
        log("INTERRUPTED (%s): cleaning up" % e)
        status = 1
    except BaseException:  # noqa: B902 - report everything, then clean up
        traceback.print_exc()
        status = 1
    finally:
        if work is not None:
            work.cleanup()
        left = [m for _s, m, t in proc_mounts()
                if t == FSTYPE and m in _our_mountpoints]
        if left:
            log("FAIL: mounts left behind: %s" % left)
            status = status or 1
        alive = [p.pid for p in _our_daemons if p.poll() is None]
        if alive:
            log("FAIL: daemons still running: %s" % alive)
            status = status or 1
        _last_resort_cleanup()
    if status == 0:
        log("PASS")
    sys.exit(status)


# ---------------------------------------------------------------------------
# The daemon.

class Mount:
    def __init__(self, path, proc, log_path, store):
        self.path = path
        self.proc = proc
        self.log_path = log_path
        self.store = store

    def p(self, *parts):
        return os.path.join(self.path, *parts)

    def log(self):
        with open(self.log_path, "r", errors="replace") as f:
            return f.read()

    def alive(self):
        return self.proc.poll() is None and mount_type(self.path) == FSTYPE

    def check_alive(self):
        check(self.proc.poll() is None,
              "daemon exited with %s; its log:\n%s" %
              (self.proc.returncode, self.log()))
        check(mount_type(self.path) == FSTYPE,
              "mount %s vanished; daemon log:\n%s" % (self.path, self.log()))

    def status(self):
        with open(self.p(".status"), "rb") as f:
            return json.loads(f.read())

    def server_pid(self):
        """The serving process (the started daemon, self.proc, is its
        supervisor, which holds the mount)."""
        return self.status()["server_pid"]


@contextlib.contextmanager
def mounted(work, store, options=(), args=(), name="mnt", nofile=None):
    """Mounts @store with the real daemon; yields a Mount.  @options are
    joined into one -o; @args are extra command-line arguments; @nofile,
    if given, is the daemon's descriptor limit (soft and hard)."""
    mnt = tempfile.mkdtemp(prefix=name + "-", dir=work.root)
    os.chmod(mnt, 0o755)
    log_path = mnt + ".log"
    cmd = [MODELFS, "-f"]
    if options:
        cmd += ["-o", ",".join(options)]
    cmd += list(args) + [store, mnt]
    logf = open(log_path, "wb")
    _our_mountpoints.add(os.path.realpath(mnt))
    limit = None
    if nofile is not None:
        def limit():
            resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=logf,
                            stderr=logf, close_fds=True, preexec_fn=limit)
    logf.close()
    _our_daemons.append(proc)
    m = Mount(mnt, proc, log_path, store)
    ok = False
    try:
        deadline = time.monotonic() + MOUNT_TIMEOUT
        while mount_type(mnt) != FSTYPE:
            if proc.poll() is not None:
                fail("daemon %s exited with %s before mounting; log:\n%s" %
                     (" ".join(cmd), proc.returncode, m.log()))
            if time.monotonic() > deadline:
                fail("%s not mounted after %.0f s (type %r); log:\n%s" %
                     (mnt, MOUNT_TIMEOUT, mount_type(mnt), m.log()))
            time.sleep(0.02)
        yield m
        ok = True
    finally:
        gone, lazy = _unmount(mnt)
        rc = _stop(proc, grace=5.0 if ok and not lazy else 1.0)
        text = m.log()
        if gone:
            _our_mountpoints.discard(os.path.realpath(mnt))
            try:
                os.rmdir(mnt)
            except OSError:
                pass
        if ok:
            check(gone, "could not unmount %s" % mnt)
            check(not lazy, "%s was busy at unmount (the test still holds"
                  " a file or mapping; lazily unmounted)" % mnt)
            check(rc == 0, "daemon exit status %s after unmount (expected 0);"
                  " log:\n%s" % (rc, text))
            marks = [s for s in SANITIZER_MARKS if s in text]
            check(not marks, "sanitizer report in daemon log:\n%s" % text)
        elif text.strip():
            log("---- daemon log (%s) ----\n%s---- end of daemon log ----" %
                (" ".join(cmd), text))


# ---------------------------------------------------------------------------
# Arrays and containers.

def run_tool(args, check_ok=True, **kw):
    p = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       **kw)
    if check_ok and p.returncode != 0:
        fail("%s failed with %d:\nstdout: %s\nstderr: %s" %
             (" ".join(args), p.returncode,
              p.stdout.decode(errors="replace"),
              p.stderr.decode(errors="replace")))
    err = p.stderr.decode(errors="replace")
    marks = [s for s in SANITIZER_MARKS if s in err]
    check(not marks, "sanitizer report from %s:\n%s" % (args[0], err))
    return p


class Array:
    """A source array: @data is the ndarray whose bytes are stored;
    @declared is the dtype name given to modelctl (None: from the .npy)."""

    def __init__(self, name, data, declared=None):
        self.name = name
        self.data = data
        self.declared = declared

    @property
    def dtype_name(self):
        return self.declared or self.data.dtype.name

    @property
    def raw(self):
        """The bytes in the array's own order (what the .npy holds)."""
        return self.data.tobytes(order="A" if self.fortran else "C")

    @property
    def fortran(self):
        return (self.data.ndim > 1 and self.data.flags.f_contiguous and
                not self.data.flags.c_contiguous)


def _random_bits(rng, n, itemsize):
    return rng.integers(0, 256, size=n * itemsize, dtype=np.uint8)


def _floats(rng, shape, dt):
    """Random bit patterns (NaNs with payloads, infs, denormals, -0) mixed
    with ordinary values."""
    dt = np.dtype(dt)
    n = int(np.prod(shape)) if shape else 1
    bits = _random_bits(rng, n, dt.itemsize).view(dt)
    vals = rng.standard_normal(n).astype(dt)
    out = np.where(rng.integers(0, 2, n).astype(bool), bits, vals)
    specials = np.array([0.0, -0.0, np.inf, -np.inf, np.nan], dtype=dt)
    k = min(n, len(specials))
    out[:k] = specials[:k]
    return out.reshape(shape)


def random_array(rng, dtype, shape, order="C"):
    """An array of @dtype ("bfloat16" gives uint16 bits) and @shape."""
    shape = tuple(shape)
    n = int(np.prod(shape)) if shape else 1
    if dtype == "bool":
        a = rng.integers(0, 2, n).astype(np.bool_).reshape(shape)
    elif dtype == "bfloat16":
        f = rng.standard_normal(n).astype(np.float32)
        a = (f.view(np.uint32) >> 16).astype(np.uint16).reshape(shape)
    elif dtype.startswith("int") or dtype.startswith("uint"):
        dt = np.dtype(dtype)
        a = _random_bits(rng, n, dt.itemsize).view(dt).reshape(shape)
    elif dtype.startswith("float"):
        a = _floats(rng, shape, dtype)
    elif dtype.startswith("complex"):
        half = {"complex64": "float32", "complex128": "float64"}[dtype]
        re_ = _floats(rng, (n,), half)
        im = _floats(rng, (n,), half)
        a = np.empty(n, dtype=dtype)
        a.real = re_
        a.imag = im
        a = a.reshape(shape)
    else:
        raise ValueError(dtype)
    if order == "F":
        a = np.asfortranarray(a)
    else:
        a = np.ascontiguousarray(a)
    if shape == ():
        a = np.array(a.reshape(()), dtype=a.dtype)
    return a


def compressible_array(rng, dtype, n):
    """1-D array LZ4 compresses (runs of small values)."""
    base = rng.integers(0, 8, n // 64 + 1).repeat(64)[:n]
    return np.ascontiguousarray(base.astype(dtype))


ALL_DTYPES = ["bool", "int8", "int16", "int32", "int64", "uint8", "uint16",
              "uint32", "uint64", "float16", "bfloat16", "float32",
              "float64", "complex64", "complex128"]


def dtype_arrays(rng, big=True):
    """Arrays of every dtype in several shapes: small 2-D, 0-d, empty,
    Fortran order, and (if @big) multi-page ones whose sizes are not a
    multiple of 4096."""
    out = []
    for dt in ALL_DTYPES:
        decl = "bfloat16" if dt == "bfloat16" else None
        t = dt.replace("bfloat16", "bf16")
        out.append(Array(t + ".small", random_array(rng, dt, (3, 4)), decl))
        out.append(Array(t + ".scalar", random_array(rng, dt, ()), decl))
        out.append(Array(t + ".empty", random_array(rng, dt, (0,)), decl))
        out.append(Array(t + ".fortran",
                         random_array(rng, dt, (7, 5, 3), "F"), decl))
        if big:
            # 3001 elements x itemsize: never a multiple of 4096
            out.append(Array(t + ".big", random_array(rng, dt, (3001, 3)),
                             decl))
    out.append(Array("empty2d", random_array(rng, "float32", (3, 0))))
    out.append(Array("fortran2d", random_array(rng, "int32", (33, 17), "F")))
    return out


def save_npy(path, arr):
    np.save(path, arr.data, allow_pickle=False)
    return path


def npy_data_offset(path):
    with open(path, "rb") as f:
        ver = np.lib.format.read_magic(f)
        if ver == (1, 0):
            np.lib.format.read_array_header_1_0(f)
        else:
            np.lib.format.read_array_header_2_0(f)
        return f.tell()


def pack(work, out, arrays, lz4=False, chunk_size=None, metadata=None):
    """Packs @arrays (list of Array) into container @out with modelctl.
    @metadata: bytes of a JSON document (written to a file verbatim)."""
    src = tempfile.mkdtemp(prefix="npy-", dir=work.root)
    args = [MODELCTL, "pack", out]
    if lz4:
        args.append("--lz4")
    if chunk_size:
        args += ["--chunk-size", str(chunk_size)]
    if metadata is not None:
        mpath = os.path.join(src, "metadata.json")
        with open(mpath, "wb") as f:
            f.write(metadata)
        args += ["--metadata", mpath]
    for a in arrays:
        p = save_npy(os.path.join(src, a.name + ".npy"), a)
        spec = a.name + (":" + a.declared if a.declared else "")
        args.append("%s=%s" % (spec, p))
    run_tool(args)
    check(os.path.isfile(out), "modelctl pack did not create %s" % out)
    return src


def inspect(path):
    p = run_tool([MODELCTL, "inspect", "--json", path])
    try:
        return json.loads(p.stdout)
    except ValueError as e:
        fail("modelctl inspect --json %s printed invalid JSON (%s): %r" %
             (path, e, p.stdout[:500]))


def npy_bytes(a):
    """Bytes a correct mount serves for Array @a after its header."""
    return a.raw


NPY_HEADER_SIZE = 4096


def numpy_npy_header(a):
    """The NPY 1.0 header NumPy itself writes for Array @a's data."""
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buf, np.lib.format.header_data_from_array_1_0(a.data))
    return buf.getvalue()


def npy_header_len(a):
    """Length of the header the mount serves before Array @a's data: 4096,
    or for an array with no elements NumPy's own compact header."""
    return NPY_HEADER_SIZE if a.data.size else len(numpy_npy_header(a))


# ---------------------------------------------------------------------------
# Container parsing (FORMAT.md), to find the chunk table for corruption.

def parse_container(path):
    """Returns {"arrays": [{name, data_offset, chunk_size, codec, raw_length,
    chunks: [(offset_from_data_offset, stored_length, checksum)]}],
    "index_offset", "index_length", "metadata_length"}."""
    with open(path, "rb") as f:
        blob = f.read()
    check(blob[:8] == b"\x89MFS\r\n\x1a\n", "%s: bad magic" % path)
    (file_size, index_offset, index_length) = struct.unpack_from(
        "<QQQ", blob, 16)
    check(file_size == len(blob), "%s: file_size field" % path)
    idx = index_offset
    meta_len, count = struct.unpack_from("<II", blob, idx)
    pos = idx + 16 + meta_len
    pos += (-pos) % 8
    arrays = []
    for _ in range(count):
        (name_len, dtype, order, codec, ndim, _r1, chunk_size, _r2,
         data_offset, raw_length, stored_length, chunk_count) = \
            struct.unpack_from("<HBBBBHIIQQQQ", blob, pos)
        pos += 48
        shape = struct.unpack_from("<%dQ" % ndim, blob, pos)
        pos += 8 * ndim
        name = blob[pos:pos + name_len].decode()
        pos += name_len
        pos += (-pos) % 8
        chunks = []
        for _c in range(chunk_count):
            off, slen, _r, csum = struct.unpack_from("<QIIQ", blob, pos)
            chunks.append((off, slen, csum))
            pos += 24
        arrays.append(dict(name=name, dtype=dtype, order=order, codec=codec,
                           shape=shape, chunk_size=chunk_size,
                           data_offset=data_offset, raw_length=raw_length,
                           stored_length=stored_length, chunks=chunks))
    check(pos == len(blob), "%s: index does not end at end of file" % path)
    return dict(arrays=arrays, index_offset=index_offset,
                index_length=index_length, metadata_length=meta_len)


def flip_byte(path, offset, mask=0xFF):
    with open(path, "r+b") as f:
        f.seek(offset)
        b = f.read(1)
        check(len(b) == 1, "flip_byte: offset %d beyond %s" % (offset, path))
        f.seek(offset)
        f.write(bytes([b[0] ^ mask]))
        f.flush()
        os.fsync(f.fileno())


# ---------------------------------------------------------------------------
# Small helpers for the tests.

def expect_errno(expected, fn, *args, what=None, **kw):
    """Calls fn(*args); asserts it raises OSError with errno @expected.
    Returns None on success, or a failure string."""
    what = what or "%s%r" % (getattr(fn, "__name__", fn), args)
    try:
        r = fn(*args, **kw)
    except OSError as e:
        if e.errno == expected:
            return None
        return "%s: expected %s, got %s (%s)" % (
            what, errno.errorcode[expected],
            errno.errorcode.get(e.errno, e.errno), e)
    if isinstance(r, int) and r >= 0 and fn is os.open:
        os.close(r)
    return "%s: expected %s, but it succeeded" % (
        what, errno.errorcode[expected])


def load_matches(path, a):
    """np.load(@path, mmap_mode="r") equals Array @a bit for bit; the map
    is dropped before returning (a live map keeps the mount busy)."""
    mm = np.load(path, mmap_mode="r")
    try:
        return (mm.dtype == a.data.dtype and mm.shape == a.data.shape and
                np.asarray(mm).tobytes(order="A" if a.fortran else "C") ==
                a.raw)
    finally:
        del mm


def read_file(path):
    with open(path, "rb") as f:
        return f.read()


def pread_all(fd, size, block=1 << 20):
    out = bytearray()
    off = 0
    while off < size:
        b = os.pread(fd, min(block, size - off), off)
        if not b:
            break
        out += b
        off += len(b)
    return bytes(out)


def find_numbers(obj, pred):
    """All (path, value) in a JSON value whose key satisfies @pred."""
    out = []

    def walk(o, path):
        if isinstance(o, dict):
            for k, v in o.items():
                if pred(k) and isinstance(v, int) and not isinstance(v, bool):
                    out.append((path + "/" + k, v))
                walk(v, path + "/" + k)
        elif isinstance(o, list):
            for i, v in enumerate(o):
                walk(v, "%s[%d]" % (path, i))
    walk(obj, "")
    return out


__all__ = [n for n in dir() if not n.startswith("_")] + ["random"]
