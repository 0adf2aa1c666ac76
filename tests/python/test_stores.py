"""Model stores: every kind puts and gets a model; stores are re-entrant
context managers that register as the thread's active store; the last
__exit__ removes the ephemeral models; get_store picks the kind; keys are
content-derived; clients pickle small and work after unpickling; a store
itself does not pickle."""

import os
import pickle
import re
import threading

import numpy as np
import pytest

import support
from support import FILE_KINDS, STORE_KINDS, mapping_of
from modelfs.sharing import (BaseModelClient, BaseModelStore,
                             FileModelStore, MountModelStore,
                             NoopModelStore, SHMModelStore, get_store)

KEY_RE = re.compile(r"^[0-9a-f]{16}$")


def small_model(seed=0):
    rng = np.random.default_rng(seed)
    return {"w": rng.standard_normal((200, 30)),
            "ids": np.arange(500, dtype=np.int32) * (seed + 1),
            "name": "model-%d" % seed}


def check_model(obj, seed=0):
    want = small_model(seed)
    assert set(obj) == set(want)
    assert obj["name"] == want["name"]
    for k in ("w", "ids"):
        assert support.same_array(want[k], obj[k]), k


def held_path(store, key):
    """The file a model of @store maps: gets the model and returns the
    path of the mapping that holds its array 'w'."""
    shared = store.get_model(key)
    try:
        w = shared.object["w"]
        path = mapping_of(w.ctypes.data)
        del w
    finally:
        shared.release()
    assert path is not None, "array data is in anonymous memory"
    return path


@pytest.mark.parametrize("kind", STORE_KINDS)
def test_put_get(make_store, kind):
    store = make_store(kind)
    assert isinstance(store, BaseModelStore)
    assert isinstance(store, BaseModelClient)
    with store:
        key = store.put_model(small_model())
        shared = store.get_model(key)
        try:
            check_model(shared.object)
            if kind != "noop":
                assert shared.key == key
        finally:
            shared.release()
        assert shared.object is None
        # the context manager form yields the object and releases it
        with store.get_model(key) as obj:
            check_model(obj)
            del obj


def test_noop_store_keys_are_models():
    model = small_model()
    with NoopModelStore() as store:
        key = store.put_model(model)
        assert key is model
        shared = store.get_model(key)
        assert shared.object is model
        shared.release()


@pytest.mark.parametrize("kind", FILE_KINDS)
def test_key_is_content_derived(make_store, kind):
    store = make_store(kind)
    with store:
        k1 = store.put_model(small_model(1))
        k2 = store.put_model(small_model(1))
        k3 = store.put_model(small_model(2))
        assert isinstance(k1, str) and KEY_RE.match(k1), k1
        assert k1 == k2
        assert k3 != k1 and KEY_RE.match(k3), k3
        with store.get_model(k3) as obj:
            check_model(obj, 2)
            del obj
        with store.get_model(k1) as obj:
            check_model(obj, 1)
            del obj


@pytest.mark.parametrize("kind", FILE_KINDS)
def test_arrays_are_mapped_readonly(make_store, kind):
    store = make_store(kind)
    with store:
        key = store.put_model(small_model())
        shared = store.get_model(key)
        w = shared.object["w"]
        assert not w.flags.writeable
        assert not w.flags.owndata
        with pytest.raises(ValueError):
            w[0, 0] = 1.0
        # zero-copy: the data lies in a mapping of the store's file
        path = mapping_of(w.ctypes.data)
        assert path is not None, "array data is in anonymous memory"
        if kind == "mount":
            mnt = os.path.realpath(make_store.mount.path)
            assert path.startswith(os.path.join(mnt, key) + "/"), path
            assert path.endswith(".npy"), path
        else:
            assert path.endswith("/" + key + ".mfs"), path
            if kind == "file":
                assert path == os.path.join(
                    os.path.realpath(make_store.dir), key + ".mfs")
            else:
                assert path.startswith("/dev/shm/"), path
        del w
        shared.release()
        # released: no mapping of the file is left
        assert path not in support.mapped_paths()


@pytest.mark.parametrize("kind", STORE_KINDS)
def test_reentrant_context_manager_is_active_store(make_store, kind):
    store = make_store(kind)
    assert get_store() is not store
    with store as entered:
        assert entered is store
        assert get_store() is store
        with store:
            assert get_store() is store
            key = store.put_model(small_model())
        # still open after the inner exit
        assert get_store() is store
        with store.get_model(key) as obj:
            check_model(obj)
            del obj
        other = NoopModelStore()
        with other:
            assert get_store() is other
        assert get_store() is store
    assert get_store() is not store


def test_active_store_is_per_thread(store_dir):
    store = FileModelStore(store_dir)
    seen = []

    def worker():
        seen.append(get_store(in_process=True))

    with store:
        t = threading.Thread(target=worker)
        t.start()
        t.join(30)
        assert get_store() is store
    assert len(seen) == 1
    assert seen[0] is not store
    assert isinstance(seen[0], NoopModelStore)


