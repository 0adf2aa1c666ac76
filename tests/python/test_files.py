"""Files: modelfs.dump/load round trips (raw and LZ4) with the metadata the
format promises, modelfs.pack/modelfs.open on a container file and on a
mount's model directory, and put_serialized of a pickle file and of a
dump container (published as is without reserialization)."""

import collections.abc
import json
import os
import pickle
import platform
import shutil
import time

import numpy as np
import pytest

import support
from support import FILE_KINDS, MODELCTL, mapping_of, run_tool
import modelfs
from modelfs.sharing import FileModelStore, MountModelStore


def sample():
    return {"ints": np.repeat(np.arange(64, dtype=np.int64), 4096),
            "floats": np.linspace(-1.0, 1.0, 50000, dtype=np.float32),
            "fortran": np.asfortranarray(
                np.arange(600, dtype=np.int16).reshape(20, 30)),
            "text": "hello",
            "nested": [1, 2.5, None]}


def check_sample(obj):
    want = sample()
    assert set(obj) == set(want)
    for k in ("ints", "floats", "fortran"):
        assert support.same_array(want[k], obj[k]), k
    assert obj["fortran"].flags.f_contiguous
    assert obj["text"] == "hello" and obj["nested"] == [1, 2.5, None]


def inspect_json(path):
    p = run_tool([MODELCTL, "inspect", "--json", path])
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


@pytest.mark.parametrize("codec", ["none", "lz4"])
def test_dump_load_roundtrip(tmp_path, codec):
    path = str(tmp_path / "model.mfs")
    modelfs.dump(sample(), path, codec=codec)
    assert support.listing(str(tmp_path)) == ["model.mfs"]
    man = inspect_json(path)
    names = [a["name"] for a in man["arrays"]]
    assert names == ["b0000", "b0001", "b0002", "pickle"]
    assert {a["codec"] for a in man["arrays"]} == {codec}
    ints = man["arrays"][0]
    assert ints["dtype"] == "int64" and ints["shape"] == [64 * 4096]
    fortran = man["arrays"][2]
    assert fortran["dtype"] == "int16" and fortran["shape"] == [20, 30]
    assert fortran["order"] == "F"
    raw = sum(a["raw_size"] for a in man["arrays"])
    if codec == "lz4":
        assert os.path.getsize(path) < raw // 2
    else:
        assert os.path.getsize(path) > raw

    shared = modelfs.load(path)
    try:
        assert isinstance(shared, modelfs.SharedObject)
        check_sample(shared.object)
        ints = shared.object["ints"]
        assert not ints.flags.writeable
        where = mapping_of(ints.ctypes.data)
        if codec == "none":
            # zero-copy: the array is the container's mapping
            assert where == os.path.realpath(path)
        else:
            assert where is None or where != os.path.realpath(path)
        del ints
    finally:
        shared.release()
    assert os.path.realpath(path) not in support.mapped_paths()


def test_dump_metadata(tmp_path):
    path = str(tmp_path / "cached.mfs")
    model = support.CachedModel(np.arange(1000.0))
    modelfs.dump(model, path)
    with modelfs.open(path) as m:
        meta = m.metadata
        assert m.key == "cached"
        assert sorted(m) == ["b0000", "pickle"]
        assert m["pickle"].dtype == np.uint8 and m["pickle"].ndim == 1
        assert np.array_equal(m["b0000"], np.arange(1000.0))
    py = meta["python"]
    assert py["class"] == "support.CachedModel"
    assert py["python"] == platform.python_version()
    assert py["numpy"] == np.__version__
    assert py["pickle_protocol"] == 5
    assert py["pickle"] == "pickle"
    assert py["buffers"] == ["b0000"]


def test_dump_chunk_size(tmp_path):
    path = str(tmp_path / "chunked.mfs")
    modelfs.dump(sample(), path, codec="lz4", chunk_size=65536)
    man = inspect_json(path)
    ints = man["arrays"][0]
    assert ints["chunk_size"] == 65536
    assert ints["chunks"] == (ints["raw_size"] + 65535) // 65536
    with modelfs.load(path) as obj:
        check_sample(obj)
        del obj


def test_pack_open(tmp_path):
    base = np.arange(1000, dtype=np.float64).reshape(100, 10)
    arrays = {
        "c": np.arange(24, dtype=np.int32).reshape(2, 3, 4),
        "f": np.asfortranarray(np.arange(12, dtype=np.uint16).reshape(3, 4)),
        "strided": base[::2, 1:7],
        "nested": [[1.5, 2.5], [3.5, 4.5]],
        "scalar": np.float32(3.25),
        "flags": np.array([True, False, True]),
        "empty": np.zeros((0, 5), dtype=np.complex64),
    }
    meta = {"name": "packed", "n": 7, "tags": ["a", "b"]}
    path = str(tmp_path / "packed.mfs")
    modelfs.pack(path, arrays, meta)
    assert support.listing(str(tmp_path)) == ["packed.mfs"]
    with modelfs.open(path) as m:
        assert isinstance(m, collections.abc.Mapping)
        assert m.key == "packed"
        assert m.metadata == meta
        assert set(m) == set(arrays) and len(m) == len(arrays)
        for name, want in arrays.items():
            want = np.asarray(want)
            got = m[name]
            assert isinstance(got, np.ndarray), name
            assert got.dtype == want.dtype and got.shape == want.shape, name
            assert np.array_equal(got, want), name
            assert not got.flags.writeable, name
            del got
        assert m["f"].flags.f_contiguous and not m["f"].flags.c_contiguous
        assert m["strided"].flags.c_contiguous
        assert mapping_of(m["c"].ctypes.data) == os.path.realpath(path)
        with pytest.raises(KeyError):
            m["missing"]
    assert os.path.realpath(path) not in support.mapped_paths()
    # modelctl reads what pack wrote
    man = inspect_json(path)
    assert [a["name"] for a in man["arrays"]] == list(arrays)


