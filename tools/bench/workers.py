#!/usr/bin/python3
"""workers.py - the Python mechanisms of measure 4 of the modelfs benchmark.

N worker processes attach one model and scan all of it, by one of:

  mmap     np.load(PATH, mmap_mode="r") of every .npy file of DIR (a model
           directory of a modelfs mount): what a numpy user of modelfs does;
  shm      Python's multiprocessing.shared_memory + pickle protocol 5
           out-of-band buffers, the mechanism of LensKit's SHMModelStore:
           the parent loads the arrays, pickles the model with
           buffer_callback, copies each buffer into a SharedMemory block
           (the "put"), and each worker attaches the blocks and unpickles
           with buffers=...;
  private  np.load(PATH) without mmap in every worker: private copies.

The protocol is the one of `mfsbench workers` (tools/bench/workers.c), so
the numbers compare: t0 in the parent before the put / first fork; each
worker times attach -> first array usable (first element read: first_use;
t0 -> first use: ready), touches
every page of every array (one byte per page), reports through a pipe and
holds the model until the parent, having summed the workers' and the
serving process's Pss and read /proc/meminfo, closes the release pipe.
Memory held = sum of Pss + growth of unmapped page cache (Cached - Mapped)
since --before.  The put drops the page cache of the .npy files it read
(posix_fadvise DONTNEED), as the modelfs daemon drops its backing file's,
so neither is charged for the copy it read from.

Samples are appended to --samples as "MEASURE SYSTEM METRIC VALUE UNIT"
lines (tab-separated), the format of mfsbench.
"""

import argparse
import gc
import io
import os
import pickle
import statistics
import sys
import time

import numpy as np
from multiprocessing import shared_memory

PAGE = os.sysconf("SC_PAGE_SIZE")
MIB = 1 << 20
NS_PER_MS = 1e6


def now_ns():
    """CLOCK_MONOTONIC, the clock of mfsbench."""
    return time.monotonic_ns()


def npy_files(d):
    """The .npy files of @d, sorted by name (the order of mfsbench)."""
    names = sorted(n for n in os.listdir(d)
                   if n.endswith(".npy") and not n.startswith("."))
    if not names:
        raise SystemExit(f"workers.py: no .npy files in {d}")
    return [os.path.join(d, n) for n in names]


def first_use(a):
    """Reads the first element of @a: the array is usable."""
    flat = a.reshape(-1)
    return flat[0].item() if flat.size else 0


def touch(arrays):
    """Reads one byte of every page of every array."""
    total = 0
    for a in arrays:
        b = a.reshape(-1).view(np.uint8)
        total += int(b[::PAGE].sum(dtype=np.uint64))
    return total


def read_kb(path, field):
    """Value in bytes of the 'field:  N kB' line of a /proc file."""
    with open(path) as f:
        for line in f:
            name, _, rest = line.partition(":")
            if name == field:
                return int(rest.split()[0]) * 1024
    raise SystemExit(f"workers.py: no {field} in {path}")


# ---------------------------------------------------------------------------
# Attaching, per mechanism.  Each returns (first-use ns, list of arrays).

def attach_mmap(files, _ctx):
    t = now_ns()
    first = np.load(files[0], mmap_mode="r")
    first_use(first)
    used = now_ns() - t
    return used, [first] + [np.load(f, mmap_mode="r") for f in files[1:]]


def attach_private(files, _ctx):
    t = now_ns()
    first = np.load(files[0])
    first_use(first)
    used = now_ns() - t
    return used, [first] + [np.load(f) for f in files[1:]]


def attach_shm(_files, ctx):
    payload, blocks, names = ctx
    t = now_ns()
    shms = []
    for name, _size in blocks:
        # Attaching registers the name with the resource tracker the
        # workers share with the parent (a set: once per name); the
        # parent's unlink() unregisters it.  Workers end with os._exit,
        # so they never close or unlink.
        shms.append(shared_memory.SharedMemory(name=name))
    bufs = [s.buf[:size] for s, (_n, size) in zip(shms, blocks)]
    model = pickle.loads(payload, buffers=bufs)
    first_use(model[names[0]])
    used = now_ns() - t
    return used, [model[n] for n in names] + [shms]


def put_shm(files):
    """The put: load, pickle with out-of-band buffers, copy into shared
    memory.  Returns (ctx for attach_shm, SharedMemory objects)."""
    names = [os.path.basename(f)[:-len(".npy")] for f in files]
    model = {n: np.load(f) for n, f in zip(names, files)}
    buffers = []
    payload = pickle.dumps(model, protocol=5, buffer_callback=buffers.append)
    shms, blocks = [], []
    for b in buffers:
        raw = b.raw()
        s = shared_memory.SharedMemory(create=True, size=max(raw.nbytes, 1))
        s.buf[:raw.nbytes] = raw
        shms.append(s)
        blocks.append((s.name, raw.nbytes))
        del raw
    del model, buffers
    gc.collect()
    for f in files:
        fd = os.open(f, os.O_RDONLY)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        os.close(fd)
    return (payload, blocks, names), shms


