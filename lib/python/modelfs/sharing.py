"""Model sharing between processes, with the names of ``lenskit.sharing``.

Code written against the original module runs with only the import
changed::

    from modelfs.sharing import get_store      # was: lenskit.sharing

    with get_store() as store:
        key = store.put_model(model)           # pickled in sharing mode
        client = store.client()                # small, picklable
        # ... hand (client, key) to worker processes, which call
        with client.get_model(key) as m:       # zero-copy NumPy arrays
            m.predict(...)

Stores:

``MountModelStore(mount=None)``
    a running modelfs daemon (``$MODELFS_MOUNT``, default /run/models): a
    put publishes a container into the daemon's store directory, and every
    process maps the model's ``.npy`` files through the mount, sharing the
    kernel's one copy of the pages.
``SHMModelStore(path=None, *, reserialize=True)``
    a directory store under /dev/shm (no daemon): containers in shared
    memory, mapped directly.
``FileModelStore(path=None, *, reserialize=True)``
    a directory store on disk (a private temporary directory by default),
    mapped directly when no daemon serves it.
``NoopModelStore()``
    no sharing: models are their own keys (one process only).

A model is pickled with protocol 5; each out-of-band buffer (every NumPy
array of the model, and so the parts of pandas and scipy objects) becomes
one page-aligned array of the container, so the mount shows it as an
``.npy`` file.  Unpickling runs code: ``get_model`` refuses a container
writable by group or others or owned by a user other than root or the
caller, unless called with ``trusted=True``.

Each store is a re-entrant context manager: the first ``with`` initialises
it and makes it this thread's active store (``get_store()`` returns it),
the last one shuts it down and removes the models it put.  Stores cannot
be pickled; pass ``store.client()`` to other processes.
"""

import contextlib
import os
import pickle
import tempfile
import threading

from . import _core
from . import _pickling
from ._models import SharedObject, check_trust, check_unchanged, unpickle

__all__ = [
    "in_share_context", "sharing_mode", "get_store",
    "BaseModelClient", "BaseModelStore", "SharedObject", "ModelClient",
    "NoopModelStore", "MountModelStore", "FileModelStore", "SHMModelStore",
]

#: The environment variable naming the daemon's mount.
MOUNT_ENV = "MODELFS_MOUNT"
#: Where SHMModelStore makes its directories.
SHM_DIR = "/dev/shm"
#: Prefix of the private directories of File and SHM stores.
TEMP_PREFIX = "modelfs-"

_state = threading.local()


def _active_stores():
    stack = getattr(_state, "active", None)
    if stack is None:
        stack = _state.active = []
    return stack


@contextlib.contextmanager
def sharing_mode():
    """Context manager: pickling in this block is for sharing between
    processes, not for persistence, so models keep their derived data
    (caches, inverse indexes).  Thread-local and nestable; the same state
    as ``mfs_in_share_context`` in C."""
    _core.sharing_begin()
    try:
        yield
    finally:
        _core.sharing_end()


def in_share_context():
    """True inside ``sharing_mode()`` on this thread: ``__getstate__``
    should then keep data it would drop when saving a model to disk."""
    return _core.in_share_context()


def _mount_path():
    return os.environ.get(MOUNT_ENV, _core.default_mount)


def _may_publish(mount):
    """True if a live daemon serves ``mount`` and the caller may publish
    into its store directory."""
    if not mount or _core.mount_state(mount) != "live":
        return False
    try:
        store_dir = _core.mount_store_dir(mount)
    except OSError:
        return False
    return os.access(store_dir, os.W_OK | os.X_OK)


def _shm_usable():
    return os.path.isdir(SHM_DIR) and os.access(SHM_DIR, os.W_OK | os.X_OK)


def get_store(reuse=True, *, in_process=False):
    """The best model store available here; use it as a context manager.

    In this order: the thread's active store if ``reuse``; a
    ``NoopModelStore`` if ``in_process``; a ``MountModelStore`` when a live
    modelfs daemon serves ``$MODELFS_MOUNT`` (default /run/models) and the
    caller may publish into its store directory; an ``SHMModelStore`` when
    /dev/shm is usable; else a ``FileModelStore``.
    """
    stores = _active_stores()
    if reuse and stores:
        return stores[-1]
    if in_process:
        return NoopModelStore()
    mount = _mount_path()
    if _may_publish(mount):
        return MountModelStore(mount)
    if _shm_usable():
        return SHMModelStore()
    return FileModelStore()


