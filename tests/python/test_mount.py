"""The mount: a model put through a MountModelStore is published into the
daemon's store directory and shows on the mount as .npy files any program
reads (np.load, modelctl), and get_model maps MOUNT/KEY/*.npy."""

import json
import os

import numpy as np

import support
from support import MODELCTL, mapping_of, run_tool
from modelfs.sharing import MountModelStore


def model():
    return {"emb": np.arange(30000, dtype=np.float32).reshape(1000, 30),
            "ids": np.arange(1000, dtype=np.int64)[::-1].copy(),
            "f": np.asfortranarray(np.arange(60, dtype=np.int16)
                                   .reshape(6, 10)),
            "label": "mounted"}


def test_put_shows_on_mount(modelfs_mount):
    m = modelfs_mount
    want = model()
    with MountModelStore(m.path) as store:
        key = store.put_model(want)
        container = os.path.join(m.store, key + ".mfs")
        assert support.listing(m.store) == [key + ".mfs"]
        files = sorted(os.listdir(m.p(key)))
        assert files == ["b0000.npy", "b0001.npy", "b0002.npy",
                         "manifest.json", "metadata.json", "pickle.npy"]

        # np.load reads the buffers as the arrays they were
        for name, src in (("b0000", "emb"), ("b0001", "ids"),
                          ("b0002", "f")):
            a = np.load(m.p(key, name + ".npy"))
            assert support.same_array(want[src], a), name
        assert np.load(m.p(key, "b0002.npy")).flags.f_contiguous
        pick = np.load(m.p(key, "pickle.npy"))
        assert pick.dtype == np.uint8 and pick.ndim == 1

        with open(m.p(key, "metadata.json")) as f:
            meta = json.load(f)
        assert meta["python"]["buffers"] == ["b0000", "b0001", "b0002"]
        assert meta["python"]["pickle"] == "pickle"
        assert meta["python"]["class"] == "builtins.dict"
        with open(m.p(key, "manifest.json")) as f:
            manifest = json.load(f)
        assert manifest["key"] == key

        # modelctl sees the container and the mount
        p = run_tool([MODELCTL, "inspect", container])
        assert p.returncode == 0, p.stderr
        for name in ("b0000", "b0001", "b0002", "pickle"):
            assert name in p.stdout
        p = run_tool([MODELCTL, "inspect", "--json", container])
        assert json.loads(p.stdout)["arrays"][0]["shape"] == [1000, 30]
        p = run_tool([MODELCTL, "ls", m.path])
        assert p.returncode == 0, p.stderr
        assert key in p.stdout
        p = run_tool([MODELCTL, "ls", "--json", m.path])
        listed = json.loads(p.stdout)
        assert listed["mount"] is True
        assert [x["key"] for x in listed["models"]] == [key]
        assert listed["models"][0]["arrays"] == 4
        m.check_alive()
    assert support.listing(m.store) == []


def test_get_model_maps_mount_files(modelfs_mount):
    m = modelfs_mount
    mnt = os.path.realpath(m.path)
    with MountModelStore(m.path) as store:
        key = store.put_model(model())
        shared = store.get_model(key)
        obj = shared.object
        assert obj["label"] == "mounted"
        for name, buf in (("emb", "b0000"), ("ids", "b0001"),
                          ("f", "b0002")):
            a = obj[name]
            assert not a.flags.writeable
            assert mapping_of(a.ctypes.data) == \
                os.path.join(mnt, key, buf + ".npy"), name
        # the daemon lists this process as a holder of the model
        holders = os.getxattr(m.p(key), "user.modelfs.holders").decode()
        assert str(os.getpid()) in holders.split(",")
        del obj, a
        shared.release()
        held = [p for p in support.mapped_paths()
                if p.startswith(os.path.join(mnt, key) + "/")]
        assert held == []
    m.check_alive()


def test_client_reads_through_mount(modelfs_mount):
    """A client made from the store reads the same model through the
    mount; the client of a second store on the same mount sees it too."""
    m = modelfs_mount
    with MountModelStore(m.path) as store:
        key = store.put_model(model())
        other = MountModelStore(m.path)
        with other:
            with other.client().get_model(key) as obj:
                assert support.same_array(model()["emb"], obj["emb"])
                del obj
        # the other store put nothing: the model is still there
        assert os.path.isdir(m.p(key))
