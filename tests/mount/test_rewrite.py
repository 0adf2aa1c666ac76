"""Mount test: containers rewritten in place while a holder has them open.

In-place rewrites are not how models are published, but corrupt bytes must
never be served even then.  A raw float32 model is read whole through the
mount by a holder that keeps it open; then its container is changed in
place: (a) data bytes overwritten (open r+b, write, close), (b) truncated
through an open descriptor, (c) appended to, (d) truncated by path
(truncate(2), no open).  After each, the page cache of the mount's file and
of the container is dropped, and every page is read again by pread and
through a fresh mapping in a child process: each page is the old bytes or
an error (EIO; SIGBUS for the mapping), never new or other bytes, and the
file's size does not change.  The daemon's log names the rewrite.

A container that a process holds open for writing when the daemon loads it
cannot be leased: it is served re-verifying every chunk from the start
(its lease is "none" in /.status), and a write through that descriptor is
caught the same way.  A
container published the usual way ends up leased.

All of it with raw bytes sent by splice (the default) and by pread."""

import errno
import os
import signal
import time

import numpy as np

import harness as h

PAGE = 4096
CS = 64 << 10          # chunk size: 32 chunks of 64 KiB
N = (2 << 20) // 4     # 2 MiB of float32
HDR = 4096             # the .npy header the mount serves
LEASE_WAIT = 5.0       # seconds for a refresh after the writer's close
CASES = ("ow", "tr", "ap", "tt")


def make_store(work, name, arr):
    store = work.dir(name)
    for key in CASES + ("held",):
        h.pack(work, os.path.join(store, key + ".mfs"),
               [h.Array("emb", arr)], chunk_size=CS)
    return store


def data_offset(path):
    return h.parse_container(path)["arrays"][0]["data_offset"]


def overwrite(path):
    rng = np.random.default_rng(11)
    with open(path, "r+b") as f:
        f.seek(data_offset(path) + 3 * CS + 100)
        f.write(rng.integers(0, 256, 4 * CS, dtype=np.uint8).tobytes())


def truncate_open(path):
    with open(path, "r+b") as f:
        f.truncate(data_offset(path) + 26 * CS + 1000)


def append(path):
    with open(path, "ab") as f:
        f.write(b"\x7f" * (3 * CS))


def truncate_path(path):
    os.truncate(path, data_offset(path) + 29 * CS + 3)


