"""Shared objects and models: zero-copy NumPy views of libmodelfs models.

Every array handed out is a read-only NumPy array over a memoryview whose
exporter belongs to the model (modelfs._core), so the mapping under it
lives as long as any array does: ``release()`` with arrays still in use
never leaves a dangling pointer; it warns (or, with MODELFS_DEBUG=1,
raises) and the mapping goes when the last array does.
"""

import collections.abc
import errno
import gc
import json
import os
import pickle
import stat
import warnings

import numpy as np

from . import _core
from . import _pickling

#: The environment switch of the stray-reference check.
DEBUG_ENV = "MODELFS_DEBUG"


class StrayReferenceWarning(RuntimeWarning):
    """A model was released while some of its arrays were still in use;
    they stay valid, and the model is unmapped when the last one goes."""


class StrayReferenceError(RuntimeError):
    """As StrayReferenceWarning, raised instead when MODELFS_DEBUG=1."""


class UntrustedModelError(PermissionError):
    """Refused to unpickle a model from a file others could have written
    (unpickling runs code); pass ``trusted=True`` to override."""


def _debug():
    return os.environ.get(DEBUG_ENV) == "1"


def _array(core, index):
    """A read-only NumPy array over array ``index`` of ``core``."""
    _name, dtype, shape, order, _nbytes = core.info(index)
    flat = np.frombuffer(core.buffer(index),
                         dtype=_pickling.numpy_dtype(dtype))
    return flat.reshape(shape, order=order)


def _release(core, label, stacklevel):
    """Releases ``core``; warns or raises if arrays are still in use."""
    if core.released:
        return
    if core.referenced():
        # Reference cycles (common in fitted models) hold arrays only
        # until the collector runs; run it before calling them strays.
        gc.collect()
    if core.release():
        return
    n = core.referenced()
    msg = (f"release of model {label!r} while {n} of its {core.count} "
           f"arrays {'is' if n == 1 else 'are'} still referenced: "
           f"{'it stays' if n == 1 else 'they stay'} mapped until the "
           f"last reference goes")
    if _debug():
        raise StrayReferenceError(msg)
    warnings.warn(msg, StrayReferenceWarning, stacklevel=stacklevel + 1)


# ---------------------------------------------------------------------------
# Trust

def _trust_dir(path, what):
    """Raises UntrustedModelError if others could replace ``path``: its
    directory is writable by group or others and not sticky."""
    parent = os.path.dirname(os.path.abspath(path))
    st = os.stat(parent)
    writers = [who for who, bit in (("group", stat.S_IWGRP),
                                    ("others", stat.S_IWOTH))
               if st.st_mode & bit]
    if writers and not st.st_mode & stat.S_ISVTX:
        raise UntrustedModelError(
            errno.EPERM,
            f"refusing to unpickle {what}: its directory {parent} is "
            f"writable by {' and '.join(writers)} (mode "
            f"{stat.S_IMODE(st.st_mode):04o}, not sticky), so they could "
            f"replace the file; unpickling runs code, pass trusted=True if "
            f"you trust every user who can write there", path)


def _trust_file(path, what):
    """Raises UntrustedModelError unless ``path`` is writable only by its
    owner and owned by root or the caller; returns its identity."""
    st = os.stat(path)
    writers = [who for who, bit in (("group", stat.S_IWGRP),
                                    ("others", stat.S_IWOTH))
               if st.st_mode & bit]
    if writers:
        raise UntrustedModelError(
            errno.EPERM,
            f"refusing to unpickle {what}: the file is writable by "
            f"{' and '.join(writers)} (mode {stat.S_IMODE(st.st_mode):04o}); "
            f"unpickling runs code, pass trusted=True if you trust every "
            f"user who can write it", path)
    if st.st_uid not in (0, os.geteuid()):
        raise UntrustedModelError(
            errno.EPERM,
            f"refusing to unpickle {what}: the file is owned by uid "
            f"{st.st_uid}, not by root or you (uid {os.geteuid()}); "
            f"unpickling runs code, pass trusted=True if you trust that "
            f"user", path)
    _trust_dir(path, what)
    return st.st_dev, st.st_ino


def container_of_model_dir(path):
    """The store's container behind model directory ``path`` of a mount
    (the daemon's files drop the write bits, so trust is judged on the
    container itself)."""
    path = os.path.abspath(path)
    mount, key = os.path.split(path.rstrip("/"))
    store_dir = _core.mount_store_dir(mount)
    return os.path.join(store_dir, key + _core.container_suffix)


