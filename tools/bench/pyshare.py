#!/usr/bin/python3
"""pyshare.py - the Python section of the modelfs benchmark: sharing a
fitted Python model between worker processes, side by side in one run.

The model is a dict of the parts a fitted recommender holds: numpy dense
arrays (float32 item and user embeddings), a scipy.sparse CSR matrix
(indptr, indices, data) and a pandas DataFrame of numeric columns, of
--mib MiB of array bytes in all.  The systems:

  modelfs-mount  modelfs.sharing.MountModelStore on a running daemon:
                 put_model publishes the model into the daemon's store
                 directory (put returns once MOUNT/KEY is visible); workers
                 get_model(key) from the store's client(), which maps the
                 model's .npy files on the mount;
  shm-pickle5    the mechanism of LensKit's SHMModelStore: pickle.dumps(
                 model, protocol=5, buffer_callback=...), each out-of-band
                 buffer copied into a multiprocessing.shared_memory block;
                 workers attach SharedMemory(name) and pickle.loads(data,
                 buffers=[block.buf[:n], ...]);
  joblib-mmap    joblib.dump(model, FILE), workers joblib.load(FILE,
                 mmap_mode="r");
  private        pickle.dump(model, FILE, protocol=5), each worker
                 pickle.load()s its own copy.

Per round and system (the order of the systems rotates between rounds):
the page cache is dropped (sync; echo 3 > drop_caches; the interpreter's
libraries stay, being mapped), N workers are forked from a forkserver that
has imported numpy, scipy, pandas, joblib and modelfs, and each runs a
warm-up (a tiny model through pickle) before reporting ready: neither
interpreter start-up nor imports are timed.  Then, timed:

  put_ms    from the fitted model in the parent to a handle ready for the
            workers (a key and the store's client(); the shm blocks'
            names and the pickle stream; a file name);
  get_ms    in each worker, get_model (attach / load) to first use: one
            element of each embedding, a row of the CSR matrix, a slice of
            a DataFrame column (median of the workers);
  ready_ms  from before the put to a worker's first use, on the one
            CLOCK_MONOTONIC (median of the workers): the put counted in
            the time to ready.

Then every worker reads one byte of every page of every array (so all of
the model is resident, as after real use) and checks it against the
parent's checksums, and the memory is measured while all of them hold the
model:

  total = sum over workers (and the daemon, for the mount) of
              (Pss now, without the model's mappings) - (Pss when ready)
        + page cache resident of the model's files (mincore(2)): the
              .npy files on the mount and the container(s) in the store
              directory; the /dev/shm blocks; the joblib or pickle file.

A page of a model file is counted once, in its page cache residency,
whoever maps it (the workers, the daemon, the parent that created the shm
blocks): the Pss of mappings of those files is left out of the workers'
Pss, which would otherwise count the mapped ones a second time.  Memory a
worker allocates (private copies, pickle's objects, pandas' and scipy's
wrappers) is in its Pss growth since it was ready, which also leaves out
the interpreter and libraries every worker has whatever the system.  The
/dev/shm blocks are shmem: resident whether mapped or not, counted by
mincore on their files.  total_x = total / the model's array bytes.

Memory metrics: pss_mib, the workers' Pss (interpreters included, the
model's mappings included: for information); grown_mib, the Pss growth
above (workers and daemon), of which server_mib is the daemon's; cache_mib,
the page cache of the model's files, of which backing_mib is the mount's
store directory (the container the daemon reads); total_mib = grown_mib +
cache_mib.

Last, each worker releases the model and gets it again to first use, its
pages resident: get_warm_ms (median of the workers).  The first get is the
cold-ish one: the page cache was dropped before the put, so a get finds
only what the put left (the file it wrote, its daemon's state).

Samples go to --samples as "python SYSTEM METRIC VALUE UNIT" lines (the
format of mfsbench); per round each metric is the median of the workers.
Exits 1 if a worker fails, sees other checksums than the parent's, or a
memory figure is not sane (a shared system below 0.9 of the model: pages
uncounted; private below 0.8 per worker); asserts no speed.
"""