def test_pack_lz4_and_release(tmp_path):
    arrays = {"z": np.zeros(1 << 20, dtype=np.int32),
              "r": np.arange(1 << 16, dtype=np.int64)}
    path = str(tmp_path / "z.mfs")
    modelfs.pack(path, arrays, codec="lz4")
    assert os.path.getsize(path) < (1 << 20)
    m = modelfs.open(path)
    assert m.metadata == {}
    assert np.array_equal(m["z"], arrays["z"])
    assert np.array_equal(m["r"], arrays["r"])
    m.release()


def publish(store_dir, key, build):
    """Writes a container with @build(tmp_path) next to the store and
    renames it into place (as a writer publishes)."""
    tmp = os.path.join(store_dir, ".%s.tmp.test" % key)
    build(tmp)
    os.rename(tmp, os.path.join(store_dir, key + ".mfs"))


def wait_for(path, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        assert time.monotonic() < deadline, "%s did not appear" % path
        time.sleep(0.02)


def test_open_mount_model_directory(modelfs_mount):
    arrays = {"w": np.arange(5000, dtype=np.float64).reshape(50, 100),
              "f": np.asfortranarray(np.ones((4, 6), dtype=np.int8))}
    meta = {"model": "on-mount"}
    publish(modelfs_mount.store, "mounted",
            lambda p: modelfs.pack(p, arrays, meta))
    wait_for(modelfs_mount.p("mounted", "w.npy"))
    with modelfs.open(modelfs_mount.p("mounted")) as m:
        assert m.key == "mounted"
        assert m.metadata == meta
        assert sorted(m) == ["f", "w"]
        assert np.array_equal(m["w"], arrays["w"])
        assert np.array_equal(m["f"], arrays["f"])
        assert m["f"].flags.f_contiguous
        assert not m["w"].flags.writeable
        assert mapping_of(m["w"].ctypes.data) == \
            os.path.join(os.path.realpath(modelfs_mount.path), "mounted",
                         "w.npy")
    modelfs_mount.check_alive()


def put_container(store, path):
    """put_serialized of a container written by modelfs.dump."""
    return store.put_serialized(path, binpickle=True)


@pytest.mark.parametrize("kind", FILE_KINDS)
def test_put_serialized_pickle_file(make_store, tmp_path, kind):
    path = str(tmp_path / "model.pkl")
    with open(path, "wb") as f:
        pickle.dump(sample(), f, protocol=4)
    store = make_store(kind)
    with store:
        key = store.put_serialized(path)
        with store.get_model(key) as obj:
            check_sample(obj)
            assert mapping_of(obj["ints"].ctypes.data) is not None
            del obj
    # the source file is left alone
    assert os.path.isfile(path)


@pytest.mark.parametrize("kind", FILE_KINDS)
def test_put_serialized_container(make_store, tmp_path, kind):
    path = str(tmp_path / "dumped.mfs")
    modelfs.dump(sample(), path, codec="lz4")
    store = make_store(kind)
    with store:
        key = put_container(store, path)
        with store.get_model(key) as obj:
            check_sample(obj)
            del obj
    assert os.path.isfile(path)


def test_put_serialized_container_as_is(store_dir, tmp_path):
    path = str(tmp_path / "dumped.mfs")
    modelfs.dump(sample(), path)
    with open(path, "rb") as f:
        dumped = f.read()
    with FileModelStore(store_dir, reserialize=False) as store:
        key = put_container(store, path)
        assert support.listing(store_dir) == [key + ".mfs"]
        with open(os.path.join(store_dir, key + ".mfs"), "rb") as f:
            assert f.read() == dumped
        with store.get_model(key) as obj:
            check_sample(obj)
            del obj


def test_put_serialized_container_to_mount(modelfs_mount, tmp_path):
    path = str(tmp_path / "dumped.mfs")
    modelfs.dump(sample(), path)
    with MountModelStore(modelfs_mount.path) as store:
        key = put_container(store, path)
        assert os.path.isfile(modelfs_mount.p(key, "pickle.npy"))
        with store.get_model(key) as obj:
            check_sample(obj)
            del obj
    assert not os.path.exists(modelfs_mount.p(key))


def test_dump_copy_loads_anywhere(tmp_path):
    """A dump container keeps working when copied elsewhere."""
    path = str(tmp_path / "a.mfs")
    modelfs.dump(sample(), path)
    os.mkdir(str(tmp_path / "sub"))
    copy = str(tmp_path / "sub" / "b.mfs")
    shutil.copyfile(path, copy)
    with modelfs.load(copy) as obj:
        check_sample(obj)
        del obj
