"""Live test: the mount outlives its supervisor under systemd's protocol.

A stand-in for systemd (a notify socket that keeps the descriptors it is
given, FDSTORE=1 / FDSTOREREMOVE=1 by FDNAME, and a restart that passes
them back as LISTEN_FDS / LISTEN_FDNAMES, as `FileDescriptorStoreMax=`
does) runs the daemon; the supervisor is killed with SIGKILL while a
reader keeps faulting new pages, and a new daemon started with the
stored descriptors takes the mount over: the reader sees no SIGBUS, no
failed read and no wrong byte; .status names the new supervisor.
SIGTERM then stops it for good, and it empties the store.

Without a descriptor store, a killed supervisor leaves a dead mount, as
before there was a supervisor; a daemon started again at the same mount
point detaches it and mounts.  A notify socket that takes no
descriptors is logged, and the daemon serves."""

import os
import signal
import socket
import subprocess
import sys
import time

import live
import takeover as tk
from live import h

N = 4 << 20  # int64 elements: 32 MiB
# Starts a program with descriptors at 3, 4, ... as systemd passes them.
LAUNCH = r"""
import fcntl, os, sys
fds = [int(x) for x in sys.argv[1].split(",")]
high = [fcntl.fcntl(f, fcntl.F_DUPFD, 100) for f in fds]
for i, f in enumerate(high):
    os.dup2(f, 3 + i)
for f in high:
    os.close(f)
os.environ.update(LISTEN_PID=str(os.getpid()), LISTEN_FDS=str(len(fds)),
                  LISTEN_FDNAMES=sys.argv[2])
os.execv(sys.argv[3], sys.argv[3:])
"""


