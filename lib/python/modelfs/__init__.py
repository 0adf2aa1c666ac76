"""modelfs: one zero-copy copy of a large read-only model for every process.

Containers (``.mfs`` files) hold named n-dimensional arrays and a JSON
metadata document; a modelfs daemon shows each model of a store as a
directory of read-only ``.npy`` files that every process maps, sharing the
kernel's one copy of the pages.  This package is the Python binding of
libmodelfs:

``modelfs.sharing``
    the model-sharing API of ``lenskit.sharing`` (stores, clients,
    ``put_model``, ``get_model``), over the mount or a directory store.
``dump(obj, path)`` / ``load(path)``
    a Python object to a container file and back, zero-copy for raw
    arrays.
``pack(path, arrays, metadata)`` / ``open(path)``
    a mapping of names to arrays to a container, and a container file or
    a mount's model directory as a read-only mapping of NumPy arrays.

Containers are written and read by libmodelfs only; nothing here knows
the format.
"""

import json
import os

from . import _core
from . import _pickling
from ._pickling import ModelPicklingError
from ._models import (Model, SharedObject, StrayReferenceError,
                      StrayReferenceWarning, UntrustedModelError,
                      check_trust, check_unchanged, unpickle)

__all__ = [
    "dump", "load", "pack", "open", "Model", "SharedObject",
    "StrayReferenceWarning", "StrayReferenceError", "UntrustedModelError",
    "ModelPicklingError",
    "library_version",
]

#: The version of libmodelfs this package is built on.
library_version = _core.library_version
__version__ = library_version


def dump(obj, path, *, codec="none", chunk_size=None):
    """Writes ``obj`` to a container at ``path`` (atomically).

    ``obj`` is pickled with protocol 5 outside share context (also when
    called inside ``sharing_mode()``), so objects may drop derived caches
    in ``__getstate__``; each out-of-band buffer (each NumPy array) becomes
    an array of the container, compressed with ``codec`` ("none" or
    "lz4") in chunks of ``chunk_size`` bytes (default 256 KiB).
    """
    with _pickling.outside_share_context():
        arrays, meta = _pickling.object_arrays(obj, codec, chunk_size)
    _core.write(os.fspath(path), arrays, meta)


def load(path, *, trusted=False):
    """Maps the container at ``path`` (written by ``dump`` or
    ``put_model``) and unpickles it: a SharedObject whose arrays are
    read-only views (raw arrays zero-copy, LZ4 arrays decoded).

    Unpickling runs code: a file writable by group or others, or owned by
    a user other than root or the caller, is refused with
    UntrustedModelError unless ``trusted``.
    """
    path = os.fspath(path)
    label = f"'{path}'"
    identity = None if trusted else check_trust(path, label)
    core = _core.open_model(path)
    shared = None
    try:
        if identity is not None:
            check_unchanged(path, identity, label)
        shared = SharedObject(unpickle(core, label), core, core.key)
    finally:
        if shared is None:
            core.release()
    return shared


def pack(path, arrays, metadata=None, *, codec="none", chunk_size=None):
    """Writes a container at ``path`` (atomically) from ``arrays``, a
    mapping of names to arrays, and ``metadata`` (a dict, or JSON text of
    an object; default ``{}``)."""
    if metadata is None:
        text = "{}"
    elif isinstance(metadata, (str, bytes)):
        text = metadata.decode() if isinstance(metadata, bytes) else metadata
    else:
        text = json.dumps(metadata)
    _core.write(os.fspath(path),
                _pickling.mapping_arrays(arrays, codec, chunk_size), text)


def open(path):  # noqa: A001 - the package's verb, as in modelfs.open
    """The model at ``path`` (a container file, or a model directory of a
    modelfs mount) as a Model: a read-only mapping of array names to
    zero-copy NumPy arrays, with ``.metadata``; a context manager that
    releases it on exit."""
    return Model(_core.open_model(os.fspath(path)))