def drop_caches(fd, container):
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    cfd = os.open(container, os.O_RDONLY)
    try:
        os.posix_fadvise(cfd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(cfd)


def check_pread(errors, what, fd, old):
    """Every page of @fd by pread: the old bytes or EIO.  Returns the
    number of pages that failed."""
    failed = 0
    for off in range(0, len(old), PAGE):
        want = old[off:off + PAGE]
        try:
            got = os.pread(fd, PAGE, off)
        except OSError as e:
            if e.errno != errno.EIO:
                errors.append("%s: pread at %d: %s" % (what, off, e))
            failed += 1
            continue
        if got != want:
            bad = "short" if len(got) < len(want) else "different"
            errors.append("%s: pread at %d returned %s bytes (%d)" %
                          (what, off, bad, len(got)))
    return failed


def mmap_child(fd, first, old, wfd):
    """Child: maps the holder's @fd and reports each page from @first: b"o" old bytes,
    b"x" other bytes.  A fault on a page it cannot read kills it (SIGBUS)."""
    try:
        import mmap
        mm = mmap.mmap(fd, len(old), prot=mmap.PROT_READ)
        for off in range(first * PAGE, len(old), PAGE):
            ok = mm[off:off + PAGE] == old[off:off + PAGE]
            os.write(wfd, b"o" if ok else b"x")
        os._exit(0)
    except BaseException:  # noqa: B902
        os._exit(2)


def check_mmap(errors, what, fd, old):
    """Every page of the holder's @fd through fresh mappings in child processes: the
    old bytes or SIGBUS (a new child goes on after the page that killed
    the last one).  Returns the number of pages that faulted."""
    pages = len(old) // PAGE
    page = faulted = 0
    while page < pages:
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(r)
            mmap_child(fd, page, old, w)
        os.close(w)
        got = b""
        while True:
            b = os.read(r, 1 << 16)
            if not b:
                break
            got += b
        os.close(r)
        _p, status = os.waitpid(pid, 0)
        for i, c in enumerate(got):
            if c != ord("o"):
                errors.append("%s: mapped page %d has other bytes" %
                              (what, page + i))
        page += len(got)
        if os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGBUS:
            faulted += 1
            page += 1
        elif status != 0:
            errors.append("%s: mmap child exited with status %#x" %
                          (what, status))
            break
    return faulted


def leases(m, key):
    """The "lease" of every generation of @key in the mount's .status."""
    return [x.get("lease") for x in m.status()["models"] if x["key"] == key]


def check_after(errors, what, fd, container, old):
    before = len(errors)
    drop_caches(fd, container)
    failed = check_pread(errors, what, fd, old)
    faulted = check_mmap(errors, what, fd, old)
    size = os.fstat(fd).st_size
    if size != len(old):
        errors.append("%s: size of the held file is %d, was %d" %
                      (what, size, len(old)))
    h.log("%s: %d pages EIO by pread, %d faulted through mmap, %d wrong" %
          (what, failed, faulted, len(errors) - before))
    return failed


def check_leased(work, arr, options):
    """Cases (a)-(d): the daemon holds a lease on each container."""
    store = make_store(work, "store-lease", arr)
    errors = []
    ops = {"ow": overwrite, "tr": truncate_open, "ap": append,
           "tt": truncate_path}
    with h.mounted(work, store, options=options) as m:
        fds, olds = {}, {}
        try:
            for key in CASES:
                path = m.p(key, "emb.npy")
                fds[key] = os.open(path, os.O_RDONLY)
                olds[key] = h.pread_all(fds[key], os.fstat(fds[key]).st_size)
                h.check(olds[key][HDR:] == arr.tobytes(),
                        "%s: first read of the model is wrong" % key)
                h.check(leases(m, key) == ["held"],
                        "%s: .status shows lease %r, expected held" %
                        (key, leases(m, key)))
            for key in CASES:
                container = os.path.join(store, key + ".mfs")
                what = "%r %s (%s)" % (options, key, ops[key].__name__)
                ops[key](container)
                failed = check_after(errors, what, fds[key], container,
                                     olds[key])
                if key in ("ow", "tr", "tt") and failed == 0:
                    errors.append("%s: no read failed although bytes "
                                  "changed" % what)
                if "broken" not in leases(m, key):
                    errors.append("%s: .status shows leases %r, expected "
                                  "the held generation's broken" %
                                  (what, leases(m, key)))
        finally:
            for fd in fds.values():
                os.close(fd)
        m.check_alive()
        log = m.log()
    for key in CASES:
        if "%s.mfs was opened for writing in place" % key not in log:
            errors.append("%r: daemon log does not name the rewrite of "
                          "%s.mfs:\n%s" % (options, key, log))
    h.check(not errors, "options %r: %d problems:\n  %s" %
            (options, len(errors), "\n  ".join(errors[:40])))


def check_published(work, arr, options):
    """A container published the usual way (modelctl put renames it into
    place before closing it, so the daemon cannot lease it at first) is
    leased once the writer has closed it: it does not stay re-verified."""
    store = work.dir("store-put")
    npy = h.save_npy(work.path("emb.npy"), h.Array("emb", arr))
    with h.mounted(work, store, options=options) as m:
        h.run_tool([h.MODELCTL, "put", store, "--key", "pub", npy])
        deadline = time.monotonic() + LEASE_WAIT
        while leases(m, "pub") != ["held"] and time.monotonic() < deadline:
            time.sleep(0.05)
        got = leases(m, "pub")
        data = h.read_file(m.p("pub", "emb.npy"))[HDR:]
    h.check(got == ["held"], "%r: a published model's lease is %r, "
            "expected held" % (options, got))
    h.check(data == arr.tobytes(), "%r: published model reads wrong" %
            options)


def check_unleased(work, arr, options):
    """A container open for writing when the daemon loads it."""
    store = make_store(work, "store-held", arr)
    container = os.path.join(store, "held.mfs")
    errors = []
    wfd = os.open(container, os.O_RDWR)
    try:
        with h.mounted(work, store, options=options) as m:
            path = m.p("held", "emb.npy")
            fd = os.open(path, os.O_RDONLY)
            try:
                old = h.pread_all(fd, os.fstat(fd).st_size)
                h.check(old[HDR:] == arr.tobytes(),
                        "held: first read of the model is wrong")
                h.check(leases(m, "held") == ["none"],
                        "held: .status shows lease %r, expected none" %
                        leases(m, "held"))
                junk = b"\x55" * (2 * CS)
                os.pwrite(wfd, junk, data_offset(container) + 5 * CS + 7)
                what = "%r held (write through a descriptor open at load)" \
                    % options
                if check_after(errors, what, fd, container, old) == 0:
                    errors.append("%s: no read failed although bytes "
                                  "changed" % what)
            finally:
                os.close(fd)
            m.check_alive()
    finally:
        os.close(wfd)
    h.check(not errors, "options %r: %d problems:\n  %s" %
            (options, len(errors), "\n  ".join(errors[:40])))


def main(work):
    rng = np.random.default_rng(7)
    arr = rng.standard_normal(N).astype(np.float32)
    for options in ([], ["io=pread"]):
        check_leased(work, arr, options)
        check_unleased(work, arr, options)
    check_published(work, arr, [])


if __name__ == "__main__":
    h.run(main)