def _trust_before(path, what):
    """check_trust, where an unknown key is left for the library to
    report (with its own message) as not found."""
    try:
        return check_trust(path, what)
    except FileNotFoundError:
        return None


def _check_key(key):
    if not isinstance(key, str):
        raise ValueError(f"a model key is the str put_model returned, not "
                         f"{type(key).__name__}")


class BaseModelClient:
    """Gets models by key.  Clients are cheap to pickle, so that worker
    processes can receive them."""

    def get_model(self, key):
        """The model put under ``key``, as a SharedObject."""
        raise NotImplementedError


class BaseModelStore(BaseModelClient):
    """Stores models for access across processes.

    Stores are re-entrant context managers that register themselves as the
    thread's active store (see ``get_store``).
    """

    _act_count = 0

    def put_model(self, model):
        """Stores ``model``; returns the key to get it with."""
        raise NotImplementedError

    def put_serialized(self, path, binpickle=False):
        """Stores the model saved at ``path`` and returns its key: a pickle
        file, or with ``binpickle=True`` a container written by
        ``modelfs.dump``.  The base method unpickles and calls put_model."""
        if not binpickle:
            return self.put_model(_load_pickle(path))
        from . import load
        # The caller names the file, as with pickle.load: no trust check.
        shared = load(path, trusted=True)
        try:
            key = self.put_model(shared.object)
        except BaseException:
            # Silently: the traceback still refers to the model's arrays.
            shared.__exit__(None, None, None)
            raise
        shared.release()
        return key

    def client(self):
        """A client for this store, to pass to other processes."""
        raise NotImplementedError

    def init(self):
        "Initialises the store (the first ``with`` calls it)."

    def shutdown(self):
        "Shuts the store down (the last ``with`` calls it)."

    def __enter__(self):
        if self._act_count == 0:
            self.init()
        self._act_count += 1
        _active_stores().append(self)
        return self

    def __exit__(self, *args):
        self._act_count -= 1
        stack = _active_stores()
        # The innermost occurrence on this thread's stack is ours.
        for i in range(len(stack) - 1, -1, -1):
            if stack[i] is self:
                del stack[i]
                break
        if self._act_count == 0:
            self.shutdown()

    def __getstate__(self):
        raise RuntimeError(f"{type(self).__name__} cannot be pickled; pass "
                           f"store.client() to other processes instead")


def _load_pickle(path):
    """The object pickled in file ``path``."""
    with open(path, "rb") as f:
        try:
            return pickle.load(f)
        except (pickle.UnpicklingError, EOFError) as e:
            raise ValueError(f"{path}: not a pickle file ({e}); a container "
                             f"written by modelfs.dump needs "
                             f"binpickle=True") from e


class NoopModelStore(BaseModelStore):
    """A store that does nothing: models are their own keys.  Only for
    use within one process."""

    def get_model(self, key):
        return SharedObject(key)

    def put_model(self, model):
        return model

    def client(self):
        return self  # one process: the store is its own client

    def __str__(self):
        return "NoopModelStore"


class ModelClient(BaseModelClient):
    """Client of a mount or directory store, from its spec string
    (``mount:/run/models`` or ``dir:/path``).  Its pickle is the spec."""

    def __init__(self, spec):
        self.spec = spec
        self._client = None
        self._pid = None

    def _open(self):
        # A forked child opens its own handle: the parent's may be closed
        # there at any time.
        if self._client is None or self._pid != os.getpid():
            self._client = _core.Client(self.spec)
            self._pid = os.getpid()
        return self._client

    def _container(self, key):
        kind, _, path = self.spec.partition(":")
        if kind == "mount":
            return os.path.join(path, key)
        return os.path.join(path, key + _core.container_suffix)

    def get_model(self, key, *, trusted=False):
        """Maps model ``key`` and unpickles it: a SharedObject whose
        object's arrays are read-only views of the shared mapping.  Refuses
        an untrusted container unless ``trusted`` (see the module
        documentation)."""
        _check_key(key)
        what = f"model '{key}'"
        path = self._container(key)
        # Judged before the mapping (nothing of an untrusted file is
        # touched) and checked to be the same file after it.
        identity = None if trusted else _trust_before(path, what)
        core = self._open().get(key)
        shared = None
        try:
            if identity is not None:
                check_unchanged(path, identity, what)
            shared = SharedObject(unpickle(core, what), core, key)
        finally:
            if shared is None:
                core.release()
        return shared

    def __getstate__(self):
        return {"spec": self.spec}

    def __setstate__(self, state):
        self.__init__(state["spec"])

    def __repr__(self):
        return f"ModelClient({self.spec!r})"


