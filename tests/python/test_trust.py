"""The trust rule: unpickling runs code, so get_model and load refuse a
container writable by group or others, or owned by a user other than root
and the caller (UntrustedModelError, naming the file and the reason);
trusted=True overrides."""

import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap

import numpy as np
import pytest

import support
import modelfs
from modelfs.sharing import FileModelStore

OTHER_UID = 12345


def model():
    return {"w": np.arange(4096, dtype=np.float64), "tag": "trust"}


def check_refusal(exc, path, reason):
    msg = str(exc.value)
    assert isinstance(exc.value, PermissionError)
    assert isinstance(exc.value, OSError)
    assert os.path.basename(path) in msg, msg
    assert re.search(reason, msg, re.I), msg


BAD_MODES = [(0o664, r"group"), (0o646, r"other"), (0o666, r"writ")]


@pytest.mark.parametrize("mode,reason", BAD_MODES)
def test_get_model_refuses_writable(store_dir, mode, reason):
    with FileModelStore(store_dir) as store:
        key = store.put_model(model())
        path = os.path.join(store_dir, key + ".mfs")
        os.chmod(path, mode)
        with pytest.raises(modelfs.UntrustedModelError) as exc:
            store.get_model(key)
        check_refusal(exc, path, reason)
        check_refusal(exc, path, r"writ")
        assert os.path.realpath(path) not in support.mapped_paths()
        # a client refuses as well
        with pytest.raises(modelfs.UntrustedModelError):
            store.client().get_model(key)
        with store.get_model(key, trusted=True) as obj:
            assert obj["tag"] == "trust"
            assert np.array_equal(obj["w"], model()["w"])
            del obj
        with store.client().get_model(key, trusted=True) as obj:
            assert obj["tag"] == "trust"
            del obj
        os.chmod(path, 0o644)
        with store.get_model(key) as obj:
            assert obj["tag"] == "trust"
            del obj


def test_get_model_refuses_other_owner(store_dir):
    with FileModelStore(store_dir) as store:
        key = store.put_model(model())
        path = os.path.join(store_dir, key + ".mfs")
        os.chown(path, OTHER_UID, -1)
        if os.stat(path).st_uid != OTHER_UID:
            pytest.fail("cannot chown a file to uid %d" % OTHER_UID)
        with pytest.raises(modelfs.UntrustedModelError) as exc:
            store.get_model(key)
        check_refusal(exc, path, r"own")
        with store.get_model(key, trusted=True) as obj:
            assert obj["tag"] == "trust"
            del obj
        os.chown(path, 0, -1)
        with store.get_model(key) as obj:
            assert obj["tag"] == "trust"
            del obj


@pytest.mark.parametrize("change", ["group", "others", "owner"])
def test_load_refuses(tmp_path, change):
    path = str(tmp_path / "untrusted.mfs")
    modelfs.dump(model(), path)
    if change == "group":
        os.chmod(path, 0o660)
        reason = r"group"
    elif change == "others":
        os.chmod(path, 0o602)
        reason = r"other"
    else:
        os.chown(path, OTHER_UID, -1)
        reason = r"own"
    with pytest.raises(modelfs.UntrustedModelError) as exc:
        modelfs.load(path)
    check_refusal(exc, path, reason)
    with modelfs.load(path, trusted=True) as obj:
        assert obj["tag"] == "trust"
        del obj


USER_SCRIPT = textwrap.dedent("""
    import os, sys
    import modelfs
    out = []
    for path in sys.argv[1:]:
        try:
            with modelfs.load(path) as obj:
                out.append(obj["tag"])
                del obj
        except modelfs.UntrustedModelError as e:
            out.append("refused")
    print(" ".join(out))
""")


def test_owner_rule_for_another_user():
    """As an unprivileged user: a container owned by that user or by root
    is trusted, one owned by a third user is not."""
    if os.geteuid() != 0:
        pytest.skip("needs root to run a process as another user")
    nobody = 65534
    work = tempfile.mkdtemp(prefix="modelfs-trust-")
    try:
        os.chmod(work, 0o755)
        paths = []
        for name, uid in (("mine", nobody), ("roots", 0),
                          ("thirds", OTHER_UID)):
            p = os.path.join(work, name + ".mfs")
            modelfs.dump(model(), p)
            os.chown(p, uid, -1)
            os.chmod(p, 0o644)
            paths.append(p)

        def drop():
            os.setgroups([])
            os.setgid(nobody)
            os.setuid(nobody)
        p = subprocess.run([sys.executable, "-c", USER_SCRIPT] + paths,
                           preexec_fn=drop, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, timeout=120,
                           cwd=work)
        assert p.returncode == 0, p.stderr
        assert p.stdout.split() == ["trust", "trust", "refused"], p.stdout
    finally:
        shutil.rmtree(work, ignore_errors=True)


@pytest.mark.parametrize("change", ["group", "owner"])
def test_mount_store_judges_the_container(modelfs_mount, change):
    """The mount drops write bits from what it shows, so the rule is
    applied to the container in the daemon's store directory."""
    from modelfs.sharing import MountModelStore
    with MountModelStore(modelfs_mount.path) as store:
        key = store.put_model(model())
        path = os.path.join(modelfs_mount.store, key + ".mfs")
        if change == "group":
            os.chmod(path, 0o664)
            reason = r"group"
        else:
            os.chown(path, OTHER_UID, -1)
            reason = r"own"
        with pytest.raises(modelfs.UntrustedModelError) as exc:
            store.client().get_model(key)
        check_refusal(exc, path, reason)
        assert not [p for p in support.mapped_paths()
                    if p.startswith(os.path.realpath(modelfs_mount.path))]
        with store.client().get_model(key, trusted=True) as obj:
            assert obj["tag"] == "trust"
            del obj
    modelfs_mount.check_alive()


@pytest.mark.parametrize("mode,refused", [(0o775, True), (0o757, True),
                                          (0o1777, False), (0o755, False)])
def test_directory_others_could_replace_the_file_in(store_dir, mode, refused):
    with FileModelStore(store_dir) as store:
        key = store.put_model(model())
        os.chmod(store_dir, mode)
        try:
            if refused:
                with pytest.raises(modelfs.UntrustedModelError) as exc:
                    store.get_model(key)
                msg = str(exc.value)
                assert store_dir in msg and "directory" in msg, msg
                assert "sticky" in msg, msg
                with store.get_model(key, trusted=True) as obj:
                    assert obj["tag"] == "trust"
                    del obj
            else:
                with store.get_model(key) as obj:
                    assert obj["tag"] == "trust"
                    del obj
        finally:
            os.chmod(store_dir, 0o755)


def test_file_replaced_after_the_check_is_refused(tmp_path):
    from modelfs import _models
    path = str(tmp_path / "m.mfs")
    modelfs.dump(model(), path)
    identity = _models.check_trust(path, "m")
    _models.check_unchanged(path, identity, "m")  # the same file: fine
    other = str(tmp_path / "other.mfs")
    modelfs.dump(model(), other)
    os.rename(other, path)
    with pytest.raises(modelfs.UntrustedModelError) as exc:
        _models.check_unchanged(path, identity, "m")
    assert "replaced" in str(exc.value) and "m.mfs" in str(exc.value)
