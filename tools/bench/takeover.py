"""takeover.py - the pause a reader sees when the serving process of a
modelfs mount is replaced: killed (SIGKILL: the supervisor starts a
successor that takes over) or upgraded (SIGUSR2 to the supervisor: the
serving process drains, the binary runs again, its new child takes
over).

    takeover.py --samples FILE --rounds N --supervisor PID --file NPY

Each round: a reader process maps NPY (a .npy file of the mount), evicts
its pages, and touches one word per page, one page every PACE_S, with
readahead off (MADV_RANDOM) so that every touch is a FUSE READ; the serving process
is killed (or the supervisor upgraded) while it reads; the pause is the
longest gap between two successive page reads from just before the kill
until the reader has read on for a while after the successor serves.
Samples go to --samples as "takeover modelfs kill_pause_ms VALUE ms" and
"... upgrade_pause_ms ..." lines, tab-separated (the format of
mfsbench).  Kills are
spaced so that they stay under the supervisor's respawn bound (5 deaths
in 5 s).  Exits 1 if a reader fails (SIGBUS, a failed read) or a
successor does not come.
"""

import argparse
import mmap
import multiprocessing as mp
import os
import signal
import sys
import time

PAGE = os.sysconf("SC_PAGE_SIZE")
MEASURE = "takeover"
SYSTEM = "modelfs"
PACE_S = 0.0001
BEFORE_S = 0.2       # the reader reads this long before the kill
AFTER_S = 0.3        # and this long after the successor serves
WINDOW_BEFORE_S = 0.05
ROUND_SPACING_S = 1.5  # 5 kills take 6 s: under 5 in 5 s
SUCCESSOR_TIMEOUT_S = 10.0
MS_PER_S = 1e3


def children(pid):
    out = []
    for tid in os.listdir("/proc/%d/task" % pid):
        with open("/proc/%d/task/%s/children" % (pid, tid)) as f:
            out += [int(x) for x in f.read().split()]
    return out


def reader(path, conn):
    """Touches the pages of @path until told to stop; sends back the time
    of each touch."""
    fd = os.open(path, os.O_RDONLY)
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    mm = mmap.mmap(fd, 0, prot=mmap.PROT_READ)
    os.close(fd)
    # No readahead: each touch of a new page is a READ of its own, so
    # a reader touching pages during the takeover always waits for it.
    mm.madvise(mmap.MADV_RANDOM)
    times = []
    conn.send("ready")
    off = 0
    while not conn.poll():
        _ = mm[off]
        times.append(time.monotonic())
        off += PAGE
        if off >= len(mm):
            off = 0
        time.sleep(PACE_S)
    mm.close()
    conn.send(times)


def wait_successor(sup, old):
    deadline = time.monotonic() + SUCCESSOR_TIMEOUT_S
    while time.monotonic() < deadline:
        new = [c for c in children(sup) if c != old]
        if new:
            return new[0]
        time.sleep(0.0005)
    sys.exit("takeover.py: no successor of %d after %.0f s" %
             (old, SUCCESSOR_TIMEOUT_S))


def one_round(args, kind):
    """One replacement of the serving process; returns the pause (s)."""
    parent, child = mp.Pipe()
    p = mp.Process(target=reader, args=(args.file, child))
    p.start()
    if parent.recv() != "ready":
        sys.exit("takeover.py: reader did not start")
    time.sleep(BEFORE_S)
    old = children(args.supervisor)[0]
    t0 = time.monotonic()
    if kind == "kill":
        os.kill(old, signal.SIGKILL)
    else:
        os.kill(args.supervisor, signal.SIGUSR2)
    wait_successor(args.supervisor, old)
    time.sleep(AFTER_S)
    parent.send("stop")
    times = parent.recv()
    p.join()
    if p.exitcode != 0:
        sys.exit("takeover.py: reader ended with %s" % p.exitcode)
    times = [t for t in times if t >= t0 - WINDOW_BEFORE_S]
    return max(b - a for a, b in zip(times, times[1:]))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--samples", required=True)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--supervisor", type=int, required=True)
    ap.add_argument("--file", required=True)
    args = ap.parse_args()
    mp.set_start_method("fork")
    with open(args.samples, "a") as out:
        for kind in ("kill", "upgrade"):
            for _ in range(args.rounds):
                t = time.monotonic()
                pause = one_round(args, kind)
                out.write("%s\t%s\t%s_pause_ms\t%.6g\tms\n" %
                          (MEASURE, SYSTEM, kind, pause * MS_PER_S))
                out.flush()
                print("takeover.py: %s: reader paused %.1f ms" %
                      (kind, pause * MS_PER_S), file=sys.stderr)
                rest = ROUND_SPACING_S - (time.monotonic() - t)
                if rest > 0:
                    time.sleep(rest)


if __name__ == "__main__":
    main()
