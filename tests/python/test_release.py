"""release() with stray references: it warns (StrayReferenceWarning,
naming the key and how many arrays are still referenced), or with
MODELFS_DEBUG=1 raises StrayReferenceError; either way the arrays stay
valid until their last reference goes, then the mapping is gone, and
nothing crashes.  Without stray references release() is silent."""

import gc
import os
import re
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest

import support
from support import mapping_of
import modelfs
from modelfs.sharing import FileModelStore


def model():
    return {"a": np.arange(100000, dtype=np.int64),
            "b": np.linspace(0, 1, 70000),
            "c": np.ones(5000, dtype=np.int8)}


def test_exception_classes():
    assert issubclass(modelfs.StrayReferenceWarning, RuntimeWarning)
    assert issubclass(modelfs.StrayReferenceError, RuntimeError)
    assert issubclass(modelfs.UntrustedModelError, PermissionError)


def test_release_without_strays_is_silent(store_dir):
    with FileModelStore(store_dir) as store:
        key = store.put_model(model())
        shared = store.get_model(key)
        s = int(shared.object["a"].sum())
        assert s == int(model()["a"].sum())
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            shared.release()
        assert [w for w in caught
                if issubclass(w.category, modelfs.StrayReferenceWarning)] \
            == []
        assert os.path.join(os.path.realpath(store_dir), key + ".mfs") \
            not in support.mapped_paths()


def test_release_with_strays_warns_and_keeps_arrays(store_dir, monkeypatch):
    monkeypatch.delenv("MODELFS_DEBUG", raising=False)
    with FileModelStore(store_dir) as store:
        key = store.put_model(model())
        path = os.path.join(os.path.realpath(store_dir), key + ".mfs")
        shared = store.get_model(key)
        a = shared.object["a"]
        b = shared.object["b"][10:20]  # a view keeps its base alive
        assert mapping_of(a.ctypes.data) == path
        with pytest.warns(modelfs.StrayReferenceWarning) as caught:
            shared.release()
        msgs = [str(w.message) for w in caught
                if issubclass(w.category, modelfs.StrayReferenceWarning)]
        assert len(msgs) == 1, msgs
        assert key in msgs[0]
        assert re.search(r"\b2\b", msgs[0]), msgs[0]
        # still valid after release: same bytes, same mapping
        gc.collect()
        assert mapping_of(a.ctypes.data) == path
        assert int(a.sum()) == int(model()["a"].sum())
        assert np.array_equal(b, np.linspace(0, 1, 70000)[10:20])
        del a
        gc.collect()
        assert path in support.mapped_paths()
        assert np.array_equal(b, np.linspace(0, 1, 70000)[10:20])
        del b
        gc.collect()
        # the last reference went: the container is unmapped
        assert path not in support.mapped_paths()


def test_release_counts_one_stray(store_dir):
    with FileModelStore(store_dir) as store:
        key = store.put_model(model())
        shared = store.get_model(key)
        c = shared.object["c"]
        with pytest.warns(modelfs.StrayReferenceWarning,
                          match=re.escape(key)) as caught:
            shared.release()
        msg = [str(w.message) for w in caught][0]
        assert re.search(r"\b1\b", msg), msg
        assert int(c.sum()) == 5000
        del c


DEBUG_SCRIPT = textwrap.dedent("""
    import gc, os, re, sys
    import numpy as np
    import modelfs
    from modelfs.sharing import FileModelStore

    store_dir = sys.argv[1]
    with FileModelStore(store_dir) as store:
        key = store.put_model({"a": np.arange(100000, dtype=np.int64),
                               "b": np.ones(3000)})
        path = os.path.join(os.path.realpath(store_dir), key + ".mfs")

        def mapped():
            with open("/proc/self/maps") as f:
                return any(line.rstrip("\\n").endswith(" " + path)
                           for line in f)

        shared = store.get_model(key)
        a = shared.object["a"]
        try:
            shared.release()
        except modelfs.StrayReferenceError as e:
            assert key in str(e), str(e)
            assert re.search(r"\\b1\\b", str(e)), str(e)
            print("raised:", type(e).__name__)
        else:
            print("no error")
            sys.exit(3)
        # still valid, and no crash on any use
        assert int(a.sum()) == 4999950000
        assert int(a[::7].max()) == 99995
        b = a.copy()
        assert mapped()
        del a, shared
        gc.collect()
        assert not mapped(), "still mapped after the last reference went"
        assert int(b.sum()) == 4999950000
        # a clean release raises nothing
        shared = store.get_model(key)
        assert int(shared.object["b"].sum()) == 3000
        shared.release()
        print("ok")
""")


def test_debug_mode_raises(store_dir):
    env = dict(os.environ, MODELFS_DEBUG="1")
    p = subprocess.run([sys.executable, "-c", DEBUG_SCRIPT, store_dir],
                       env=env, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True, timeout=120)
    assert p.returncode == 0, "exit %d\nstdout:\n%s\nstderr:\n%s" % (
        p.returncode, p.stdout, p.stderr)
    assert p.stdout.split() == ["raised:", "StrayReferenceError", "ok"], \
        p.stdout
    assert support.listing(store_dir) == []


def test_release_twice_and_use_after(store_dir):
    """A second release does not crash; arrays taken before the release
    remain valid, the object itself is dropped."""
    with FileModelStore(store_dir) as store:
        key = store.put_model(model())
        shared = store.get_model(key)
        a = shared.object["a"]
        with pytest.warns(modelfs.StrayReferenceWarning):
            shared.release()
        try:
            shared.release()
        except (ValueError, RuntimeError, OSError):
            pass
        assert int(a.sum()) == int(model()["a"].sum())
        del a
        gc.collect()
        assert os.path.join(os.path.realpath(store_dir), key + ".mfs") \
            not in support.mapped_paths()