def trusted_file(path):
    """The file the trust rule judges for ``path``: the container itself,
    also behind a mount's model directory."""
    return container_of_model_dir(path) if os.path.isdir(path) else path


def check_trust(path, what):
    """Applies the trust rule to a container file or a mount's model dir;
    returns the identity (device, inode) of the file judged."""
    return _trust_file(trusted_file(path), what)


def check_unchanged(path, identity, what):
    """Raises UntrustedModelError if the file judged for ``path`` is no
    longer the one with ``identity`` (replaced while it was opened)."""
    try:
        st = os.stat(trusted_file(path))
        now = (st.st_dev, st.st_ino)
    except OSError:
        now = None
    if now != identity:
        raise UntrustedModelError(
            errno.EPERM,
            f"refusing to unpickle {what}: the file was replaced while it "
            f"was being opened (not the one whose owner and mode were "
            f"checked); try again", path)


# ---------------------------------------------------------------------------
# Pickled objects

def unpickle(core, label):
    """The object pickled in model ``core``; its arrays are views."""
    entry = _pickling.python_entry(json.loads(core.metadata), label)
    index = {core.info(i)[0]: i for i in range(core.count)}
    missing = [n for n in [entry["pickle"]] + entry["buffers"]
               if n not in index]
    if missing:
        raise ValueError(f"{label}: the metadata names arrays the model "
                         f"does not have: {', '.join(missing)}")
    buffers = [core.buffer(index[n]) for n in entry["buffers"]]
    stream = core.buffer(index[entry["pickle"]])
    try:
        return pickle.loads(stream, buffers=buffers)
    except (pickle.UnpicklingError, EOFError) as e:
        raise ValueError(f"{label}: the pickle stream is damaged: {e}") \
            from e
    finally:
        stream.release()


class SharedObject:
    """A model got from a store (or loaded from a file).

    ``.object`` is the model; its NumPy arrays are read-only views of the
    shared mapping.  Used as a context manager, it yields the model and
    releases it on exit: the mapping goes when the last reference to the
    model's arrays does (the ``as`` name included), silently.  ``release()`` drops ``.object`` and unmaps the
    model once nothing refers to its arrays any more; if something still
    does, it warns (StrayReferenceWarning, naming the key and the number
    of arrays still referenced) or, with MODELFS_DEBUG=1, raises
    StrayReferenceError; the arrays stay valid either way.
    """

    def __init__(self, obj, core=None, key=None):
        self.object = obj
        self.key = key
        self._core = core

    def __enter__(self):
        return self.object

    def __exit__(self, *args):
        # The 'as' target outlives the block in Python: the model is
        # unmapped when it (and any other reference) goes, without a
        # warning; only an explicit release() reports strays.
        self.object = None
        core, self._core = self._core, None
        if core is not None and not core.released:
            core.release()

    def release(self):
        """Releases the model (see the class documentation)."""
        self.object = None
        core, self._core = self._core, None
        if core is not None:
            _release(core, self.key, stacklevel=2)

    def __repr__(self):
        state = "released" if self._core is None and self.object is None \
            else type(self.object).__name__
        return f"<SharedObject {self.key!r}: {state}>"


# ---------------------------------------------------------------------------
# Models as mappings of arrays

class Model(collections.abc.Mapping):
    """A read-only mapping of array names to zero-copy NumPy arrays.

    ``.metadata`` is the metadata document (a dict), ``.key`` the model's
    key.  ``release()`` (or leaving a ``with`` block) unmaps the model once
    its arrays are no longer used, as SharedObject.release does.
    """

    def __init__(self, core):
        self._core = core
        self.key = core.key
        self.metadata = json.loads(core.metadata)
        self._index = {core.info(i)[0]: i for i in range(core.count)}
        self._arrays = {}

    def __getitem__(self, name):
        a = self._arrays.get(name)
        if a is None:
            if self._core is None:
                raise ValueError(f"model {self.key!r} was released")
            a = _array(self._core, self._index[name])
            self._arrays[name] = a
        return a

    def __iter__(self):
        return iter(self._index)

    def __len__(self):
        return len(self._index)

    def __contains__(self, name):
        return name in self._index

    def release(self):
        """Releases the model (see the class documentation)."""
        self._arrays = {}
        core, self._core = self._core, None
        if core is not None:
            _release(core, self.key, stacklevel=2)

    def __enter__(self):
        return self

    def __exit__(self, *args):
        self.release()

    def __repr__(self):
        return f"<modelfs.Model {self.key!r}: {len(self)} arrays>"
