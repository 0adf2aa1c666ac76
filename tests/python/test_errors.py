"""Bad inputs: an unpicklable object, a failed write (disk full), a corrupt
or truncated container, an unknown key, a key of another store, a
malformed key.  Each raises a Python exception (a subclass of OSError or
ValueError, with libmodelfs's message where the library failed) and
publishes nothing: the store directory holds no new file afterwards, not
even a hidden temporary, and the store keeps working."""

import contextlib
import errno
import os
import pickle
import socket
import subprocess
import sys
import tempfile
import textwrap
import warnings

import numpy as np
import pytest

import support
from support import FILE_KINDS
import modelfs
from modelfs.sharing import FileModelStore, MountModelStore

BAD = (OSError, ValueError)


def model(n=200000):
    # distinctive bytes, easy to find in a container
    return {"w": np.arange(n, dtype=np.int64) + 0x5A5A000000, "tag": "ok"}


def store_listing(make_store, kind, store):
    """Names in the directory behind @store (and on its mount)."""
    if kind == "file":
        return support.listing(make_store.dir)
    if kind == "mount":
        return (support.listing(make_store.mount.store),
                support.listing(make_store.mount.path))
    # shm: the private directory is found through a model's mapping
    return None


def shm_dir(store):
    key = store.put_model({"probe": np.arange(10)})
    shared = store.get_model(key)
    path = support.mapping_of(shared.object["probe"].ctypes.data)
    shared.release()
    return os.path.dirname(path), key


module_lambda = lambda x: x  # noqa: E731  (pickled by name: fails)


def _local_function():
    def local():
        return 1
    return local


UNPICKLABLE = ["module-lambda", "local-function", "socket"]


@contextlib.contextmanager
def unpicklable(case):
    """An object holding arrays and one thing pickle refuses."""
    if case == "module-lambda":
        yield {"w": np.arange(100), "f": module_lambda}
    elif case == "local-function":
        yield [np.ones(10), _local_function()]
    else:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            yield {"w": np.arange(5000.0), "s": sock}


@pytest.mark.parametrize("case", UNPICKLABLE)
@pytest.mark.parametrize("kind", FILE_KINDS)
def test_put_unpicklable(make_store, kind, case):
    store = make_store(kind)
    with store:
        if kind == "shm":
            d, probe = shm_dir(store)
            before = support.listing(d)
        else:
            before = store_listing(make_store, kind, store)
        with unpicklable(case) as obj:
            with pytest.raises(BAD):
                store.put_model(obj)
        if kind == "shm":
            assert support.listing(d) == before
        else:
            assert store_listing(make_store, kind, store) == before
        # the store still works
        key = store.put_model(model(1000))
        with store.get_model(key) as obj:
            assert obj["tag"] == "ok"
            del obj


@pytest.mark.parametrize("case", UNPICKLABLE)
def test_dump_unpicklable(tmp_path, case):
    path = str(tmp_path / "model.mfs")
    with unpicklable(case) as obj:
        with pytest.raises(BAD):
            modelfs.dump(obj, path)
    assert support.listing(str(tmp_path)) == []


@pytest.fixture
def tiny_fs():
    """A 1 MiB tmpfs mounted on a fresh directory."""
    d = tempfile.mkdtemp(prefix="modelfs-full-")
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,mode=0755",
                        "tmpfs", d], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True)
    if p.returncode != 0:
        os.rmdir(d)
        pytest.fail("cannot mount a tmpfs (the test runs as root): %s" %
                    p.stdout)
    try:
        yield d
    finally:
        subprocess.run(["umount", d])
        os.rmdir(d)


BIG = 4 << 20


