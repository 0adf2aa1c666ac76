"""Worker processes: a pool (fork and spawn) whose initializer gets the
store's client and the key reads the model zero-copy; with 8 workers
holding a 64 MiB model at once, each one's PSS grows by about an eighth
of it, not by a copy."""

import multiprocessing
import os
import subprocess

import numpy as np
import pytest

import support
from support import FILE_KINDS

MiB = 1 << 20


def model():
    return {"a": np.arange(300000, dtype=np.float64),
            "b": np.arange(1000, dtype=np.int32).reshape(10, 100)}


@pytest.mark.parametrize("method", ["fork", "spawn"])
@pytest.mark.parametrize("kind", FILE_KINDS)
def test_pool_workers(make_store, kind, method):
    want = model()
    sums = {name: float(a.sum()) for name, a in want.items()}
    store = make_store(kind)
    with store:
        key = store.put_model(want)
        client = store.client()
        ctx = multiprocessing.get_context(method)
        pool = ctx.Pool(2, initializer=support.init_worker,
                        initargs=(client, key))
        try:
            results = pool.map(support.worker_checksum, ["a", "b"] * 4,
                               chunksize=1)
            pool.close()
            pool.join()
        finally:
            pool.terminate()
    assert len(results) == 8
    for (pid, total, readonly, where, sharing), name in zip(
            results, ["a", "b"] * 4):
        assert pid != os.getpid()
        assert total == sums[name]
        assert readonly
        assert where is not None, "worker's array is not mapped from a file"
        if kind == "mount":
            assert where.endswith(".npy")
            assert where.startswith(os.path.realpath(
                make_store.mount.path) + "/" + key + "/")
        else:
            assert where.endswith("/" + key + ".mfs")
        assert sharing is False


@pytest.mark.parametrize("kind", ["mount", "file"])
def test_eight_workers_share_pages(make_store, kind):
    n = 64 * MiB // 8
    big = np.arange(n, dtype=np.int64)
    total = int(big.sum())
    store = make_store(kind)
    with store:
        key = store.put_model({"big": big})
        del big
        client = store.client()
        ctx = multiprocessing.get_context("fork")
        barrier = ctx.Barrier(8)
        pool = ctx.Pool(8, initializer=support.init_pss_worker,
                        initargs=(client, key, barrier))
        try:
            results = pool.map(support.pss_task, ["big"] * 8, chunksize=1)
            pool.close()
            pool.join()
        finally:
            pool.terminate()
    pids = {r[0] for r in results}
    assert len(pids) == 8
    assert all(r[2] == total for r in results)
    grown = [r[1] for r in results]
    # A private copy would add 64 MiB to each worker; a shared mapping
    # adds 64 MiB / 8 = 8 MiB (plus the unpickling's small change).
    assert max(grown) < 24 * 1024, grown
    # Every worker mapped and read the whole model, so their shares of
    # the mapping add up to it (each page split among its 8 mappers).
    shares = [r[3] for r in results]
    assert 0.95 * 64 * 1024 <= sum(shares) <= 1.05 * 64 * 1024, shares


def cached_kib(paths):
    """Page cache held by @paths, in KiB (util-linux fincore)."""
    out = subprocess.run(["fincore", "--bytes", "--noheadings", "--raw",
                          "--output", "RES"] + paths, capture_output=True,
                         text=True, check=True).stdout
    return sum(int(x) for x in out.split()) // 1024


def test_fitted_estimator_eight_spawned_workers(make_store):
    """A fitted scikit-learn estimator put by this process serves 8
    spawned workers; the model's memory (the workers' PSS of its mapping,
    which splits each shared page among its mappers, plus the page cache
    of the store's container) is at most 1.1 x the estimator's arrays,
    and no worker grows by anything like a copy."""
    from sklearn.neighbors import NearestNeighbors
    rng = np.random.default_rng(7)
    train = rng.standard_normal((65536, 128))  # 64 MiB of float64
    knn = NearestNeighbors(algorithm="brute").fit(train)
    model_kib = knn._fit_X.nbytes // 1024
    queries = [train[i * 1000] for i in range(8)]
    store = make_store("mount")
    with store:
        key = store.put_model(knn)
        del knn
        ctx = multiprocessing.get_context("spawn")
        barrier = ctx.Barrier(8)
        pool = ctx.Pool(8, initializer=support.init_estimator_worker,
                        initargs=(store.client(), key, barrier))
        try:
            results = pool.map(support.estimator_task, queries, chunksize=1)
            pool.close()
            pool.join()
        finally:
            pool.terminate()
        backing = cached_kib([os.path.join(make_store.mount.store, key +
                                           ".mfs")])
    assert len({r[0] for r in results}) == 8
    for i, (_pid, _grown, idx, total, _share) in enumerate(results):
        assert idx[0] == i * 1000, idx  # each query's nearest is itself
        assert total == float(train.sum())
    workers = sum(r[1] for r in results)
    shares = sum(r[4] for r in results)
    print(f"8 workers: PSS growth {workers} KiB, of it the model's mapping "
          f"{shares} KiB, container page cache {backing} KiB, model "
          f"{model_kib} KiB")
    # Every page was mapped by every worker: the shares of the mapping add
    # up to the model.  (The growth of the whole PSS is no lower bound: a
    # worker's share of the interpreter's pages shrinks as more start.)
    assert shares >= 0.95 * model_kib, (shares, model_kib)
    # The model is held once: the workers' shares of its mapping plus the
    # container's page cache.
    assert shares + backing <= 1.1 * model_kib, (shares, backing, model_kib)
    # And nobody holds a copy: what else each worker grew by (the
    # unpickled object, the query; under AddressSanitizer also its shadow
    # memory, about 1 MiB a worker) is far below the model, which a copy
    # would add whole.
    for (_pid, grown, _idx, _total, share) in results:
        assert grown - share < model_kib / 4, (grown, share, model_kib)
