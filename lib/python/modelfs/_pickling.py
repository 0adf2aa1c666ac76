"""Python objects to and from the arrays of a container.

An object is pickled with protocol 5; every out-of-band buffer becomes an
array of its own (page-aligned by the container format), with the dtype,
shape and order of the buffer where the buffer has them (NumPy arrays do),
so that the mount shows it as an ``.npy`` file any program can load.  The
pickle stream is the uint8 array ``pickle``.  The metadata document's
``python`` entry says which arrays are which, and records the object's
class and the versions of Python and NumPy that wrote it.
"""

import contextlib
import io
import json
import pickle
import platform
import struct

import numpy as np

from . import _core

#: Pickle protocol: 5 is the first with out-of-band buffers.
PROTOCOL = 5
#: Name of the array holding the pickle stream.
PICKLE_ARRAY = "pickle"
#: Metadata entry describing a pickled object.
META_KEY = "python"
#: Array names of the out-of-band buffers, in pickle order.
BUFFER_NAME = "b{:04d}"

# Buffer-protocol element formats (struct syntax, as NumPy exports them)
# and the container's dtype names.  Sizes are checked against the
# buffer's itemsize, so a platform where a C type differs falls back to
# raw bytes instead of a wrong dtype.
_FORMAT_DTYPES = {
    "?": "bool",
    "b": "int8", "B": "uint8",
    "h": "int16", "H": "uint16",
    "i": "int32", "I": "uint32",
    "l": "int64", "L": "uint64",
    "q": "int64", "Q": "uint64",
    "e": "float16", "f": "float32", "d": "float64",
    "Zf": "complex64", "Zd": "complex128",
}
# Byte-order prefixes that mean this (little-endian) machine's order.
_NATIVE_PREFIXES = ("<", "=", "@") if struct.pack("=H", 1) == b"\x01\x00" \
    else ("<",)

# NumPy dtypes of the container's dtype names; bfloat16 has no NumPy
# type and is read as its bits (uint16), as the mount's .npy files do.
_NUMPY_DTYPES = {"bfloat16": np.dtype("<u2")}


def numpy_dtype(name):
    """The NumPy dtype of container dtype ``name``."""
    dt = _NUMPY_DTYPES.get(name)
    return dt if dt is not None else np.dtype(name).newbyteorder("<")


class ModelPicklingError(ValueError, pickle.PicklingError):
    """An object could not be pickled (so nothing was written)."""


def _describe(buf, fortran_shape):
    """(dtype, shape, order) of out-of-band buffer ``buf``: its own where
    it has a dtype this format stores, else its bytes as uint8.
    ``fortran_shape``: the shape of the Fortran-ordered array the buffer
    belongs to, if it does."""
    view = memoryview(buf)
    fmt = view.format
    if fmt[:1] in _NATIVE_PREFIXES:
        fmt = fmt[1:]
    dtype = _FORMAT_DTYPES.get(fmt)
    if dtype is None or numpy_dtype(dtype).itemsize != view.itemsize:
        return "uint8", (view.nbytes,), "C"
    if fortran_shape is not None:
        return dtype, fortran_shape, "F"
    if view.c_contiguous:
        return dtype, tuple(view.shape), "C"
    return dtype, tuple(view.shape), "F"


class _Pickler(pickle.Pickler):
    """Protocol 5 with out-of-band buffers, noting which buffers are
    Fortran-ordered arrays: NumPy pickles such an array as the buffer of
    its (C-ordered) transpose, which would otherwise be stored, and shown
    on the mount, with its axes reversed."""

    def __init__(self, file, buffers):
        super().__init__(file, protocol=PROTOCOL,
                         buffer_callback=self._buffer)
        self.buffers = buffers  # [(PickleBuffer, Fortran shape or None)]
        self._fortran = None

    def reducer_override(self, obj):
        if isinstance(obj, np.ndarray) and obj.ndim > 1 and \
                obj.flags.f_contiguous and not obj.flags.c_contiguous:
            self._fortran = obj
        return NotImplemented

    def _buffer(self, pb):
        arr, self._fortran = self._fortran, None
        shape = None
        if arr is not None:
            # Only if this buffer really is that array's transpose (an
            # array pickled in-band gives no buffer at all).
            t = memoryview(pb).obj
            if isinstance(t, np.ndarray) and t.shape == arr.shape[::-1] \
                    and t.__array_interface__["data"][0] == \
                    arr.__array_interface__["data"][0]:
                shape = tuple(arr.shape)
        self.buffers.append((pb, shape))