def test_put_disk_full(tiny_fs):
    with FileModelStore(tiny_fs) as store:
        with pytest.raises(OSError) as exc:
            store.put_model({"big": np.arange(BIG // 8, dtype=np.int64)})
        assert exc.value.errno == errno.ENOSPC, exc.value
        assert str(exc.value)
        assert support.listing(tiny_fs) == []
        # a model that fits still goes in
        key = store.put_model(model(1000))
        with store.get_model(key) as obj:
            assert obj["tag"] == "ok"
            del obj
    assert support.listing(tiny_fs) == []


def test_dump_and_pack_disk_full(tiny_fs):
    path = os.path.join(tiny_fs, "big.mfs")
    with pytest.raises(OSError) as exc:
        modelfs.dump({"big": np.arange(BIG // 8, dtype=np.int64)}, path)
    assert exc.value.errno == errno.ENOSPC, exc.value
    assert support.listing(tiny_fs) == []
    with pytest.raises(OSError) as exc:
        modelfs.pack(path, {"big": np.ones(BIG // 4, dtype=np.float32)})
    assert exc.value.errno == errno.ENOSPC, exc.value
    assert support.listing(tiny_fs) == []


def test_put_serialized_disk_full(tiny_fs, tmp_path):
    src = str(tmp_path / "big.mfs")
    modelfs.dump({"big": np.arange(BIG // 8, dtype=np.int64)}, src)
    pkl = str(tmp_path / "big.pkl")
    with open(pkl, "wb") as f:
        pickle.dump({"big": np.arange(BIG // 8, dtype=np.int64)}, f)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for reserialize in (False, True):
            with FileModelStore(tiny_fs, reserialize=reserialize) as store:
                with pytest.raises(OSError) as exc:
                    store.put_serialized(src, binpickle=True)
                assert exc.value.errno == errno.ENOSPC, exc.value
                assert support.listing(tiny_fs) == []
                with pytest.raises(OSError) as exc:
                    store.put_serialized(pkl)
                assert exc.value.errno == errno.ENOSPC, exc.value
                assert support.listing(tiny_fs) == []
    # the caller holds no array of the model: nothing is stray
    strays = [str(w.message) for w in caught
              if issubclass(w.category, modelfs.StrayReferenceWarning)]
    assert strays == []


FULL_DEBUG_SCRIPT = textwrap.dedent("""
    import errno, sys
    import modelfs
    from modelfs.sharing import FileModelStore
    src, store_dir = sys.argv[1:]
    with FileModelStore(store_dir) as store:
        try:
            store.put_serialized(src, binpickle=True)
        except OSError as e:
            print("errno", errno.errorcode.get(e.errno))
        except Exception as e:
            print("raised", type(e).__name__, e)
""")


def test_put_serialized_disk_full_debug(tiny_fs, tmp_path):
    """With MODELFS_DEBUG=1 the error of the failed put is what the caller
    gets (the stray check does not replace it)."""
    src = str(tmp_path / "big.mfs")
    modelfs.dump({"big": np.arange(BIG // 8, dtype=np.int64)}, src)
    env = dict(os.environ, MODELFS_DEBUG="1")
    p = subprocess.run([sys.executable, "-c", FULL_DEBUG_SCRIPT, src,
                        tiny_fs], env=env, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "errno ENOSPC", p.stdout
    assert support.listing(tiny_fs) == []


def data_offset(path, arr, index=1000):
    """Offset in container @path of element @index of raw array @arr."""
    with open(path, "rb") as f:
        blob = f.read()
    needle = arr[index:index + 8].tobytes()
    off = blob.find(needle)
    assert off > 0 and blob.find(needle, off + 1) < 0
    return off


def flip(path, off):
    with open(path, "r+b") as f:
        f.seek(off)
        b = f.read(1)
        f.seek(off)
        f.write(bytes([b[0] ^ 0xFF]))


def truncate(path):
    os.truncate(path, os.path.getsize(path) // 2)


def damage(path, how):
    if how == "corrupt":
        flip(path, data_offset(path, model()["w"]))
    else:
        truncate(path)


@pytest.mark.parametrize("how", ["corrupt", "truncated"])
def test_get_damaged_container(store_dir, how):
    with FileModelStore(store_dir) as store:
        key = store.put_model(model())
        path = os.path.join(store_dir, key + ".mfs")
        damage(path, how)
        with pytest.raises(OSError) as exc:
            store.get_model(key)
        e = exc.value
        assert e.errno == (errno.EIO if how == "corrupt" else errno.EBADMSG), e
        assert key + ".mfs" in str(e), str(e)
        with pytest.raises(OSError):
            store.client().get_model(key, trusted=True)
        # nothing stays mapped
        assert os.path.realpath(path) not in support.mapped_paths()
        # another model of the same store still works
        key2 = store.put_model(model(5000))
        with store.get_model(key2) as obj:
            assert obj["tag"] == "ok"
            del obj


@pytest.mark.parametrize("how", ["corrupt", "truncated"])
def test_load_open_damaged_container(tmp_path, how):
    path = str(tmp_path / "damaged.mfs")
    modelfs.dump(model(), path)
    damage(path, how)
    want = errno.EIO if how == "corrupt" else errno.EBADMSG
    with pytest.raises(OSError) as exc:
        modelfs.load(path)
    assert exc.value.errno == want, exc.value
    assert "damaged.mfs" in str(exc.value)
    with pytest.raises(OSError) as exc:
        modelfs.open(path)
    assert exc.value.errno == want, exc.value
    assert "damaged.mfs" in str(exc.value)
    assert os.path.realpath(path) not in support.mapped_paths()


@pytest.mark.parametrize("reserialize", [False, True])
@pytest.mark.parametrize("how", ["corrupt", "truncated", "garbage"])
def test_put_serialized_damaged_container(store_dir, tmp_path, how,
                                          reserialize):
    path = str(tmp_path / "damaged.mfs")
    if how == "garbage":
        with open(path, "wb") as f:
            f.write(b"this is not a container\n" * 1000)
    else:
        modelfs.dump(model(), path)
        damage(path, how)
    with FileModelStore(store_dir, reserialize=reserialize) as store:
        with pytest.raises(BAD) as exc:
            store.put_serialized(path, binpickle=True)
        assert str(exc.value)
        assert support.listing(store_dir) == []


def test_put_serialized_bad_pickle(store_dir, tmp_path):
    good = pickle.dumps(model(1000), protocol=4)
    cases = {"truncated.pkl": good[:len(good) // 2],
             "garbage.pkl": b"\x00\x01not a pickle at all" * 100,
             "empty.pkl": b""}
    with FileModelStore(store_dir) as store:
        for name, data in cases.items():
            path = str(tmp_path / name)
            with open(path, "wb") as f:
                f.write(data)
            with pytest.raises(BAD):
                store.put_serialized(path)
            assert support.listing(store_dir) == [], name
        with pytest.raises(FileNotFoundError):
            store.put_serialized(str(tmp_path / "missing.pkl"))
        assert support.listing(store_dir) == []


def test_truncated_container_on_mount(modelfs_mount, tmp_path):
    src = str(tmp_path / "t.mfs")
    modelfs.dump(model(), src)
    truncate(src)
    os.rename(src, os.path.join(modelfs_mount.store, "broken.mfs"))
    with MountModelStore(modelfs_mount.path) as store:
        with pytest.raises(BAD):
            store.get_model("broken")
        with pytest.raises(BAD):
            store.client().get_model("broken", trusted=True)
    modelfs_mount.check_alive()


@pytest.mark.parametrize("kind", FILE_KINDS)
def test_unknown_key(make_store, kind):
    store = make_store(kind)
    with store:
        store.put_model(model(100))
        for getter in (store.get_model, store.client().get_model):
            with pytest.raises(FileNotFoundError) as exc:
                getter("0123456789abcdef")
            assert exc.value.errno == errno.ENOENT
            assert "0123456789abcdef" in str(exc.value), str(exc.value)


@pytest.mark.parametrize("kind", FILE_KINDS)
def test_key_of_another_store(make_store, tmp_path, kind):
    other_dir = str(tmp_path / "other")
    os.mkdir(other_dir)
    with FileModelStore(other_dir) as other:
        key = other.put_model(model(3000))
        store = make_store(kind)
        with store:
            with pytest.raises(FileNotFoundError) as exc:
                store.get_model(key)
            assert key in str(exc.value), str(exc.value)
            with pytest.raises(FileNotFoundError):
                store.client().get_model(key)
        # it is still fine in its own store
        with other.get_model(key) as obj:
            assert obj["tag"] == "ok"
            del obj


@pytest.mark.parametrize("key", ["../etc/passwd", "", "a/b", ".hidden",
                                 "x" * 300, "nul\0byte"])
def test_malformed_key(store_dir, key):
    with FileModelStore(store_dir) as store:
        with pytest.raises(BAD):
            store.get_model(key)
        with pytest.raises(BAD):
            store.client().get_model(key)


def test_missing_paths(tmp_path):
    missing = str(tmp_path / "nope.mfs")
    with pytest.raises(FileNotFoundError):
        modelfs.load(missing)
    with pytest.raises(FileNotFoundError):
        modelfs.open(missing)
    with pytest.raises(FileNotFoundError):
        modelfs.open(str(tmp_path / "nodir" / "x"))
