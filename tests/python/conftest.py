"""Fixtures of the 'python' test suite; the machinery is in support.py
(importing it puts the build tree's package first on sys.path)."""

import os

import pytest

import support  # noqa: F401  (puts the package on sys.path)
from support import daemon_mount


@pytest.fixture
def modelfs_mount():
    """A running daemon on a fresh store (DaemonMount)."""
    with daemon_mount() as m:
        yield m


@pytest.fixture
def store_dir(tmp_path):
    """An empty store directory."""
    d = tmp_path / "store"
    d.mkdir()
    return str(d)


class StoreMaker:
    """make_store(kind, **kw) -> a new, not yet entered store of @kind:
    'noop', 'file' (FileModelStore on a fresh directory, kept in .dir),
    'shm' (SHMModelStore, private directory) or 'mount' (MountModelStore
    on a fresh daemon, kept in .mount)."""

    def __init__(self, request, tmp_path):
        self.request = request
        self.tmp_path = tmp_path
        self.mount = None
        self.dir = None
        self.count = 0

    def __call__(self, kind, **kw):
        from modelfs import sharing
        if kind == "noop":
            return sharing.NoopModelStore()
        if kind == "file":
            self.count += 1
            self.dir = str(self.tmp_path / ("store-%d" % self.count))
            os.mkdir(self.dir)
            return sharing.FileModelStore(self.dir, **kw)
        if kind == "shm":
            return sharing.SHMModelStore(**kw)
        if kind == "mount":
            self.mount = self.request.getfixturevalue("modelfs_mount")
            return sharing.MountModelStore(self.mount.path)
        raise ValueError(kind)


@pytest.fixture
def make_store(request, tmp_path):
    return StoreMaker(request, tmp_path)