import argparse
import ctypes
import ctypes.util
import gc
import io
import multiprocessing as mp
import os
import pickle
import re
import statistics
import sys
import time

import numpy as np

PAGE = os.sysconf("SC_PAGE_SIZE")
MIB = 1 << 20
NS_PER_MS = 1e6
MEASURE = "python"
SYSTEMS = ("modelfs-mount", "shm-pickle5", "joblib-mmap", "private")
# Seconds a worker may take to start, or to get + check the model.
START_TIMEOUT = 120
WORK_TIMEOUT = 600
# Sanity of the memory figures (not targets).
SHARED_MIN_X = 0.9
PRIVATE_MIN_X_PER_WORKER = 0.8
PRELOAD = ["numpy", "scipy.sparse", "pandas", "joblib"]


def now_ns():
    return time.monotonic_ns()


def log(msg):
    print(f"pyshare.py: {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------
# The model

def build_model(nbytes, seed=20261202):
    """A fitted model of about @nbytes array bytes: 25% item embeddings,
    15% user embeddings, 40% CSR matrix (users x items), 20% DataFrame."""
    import pandas as pd
    import scipy.sparse as sp

    rng = np.random.default_rng(seed)
    dim = 64
    n_items = max(16, int(nbytes * 0.25) // (dim * 4))
    n_users = max(16, int(nbytes * 0.15) // (dim * 4))
    # CSR: int32 indptr (n_users + 1), int32 indices + float32 data per nnz.
    nnz = max(n_users, (int(nbytes * 0.40) - (n_users + 1) * 4) // 8)
    indptr = (np.arange(n_users + 1, dtype=np.int64) * nnz
              // n_users).astype(np.int32)
    indices = rng.integers(0, n_items, nnz, dtype=np.int32)
    data = rng.random(nnz, dtype=np.float32)
    matrix = sp.csr_matrix((data, indices, indptr), shape=(n_users, n_items))
    # DataFrame: int32 user, int32 item, float32 rating, int64 timestamp.
    n_rows = max(16, int(nbytes * 0.20) // 20)
    frame = pd.DataFrame({
        "user": rng.integers(0, n_users, n_rows, dtype=np.int32),
        "item": rng.integers(0, n_items, n_rows, dtype=np.int32),
        "rating": rng.random(n_rows, dtype=np.float32),
        "timestamp": rng.integers(1_500_000_000, 1_700_000_000, n_rows,
                                  dtype=np.int64),
    })
    frame = frame._consolidate()  # one block per dtype, as after fitting
    return {
        "item_emb": rng.random((n_items, dim), dtype=np.float32),
        "user_emb": rng.random((n_users, dim), dtype=np.float32),
        "matrix": matrix,
        "ratings": frame,
        "config": {"name": "pyshare", "factors": dim, "seed": seed},
    }


def parts(model):
    """The arrays of @model, named, in a fixed order."""
    m, df = model["matrix"], model["ratings"]
    out = [("item_emb", model["item_emb"]), ("user_emb", model["user_emb"]),
           ("matrix.indptr", m.indptr), ("matrix.indices", m.indices),
           ("matrix.data", m.data)]
    out += [(f"ratings.{c}", df[c].to_numpy(copy=False)) for c in df.columns]
    return out


def model_bytes(model):
    return sum(a.nbytes for _n, a in parts(model))


def first_use(model):
    """What a worker does first with the model: one element of each
    embedding, a row of the matrix, a slice of a DataFrame column."""
    m = model["matrix"]
    row = min(7, m.shape[0] - 1)
    return (float(model["item_emb"][0, 0]) + float(model["user_emb"][-1, -1])
            + float(m[row].sum()) + float(model["ratings"]["rating"]
                                          .iloc[:64].sum()))


def checksums(model):
    """Per array: (name, shape, dtype, sum of one byte per page, last
    byte): reads one byte of every page of the model."""
    out = []
    for name, a in parts(model):
        b = np.ascontiguousarray(a).reshape(-1).view(np.uint8)
        s = int(b[::PAGE].sum(dtype=np.uint64)) if b.size else 0
        out.append((name, tuple(a.shape), str(a.dtype), s,
                    int(b[-1]) if b.size else -1))
    return out


def warm_up():
    """A tiny model of the same kinds of parts through pickle 5 with
    out-of-band buffers and in-band: no system's first get pays numpy's,
    scipy's or pandas's lazy imports and first-call costs."""
    tiny = build_model(64 * 1024, seed=1)
    bufs = []
    data = pickle.dumps(tiny, protocol=5, buffer_callback=bufs.append)
    first_use(pickle.loads(data, buffers=bufs))
    first_use(pickle.loads(pickle.dumps(tiny, protocol=5)))
    f = io.BytesIO()
    np.save(f, tiny["item_emb"])
    checksums(tiny)


# ---------------------------------------------------------------------------
# Page cache residency (mincore) and Pss (smaps)

_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
_libc.mmap.restype = ctypes.c_void_p
_libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int,
                       ctypes.c_int, ctypes.c_int, ctypes.c_long]
_libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
_libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p]
_PROT_READ, _MAP_SHARED, _MAP_FAILED = 1, 1, ctypes.c_void_p(-1).value


def resident_bytes(path):
    """Bytes of @path in the page cache: mincore(2) on a shared mapping
    (maps nothing in: mincore does not fault pages)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        size = os.fstat(fd).st_size
        if size == 0:
            return 0
        addr = _libc.mmap(None, size, _PROT_READ, _MAP_SHARED, fd, 0)
        if addr in (None, _MAP_FAILED):
            raise OSError(ctypes.get_errno(), f"mmap {path}")
        try:
            npages = (size + PAGE - 1) // PAGE
            vec = ctypes.create_string_buffer(npages)
            if _libc.mincore(addr, size, vec) != 0:
                raise OSError(ctypes.get_errno(), f"mincore {path}")
            return sum(b & 1 for b in vec.raw) * PAGE
        finally:
            _libc.munmap(addr, size)
    finally:
        os.close(fd)


def files_under(path):
    if os.path.isdir(path):
        return [os.path.join(path, n) for n in sorted(os.listdir(path))
                if os.path.isfile(os.path.join(path, n))]
    return [path] if os.path.isfile(path) else []


def rollup_pss(pid):
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    raise SystemExit(f"pyshare.py: no Pss for pid {pid}")


_MAP_HEADER = re.compile(r"^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ \S+\s*(.*)$")


def split_pss(pid, prefixes):
    """(Pss of mappings not of the model's files, Pss of those) of @pid:
    a mapping is the model's if its path starts with one of @prefixes."""
    other = model = 0
    is_model = False
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            m = _MAP_HEADER.match(line)
            if m:
                path = m.group(1).removesuffix(" (deleted)")
                is_model = bool(path) and path.startswith(tuple(prefixes))
            elif line.startswith("Pss:"):
                kb = int(line.split()[1]) * 1024
                if is_model:
                    model += kb
                else:
                    other += kb
    return other, model


def drop_caches():
    os.sync()
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3\n")


# ---------------------------------------------------------------------------
# The systems.  A system puts the model in the parent (returning a handle
# that is sent to the workers), gets it in a worker (returning the object
# and a release function), names the files whose page cache is the model's,
# and cleans up after the round.

class Mount:
    name = "modelfs-mount"

    def __init__(self, args):
        from modelfs.sharing import MountModelStore
        self.mount, self.store_dir = args.mount, args.store_dir
        self.server_pid = args.server_pid
        self.store = MountModelStore(mount=self.mount)
        self.key = None

    def before_put(self):
        self.store.__enter__()  # init, not timed: done once per process

    def put(self, model):
        key = self.store.put_model(model)
        self.key = key
        return (self.store.client(), key)

    def check_put(self, handle):
        path = os.path.join(self.mount, handle[1])
        if not os.path.isdir(path):
            raise SystemExit(f"pyshare.py: put_model returned before {path} "
                             f"was visible")

    @staticmethod
    def get(handle):
        client, key = handle
        so = client.get_model(key)
        return so.object, so.release

    def model_files(self, _handle):
        return files_under(os.path.join(self.mount, self.key))

    def backing_files(self, _handle):
        return files_under(self.store_dir)

    def prefixes(self, _handle):
        return [self.mount.rstrip("/") + "/", self.store_dir.rstrip("/") + "/"]

    def cleanup(self, handle):
        self.store.__exit__(None, None, None)  # removes what it put
        path = os.path.join(self.mount, handle[1])
        deadline = time.monotonic() + 10
        while os.path.exists(path) and time.monotonic() < deadline:
            time.sleep(0.01)
        if os.path.exists(path):
            raise SystemExit(f"pyshare.py: {path} still there after the "
                             f"store's exit")


class Shm:
    name = "shm-pickle5"
    server_pid = 0

    def __init__(self, _args):
        self.blocks = []

    def before_put(self):
        pass

    def put(self, model):
        from multiprocessing import shared_memory
        buffers = []
        payload = pickle.dumps(model, protocol=5,
                               buffer_callback=buffers.append)
        names = []
        for b in buffers:
            raw = b.raw()
            s = shared_memory.SharedMemory(create=True,
                                           size=max(raw.nbytes, 1))
            s.buf[:raw.nbytes] = raw
            self.blocks.append(s)
            names.append((s.name, raw.nbytes))
            raw.release()
        return (payload, names)

    def check_put(self, handle):
        pass

    @staticmethod
    def get(handle):
        from multiprocessing import shared_memory
        payload, names = handle
        # Attaching registers the name with the resource tracker the
        # workers share with the parent (once per name); the parent's
        # unlink() unregisters it.  Workers end with os._exit.
        shms = [shared_memory.SharedMemory(name=n) for n, _size in names]
        bufs = [s.buf[:size] for s, (_n, size) in zip(shms, names)]
        obj = pickle.loads(payload, buffers=bufs)
        return obj, lambda: shms

    def model_files(self, handle):
        return [f"/dev/shm/{n}" for n, _size in handle[1]]

    prefixes = model_files

    def cleanup(self, _handle):
        for s in self.blocks:
            s.close()
            s.unlink()
        self.blocks = []


class Joblib:
    name = "joblib-mmap"
    server_pid = 0

    def __init__(self, args):
        self.dir = args.files
        self.n = 0

    def before_put(self):
        self.n += 1

    def put(self, model):
        import joblib
        path = os.path.join(self.dir, f"model-{self.n}.joblib")
        joblib.dump(model, path)
        return path

    def check_put(self, handle):
        pass

    @staticmethod
    def get(handle):
        import joblib
        return joblib.load(handle, mmap_mode="r"), None

    def model_files(self, handle):
        return [handle]

    prefixes = model_files

    def cleanup(self, handle):
        os.unlink(handle)


class Private:
    name = "private"
    server_pid = 0

    def __init__(self, args):
        self.dir = args.files
        self.n = 0

    def before_put(self):
        self.n += 1

    def put(self, model):
        path = os.path.join(self.dir, f"model-{self.n}.pkl")
        with open(path, "wb") as f:
            pickle.dump(model, f, protocol=5)
        return path

    def check_put(self, handle):
        pass

    @staticmethod
    def get(handle):
        with open(handle, "rb") as f:
            return pickle.load(f), None

    def model_files(self, handle):
        return [handle]

    prefixes = model_files

    def cleanup(self, handle):
        os.unlink(handle)


CLASSES = {c.name: c for c in (Mount, Shm, Joblib, Private)}


# ---------------------------------------------------------------------------
# Workers

def worker_main(conn):
    """Warm up, report ready; on "go": get, first use (timed), report; on
    "check" (once all workers have used the model, so that no worker's
    check competes with another's get): read every page, report; hold
    until "release".  Never returns."""
    try:
        warm_up()
        gc.collect()
        conn.send(("ready", os.getpid()))
        _go, system, handle = conn.recv()
        get = CLASSES[system].get
        t = now_ns()
        obj, release = get(handle)
        value = first_use(obj)
        used = now_ns()
        conn.send(("used", t, used, value))
        conn.recv()  # check: once all have used it (no contention)
        conn.send(("held", checksums(obj)))
        conn.recv()  # release
        obj = None
        if callable(release):
            release()
        release = None  # shm: its blocks' mappings go with it
        gc.collect()  # the first model's mappings gone before timing
        # Again, warm: the model's pages are resident.
        t = now_ns()
        obj, release = get(handle)
        first_use(obj)
        again = now_ns() - t
        obj = None
        if callable(release):
            release()
        conn.send(("released", again))
        code = 0
    except BaseException as e:  # reported to the parent as a failure
        try:
            conn.send(("error", f"{type(e).__name__}: {e}"))
        except OSError:
            pass
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def expect(conn, what, timeout):
    if not conn.poll(timeout):
        raise SystemExit(f"pyshare.py: a worker sent no '{what}' in "
                         f"{timeout} s")
    msg = conn.recv()
    if msg[0] == "error":
        raise SystemExit(f"pyshare.py: worker failed: {msg[1]}")
    if msg[0] != what:
        raise SystemExit(f"pyshare.py: worker sent {msg[0]!r}, not {what!r}")
    return msg


# ---------------------------------------------------------------------------
# One round of one system

def record(args, system, metric, value, unit):
    with open(args.samples, "a") as f:
        f.write(f"{MEASURE}\t{system}\t{metric}\t{value:.6g}\t{unit}\n")
    print(f"  {MEASURE:8} {system:18} {metric:14} {value:12.4g} {unit}",
          file=sys.stderr)


def run_system(args, ctx, sysobj, model, want, want_value, nbytes):
    if not args.no_drop:
        drop_caches()
    conns, procs = [], []
    for _ in range(args.workers):
        parent_end, child_end = ctx.Pipe()
        p = ctx.Process(target=worker_main, args=(child_end,))
        p.start()
        child_end.close()
        conns.append(parent_end)
        procs.append(p)
    try:
        pids = [expect(c, "ready", START_TIMEOUT)[1] for c in conns]
        pss0 = {pid: rollup_pss(pid) for pid in pids}
        server = sysobj.server_pid
        server0 = split_pss(server, [])[0] if server else 0
        sysobj.before_put()
        t0 = now_ns()
        handle = sysobj.put(model)
        t_put = now_ns()
        sysobj.check_put(handle)
        for c in conns:
            c.send(("go", sysobj.name, handle))
        used = [expect(c, "used", WORK_TIMEOUT) for c in conns]
        for c in conns:
            c.send(("check",))
        held = [expect(c, "held", WORK_TIMEOUT)[1] for c in conns]
        # All hold the model: memory.
        prefixes = sysobj.prefixes(handle)
        grown = 0
        for pid in pids:
            other, _mapped = split_pss(pid, prefixes)
            grown += other - pss0[pid]
        pss_all = sum(rollup_pss(pid) for pid in pids)
        server_grown = (split_pss(server, prefixes)[0] - server0
                        if server else 0)
        grown += server_grown
        cache = sum(resident_bytes(f) for f in sysobj.model_files(handle))
        backing = sum(resident_bytes(f)
                      for f in getattr(sysobj, "backing_files",
                                       lambda _h: [])(handle))
        cache += backing
        for c in conns:
            c.send(("release",))
        again = [expect(c, "released", WORK_TIMEOUT)[1] for c in conns]
    finally:
        for p in procs:
            p.join(30)
            if p.is_alive():
                p.kill()
                p.join()
        for c in conns:
            c.close()
    sysobj.cleanup(handle)
    bad = [p.exitcode for p in procs if p.exitcode != 0]
    if bad:
        raise SystemExit(f"pyshare.py: {sysobj.name}: workers exited {bad}")
    for i, h in enumerate(held):
        if h != want:
            diff = [a for a, b in zip(h, want) if a != b][:3]
            raise SystemExit(f"pyshare.py: {sysobj.name}: worker {i} sees "
                             f"other arrays than the parent's: {diff}")
    for i, u in enumerate(used):
        if abs(u[3] - want_value) > 1e-6 * max(1.0, abs(want_value)):
            raise SystemExit(f"pyshare.py: {sysobj.name}: worker {i}'s first "
                             f"use gave {u[3]}, the parent's {want_value}")
    total = grown + cache
    x = total / nbytes
    s = sysobj.name
    record(args, s, "put_ms", (t_put - t0) / NS_PER_MS, "ms")
    record(args, s, "get_ms",
           statistics.median(u[2] - u[1] for u in used) / NS_PER_MS, "ms")
    record(args, s, "get_max_ms",
           max(u[2] - u[1] for u in used) / NS_PER_MS, "ms")
    record(args, s, "get_warm_ms", statistics.median(again) / NS_PER_MS,
           "ms")
    record(args, s, "ready_ms",
           statistics.median(u[2] - t0 for u in used) / NS_PER_MS, "ms")
    record(args, s, "pss_mib", pss_all / MIB, "MiB")
    record(args, s, "grown_mib", grown / MIB, "MiB")
    if sysobj.server_pid:
        record(args, s, "server_mib", server_grown / MIB, "MiB")
        record(args, s, "backing_mib", backing / MIB, "MiB")
    record(args, s, "cache_mib", cache / MIB, "MiB")
    record(args, s, "total_mib", total / MIB, "MiB")
    record(args, s, "total_x", x, "x")
    low = (PRIVATE_MIN_X_PER_WORKER * args.workers if s == "private"
           else SHARED_MIN_X)
    if x < low:
        raise SystemExit(f"pyshare.py: {s}: memory {x:.3f} x the model, "
                         f"below {low}: pages uncounted?")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--samples", required=True)
    p.add_argument("--mib", type=int, default=1024,
                   help="array bytes of the model, MiB (default 1024)")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--workers", type=int, default=8)
    p.add_argument("--systems", default=",".join(SYSTEMS),
                   help="comma-separated, of " + ", ".join(SYSTEMS))
    p.add_argument("--mount", help="a modelfs mount (modelfs-mount)")
    p.add_argument("--store-dir", help="its daemon's store directory")
    p.add_argument("--server-pid", type=int, default=0,
                   help="its daemon's pid (its Pss growth is counted)")
    p.add_argument("--files", required=True,
                   help="directory for the joblib and pickle files (not "
                        "tmpfs)")
    p.add_argument("--no-drop", action="store_true",
                   help="do not drop the page cache before each system")
    args = p.parse_args()
    systems = [s for s in args.systems.split(",") if s]
    for s in systems:
        if s not in CLASSES:
            p.error(f"unknown system {s}")
    if "modelfs-mount" in systems and not (args.mount and args.store_dir):
        p.error("modelfs-mount needs --mount and --store-dir")
    preload = list(PRELOAD)
    if "modelfs-mount" in systems:
        preload.append("modelfs.sharing")
    os.makedirs(args.files, exist_ok=True)

    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(["__main__"] + preload)
    t = time.monotonic()
    model = build_model(args.mib * MIB)
    nbytes = model_bytes(model)
    want, want_value = checksums(model), first_use(model)
    log(f"model: {nbytes / MIB:.1f} MiB of arrays ({len(parts(model))}: "
        f"{', '.join(n for n, _a in parts(model))}), built in "
        f"{time.monotonic() - t:.1f} s")
    with open(args.samples, "a") as f:
        f.write(f"data\t{MEASURE}\tmodel_mib\t{nbytes / MIB:.6g}\tMiB\n")
    objs = [CLASSES[s](args) for s in systems]
    for r in range(args.rounds):
        k = r % len(objs)
        order = objs[k:] + objs[:k]
        log(f"round {r + 1}/{args.rounds}: "
            f"{' '.join(o.name for o in order)}")
        for o in order:
            run_system(args, ctx, o, model, want, want_value, nbytes)


if __name__ == "__main__":
    main()
