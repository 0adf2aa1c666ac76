"""Worker processes: a pool (fork and spawn) whose initializer gets the
store's client and the key reads the model zero-copy; with 8 workers
holding a 64 MiB model at once, each one's PSS grows by about an eighth
of it, not by a copy."""

import multiprocessing
import os

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
    # every worker did map and read the whole model
    assert sum(grown) > 48 * 1024, grown