def test_get_store_in_process_and_reuse(store_dir):
    s = get_store(reuse=False, in_process=True)
    assert isinstance(s, NoopModelStore)
    store = FileModelStore(store_dir)
    with store:
        assert get_store() is store
        assert get_store(in_process=True) is store
        fresh = get_store(reuse=False, in_process=True)
        assert fresh is not store
        assert isinstance(fresh, NoopModelStore)


def test_get_store_prefers_live_mount(modelfs_mount, monkeypatch):
    monkeypatch.setenv("MODELFS_MOUNT", modelfs_mount.path)
    store = get_store(reuse=False)
    assert isinstance(store, MountModelStore)
    with store:
        key = store.put_model(small_model())
        assert os.path.isfile(os.path.join(modelfs_mount.store, key + ".mfs"))
        assert os.path.isdir(modelfs_mount.p(key))
        with store.get_model(key) as obj:
            check_model(obj)
            del obj
    assert not os.path.exists(os.path.join(modelfs_mount.store,
                                            key + ".mfs"))


@pytest.mark.parametrize("mount", ["", "not-a-mount"])
def test_get_store_without_mount_uses_shm(tmp_path, monkeypatch, mount):
    if mount:
        mount = str(tmp_path / mount)
        os.mkdir(mount)
    monkeypatch.setenv("MODELFS_MOUNT", mount)
    store = get_store(reuse=False)
    assert isinstance(store, SHMModelStore)
    with store:
        key = store.put_model(small_model())
        path = held_path(store, key)
        assert path.startswith("/dev/shm/"), path


def test_ephemeral_models_removed_at_last_exit_file(store_dir):
    store = FileModelStore(store_dir)
    with store:
        with store:
            key = store.put_model(small_model())
            assert os.path.isfile(os.path.join(store_dir, key + ".mfs"))
        assert os.path.isfile(os.path.join(store_dir, key + ".mfs"))
    assert support.listing(store_dir) == []
    # a directory the caller gave is the caller's: it stays
    assert os.path.isdir(store_dir)


def test_ephemeral_models_removed_at_last_exit_mount(modelfs_mount):
    store = MountModelStore(modelfs_mount.path)
    with store:
        with store:
            key = store.put_model(small_model())
        assert os.path.isdir(modelfs_mount.p(key))
        assert os.path.isfile(modelfs_mount.p(key, "pickle.npy"))
    assert not os.path.exists(modelfs_mount.p(key))
    assert support.listing(modelfs_mount.store) == []
    modelfs_mount.check_alive()


@pytest.mark.parametrize("cls", [FileModelStore, SHMModelStore])
def test_private_directory_removed_at_shutdown(cls):
    store = cls()
    with store:
        key = store.put_model(small_model())
        path = held_path(store, key)
        assert os.path.isfile(path)
        private = os.path.dirname(path)
        if cls is SHMModelStore:
            assert private.startswith("/dev/shm/")
    assert not os.path.exists(path)
    assert not os.path.exists(private)


def test_init_shutdown(store_dir):
    store = FileModelStore(store_dir)
    store.init()
    try:
        key = store.put_model(small_model())
        assert support.listing(store_dir) == [key + ".mfs"]
        with store.get_model(key) as obj:
            check_model(obj)
            del obj
    finally:
        store.shutdown()
    assert support.listing(store_dir) == []


@pytest.mark.parametrize("kind", FILE_KINDS)
def test_client_pickles_small(make_store, kind):
    store = make_store(kind)
    with store:
        key = store.put_model(small_model(3))
        client = store.client()
        assert isinstance(client, BaseModelClient)
        data = pickle.dumps(client)
        assert len(data) < 1024, len(data)
        clone = pickle.loads(data)
        with clone.get_model(key) as obj:
            check_model(obj, 3)
            del obj
        # and the original client works too
        with client.get_model(key) as obj:
            check_model(obj, 3)
            del obj


@pytest.mark.parametrize("kind", STORE_KINDS)
def test_store_does_not_pickle(make_store, kind):
    store = make_store(kind)
    with store:
        with pytest.raises(Exception, match=r"client\(\)"):
            pickle.dumps(store)


@pytest.mark.parametrize("kind", FILE_KINDS)
def test_client_by_hand_in_an_unrelated_process(make_store, kind):
    """A program started on its own, given only the store's spec and the
    key (say on its command line), gets the model."""
    import subprocess
    import sys
    store = make_store(kind)
    with store:
        key = store.put_model(small_model(3))
        spec = store.client().spec
        code = ("import sys; from modelfs.sharing import ModelClient; "
                "m = ModelClient(sys.argv[1]).get_model(sys.argv[2]); "
                "print(m.object['name'], float(m.object['ids'].sum()), "
                "m.object['w'].flags.writeable)")
        out = subprocess.run([sys.executable, "-c", code, spec, key],
                             capture_output=True, text=True, check=True,
                             env=os.environ)
    want = small_model(3)
    assert out.stdout.split() == [want["name"],
                                  str(float(want["ids"].sum())), "False"]
