"""Mount test 8: per-model access control is the store's file permissions.

Container A is root-owned 0600, container B 0644; mounted with
-o allow_other.  As an unprivileged user (modelfs-test, created if
missing), A's directory cannot be listed or entered (EACCES) and its
array cannot be read; B's directory lists and its array reads correctly.
Root reads both.  Needs root: exits 77 (skip) otherwise."""

import errno
import json
import os
import pwd
import sys

import numpy as np

import harness as h

USER = "modelfs-test"


def ensure_user():
    try:
        return pwd.getpwnam(USER)
    except KeyError:
        pass
    h.run_tool(["useradd", "--system", "--no-create-home", "--shell",
                "/usr/sbin/nologin", USER])
    return pwd.getpwnam(USER)


def as_user(pw, fn):
    """Runs fn() in a child with the user's uid/gid; returns its result
    (JSON-able) or raises with the child's traceback."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            os.close(r)
            os.setgroups([])
            os.setgid(pw.pw_gid)
            os.setuid(pw.pw_uid)
            res = {"ok": fn()}
        except BaseException as e:  # noqa: B902 - sent to the parent
            res = {"error": repr(e)}
            code = 1
        try:
            os.write(w, json.dumps(res).encode())
        finally:
            os._exit(code)
    os.close(w)
    data = b""
    while True:
        b = os.read(r, 65536)
        if not b:
            break
        data += b
    os.close(r)
    os.waitpid(pid, 0)
    res = json.loads(data or b'{"error": "child sent nothing"}')
    if "error" in res:
        h.fail("child as %s failed: %s" % (USER, res["error"]))
    return res["ok"]


def attempt(fn, *args):
    """Returns "ok:<len>" or the errno name of fn(*args)."""
    try:
        r = fn(*args)
        if isinstance(r, (bytes, list)):
            return "ok:%d" % len(r)
        return "ok"
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))


def main(work):
    if os.geteuid() != 0:
        h.log("SKIP: the permission test needs root")
        sys.exit(h.SKIP)
    pw = ensure_user()
    rng = np.random.default_rng(8)
    arr = h.Array("x", h.random_array(rng, "float64", (500,)))
    store = work.dir("store", 0o755)
    pa = os.path.join(store, "private.mfs")
    pb = os.path.join(store, "public.mfs")
    h.pack(work, pa, [arr], lz4=True, chunk_size=4096)
    h.pack(work, pb, [arr], lz4=False)
    os.chown(pa, 0, 0)
    os.chmod(pa, 0o600)
    os.chown(pb, 0, 0)
    os.chmod(pb, 0o644)
    errors = []
    with h.mounted(work, store, options=["allow_other"]) as m:
        def child():
            def readf(p):
                with open(p, "rb") as f:
                    return f.read()
            res = {
                "root_list": attempt(os.listdir, m.path),
                "a_list": attempt(os.listdir, m.p("private")),
                "a_stat_file": attempt(os.stat, m.p("private", "x.npy")),
                "a_read": attempt(readf, m.p("private", "x.npy")),
                "a_manifest": attempt(readf, m.p("private",
                                                 "manifest.json")),
                "b_list": attempt(os.listdir, m.p("public")),
                "b_read": attempt(readf, m.p("public", "x.npy")),
            }
            try:
                res["b_data_ok"] = (readf(m.p("public", "x.npy"))[4096:] ==
                                    arr.raw)
            except OSError as e:
                res["b_data_ok"] = str(e)
            return res
        res = as_user(pw, child)
        size = 4096 + len(arr.raw)
        want = {
            "root_list": "ok:2",
            "a_list": "EACCES",
            "a_stat_file": "EACCES",
            "a_read": "EACCES",
            "a_manifest": "EACCES",
            "b_list": "ok:3",
            "b_read": "ok:%d" % size,
            "b_data_ok": True,
        }
        if res.get("root_list") == "ok:3":  # .status listed: acceptable
            want["root_list"] = "ok:3"
        for k, v in want.items():
            if res.get(k) != v:
                errors.append("as %s: %s gave %r, expected %r" %
                              (USER, k, res.get(k), v))
        # root still reads both
        for key in ("private", "public"):
            got = h.read_file(m.p(key, "x.npy"))[4096:]
            if got != arr.raw:
                errors.append("root: %s/x.npy wrong" % key)
        # the private model's directory mode: 0600 -> r-x for the owner
        st = os.stat(m.p("private"))
        if st.st_mode & 0o777 != 0o500:
            errors.append("private dir mode %o, expected 500" %
                          (st.st_mode & 0o777))
        m.check_alive()
    # A mount without allow_other is not reachable by the user at all.
    with h.mounted(work, store) as m:
        res = as_user(pw, lambda: attempt(os.listdir, m.p("public")))
        if res != "EACCES":
            errors.append("without allow_other, user listing gave %r, "
                          "expected EACCES" % res)
    h.check(not errors, "%d problems:\n  %s" % (len(errors),
                                                 "\n  ".join(errors)))


if __name__ == "__main__":
    h.run(main)
