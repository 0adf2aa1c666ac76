"""tk_reader.py - a reader of the takeover tests: maps one .npy file of
the mount and keeps touching pages it never touched before, checking
every value, until a stop file appears.

    tk_reader.py NPY_PATH KIND SEED STOP_FILE RESULT_FILE [PACE_S]

KIND is "raw" (element i = i * 7919 + SEED) or "lz4" (element i =
i // 64 + SEED, runs that compress).  After each pass over the array the
mapping is dropped and the file's pages are evicted (posix_fadvise
DONTNEED), so the next pass faults every page again: each page read is a
FUSE READ the serving process must answer.  The file is opened again for
each pass, so a failed open counts too.  A SIGBUS ends the process (the
parent sees -7).  RESULT_FILE gets JSON: pages, passes, mismatches,
errors, max_gap_s (the longest time between two successive page reads),
and gaps (pauses longer than 50 ms, in seconds)."""

import json
import mmap
import os
import sys
import time

import numpy as np

HEADER = 4096
PAGE_ELEMS = 4096 // 8
GAP_REPORT_S = 0.05


def expected(kind, seed, lo, hi):
    i = np.arange(lo, hi, dtype=np.int64)
    if kind == "raw":
        return i * 7919 + seed
    return i // 64 + seed


def one_pass(path, kind, seed, stop, pace, st):
    fd = os.open(path, os.O_RDONLY)
    try:
        mm = mmap.mmap(fd, 0, prot=mmap.PROT_READ)
        view = np.frombuffer(mm, dtype=np.int64, offset=HEADER)
        n = len(view)
        for lo in range(0, n, PAGE_ELEMS):
            hi = min(n, lo + PAGE_ELEMS)
            got = view[lo:hi]
            ok = np.array_equal(got, expected(kind, seed, lo, hi))
            now = time.monotonic()
            gap = now - st["last"]
            st["last"] = now
            st["max_gap_s"] = max(st["max_gap_s"], gap)
            if gap > GAP_REPORT_S:
                st["gaps"].append(round(gap, 4))
            st["pages"] += 1
            if not ok:
                st["mismatches"] += 1
            if os.path.exists(stop):
                break
            if pace:
                time.sleep(pace)
        del got, view
        mm.close()
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def main():
    path, kind, seed, stop, result = sys.argv[1:6]
    pace = float(sys.argv[6]) if len(sys.argv) > 6 else 0.0005
    seed = int(seed)
    st = {"pages": 0, "passes": 0, "mismatches": 0, "errors": [],
          "max_gap_s": 0.0, "gaps": [], "last": time.monotonic()}
    print("ready", flush=True)
    while not os.path.exists(stop):
        try:
            one_pass(path, kind, seed, stop, pace, st)
            st["passes"] += 1
        except OSError as e:
            st["errors"].append(str(e))
            time.sleep(0.01)
    del st["last"]
    with open(result, "w") as f:
        json.dump(st, f)


if __name__ == "__main__":
    main()
