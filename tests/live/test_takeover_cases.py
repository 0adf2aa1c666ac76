"""Live test: the cases of a takeover, one mount each.

- in flight: cold LZ4 reads in flight when the serving process is killed
  complete after the takeover with the right bytes (the kernel sends
  again what the dead process had read: .status resent_requests);
- removed while held: a model removed while mapped, then a kill: the
  holder reads the old bytes from the successor (the container's
  descriptor went over with the supervisor's copy), and the backing
  file is closed, by both processes, once the holder lets go;
- SIGTERM to the serving process is a death like any other: taken over;
- crash loop: a serving process killed as soon as it starts makes the
  supervisor give up, unmount and exit 1 within the bound;
- -o takeover=off: an upgrade is refused (logged), and the death of the
  serving process ends the mount (unmounted, exit 1, the reason logged);
- start failures: a serving process that fails before it serves, and
  takeover state that cannot be read after a re-execution, end the
  start with exit status 1 and no mount;
- upgrade: SIGUSR2 runs the binary at the supervisor's path again (a new
  file there takes over); when it cannot be run, the running binary
  goes on serving;
- stop: SIGTERM and SIGINT to the supervisor unmount and exit 0, and
  fusermount3 -u ends both processes; no process is left behind."""

import os
import shutil
import signal
import subprocess
import threading
import time

import numpy as np

import live
import takeover as tk
from live import h

BIG = 8 << 20  # int64 elements: 64 MiB
GIVE_UP_BOUND = 10.0
RESPAWN_LIMIT = 5  # deaths within 5 s that make the supervisor give up


