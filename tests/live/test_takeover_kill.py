"""Live test: the mount outlives its serving process.

Four readers (tk_reader.py) map the arrays of two raw and two LZ4
models and keep touching pages never touched before, checking every
value, while the serving process is killed with SIGKILL every 2 s for
30 s, and once upgraded (SIGUSR2 to the supervisor: the binary runs
again and its new child takes over).  Then: no reader saw SIGBUS, a
failed open or read, or a wrong byte; .status and `modelctl holders`
list the readers; the supervisor's descriptors are back to their
baseline and the serving process holds one descriptor per model (plus
the store directory); the supervisor is the process started and the
serving processes were its children throughout; the mount unmounts
cleanly."""

import os
import signal
import time

import live
import takeover as tk
from live import h

N = 2 << 20  # int64 elements per array: 16 MiB
KILL_EVERY = 2.0
KILL_FOR = 30.0
UPGRADE_AT = 15.0
MODELS = [("raw0", "raw", 11), ("raw1", "raw", 12), ("lz0", "lz4", 21),
          ("lz1", "lz4", 22)]


def start(work, m):
    readers = []
    for key, kind, seed in MODELS:
        readers.append(tk.Reader(work, m.p(key, "a.npy"), kind, seed))
    return readers


def kill_loop(m, sup):
    """Kills the serving child every KILL_EVERY s for KILL_FOR s, with
    one upgrade half way.  Returns (kills, upgrades, pauses)."""
    kills, upgraded = 0, False
    t0 = time.monotonic()
    pauses = []
    while time.monotonic() - t0 < KILL_FOR:
        time.sleep(KILL_EVERY)
        if not upgraded and time.monotonic() - t0 >= UPGRADE_AT:
            old = tk.serving_child(sup)
            t1 = time.monotonic()
            os.kill(sup, signal.SIGUSR2)
            new = live.wait_for(lambda: [c for c in tk.children(sup)
                                         if c != old], 10.0,
                                "the upgraded serving process",
                                step=0.001)[0]
            tk.wait_serving(m, new)
            pauses.append(("upgrade", time.monotonic() - t1))
            upgraded = True
            continue
        t1 = time.monotonic()
        old, new = tk.kill_child(sup)
        tk.wait_serving(m, new)
        pauses.append(("kill", time.monotonic() - t1))
        kills += 1
        m.check_alive()
    return kills, upgraded, pauses


def main(work):
    store = work.dir("store")
    for key, kind, seed in MODELS:
        tk.pack_model(work, store, key, kind, N, seed)
    readers = []
    with h.mounted(work, store) as m:
        sup = m.proc.pid
        try:
            h.check(m.status()["pid"] == sup and
                    tk.children(sup) == [m.server_pid()],
                    "process shape: supervisor %d, children %s, .status "
                    "%r" % (sup, tk.children(sup), m.status()["pid"]))
            readers = start(work, m)
            time.sleep(1.0)
            base_sup = tk.fd_count(sup)
            kills, upgraded, pauses = kill_loop(m, sup)
            time.sleep(1.0)
            st = m.status()
            server = m.server_pid()
            for (key, _, _), r in zip(MODELS, readers):
                h.check(r.pid in tk.holders(m, key),
                        "%s: .status holders %s lack reader %d" %
                        (key, tk.holders(m, key), r.pid))
                h.check(r.pid in tk.ctl_holders(m, key),
                        "%s: modelctl holders %s lack reader %d" %
                        (key, tk.ctl_holders(m, key), r.pid))
            results = [r.finish() for r in readers]
            readers = []
            h.check(st["takeovers"] == kills + 1,
                    "takeovers %d after %d kills and an upgrade" %
                    (st["takeovers"], kills))
            live.wait_for(lambda: tk.fd_count(sup) == base_sup, 10.0,
                          "the supervisor's descriptors (%d) to return to "
                          "%d" % (tk.fd_count(sup), base_sup))
            live.wait_for(lambda: live.store_fds(server, store) ==
                          1 + len(MODELS), 10.0,
                          "the serving process's store descriptors")
        finally:
            for r in readers:
                r.kill()
    pages = sum(r["pages"] for r in results)
    passes = sum(r["passes"] for r in results)
    mism = sum(r["mismatches"] for r in results)
    errors = [e for r in results for e in r["errors"]]
    gaps = sorted(g for r in results for g in r["gaps"])
    h.log("%d kills + %s upgrade in %.0f s; readers: %d pages checked, %d "
          "passes, %d mismatches, %d errors; longest reader pause %.0f ms; "
          "pauses > 50 ms: %s; supervisor-side takeover times (ms): %s; "
          "requests re-sent: %d" %
          (kills, "1" if upgraded else "no", KILL_FOR, pages, passes, mism,
           len(errors), max(r["max_gap_s"] for r in results) * 1e3,
           [round(g * 1e3) for g in gaps],
           [(k, round(p * 1e3)) for k, p in pauses], st["resent_requests"]))
    h.check(upgraded and kills >= 10, "kills %d, upgraded %s" %
            (kills, upgraded))
    h.check(mism == 0, "%d pages with wrong bytes" % mism)
    h.check(not errors, "reader errors: %s" % errors[:5])
    h.check(passes >= len(MODELS), "readers made %d passes" % passes)


if __name__ == "__main__":
    h.run(main)