class FakeSystemd:
    """The notify socket and the descriptor store of one service."""

    def __init__(self, work):
        self.path = os.path.join(work.root, "notify.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.store = {}  # FDNAME -> descriptor, in the order stored
        self.ready = 0
        self.stopping = 0

    def pump(self, timeout):
        """Handles one message; False if none came within @timeout."""
        self.sock.settimeout(timeout)
        try:
            msg, fds, _, _ = socket.recv_fds(self.sock, 4096, 16)
        except socket.timeout:
            return False
        f = dict(x.split("=", 1) for x in msg.decode().split("\n")
                 if "=" in x)
        name = f.get("FDNAME", "stored")
        if f.get("FDSTORE") == "1" and fds:
            old = self.store.pop(name, None)
            if old is not None:
                os.close(old)
            self.store[name] = fds.pop(0)
        if f.get("FDSTOREREMOVE") == "1" and name in self.store:
            os.close(self.store.pop(name))
        for fd in fds:
            os.close(fd)
        self.ready += f.get("READY") == "1"
        self.stopping += f.get("STOPPING") == "1"
        return True

    def wait(self, cond, timeout, what):
        deadline = time.monotonic() + timeout
        while not cond():
            if time.monotonic() > deadline:
                h.fail("timed out waiting for %s (store %s)" %
                       (what, sorted(self.store)))
            self.pump(0.05)

    def start(self, work, args, log_name):
        """Starts modelfs @args as the service, with the stored
        descriptors if any; returns the Popen."""
        env = dict(os.environ, NOTIFY_SOCKET=self.path)
        log = open(os.path.join(work.root, log_name), "wb")
        if self.store:
            names = list(self.store)
            fds = [self.store[n] for n in names]
            cmd = [sys.executable, "-c", LAUNCH,
                   ",".join(str(fd) for fd in fds), ":".join(names),
                   h.MODELFS] + args
            p = subprocess.Popen(cmd, env=env, stdout=log, stderr=log,
                                 pass_fds=fds)
        else:
            p = subprocess.Popen([h.MODELFS] + args, env=env, stdout=log,
                                 stderr=log)
        log.close()
        h._our_daemons.append(p)
        return p

    def close(self):
        for fd in self.store.values():
            os.close(fd)
        self.store = {}
        self.sock.close()


def dead(pid):
    """True once @pid has ended (a zombie waiting for init counts)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except FileNotFoundError:
        return True


def read_log(work, name):
    with open(os.path.join(work.root, name), errors="replace") as f:
        return f.read()


def check_fd_store(work, store, mnt):
    sd = FakeSystemd(work)
    args = ["-f", store, mnt]
    p1 = sd.start(work, args, "sd1.log")
    sd.wait(lambda: sd.ready == 1, 10.0, "READY=1")
    m = h.Mount(mnt, p1, os.path.join(work.root, "sd1.log"), store)
    gen = live.status_model(m, "raw")["generation"]
    sd.wait(lambda: {"fuse", "handoff", "c%d" % gen} <= set(sd.store),
            5.0, "the mount's descriptors in the store")
    r = tk.Reader(work, m.p("raw", "a.npy"), "raw", 9)
    p2 = None
    try:
        time.sleep(0.5)
        child = tk.serving_child(p1.pid)
        t0 = time.monotonic()
        p1.kill()
        p1.wait()
        live.wait_for(lambda: dead(child), 5.0,
                      "the serving process to die with its supervisor")
        h.check(h.mount_type(mnt) == h.FSTYPE,
                "the mount ended with its supervisor")
        t1 = time.monotonic()
        p2 = sd.start(work, args, "sd2.log")
        sd.wait(lambda: sd.ready == 2, 10.0, "READY=1 of the new daemon")
        h.log("systemd: kill to restart %.0f ms, restart to READY %.0f ms"
              % ((t1 - t0) * 1e3, (time.monotonic() - t1) * 1e3))
        time.sleep(0.5)
        st = m.status()
        h.check(st["pid"] == p2.pid and st["takeovers"] == 1 and
                r.pid in tk.holders(m, "raw"),
                "after the restart: pid %d (want %d), takeovers %d, "
                "holders %s" % (st["pid"], p2.pid, st["takeovers"],
                                tk.holders(m, "raw")))
        log = read_log(work, "sd2.log")
        h.check("restart: supervisor %d took over" % p2.pid in log,
                "no takeover in the log:\n%s" % log)
        res = r.finish()
    finally:
        r.kill()
        if p2 is None:
            h._unmount(mnt)
    h.check(res["mismatches"] == 0 and not res["errors"] and
            res["pages"] > 0, "reader across the restart: %r" % res)
    h.log("systemd: supervisor killed and restarted with its stored "
          "descriptors; reader's longest pause %.0f ms, %d pages checked"
          % (res["max_gap_s"] * 1e3, res["pages"]))
    children = tk.children(p2.pid)
    p2.terminate()
    h.check(p2.wait(10) == 0, "exit status %s" % p2.returncode)
    h.check(h.mount_type(mnt) is None, "still mounted after SIGTERM")
    sd.wait(lambda: sd.stopping == 1 and not sd.store, 5.0,
            "STOPPING=1 and an empty store")
    for c in children:
        live.wait_for(lambda: not os.path.exists("/proc/%d" % c), 5.0,
                      "serving process %d to end" % c)
    sd.close()
    for name in ("sd1.log", "sd2.log"):
        text = read_log(work, name)
        h.check(not any(s in text for s in h.SANITIZER_MARKS),
                "sanitizer report in %s:\n%s" % (name, text))


def check_dead_mount(work, store, mnt):
    p1 = subprocess.Popen([h.MODELFS, "-f", store, mnt],
                          stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL)
    h._our_daemons.append(p1)
    live.wait_for(lambda: h.mount_type(mnt) == h.FSTYPE, 10.0, "mount")
    live.wait_for(lambda: live.exists(os.path.join(mnt, "raw")), 10.0,
                  "the first serving process")
    p1.kill()
    p1.wait()
    live.wait_for(lambda: h.mount_type(mnt) == h.FSTYPE and
                  subprocess.run(["stat", "-f", mnt], capture_output=True)
                  .returncode != 0, 5.0, "the mount to be dead")
    log_path = os.path.join(work.root, "again.log")
    with open(log_path, "wb") as log:
        p2 = subprocess.Popen([h.MODELFS, "-f", store, mnt], stdout=log,
                              stderr=log)
    h._our_daemons.append(p2)
    m = h.Mount(mnt, p2, log_path, store)

    def served():
        try:
            return m.status()["pid"] == p2.pid
        except OSError:
            return False
    live.wait_for(served, 10.0, "the mount over the dead one")
    text = read_log(work, "again.log")
    h.check("is a dead mount" in text, "not logged:\n%s" % text)
    rc = subprocess.run(["fusermount3", "-u", mnt]).returncode
    h.check(rc == 0 and p2.wait(10) == 0, "unmount: %d, exit %s" %
            (rc, p2.returncode))
    h.check(h.mount_type(mnt) is None, "%s still mounted (the dead mount "
            "was left under the new one?)" % mnt)


def check_no_store(work, store, mnt):
    """A notify socket that takes nothing: the daemon says the mount will
    not survive a restart of the service, and serves."""
    log_path = os.path.join(work.root, "nostore.log")
    env = dict(os.environ,
               NOTIFY_SOCKET=os.path.join(work.root, "nobody.sock"))
    with open(log_path, "wb") as log:
        p = subprocess.Popen([h.MODELFS, "-f", store, mnt], env=env,
                             stdout=log, stderr=log)
    h._our_daemons.append(p)
    m = h.Mount(mnt, p, log_path, store)

    def served():
        try:
            return m.status()["pid"] == p.pid
        except OSError:
            return False
    live.wait_for(served, 10.0, "the mount")
    text = read_log(work, "nostore.log")
    h.check("cannot store the mount's descriptors" in text,
            "not logged:\n%s" % text)
    p.terminate()
    h.check(p.wait(10) == 0 and h.mount_type(mnt) is None,
            "stop: exit %s, mounted %r" % (p.returncode, h.mount_type(mnt)))


def main(work):
    store = work.dir("store")
    tk.pack_model(work, store, "raw", "raw", N, 9)
    mnt = work.dir("mnt")
    h._our_mountpoints.add(os.path.realpath(mnt))
    check_fd_store(work, store, mnt)
    check_dead_mount(work, store, mnt)
    check_no_store(work, store, mnt)


if __name__ == "__main__":
    h.run(main)
