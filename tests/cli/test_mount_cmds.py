"""modelctl ls and holders on a real modelfs mount (the daemon started by
tests/mount/harness.py): open handles per model while child processes hold
files (open descriptors and mappings), exactly the pids holding a model,
the store commands refusing a mountpoint, and every command naming the way
out of a mount whose daemon was killed.  Models are put before the mount
(the daemon may not follow later changes)."""
import errno
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "mount"))
import harness as h  # noqa: E402

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2
RELEASE_TIMEOUT = 5.0

# A child that holds files of the mount: "open:PATH" keeps a descriptor,
# "map:PATH" maps an .npy (np.load closes the file; the mapping keeps the
# daemon's handle), then says "ready" and waits for stdin to close.
HOLDER = r"""
import sys
import numpy as np
kept = []
for spec in sys.argv[1:]:
    how, path = spec.split(":", 1)
    kept.append(open(path, "rb") if how == "open"
                else np.load(path, mmap_mode="r"))
print("ready", flush=True)
sys.stdin.read()
"""


def ctl(*args):
    p = subprocess.run([h.MODELCTL] + list(args), stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True, timeout=60)
    for mark in h.SANITIZER_MARKS:
        h.check(mark not in p.stderr, "sanitizer report:\n" + p.stderr)
    return p


def ok(*args):
    p = ctl(*args)
    h.check(p.returncode == EXIT_OK, "modelctl %s: rc %d\n%s%s" %
            (" ".join(args), p.returncode, p.stdout, p.stderr))
    return p.stdout


def fails(rc, *args, expect=()):
    p = ctl(*args)
    h.check(p.returncode == rc, "modelctl %s: rc %d, expected %d\n%s" %
            (" ".join(args), p.returncode, rc, p.stderr))
    for e in expect:
        h.check(e in p.stderr, "modelctl %s: %r not in %r" %
                (" ".join(args), e, p.stderr))


