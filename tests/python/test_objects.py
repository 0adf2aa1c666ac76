"""put_model/get_model of real objects through every store kind: NumPy
arrays of every dtype, a pandas DataFrame and Series, a SciPy CSR matrix,
a fitted scikit-learn estimator, and an object whose __getstate__ keeps a
cache only in share context (kept by put_model, dropped by dump)."""

import os

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import support
from support import FILE_KINDS, STORE_KINDS, CachedModel, mapping_of
import modelfs
from modelfs.sharing import in_share_context, sharing_mode


def put_get(store, obj):
    """Puts @obj into entered @store and gets it back: (key, shared)."""
    key = store.put_model(obj)
    return key, store.get_model(key)


@pytest.mark.parametrize("kind", STORE_KINDS)
def test_numpy_every_dtype(make_store, kind):
    arrays = support.all_dtype_arrays()
    store = make_store(kind)
    with store:
        key, shared = put_get(store, arrays)
        try:
            got = shared.object
            assert set(got) == set(arrays)
            for name, want in arrays.items():
                a = got[name]
                assert support.same_array(want, a), name
                if kind == "noop":
                    continue
                if want.dtype.kind in "biufc" and want.size >= 1000 and \
                        (want.flags.c_contiguous or want.flags.f_contiguous):
                    # large plain arrays come from the store's mapping
                    assert not a.flags.writeable, name
                    assert mapping_of(a.ctypes.data) is not None, name
                if want.flags.f_contiguous and not want.flags.c_contiguous:
                    assert a.flags.f_contiguous, name
            del got, a
        finally:
            shared.release()


@pytest.mark.parametrize("kind", STORE_KINDS)
def test_pandas(make_store, kind):
    n = 2000
    rng = np.random.default_rng(1)
    df = pd.DataFrame({
        "user": np.arange(n, dtype=np.int64),
        "score": rng.standard_normal(n).astype(np.float32),
        "rating": rng.integers(1, 6, n).astype(np.int8),
        "label": ["item-%d" % (i % 17) for i in range(n)],
        "cat": pd.Categorical(["a", "b", "c", "a"] * (n // 4)),
        "when": pd.date_range("2021-01-01", periods=n, freq="H"),
    }, index=pd.Index(np.arange(n) * 3, name="row"))
    series = pd.Series(rng.standard_normal(n), name="s",
                       index=pd.RangeIndex(5, 5 + n))
    store = make_store(kind)
    with store:
        _, shared = put_get(store, {"df": df, "series": series})
        try:
            got = shared.object
            pd.testing.assert_frame_equal(got["df"], df)
            pd.testing.assert_series_equal(got["series"], series)
            assert got["df"].index.name == "row"
            if kind != "noop":
                vals = got["series"].to_numpy()
                assert mapping_of(vals.ctypes.data) is not None
                del vals
                # pandas code still works on the shared frame
                assert got["df"].groupby("cat")["score"].sum().equals(
                    df.groupby("cat")["score"].sum())
            del got
        finally:
            shared.release()


@pytest.mark.parametrize("kind", STORE_KINDS)
def test_scipy_csr(make_store, kind):
    m = sp.random(3000, 700, density=0.01, format="csr", dtype=np.float64,
                  random_state=np.random.RandomState(2))
    store = make_store(kind)
    with store:
        _, shared = put_get(store, m)
        try:
            got = shared.object
            assert sp.isspmatrix_csr(got)
            assert got.shape == m.shape
            for attr in ("data", "indices", "indptr"):
                assert support.same_array(getattr(m, attr),
                                          getattr(got, attr)), attr
            assert (got != m).nnz == 0
            v = np.arange(m.shape[1], dtype=np.float64)
            assert np.array_equal(got @ v, m @ v)
            if kind != "noop":
                assert mapping_of(got.data.ctypes.data) is not None
            del got
        finally:
            shared.release()


@pytest.mark.parametrize("kind", STORE_KINDS)
def test_sklearn_estimator(make_store, kind):
    from sklearn.datasets import make_classification
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x, y = make_classification(n_samples=400, n_features=12, random_state=0)
    est = make_pipeline(StandardScaler(),
                        RandomForestClassifier(n_estimators=8,
                                               random_state=0))
    est.fit(x, y)
    want = est.predict_proba(x)
    store = make_store(kind)
    with store:
        _, shared = put_get(store, est)
        try:
            got = shared.object
            assert type(got) is type(est)
            assert np.array_equal(got.predict_proba(x), want)
            assert np.array_equal(got.predict(x), est.predict(x))
            del got
        finally:
            shared.release()


@pytest.mark.parametrize("kind", FILE_KINDS)
def test_cache_kept_by_put_model(make_store, kind):
    weights = np.linspace(0.0, 1.0, 5000)
    model = CachedModel(weights)
    store = make_store(kind)
    with store:
        CachedModel.getstate_contexts.clear()
        key = store.put_model(model)
        # pickled in share context, which ends with the put
        assert CachedModel.getstate_contexts == [True]
        assert not in_share_context()
        with store.get_model(key) as got:
            assert isinstance(got, CachedModel)
            assert np.array_equal(got.weights, weights)
            assert hasattr(got, "cache")
            assert np.array_equal(got.cache, weights * 2)
            del got


def test_cache_dropped_by_dump(tmp_path):
    weights = np.linspace(0.0, 1.0, 5000)
    model = CachedModel(weights)
    path = str(tmp_path / "cached.mfs")
    CachedModel.getstate_contexts.clear()
    modelfs.dump(model, path)
    assert CachedModel.getstate_contexts == [False]
    with modelfs.load(path) as got:
        assert isinstance(got, CachedModel)
        assert np.array_equal(got.weights, weights)
        assert not hasattr(got, "cache")
        del got
    # the container holds only the weights' buffer and the pickle
    with modelfs.open(path) as m:
        assert sorted(m) == ["b0000", "pickle"]
        assert np.array_equal(m["b0000"], weights)


def test_dump_inside_sharing_mode_drops_cache(tmp_path):
    """dump pickles outside share context, whatever the caller's mode."""
    model = CachedModel(np.arange(100.0))
    path = str(tmp_path / "saved.mfs")
    CachedModel.getstate_contexts.clear()
    with sharing_mode():
        modelfs.dump(model, path)
        assert in_share_context()
    assert CachedModel.getstate_contexts == [False]
    with modelfs.open(path) as m:
        assert sorted(m) == ["b0000", "pickle"]


def test_put_model_inside_sharing_mode(store_dir):
    model = CachedModel(np.arange(100.0))
    from modelfs.sharing import FileModelStore
    with sharing_mode():
        with FileModelStore(store_dir) as store:
            key = store.put_model(model)
            assert in_share_context()
            with modelfs.open(os.path.join(store_dir, key + ".mfs")) as m:
                # weights and cache: two buffers
                assert sorted(m) == ["b0000", "b0001", "pickle"]
    assert not in_share_context()
