"""Mount test: what README shows of a mount from the shell.

`getfattr -d` shows the user.modelfs.* attributes MOUNT.md lists (dtype,
shape and codec of an array file, open_handles and holders of a model
directory, store_dir of the root); the security.* and system.* (POSIX ACL)
namespaces answer "Operation not supported", which is what lets `ls -l`
stop asking for them on every entry; `ls -l` of the root and of a model
directory lists the models and their files, read-only (the container's
mode minus its write bits), each .npy file 4096 bytes of header plus the
array's raw bytes."""

import errno
import os
import subprocess

import numpy as np

import harness as h

# The container's mode: the mount mirrors it minus the write bits.
CONTAINER_MODE = 0o640
DIR_MODE_TEXT = "dr-xr-x---"
FILE_MODE_TEXT = "-r--r-----"
# Where a served .npy file's array data starts (README, "C").
NPY_DATA_OFFSET = 4096
METADATA = b'{"shell": true}'
# The names the mount has no attributes in.
UNSUPPORTED = ["security.selinux", "system.posix_acl_access",
               "system.posix_acl_default"]
SHELL_ENV = dict(os.environ, LC_ALL="C")


def shell(args):
    """(exit status, stdout, stderr) of @args in the C locale."""
    p = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       env=SHELL_ENV, universal_newlines=True)
    return p.returncode, p.stdout, p.stderr


def getfattr_dump(path):
    """{name: value} of `getfattr -d @path` (its user.* attributes)."""
    rc, out, err = shell(["getfattr", "-d", "--absolute-names", path])
    h.check(rc == 0 and not err, "getfattr -d %s: %d %r" % (path, rc, err))
    values = {}
    for line in out.splitlines():
        if line and not line.startswith("#"):
            name, _, val = line.partition("=")
            values[name] = val.strip('"')
    return values


def ls_long(path):
    """{name: (mode text, size)} of `ls -l @path`, checked to complain of
    nothing (an ACL or label lookup error would)."""
    rc, out, err = shell(["ls", "-l", "--color=never", path])
    h.check(rc == 0 and not err, "ls -l %s: %d %r" % (path, rc, err))
    entries = {}
    for line in out.splitlines()[1:]:       # after "total N"
        cols = line.split()
        entries[cols[-1]] = (cols[0], int(cols[4]))
    return entries


def check_unsupported(path):
    """Every security.* and system.* name of @path answers EOPNOTSUPP, to
    getfattr and to getxattr(2); an unknown user.* name ENODATA."""
    for name in UNSUPPORTED:
        rc, _out, err = shell(["getfattr", "--absolute-names", "-n", name,
                               path])
        h.check(rc != 0 and "Operation not supported" in err,
                "getfattr -n %s %s: %d %r" % (name, path, rc, err))
        e = h.expect_errno(errno.EOPNOTSUPP, os.getxattr, path, name)
        h.check(not e, e)
    e = h.expect_errno(errno.ENODATA, os.getxattr, path,
                       "user.modelfs.nonexistent")
    h.check(not e, e)


def check_xattrs(m, store, arrays):
    dump = getfattr_dump(m.path)
    h.check(dump == {"user.modelfs.store_dir": os.path.realpath(store)},
            "getfattr -d of the root: %r" % dump)
    dump = getfattr_dump(m.p("m"))
    h.check(sorted(dump) == ["user.modelfs.holders",
                             "user.modelfs.open_handles"],
            "getfattr -d of the model: %r" % dump)
    h.check(dump["user.modelfs.open_handles"] == "1" and
            dump["user.modelfs.holders"] == str(os.getpid()),
            "open_handles/holders of the model: %r" % dump)
    for a, codec in arrays:
        dump = getfattr_dump(m.p("m", a.name + ".npy"))
        want = {"user.modelfs.dtype": a.dtype_name,
                "user.modelfs.shape": ",".join(map(str, a.data.shape)),
                "user.modelfs.codec": codec}
        h.check(dump == want, "getfattr -d of %s.npy: %r, expected %r" %
                (a.name, dump, want))
    for path in (m.path, m.p("m"), m.p("m", "a.npy"),
                 m.p("m", "manifest.json")):
        check_unsupported(path)


def check_listing(m, arrays):
    root = ls_long(m.path)
    h.check(list(root) == ["m"] and root["m"][0] == DIR_MODE_TEXT,
            "ls -l of the root: %r" % root)
    files = ls_long(m.p("m"))
    want = sorted([a.name + ".npy" for a, _c in arrays] +
                  ["manifest.json", "metadata.json"])
    h.check(sorted(files) == want, "ls -l of the model: %r" % files)
    for name, (mode, _size) in files.items():
        h.check(mode == FILE_MODE_TEXT, "mode of %s: %s" % (name, mode))
    for a, _c in arrays:
        size = files[a.name + ".npy"][1]
        h.check(size == NPY_DATA_OFFSET + len(a.raw),
                "size of %s.npy: %d, expected 4096 + %d" %
                (a.name, size, len(a.raw)))
    h.check(files["metadata.json"][1] == len(METADATA),
            "size of metadata.json: %r" % (files["metadata.json"],))


def main(work):
    store = work.dir("store")
    rng = np.random.default_rng(14)
    arrays = [(h.Array("a", h.random_array(rng, "float32", (64, 3))),
               "lz4"),
              (h.Array("b", h.random_array(rng, "int16", (7,))), "lz4")]
    container = os.path.join(store, "m.mfs")
    h.pack(work, container, [a for a, _c in arrays], lz4=True,
           metadata=METADATA)
    os.chmod(container, CONTAINER_MODE)
    with h.mounted(work, store) as m:
        # A holder, so that the model's attributes have values.
        fd = os.open(m.p("m", "a.npy"), os.O_RDONLY)
        try:
            check_xattrs(m, store, arrays)
            check_listing(m, arrays)
        finally:
            os.close(fd)


if __name__ == "__main__":
    h.run(main)
