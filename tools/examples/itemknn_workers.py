#!/usr/bin/python3
"""itemknn_workers.py - the itemknn example's workers in Python.

Reads the model that ``itemknn`` put into a mount store straight from the
mount, as plain .npy files mapped with ``np.load(mmap_mode="r")`` (no
modelfs code), in N worker processes that each recommend for their share
of the users.  Prints the same lines as the C workers, for every user in
order: ``USER<TAB>ID ID ...`` (external item ids, best first).

    itemknn_workers.py MODEL_DIR [--workers N] [--top T]

MODEL_DIR is the model's directory on the mount, e.g. /run/models/KEY.
Run it with a Python that has numpy (/usr/bin/python3 here).
"""

import argparse
import multiprocessing
import os
import sys

import numpy as np

ARRAYS = ("sim.indptr", "sim.indices", "sim.data", "items.ids",
          "items.by_id", "ratings.indptr", "ratings.items")


def load(model_dir):
    """Maps every array of the model; nothing is copied."""
    return {name: np.load(os.path.join(model_dir, name + ".npy"),
                          mmap_mode="r")
            for name in ARRAYS}


def recommend(m, sorted_ids, user, top):
    """The C worker's algorithm: sum the neighbor similarities of the
    user's rated items, drop rated items, best scores first (ties: lower
    item index first)."""
    n_items = len(m["items.ids"])
    rated_ids = m["ratings.items"][m["ratings.indptr"][user]:
                                   m["ratings.indptr"][user + 1]]
    pos = m["items.by_id"][np.searchsorted(sorted_ids, rated_ids)]
    score = np.zeros(n_items)
    ptr, idx, val = m["sim.indptr"], m["sim.indices"], m["sim.data"]
    for j in pos:
        np.add.at(score, idx[ptr[j]:ptr[j + 1]],
                  val[ptr[j]:ptr[j + 1]].astype(np.float64))
    score[pos] = 0.0
    order = np.lexsort((np.arange(n_items), -score))
    best = [i for i in order[:top] if score[i] > 0]
    ids = m["items.ids"]
    return "%d\t%s\n" % (user, " ".join(str(int(ids[i])) for i in best))


def worker(args):
    model_dir, index, count, top = args
    m = load(model_dir)
    sorted_ids = m["items.ids"][m["items.by_id"]]
    n_users = len(m["ratings.indptr"]) - 1
    return [(u, recommend(m, sorted_ids, u, top))
            for u in range(index, n_users, count)]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model_dir")
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--top", type=int, default=10)
    a = ap.parse_args()
    jobs = [(a.model_dir, w, a.workers, a.top) for w in range(a.workers)]
    with multiprocessing.get_context("fork").Pool(a.workers) as pool:
        parts = pool.map(worker, jobs)
    lines = sorted((u, line) for part in parts for u, line in part)
    sys.stdout.write("".join(line for _, line in lines))
    print("itemknn_workers: %d users from %d worker processes"
          % (len(lines), a.workers), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