def _pickle(obj, buffers):
    """The protocol-5 pickle of ``obj``; buffers appended to ``buffers``."""
    out = io.BytesIO()
    try:
        _Pickler(out, buffers).dump(obj)
    except (pickle.PicklingError, TypeError, AttributeError) as e:
        cls = type(obj)
        raise ModelPicklingError(f"cannot pickle {cls.__module__}."
                                 f"{cls.__qualname__}: {e}") from e
    return out.getbuffer()


@contextlib.contextmanager
def outside_share_context():
    """Leaves every level of share context on this thread for the block
    (dump writes for persistence, whoever calls it)."""
    levels = 0
    while _core.in_share_context():
        _core.sharing_end()
        levels += 1
    try:
        yield
    finally:
        for _ in range(levels):
            _core.sharing_begin()


def _entry(name, buf, dtype, shape, order, codec, chunk_size):
    return (name, buf, dtype, tuple(int(d) for d in shape), order, codec,
            chunk_size)


def object_arrays(obj, codec="none", chunk_size=None):
    """Pickles ``obj``; returns (arrays, metadata JSON) for the library.

    Pickling happens in the caller's sharing mode: ``put_model`` calls it
    inside ``sharing_mode()``, ``dump`` outside.
    """
    buffers = []
    data = _pickle(obj, buffers)
    chunk = int(chunk_size or 0)
    arrays, names = [], []
    for i, (pb, fortran_shape) in enumerate(buffers):
        name = BUFFER_NAME.format(i)
        dtype, shape, order = _describe(pb, fortran_shape)
        # raw(): the bytes in memory order, contiguous, never a copy.
        arrays.append(_entry(name, pb.raw(), dtype, shape, order, codec,
                             chunk))
        names.append(name)
    arrays.append(_entry(PICKLE_ARRAY, data, "uint8", (len(data),), "C",
                         codec, chunk))
    cls = type(obj)
    meta = {META_KEY: {
        "class": f"{cls.__module__}.{cls.__qualname__}",
        "python": platform.python_version(),
        "numpy": np.__version__,
        "pickle_protocol": PROTOCOL,
        "pickle": PICKLE_ARRAY,
        "buffers": names,
    }}
    return arrays, json.dumps(meta)


def mapping_arrays(arrays, codec="none", chunk_size=None):
    """The library's array list for a mapping of names to array-likes.

    C- and Fortran-contiguous arrays are written from their own memory;
    anything else is first made a C-contiguous NumPy array.
    """
    out = []
    chunk = int(chunk_size or 0)
    for name, value in arrays.items():
        if not isinstance(name, str):
            raise ValueError(f"array names must be str, not "
                             f"{type(name).__name__}")
        a = np.asarray(value)
        if not (a.flags.c_contiguous or a.flags.f_contiguous):
            a = np.ascontiguousarray(a)
        order = "C" if a.flags.c_contiguous else "F"
        dtype = _dtype_name(name, a.dtype)
        raw = a.reshape(-1, order="A").view(np.uint8) if a.size else \
            np.empty(0, np.uint8)
        out.append(_entry(name, raw, dtype, a.shape, order, codec, chunk))
    return out


def _dtype_name(name, dtype):
    """The container dtype name of NumPy ``dtype`` (little-endian only)."""
    canon = dtype.newbyteorder("<") if dtype.byteorder == "=" else dtype
    for cand in _FORMAT_DTYPES.values():
        if numpy_dtype(cand) == canon:
            return cand
    raise ValueError(f"array '{name}': dtype {dtype} cannot be stored "
                     f"(bool, int8..int64, uint8..uint64, float16, "
                     f"float32, float64, complex64 and complex128 can, "
                     f"little-endian)")


def python_entry(meta, label):
    """The ``python`` entry of metadata ``meta`` of model ``label``."""
    entry = meta.get(META_KEY) if isinstance(meta, dict) else None
    if not isinstance(entry, dict) or \
            not isinstance(entry.get("buffers"), list) or \
            not isinstance(entry.get("pickle"), str):
        raise ValueError(f"{label}: not a pickled Python object (its "
                         f"metadata has no '{META_KEY}' entry; it was not "
                         f"written by put_model or modelfs.dump); "
                         f"modelfs.open gives its arrays")
    return entry
