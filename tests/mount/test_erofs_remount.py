"""Mount test: root may remount the mount read-write (mount(2) with
MS_REMOUNT and without MS_RDONLY; FUSE accepts it), and then the kernel
passes write-like calls on to the daemon instead of refusing them itself.
Each still fails with EROFS, and nothing changes.  Needs root: exits 77
(skip) otherwise."""

import ctypes
import errno
import os
import sys

import numpy as np

import harness as h

MS_NOSUID = 2
MS_NODEV = 4
MS_REMOUNT = 32


def remount_rw(path):
    """Remounts @path read-write, keeping the daemon's other flags."""
    libc = ctypes.CDLL(None, use_errno=True)
    rc = libc.mount(b"modelfs", path.encode(), b"fuse.modelfs",
                    MS_REMOUNT | MS_NOSUID | MS_NODEV, None)
    h.check(rc == 0, "remount of %s read-write: %s" %
            (path, os.strerror(ctypes.get_errno())))


def mount_options(path):
    with open("/proc/self/mounts") as f:
        for line in f:
            fields = line.split()
            if fields[1] == path:
                return fields[3].split(",")
    return []


def write_ops(m):
    d, f = m.p("model"), m.p("model", "w.npy")
    new = os.path.join(d, "new-entry")
    return [
        ("create", os.open, (new, os.O_CREAT | os.O_WRONLY, 0o644)),
        ("create O_RDONLY", os.open, (new, os.O_CREAT | os.O_RDONLY, 0o644)),
        ("mkdir", os.mkdir, (new,)),
        ("mkfifo", os.mkfifo, (new,)),
        ("symlink", os.symlink, ("target", new)),
        ("link", os.link, (f, new)),
        ("rename", os.rename, (f, new)),
        ("unlink", os.unlink, (f,)),
        ("rmdir", os.rmdir, (d,)),
        ("open O_WRONLY", os.open, (f, os.O_WRONLY)),
        ("open O_TRUNC", os.open, (f, os.O_RDONLY | os.O_TRUNC)),
        ("truncate", os.truncate, (f, 0)),
        ("chmod", os.chmod, (f, 0o666)),
        ("chown", os.chown, (f, 1, 1)),
        ("utime", os.utime, (f, (1, 1))),
        ("setxattr", os.setxattr, (f, "user.test", b"1")),
        ("removexattr", os.removexattr, (f, "user.modelfs.dtype")),
    ]


def main(work):
    if os.geteuid() != 0:
        h.log("SKIP: remounting needs root")
        sys.exit(h.SKIP)
    rng = np.random.default_rng(11)
    arr = h.Array("w", h.random_array(rng, "float32", (64, 8)))
    store = work.dir("store")
    h.pack(work, os.path.join(store, "model.mfs"), [arr])
    errors = []
    with h.mounted(work, store) as m:
        h.check("ro" in mount_options(m.path), "the mount is not read-only")
        remount_rw(m.path)
        h.check("rw" in mount_options(m.path),
                "the remount did not make the mount read-write")
        for what, fn, args in write_ops(m):
            err = h.expect_errno(errno.EROFS, fn, *args, what=what)
            if err:
                errors.append(err)
        m.check_alive()
        got = h.read_file(m.p("model", "w.npy"))[4096:]
        if got != arr.raw:
            errors.append("model/w.npy changed")
        h.check(sorted(os.listdir(m.p("model"))) ==
                ["manifest.json", "metadata.json", "w.npy"],
                "the model directory changed: %s" %
                sorted(os.listdir(m.p("model"))))
    h.check(not errors, "%d problems:\n  %s" % (len(errors),
                                                 "\n  ".join(errors)))


if __name__ == "__main__":
    h.run(main)