class _ContainerStore(BaseModelStore):
    """A store backed by libmodelfs (mount or directory)."""

    _store = None
    _client = None

    def _open_store(self):
        raise NotImplementedError

    def _require(self):
        if self._store is None:
            raise RuntimeError(f"{self} is not initialised: use it in a "
                               f"'with' block (or call init())")
        return self._store

    def init(self):
        self._store = self._open_store()
        self._client = ModelClient(self._store.spec)

    def shutdown(self):
        store, self._store = self._store, None
        if store is not None:
            store.release()

    def put_model(self, model):
        store = self._require()
        with sharing_mode():
            arrays, meta = _pickling.object_arrays(model)
        return store.put(arrays, meta)

    def client(self):
        self._require()
        return ModelClient(self._client.spec)

    def get_model(self, key, *, trusted=False):
        self._require()
        return self._client.get_model(key, trusted=trusted)

    def __del__(self):
        # A store dropped without its last 'with' exit still removes the
        # models it put (the C store does so at its release).
        try:
            self.shutdown()
        except Exception:
            pass


class _DirStore(_ContainerStore):
    """A directory store; a private temporary directory if no path."""

    _temp_parent = None

    def __init__(self, path=None, *, reserialize=True):
        self.path = path
        self.reserialize = reserialize
        self._dir = None
        self._rmdir = False

    def _open_store(self):
        if self.path is None:
            self._dir = tempfile.mkdtemp(prefix=TEMP_PREFIX,
                                         dir=self._temp_parent)
            self._rmdir = True
        else:
            self._dir = os.fspath(self.path)
            self._rmdir = False
        try:
            return _core.open_dir(self._dir)
        except BaseException:
            self._remove_dir()
            raise

    def _remove_dir(self):
        if self._rmdir:
            self._rmdir = False
            try:
                os.rmdir(self._dir)
            except OSError:
                pass  # something else was put there: leave it

    def shutdown(self):
        try:
            super().shutdown()
        finally:
            self._remove_dir()

    def put_serialized(self, path, binpickle=False):
        """As BaseModelStore.put_serialized; with ``reserialize=False`` a
        container written by ``modelfs.dump`` is validated and published
        as it is, its arrays not decoded or rewritten."""
        if binpickle and not self.reserialize:
            return _put_container(self._require(), path)
        return super().put_serialized(path, binpickle)

    @property
    def directory(self):
        """The store directory (while initialised)."""
        return self._dir


def _put_container(store, path):
    """Publishes dump container ``path`` as is (checked to hold an
    object first)."""
    from . import open as open_model
    with open_model(path) as m:
        _pickling.python_entry(m.metadata, os.fspath(path))
    return store.put_file(path)


class FileModelStore(_DirStore):
    """A directory store on disk: containers in ``path`` (a new private
    temporary directory if None, removed at shutdown), mapped directly by
    clients when no daemon serves the directory."""

    def __str__(self):
        return f"FileModelStore({self.path})" if self.path else \
            "FileModelStore()"


class SHMModelStore(_DirStore):
    """A directory store in shared memory (/dev/shm): containers in
    ``path`` (a new private directory under /dev/shm if None), mapped
    directly by clients."""

    _temp_parent = SHM_DIR

    def __str__(self):
        return f"SHMModelStore({self.path})" if self.path else \
            "SHMModelStore()"


class MountModelStore(_ContainerStore):
    """The store of a running modelfs daemon on ``mount`` (default
    ``$MODELFS_MOUNT``, else /run/models): puts are published into the
    daemon's store directory and returned once the mount shows them;
    clients map the model's files through the mount."""

    def __init__(self, mount=None):
        self.mount = os.fspath(mount) if mount is not None else _mount_path()

    def _open_store(self):
        return _core.open_mount(self.mount)

    def put_serialized(self, path, binpickle=False):
        """As BaseModelStore.put_serialized; a container written by
        ``modelfs.dump`` is validated and published as it is."""
        if binpickle:
            return _put_container(self._require(), path)
        return super().put_serialized(path, binpickle)

    def __str__(self):
        return f"MountModelStore({self.mount})"