class Daemon:
    """modelfs -f started directly (not through harness.mounted, whose
    end expects exit status 0)."""

    def __init__(self, work, store, args=(), exe=None, name="d"):
        self.mnt = work.dir("mnt-" + name)
        self.log_path = os.path.join(work.root, name + ".log")
        cmd = [exe or h.MODELFS, "-f"] + list(args) + [store, self.mnt]
        h._our_mountpoints.add(os.path.realpath(self.mnt))
        with open(self.log_path, "wb") as logf:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                                         stdout=logf, stderr=logf)
        h._our_daemons.append(self.proc)
        live.wait_for(lambda: h.mount_type(self.mnt) == h.FSTYPE or
                      self.proc.poll() is not None, 10.0, "the mount")
        h.check(self.proc.poll() is None, "daemon exited: %s" % self.log())
        self.m = h.Mount(self.mnt, self.proc, self.log_path, store)
        # The mount appears before its first serving process answers.
        live.wait_for(self.m.status, 10.0, "the first serving process")

    @property
    def pid(self):
        return self.proc.pid

    def log(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def wait_exit(self, timeout):
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            h.fail("daemon %d did not exit within %.0f s; log:\n%s" %
                   (self.pid, timeout, self.log()))

    def check_gone(self, rc, children):
        """The daemon exited with @rc, unmounted, and left none of
        @children running."""
        got = self.wait_exit(GIVE_UP_BOUND)
        h.check(got == rc, "daemon exit status %s, expected %d; log:\n%s"
                % (got, rc, self.log()))
        h.check(h.mount_type(self.mnt) is None, "%s still mounted" %
                self.mnt)
        for c in children:
            live.wait_for(lambda: not os.path.exists("/proc/%d" % c), 5.0,
                          "serving process %d to be gone" % c)
        h.check(not any(s in self.log() for s in h.SANITIZER_MARKS),
                "sanitizer report:\n%s" % self.log())


def cold_reads(path, seed, n, stop, errors, counts):
    """Reads 1 MiB pieces of LZ4 array @path cold (pages evicted before
    each), checking them, until @stop is set."""
    fd = os.open(path, os.O_RDONLY)
    rng = np.random.default_rng(seed)
    piece = 1 << 20
    try:
        while not stop.is_set():
            lo = int(rng.integers(0, n * 8 // piece)) * piece
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            b = os.pread(fd, piece, live.HEADER + lo)
            got = np.frombuffer(b, dtype=np.int64)
            i = np.arange(lo // 8, lo // 8 + len(got), dtype=np.int64)
            want = i // 64 + 5
            if len(b) != piece or not np.array_equal(got, want):
                errors.append("wrong bytes at %d" % lo)
            counts[0] += 1
    except OSError as e:
        errors.append(str(e))
    finally:
        os.close(fd)


def check_in_flight(work, store):
    d = Daemon(work, store, ["-o", "cache_mb=1"], name="inflight")
    stop, errors, counts = threading.Event(), [], [0]
    threads = [threading.Thread(target=cold_reads,
                                args=(d.m.p("lz", "a.npy"), i, BIG, stop,
                                      errors, counts))
               for i in range(4)]
    for t in threads:
        t.start()
    kills = 0
    try:
        # A kill at a random moment of a busy serving process nearly
        # always finds a request read and not answered; spaced so that
        # the kills stay under the respawn bound.
        while kills < 4 and d.m.status()["resent_requests"] == 0:
            time.sleep(1.3)
            _, new = tk.kill_child(d.pid)
            tk.wait_serving(d.m, new)
            kills += 1
        time.sleep(0.5)
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    h.check(not any(t.is_alive() for t in threads),
            "a read never completed")
    resent = d.m.status()["resent_requests"]
    h.log("in flight: %d kills, %d cold 1 MiB reads, %d requests re-sent "
          "and answered" % (kills, counts[0], resent))
    h.check(not errors, "reads across the kills: %s" % errors[:5])
    h.check(resent > 0, "no request was in flight at %d kills" % kills)
    children = tk.children(d.pid)
    os.kill(d.pid, signal.SIGTERM)
    d.check_gone(0, children)


def check_removed_held(work, store):
    d = Daemon(work, store, name="removed")
    sup = d.pid
    mm = live.map_array(d.m.p("gone", "a.npy"))
    view = np.frombuffer(mm, dtype=np.int64, offset=live.HEADER)
    want = tk.raw_values(BIG, 3)
    h.check(np.array_equal(view[:4096], want[:4096]), "first pages")
    os.unlink(os.path.join(store, "gone.mfs"))
    live.wait_for(lambda: not live.exists(d.m.p("gone")), 5.0,
                  "the removed key to disappear")

    def deleted(pid):
        n = 0
        for fd in os.listdir("/proc/%d/fd" % pid):
            try:
                target = os.readlink("/proc/%d/fd/%s" % (pid, fd))
            except OSError:
                continue  # closed meanwhile
            n += target.endswith("gone.mfs (deleted)")
        return n
    h.check(deleted(sup) == 1, "supervisor holds %d copies of the removed "
            "container" % deleted(sup))
    _, new = tk.kill_child(sup)
    tk.wait_serving(d.m, new)
    h.check(deleted(new) == 1, "the successor holds %d descriptors of the "
            "removed container" % deleted(new))
    st = live.status_model(d.m, "gone", "removed")
    h.check(st is not None and st["open_handles"] == 1 and
            [x["pid"] for x in st["holders"]] == [os.getpid()],
            "removed model after the takeover: %r" % st)
    # Every page past the first ones is faulted now, from the successor.
    h.check(np.array_equal(view, want), "old bytes after the takeover")
    del view
    mm.close()
    live.wait_for(lambda: deleted(sup) == 0 and deleted(new) == 0, 10.0,
                  "the removed container to be closed (supervisor %d, "
                  "server %d)" % (deleted(sup), deleted(new)))
    h.check(live.status_model(d.m, "gone", "removed") is None,
            "removed model still in .status")
    h.log("removed while held: old bytes read after the takeover; backing "
          "file closed by both processes after the release")
    # SIGTERM to the serving process is a crash too.
    old, new = tk.kill_child(sup, signal.SIGTERM)
    tk.wait_serving(d.m, new)
    h.check("signal 15" in d.log(), "SIGTERM death not logged")
    children = tk.children(sup)
    os.kill(sup, signal.SIGINT)
    d.check_gone(0, children)


def check_crash_loop(work, store):
    d = Daemon(work, store, name="loop")
    sup = d.pid
    seen = set()
    t0 = time.monotonic()
    # Only as many as the bound: a sanitizer's leak check runs in a
    # child process of the supervisor when it exits.
    while (d.proc.poll() is None and len(seen) < RESPAWN_LIMIT and
           time.monotonic() - t0 < GIVE_UP_BOUND):
        for c in tk.children(sup):
            if c not in seen and len(seen) < RESPAWN_LIMIT:
                seen.add(c)
                try:
                    os.kill(c, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        time.sleep(0.001)
    d.check_gone(1, list(seen))
    took = time.monotonic() - t0
    h.check("giving up" in d.log(), "no reason logged:\n%s" % d.log())
    h.log("crash loop: %d serving processes killed, supervisor gave up "
          "after %.2f s" % (len(seen), took))


def check_takeover_off(work, store):
    d = Daemon(work, store, ["-o", "takeover=off"], name="off")
    child = tk.serving_child(d.pid)
    # No upgrade either: the serving process keeps serving.
    os.kill(d.pid, signal.SIGUSR2)
    live.wait_for(lambda: "cannot upgrade now: takeover is off" in
                  d.log(), 5.0, "the refused upgrade to be logged")
    h.check(tk.children(d.pid) == [child] and d.m.status()["takeovers"] ==
            0, "an upgrade happened with takeover off")
    os.kill(child, signal.SIGKILL)
    d.check_gone(1, [child])
    h.check("no takeover: takeover is off" in d.log(),
            "reason not logged:\n%s" % d.log())


def check_upgrade(work, store):
    bindir = work.dir("bin")
    exe = os.path.join(bindir, "modelfs")
    shutil.copy2(h.MODELFS, exe)
    d = Daemon(work, store, exe=exe, name="upgrade")
    sup = d.pid
    r = tk.Reader(work, d.m.p("lz", "a.npy"), "lz4", 5)
    try:
        # A new binary installed the usual way: renamed over the old.
        shutil.copy2(h.MODELFS, exe + ".new")
        os.rename(exe + ".new", exe)
        h.check(os.readlink("/proc/%d/exe" % sup).endswith("(deleted)"),
                "the old binary is not replaced")
        old = tk.serving_child(sup)
        os.kill(sup, signal.SIGUSR2)
        new = live.wait_for(lambda: [c for c in tk.children(sup)
                                     if c != old], 10.0, "upgrade",
                            step=0.001)[0]
        tk.wait_serving(d.m, new)
        h.check(os.readlink("/proc/%d/exe" % sup) == exe,
                "supervisor runs %s" % os.readlink("/proc/%d/exe" % sup))
        h.check(d.m.status()["pid"] == sup and
                d.m.status()["takeovers"] == 1, "after the upgrade: %r" %
                {k: d.m.status()[k] for k in ("pid", "takeovers")})
        # No binary to run: the running one goes on serving.
        os.unlink(exe)
        os.kill(sup, signal.SIGUSR2)
        newer = live.wait_for(lambda: [c for c in tk.children(sup)
                                       if c != new], 10.0,
                              "the fallback successor", step=0.001)[0]
        tk.wait_serving(d.m, newer)
        h.check("cannot execute" in d.log(), "exec failure not logged")
        time.sleep(0.5)
        res = r.finish()
    finally:
        r.kill()
    h.check(res["mismatches"] == 0 and not res["errors"] and
            res["pages"] > 0, "reader across upgrades: %r" % res)
    h.log("upgrade: reader's longest pause %.1f ms across 2 upgrades" %
          (res["max_gap_s"] * 1e3))
    children = tk.children(sup)
    os.kill(sup, signal.SIGTERM)
    d.check_gone(0, children)


def check_fusermount(work, store):
    d = Daemon(work, store, name="fusermount")
    children = tk.children(d.pid)
    h.check(len(children) == 1, "children %s" % children)
    rc = subprocess.run(["fusermount3", "-u", d.mnt]).returncode
    h.check(rc == 0, "fusermount3 -u failed")
    d.check_gone(0, children)


def check_start_failures(work, store):
    """A serving process that fails before it serves ends the start
    (exit 1, unmounted, nothing left); so does takeover state that
    cannot be read after a re-execution."""
    mnt = work.dir("mnt-nofd")
    log_path = os.path.join(work.root, "nofd.log")

    def limit():
        # Room for the supervisor's descriptors, not the store's.
        import resource
        resource.setrlimit(resource.RLIMIT_NOFILE, (9, 9))
    with open(log_path, "wb") as log:
        p = subprocess.run([h.MODELFS, "-f", store, mnt], stdout=log,
                           stderr=log, preexec_fn=limit, timeout=30)
    with open(log_path, errors="replace") as f:
        text = f.read()
    h.check(p.returncode == 1 and "before it served; unmounting" in text
            and h.mount_type(mnt) is None,
            "serving process that cannot start: exit %d, mounted %r, "
            "log:\n%s" % (p.returncode, h.mount_type(mnt), text))
    for env, want in (("x", "bad MODELFS_HANDOFF_FD 'x'"),
                      ("0", "state is unreadable")):
        p = subprocess.run([h.MODELFS, "-f", store, mnt],
                           env=dict(os.environ, MODELFS_HANDOFF_FD=env),
                           stdin=subprocess.DEVNULL, capture_output=True,
                           timeout=30)
        h.check(p.returncode == 1 and want in p.stderr.decode() and
                h.mount_type(mnt) is None,
                "MODELFS_HANDOFF_FD=%s: exit %d, %r" %
                (env, p.returncode, p.stderr))


def main(work):
    store = work.dir("store")
    tk.pack_model(work, store, "lz", "lz4", BIG, 5)
    tk.pack_model(work, store, "gone", "raw", BIG, 3)
    check_in_flight(work, store)
    check_removed_held(work, store)
    check_crash_loop(work, store)
    check_takeover_off(work, store)
    check_upgrade(work, store)
    check_fusermount(work, store)
    check_start_failures(work, store)


if __name__ == "__main__":
    h.run(main)
