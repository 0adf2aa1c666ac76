"""Mount test 7: every write-like operation fails with EROFS exactly, on
the root, a model directory and an array file (and on manifest.json and
/.status); nothing changes afterwards.  (Operations on names that do not
exist, or rmdir of a file, are left out: unless the mount is flagged
read-only the kernel answers those itself, ENOENT/ENOTDIR.)"""

import errno
import os

import numpy as np

import harness as h


def ops_on_dir(d, existing_file, existing_entry):
    """Write-like operations in/on directory @d."""
    new = os.path.join(d, "new-entry")
    return [
        ("create %s" % new, os.open, (new, os.O_CREAT | os.O_WRONLY, 0o644)),
        ("create O_RDONLY %s" % new, os.open,
         (new, os.O_CREAT | os.O_RDONLY, 0o644)),
        ("create O_EXCL %s" % new, os.open,
         (new, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o644)),
        ("mkdir %s" % new, os.mkdir, (new,)),
        ("mkfifo %s" % new, os.mkfifo, (new,)),
        ("symlink %s" % new, os.symlink, ("target", new)),
        ("link %s -> %s" % (existing_file, new), os.link,
         (existing_file, new)),
        ("rename %s" % existing_entry, os.rename,
         (existing_entry, new)),
        ("rename onto %s" % existing_entry, os.rename,
         (existing_entry, existing_entry + "x")),
        ("chmod %s" % d, os.chmod, (d, 0o777)),
        ("chown %s" % d, os.chown, (d, 1, 1)),
        ("utime %s" % d, os.utime, (d, (1, 1))),
        ("utime now %s" % d, os.utime, (d, None)),
        ("setxattr %s" % d, os.setxattr, (d, "user.test", b"1")),
        ("setxattr user.modelfs %s" % d, os.setxattr,
         (d, "user.modelfs.open_handles", b"7")),
    ]


def ops_on_file(f, d):
    other = os.path.join(d, "renamed.npy")
    return [
        ("open O_WRONLY %s" % f, os.open, (f, os.O_WRONLY)),
        ("open O_RDWR %s" % f, os.open, (f, os.O_RDWR)),
        ("open O_APPEND %s" % f, os.open, (f, os.O_WRONLY | os.O_APPEND)),
        ("open O_TRUNC %s" % f, os.open, (f, os.O_RDONLY | os.O_TRUNC)),
        ("open O_CREAT|O_WRONLY existing %s" % f, os.open,
         (f, os.O_CREAT | os.O_WRONLY, 0o644)),
        ("truncate %s" % f, os.truncate, (f, 0)),
        ("truncate grow %s" % f, os.truncate, (f, 1 << 20)),
        ("unlink %s" % f, os.unlink, (f,)),
        ("rename %s" % f, os.rename, (f, other)),
        ("link %s" % f, os.link, (f, other)),
        ("chmod %s" % f, os.chmod, (f, 0o666)),
        ("chown %s" % f, os.chown, (f, 1, 1)),
        ("utime %s" % f, os.utime, (f, (1, 1))),
        ("utime now %s" % f, os.utime, (f, None)),
        ("setxattr %s" % f, os.setxattr, (f, "user.test", b"1")),
        ("setxattr dtype %s" % f, os.setxattr,
         (f, "user.modelfs.dtype", b"int8")),
        ("removexattr dtype %s" % f, os.removexattr,
         (f, "user.modelfs.dtype")),
    ]


def snapshot(m):
    out = {}
    for dirpath, dirnames, filenames in os.walk(m.path):
        for n in dirnames + filenames:
            p = os.path.join(dirpath, n)
            st = os.lstat(p)
            out[p] = (st.st_mode, st.st_uid, st.st_gid, st.st_size,
                      st.st_mtime_ns)
    return out


def main(work):
    rng = np.random.default_rng(7)
    arrays = [h.Array("w", h.random_array(rng, "float32", (100, 10))),
              h.Array("v", h.random_array(rng, "int8", (5000,)))]
    store = work.dir("store")
    h.pack(work, os.path.join(store, "model.mfs"), arrays, lz4=True,
           chunk_size=4096)
    h.pack(work, os.path.join(store, "other.mfs"), arrays[:1])
    store_before = {n: h.read_file(os.path.join(store, n))
                    for n in os.listdir(store)}
    errors = []
    with h.mounted(work, store) as m:
        before = snapshot(m)
        root, mdir = m.path, m.p("model")
        arr = m.p("model", "w.npy")
        ops = ops_on_dir(root, arr, m.p("other"))
        ops += ops_on_dir(mdir, arr, m.p("model", "v.npy"))
        ops += ops_on_file(arr, mdir)
        ops += ops_on_file(m.p("model", "manifest.json"), mdir)
        ops += [
            ("rmdir %s" % mdir, os.rmdir, (mdir,)),
            ("unlink manifest", os.unlink, (m.p("model", "manifest.json"),)),
            ("unlink .status", os.unlink, (m.p(".status"),)),
            ("open .status O_WRONLY", os.open, (m.p(".status"),
                                                os.O_WRONLY)),
            ("rename dir into dir", os.rename, (m.p("other"),
                                                m.p("model", "other"))),
            ("rename model onto model", os.rename, (m.p("other"), mdir)),
        ]
        for what, fn, args in ops:
            err = h.expect_errno(errno.EROFS, fn, *args, what=what)
            if err:
                errors.append(err)
        m.check_alive()
        after = snapshot(m)
        if before != after:
            changed = sorted(p for p in set(before) | set(after)
                             if before.get(p) != after.get(p))
            errors.append("the mount changed: %s" % changed)
        for a in arrays:
            got = h.read_file(m.p("model", a.name + ".npy"))[4096:]
            if got != a.raw:
                errors.append("model/%s.npy changed" % a.name)
    store_after = {n: h.read_file(os.path.join(store, n))
                   for n in os.listdir(store)}
    if store_before != store_after:
        errors.append("the store directory changed")
    h.check(not errors, "%d problems:\n  %s" % (len(errors),
                                                 "\n  ".join(errors)))


if __name__ == "__main__":
    h.run(main)