class Holder:
    """A child process holding @specs until closed."""

    def __init__(self, specs):
        self.proc = subprocess.Popen(["/usr/bin/python3", "-c", HOLDER] +
                                     specs, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        if line != "ready\n":
            self.proc.kill()
            self.proc.wait()
            h.fail("holder child failed: %r" % line)
        self.pid = self.proc.pid

    def close(self):
        if self.proc.poll() is None:
            self.proc.stdin.close()
            self.proc.wait(10)


def make_store(work):
    store = work.dir("store")
    src = work.dir("src")
    rng = np.random.default_rng(11)
    emb = rng.standard_normal((64, 64)).astype(np.float32)
    bias = np.arange(10, dtype=np.int64)
    np.save(os.path.join(src, "emb.npy"), emb)
    np.save(os.path.join(src, "bias.npy"), bias)
    np.save(os.path.join(src, "w.npy"), np.ones(5, dtype=np.float64))
    mfs = os.path.join(src, "alpha.mfs")
    ok("pack", mfs, "emb=%s/emb.npy" % src, "bias=%s/bias.npy" % src)
    ok("put", store, mfs, "--key", "alpha")
    ok("put", store, "--key", "beta", "--lz4", "w=%s/w.npy" % src)
    ok("put", store, "--key", "gamma", "w=%s/w.npy" % src)
    with open(os.path.join(store, "bad.mfs"), "wb") as f:
        f.write(b"\x89MFS truncated")
    return store, emb.nbytes + bias.nbytes


def holders_json(mnt, key):
    doc = json.loads(ok("holders", "--json", mnt, key))
    h.check(doc["key"] == key, "holders --json key: %r" % doc)
    return doc["holders"]


def check_listing(mnt, pid_a, pid_b, alpha_raw):
    rows = {}
    lines = ok("ls", mnt).splitlines()
    h.check(lines[0].split() == ["KEY", "FILE_SIZE", "RAW_SIZE", "ARRAYS",
                                 "OPEN"], "ls header: %r" % lines[0])
    for line in lines[1:]:
        if line.startswith("invalid "):
            h.check(line.startswith("invalid bad.mfs: "), line)
            continue
        cells = line.split()
        rows[cells[0]] = cells[1:]
    h.check(sorted(rows) == ["alpha", "beta", "gamma"], "ls rows %r" % rows)
    h.check([rows[k][3] for k in ("alpha", "beta", "gamma")] ==
            ["3", "1", "0"], "ls OPEN column: %r" % rows)
    h.check(rows["alpha"][1:3] == [str(alpha_raw), "2"], "alpha %r" % rows)
    doc = json.loads(ok("ls", "--json", mnt))
    h.check(doc["mount"] is True, "ls --json mount: %r" % doc)
    got = {m["key"]: (m["open_handles"], sorted(m["holders"]))
           for m in doc["models"]}
    want = {"alpha": (3, sorted([pid_a, pid_b])), "beta": (1, [pid_b]),
            "gamma": (0, [])}
    h.check(got == want, "ls --json: %r != %r" % (got, want))
    h.check([i["file"] for i in doc["invalid"]] == ["bad.mfs"],
            "ls --json invalid: %r" % doc["invalid"])


def check_holders(mnt, pid_a, pid_b):
    want_alpha = sorted([
        {"pid": pid_a, "command": "python3", "handles": 2,
         "files": ["bias.npy", "emb.npy"]},
        {"pid": pid_b, "command": "python3", "handles": 1,
         "files": ["emb.npy"]}], key=lambda x: x["pid"])
    got = holders_json(mnt, "alpha")
    h.check(got == want_alpha, "holders alpha: %r != %r" % (got, want_alpha))
    got = holders_json(mnt, "beta")
    h.check(got == [{"pid": pid_b, "command": "python3", "handles": 1,
                     "files": ["w.npy"]}], "holders beta: %r" % got)
    h.check(holders_json(mnt, "gamma") == [], "gamma has holders")
    lines = ok("holders", mnt, "alpha").splitlines()
    h.check(lines[0].split() == ["PID", "COMMAND", "HANDLES", "FILES"],
            "holders header: %r" % lines)
    h.check([l.split() for l in lines[1:]] ==
            [[str(x["pid"]), "python3", str(x["handles"]),
              ",".join(x["files"])] for x in want_alpha],
            "holders table: %r" % lines)
    h.check(ok("holders", mnt, "gamma").splitlines()[1:] == [],
            "holders gamma table")


def check_refusals(mnt, store):
    fails(EXIT_FAIL, "holders", mnt, "nope",
          expect=["no model 'nope' on mount"])
    fails(EXIT_USAGE, "holders", mnt, "..", expect=["invalid key '..'"])
    fails(EXIT_FAIL, "holders", store, "alpha",
          expect=["is not a modelfs mount"])
    for args in (["rm", mnt, "alpha"], ["gc", mnt],
                 ["put", mnt, "--key", "x", "w=/dev/null"]):
        fails(EXIT_FAIL, *args, expect=["is a modelfs mount (read-only); "
                                        "give its store directory '%s'"
                                        % os.path.realpath(store)])


def wait_holders(mnt, key, pids):
    deadline = time.monotonic() + RELEASE_TIMEOUT
    while True:
        got = sorted(x["pid"] for x in holders_json(mnt, key))
        if got == sorted(pids) or time.monotonic() > deadline:
            return got
        time.sleep(0.05)


def wait_dead(mnt, timeout=5.0):
    """Waits until the mount at @mnt answers ENOTCONN (statfs is never
    answered from the kernel's caches)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            os.statvfs(mnt)
        except OSError as e:
            if e.errno == errno.ENOTCONN:
                return
        h.check(time.monotonic() < deadline, "%s did not die" % mnt)
        time.sleep(0.005)


def check_dead_mount(work, store):
    """A daemon killed with SIGKILL leaves its mount behind: ls, holders and
    the store commands say so and how to recover, instead of reading it."""
    mnt = work.dir("dead-mnt")
    proc = subprocess.Popen([h.MODELFS, "-f", store, mnt],
                            stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + h.MOUNT_TIMEOUT
        while h.mount_type(mnt) != h.FSTYPE:
            h.check(proc.poll() is None and time.monotonic() < deadline,
                    "daemon did not mount %s" % mnt)
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        # Its serving process dies with it, a moment later.
        wait_dead(mnt)
        # Lazy (-uz): a plain -u fails with EBUSY while files are mapped.
        want = ["daemon has exited", "fusermount3 -uz %s" % mnt]
        for args in (["ls", mnt], ["holders", mnt, "alpha"],
                     ["rm", mnt, "alpha"], ["gc", mnt],
                     ["put", mnt, "--key", "x", "w=/dev/null"]):
            fails(EXIT_FAIL, *args, expect=want)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        subprocess.run(["fusermount3", "-u", mnt], stderr=subprocess.DEVNULL)
        h.check(h.mount_type(mnt) is None, "dead mount %s left" % mnt)


def main(work):
    store, alpha_raw = make_store(work)
    with h.mounted(work, store) as m:
        mnt = m.path
        a = b = c = None
        try:
            a = Holder(["map:%s/alpha/emb.npy" % mnt,
                        "open:%s/alpha/bias.npy" % mnt])
            b = Holder(["open:%s/alpha/emb.npy" % mnt,
                        "open:%s/beta/w.npy" % mnt])
            c = Holder([])  # holds nothing: never listed
            check_listing(mnt, a.pid, b.pid, alpha_raw)
            check_holders(mnt, a.pid, b.pid)
            check_refusals(mnt, store)
            a.close()
            got = wait_holders(mnt, "alpha", [b.pid])
            h.check(got == [b.pid], "after A exits: %r" % got)
            b.close()
            got = wait_holders(mnt, "beta", [])
            h.check(got == [], "after B exits: %r" % got)
            doc = json.loads(ok("ls", "--json", mnt))
            h.check(all(x["open_handles"] == 0 for x in doc["models"]),
                    "handles left: %r" % doc["models"])
        finally:
            for child in (a, b, c):
                if child:
                    child.close()
        m.check_alive()
    check_dead_mount(work, store)


if __name__ == "__main__":
    h.run(main)