ATTACH = {"mmap": attach_mmap, "private": attach_private, "shm": attach_shm}


# ---------------------------------------------------------------------------

def worker(attach, files, ctx, report_w, release_r):
    """Attach, scan, report, hold until released.  Never returns."""
    ok = 1
    try:
        used, arrays = attach(files, ctx)
        used_at = now_ns()
        touch([a for a in arrays if isinstance(a, np.ndarray)])
    except Exception as e:  # reported to the parent as a failure
        print(f"workers.py: worker: {e!r}", file=sys.stderr)
        used, used_at, ok = 0, 0, 0
    os.write(report_w, f"{used} {used_at} {now_ns()} {ok}\n".encode())
    while os.read(release_r, 1):
        pass
    os._exit(0 if ok else 1)


def record(args, metric, value, unit):
    line = f"{args.measure}\t{args.system}\t{metric}\t{value:.6g}\t{unit}\n"
    with open(args.samples, "a") as f:
        f.write(line)
    print(f"  {args.measure:8} {args.system:18} {metric:14} {value:12.4g} "
          f"{unit}", file=sys.stderr)


def collect(fd, n):
    """n report lines from the pipe:
    [(first_use_ns, used_at_ns, done_ns, ok)]."""
    data = b""
    while data.count(b"\n") < n:
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        data += chunk
    lines = data.decode().split("\n")[:n]
    return [tuple(int(x) for x in ln.split()) for ln in lines if ln]


def warm_up():
    """Runs np.load and pickle once on a tiny in-memory model, so no
    mechanism's first use pays numpy's lazy imports (the shm put would
    otherwise have paid them for its workers)."""
    buf = io.BytesIO()
    np.save(buf, np.arange(4, dtype=np.float32))
    buf.seek(0)
    bufs = []
    data = pickle.dumps({"a": np.load(buf)}, protocol=5,
                        buffer_callback=bufs.append)
    pickle.loads(data, buffers=bufs)


def run(args):
    files = npy_files(args.dir)
    warm_up()
    before_cached, before_mapped = (int(x) for x in args.before.split())
    report_r, report_w = os.pipe()
    release_r, release_w = os.pipe()
    shms, ctx, server = [], None, args.server_pid
    t0 = now_ns()
    if args.mode == "shm":
        ctx, shms = put_shm(files)
        record(args, "put_ms", (now_ns() - t0) / NS_PER_MS, "ms")
        server = os.getpid()  # the owner of the blocks serves them
    sys.stdout.flush()
    sys.stderr.flush()
    pids = []
    for _ in range(args.n):
        pid = os.fork()
        if pid == 0:
            os.close(report_r)
            os.close(release_w)
            worker(ATTACH[args.mode], files, ctx, report_w, release_r)
        pids.append(pid)
    os.close(report_w)
    os.close(release_r)
    reports = collect(report_r, args.n)
    ok = len(reports) == args.n and all(r[3] for r in reports)
    if ok:
        pss = sum(read_kb(f"/proc/{p}/smaps_rollup", "Pss") for p in pids)
        if server:
            pss += read_kb(f"/proc/{server}/smaps_rollup", "Pss")
        cached = read_kb("/proc/meminfo", "Cached")
        mapped = read_kb("/proc/meminfo", "Mapped")
    os.close(release_w)
    for p in pids:
        _, status = os.waitpid(p, 0)
        ok = ok and os.waitstatus_to_exitcode(status) == 0
    for s in shms:
        s.close()
        s.unlink()
    if not ok:
        raise SystemExit("workers.py: a worker failed")
    unmapped = (cached - mapped) - (before_cached - before_mapped)
    total = pss + unmapped
    last = max(r[2] for r in reports)
    record(args, "first_use_ms",
           statistics.median(r[0] for r in reports) / NS_PER_MS, "ms")
    record(args, "ready_ms",
           statistics.median(r[1] - t0 for r in reports) / NS_PER_MS, "ms")
    record(args, "wall_ms", (last - t0) / NS_PER_MS, "ms")
    record(args, "pss_mib", pss / MIB, "MiB")
    record(args, "cache_mib", unmapped / MIB, "MiB")
    record(args, "total_mib", total / MIB, "MiB")
    record(args, "total_x", total / args.model_bytes, "x")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--mode", choices=sorted(ATTACH), required=True)
    p.add_argument("-n", type=int, default=8)
    p.add_argument("--samples", required=True)
    p.add_argument("--measure", required=True)
    p.add_argument("--system", required=True)
    p.add_argument("--before", required=True,
                   help="'CACHED MAPPED' bytes from mfsbench meminfo")
    p.add_argument("--model-bytes", type=int, required=True)
    p.add_argument("--server-pid", type=int, default=0)
    p.add_argument("dir")
    run(p.parse_args())


if __name__ == "__main__":
    main()
