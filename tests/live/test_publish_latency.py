"""Live test: a container renamed into the store shows on the mount
without remounting, fast.

Each trial first looks the key up (the kernel caches the miss as a
negative entry, for a day), then publishes the container and polls until
stat() of the key succeeds: so what is measured is inotify, the daemon's
refresh and its invalidation of the negative entry.  The listing shows
the key too (the root's cached listing is invalidated).  The test asserts
a generous bound (1 s per trial) and prints the median and maximum
latency.  A key that was never looked up is found at once (a lookup of
an unknown key re-checks the store directory itself)."""

import os
import statistics
import time

import live
from live import h

TRIALS = 30
BOUND = 1.0


def main(work):
    store = work.dir("store")
    src = work.path("model.mfs")
    live.pack_version(work, src, 5, sizes=(1000,))
    live.publish_file(src, store, "first")
    lat = []
    with h.mounted(work, store) as m:
        h.check(sorted(os.listdir(m.path)) == [".status", "first"],
                "initial listing %s" % os.listdir(m.path))
        for i in range(TRIALS):
            key = "k%02d" % i
            h.check(not live.exists(m.p(key)), "%s exists early" % key)
            live.publish_file(src, store, key)
            t0 = time.monotonic()
            while not live.exists(m.p(key)):
                if time.monotonic() - t0 > BOUND:
                    h.fail("%s not visible %.1f s after the rename" %
                           (key, BOUND))
                time.sleep(0.0002)
            lat.append(time.monotonic() - t0)
            h.check(key in os.listdir(m.path),
                    "%s visible but not listed" % key)
        # Never looked up before: the lookup itself finds it.
        live.publish_file(src, store, "direct")
        t0 = time.monotonic()
        h.check(live.exists(m.p("direct", "arr0.npy")),
                "a key never looked up is not found right after publish")
        direct = time.monotonic() - t0
        st = m.status()
        h.check(st["totals"]["published"] == TRIALS + 2,
                "published %r" % st["totals"])
        h.check(st["totals"]["store_changes"] >= TRIALS + 1,
                "store_changes %r" % st["totals"])
        m.check_alive()
    lat.sort()
    h.log("publish -> visible (negative entry cached): median %.2f ms, "
          "p90 %.2f ms, max %.2f ms over %d trials; never looked up: "
          "%.2f ms" % (statistics.median(lat) * 1e3,
                       lat[int(len(lat) * 0.9)] * 1e3, lat[-1] * 1e3,
                       len(lat), direct * 1e3))


if __name__ == "__main__":
    h.run(main)
