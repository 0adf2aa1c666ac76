"""Mount test 9: /.status, the holders xattr and modelctl tell each user
only what that user may see.

Container A is root-owned 0600, container B 0644, and bad.mfs a root-only
(0600) file of garbage that the daemon skips; mounted with -o allow_other.
Root holds a file of B open in one process, the unprivileged user
modelfs-test (created if missing) in another.  As that user, /.status
names neither A (key or file) nor bad.mfs, and lists B with the user's
own holder pid but not root's; B's user.modelfs.holders xattr and
`modelctl holders` show only the user's pid, `modelctl holders` of A
fails saying A is not shown to the user, and `modelctl ls` lists B
alone.  As root
everything is listed.  Needs root: exits 77 (skip) otherwise."""

import json
import os
import subprocess
import sys

import numpy as np

import harness as h
from test_permissions import USER, as_user, ensure_user

KEY_A = "closedmodel"
KEY_B = "openmodel"
BAD = "bad.mfs"
HOLDERS_XATTR = "user.modelfs.holders"
EXIT_FAIL = 1
# Garbage that no container parser accepts (no magic).
GARBAGE = b"not a container\n" * 64

# Holds a file open until stdin closes; says "ready" once it is open.
HOLDER = r"""
import sys
f = open(sys.argv[1], "rb")
print("ready", flush=True)
sys.stdin.read()
"""


def drop_to(pw):
    """A preexec_fn that makes the child run as @pw."""
    def drop():
        os.setgroups([])
        os.setgid(pw.pw_gid)
        os.setuid(pw.pw_uid)
    return drop


def start_holder(path, pw=None):
    """A process holding @path open (as @pw if given), once it is open."""
    p = subprocess.Popen([sys.executable, "-c", HOLDER, path],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         text=True, preexec_fn=drop_to(pw) if pw else None)
    line = p.stdout.readline().strip()
    h.check(line == "ready", "holder of %s said %r" % (path, line))
    return p


def stop_holder(p):
    p.stdin.close()
    p.wait(timeout=10)


def modelctl(*args, pw=None):
    p = subprocess.run([h.MODELCTL] + list(args), stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True, timeout=60,
                       preexec_fn=drop_to(pw) if pw else None)
    for mark in h.SANITIZER_MARKS:
        h.check(mark not in p.stderr, "sanitizer report:\n" + p.stderr)
    return p


def status_holders(doc, key):
    """The holder pids .status lists for @key (None: key not listed)."""
    pids = None
    for m in doc.get("models", []):
        if m.get("key") == key:
            pids = (pids or []) + [x["pid"] for x in m.get("holders", [])]
    return None if pids is None else sorted(pids)


def ctl_holder_pids(p):
    """The pids of `modelctl holders --json` output."""
    return sorted(x["pid"] for x in json.loads(p.stdout)["holders"])


def make_store(work):
    rng = np.random.default_rng(9)
    arr = h.Array("x", h.random_array(rng, "float32", (300,)))
    store = work.dir("store", 0o755)
    pa = os.path.join(store, KEY_A + ".mfs")
    pb = os.path.join(store, KEY_B + ".mfs")
    pbad = os.path.join(store, BAD)
    h.pack(work, pa, [arr])
    h.pack(work, pb, [arr])
    with open(pbad, "wb") as f:
        f.write(GARBAGE)
    for path, mode in ((pa, 0o600), (pb, 0o644), (pbad, 0o600)):
        os.chown(path, 0, 0)
        os.chmod(path, mode)
    return store


def check_user_view(m, pw, user_pid, root_pid, errors):
    """What the unprivileged user sees."""
    def child():
        with open(m.p(".status"), "r") as f:
            text = f.read()
        return {"text": text,
                "xattr": os.getxattr(m.p(KEY_B), HOLDERS_XATTR).decode()}
    res = as_user(pw, child)
    text = res["text"]
    doc = json.loads(text)
    for word in (KEY_A, BAD):
        if word in text:
            errors.append("as %s: .status mentions %r" % (USER, word))
    got = status_holders(doc, KEY_B)
    if got != [user_pid]:
        errors.append("as %s: .status holders of B %r, expected [%d] "
                      "(root's holder is %d)" % (USER, got, user_pid,
                                                 root_pid))
    if res["xattr"] != str(user_pid):
        errors.append("as %s: %s of B is %r, expected %r" %
                      (USER, HOLDERS_XATTR, res["xattr"], str(user_pid)))
    p = modelctl("holders", "--json", m.path, KEY_B, pw=pw)
    if p.returncode != 0 or ctl_holder_pids(p) != [user_pid]:
        errors.append("as %s: modelctl holders B: rc %d, %s%s" %
                      (USER, p.returncode, p.stdout, p.stderr))
    p = modelctl("holders", m.path, KEY_A, pw=pw)
    if p.returncode != EXIT_FAIL or KEY_A not in p.stderr or \
            "not shown to you" not in p.stderr:
        errors.append("as %s: modelctl holders A: rc %d, stderr %r" %
                      (USER, p.returncode, p.stderr))
    p = modelctl("ls", "--json", m.path, pw=pw)
    if p.returncode != 0:
        errors.append("as %s: modelctl ls: rc %d, %s" %
                      (USER, p.returncode, p.stderr))
    else:
        ls = json.loads(p.stdout)
        keys = [x["key"] for x in ls["models"]]
        if keys != [KEY_B] or ls["invalid"]:
            errors.append("as %s: modelctl ls lists %r, invalid %r" %
                          (USER, keys, ls["invalid"]))


def check_root_view(m, user_pid, root_pid, errors):
    """Root sees every model, holder and skipped entry."""
    doc = m.status()
    both = sorted([user_pid, root_pid])
    if status_holders(doc, KEY_A) != []:
        errors.append("root: .status A holders %r" %
                      status_holders(doc, KEY_A))
    if status_holders(doc, KEY_B) != both:
        errors.append("root: .status B holders %r, expected %r" %
                      (status_holders(doc, KEY_B), both))
    if [s["file"] for s in doc.get("skipped", [])] != [BAD]:
        errors.append("root: skipped %r" % doc.get("skipped"))
    xattr = os.getxattr(m.p(KEY_B), HOLDERS_XATTR).decode()
    if xattr != ",".join(str(p) for p in both):
        errors.append("root: %s of B %r" % (HOLDERS_XATTR, xattr))
    p = modelctl("holders", "--json", m.path, KEY_B)
    if p.returncode != 0 or ctl_holder_pids(p) != both:
        errors.append("root: modelctl holders B: rc %d, %s%s" %
                      (p.returncode, p.stdout, p.stderr))


def main(work):
    if os.geteuid() != 0:
        h.log("SKIP: the status audience test needs root")
        sys.exit(h.SKIP)
    pw = ensure_user()
    store = make_store(work)
    errors = []
    with h.mounted(work, store, options=["allow_other"]) as m:
        target = m.p(KEY_B, "x.npy")
        root_holder = start_holder(target)
        user_holder = start_holder(target, pw)
        try:
            check_user_view(m, pw, user_holder.pid, root_holder.pid,
                            errors)
            check_root_view(m, user_holder.pid, root_holder.pid, errors)
        finally:
            stop_holder(user_holder)
            stop_holder(root_holder)
        m.check_alive()
    h.check(not errors, "%d problems:\n  %s" % (len(errors),
                                                 "\n  ".join(errors)))


if __name__ == "__main__":
    h.run(main)
