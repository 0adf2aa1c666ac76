"""remote.py - the benchmark's "many machines" measures (run by run.sh):
the benchmark's model served over loopback HTTP by a real nginx, mounted
by URL, against what people do today (download the container, then mount
it locally) and against the local store.

Each repetition, from a dropped page cache with the origin's container
cached (a fast origin: HTTP and the daemon are measured, not the disk):

- first use of one array: from starting the daemon on the URL (empty
  disk cache) to the end of an mmap scan of that array (system
  modelfs-url), against downloading the container, starting a daemon on a
  local store holding it and the same scan (download-local);
  measure "remote", metric first_use_ms;
- bytes fetched for that array (the daemon's bytes_fetched, less its
  header page and index) / the array's stored bytes: "remote", fetched_x;
- a cold scan of every array through the URL mount, empty disk cache
  (modelfs-url) and through a mount of the local store (modelfs-local):
  "remote-cold", gibps;
- a warm scan once read (the mount's pages cached) through the URL mount,
  against the plain .npy files: "remote-warm", gibps.

Samples go to --samples as "MEASURE SYSTEM METRIC VALUE UNIT" lines; the
scans are mfsbench's (the same code as every other scan).
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tests", "support"))

from nginx import Nginx  # noqa: E402

MOUNT_TIMEOUT_S = 30.0
POLL_S = 0.01
NS_PER_MS = 1e6
DOWNLOAD_BLOCK = 8 << 20
FUSE_TYPE = "fuse.modelfs"


def record(args, measure, system, metric, value, unit):
    with open(args.samples, "a") as f:
        f.write(f"{measure}\t{system}\t{metric}\t{value:.6g}\t{unit}\n")
    print(f"  {measure:12} {system:16} {metric:14} {value:12.4g} {unit}",
          file=sys.stderr)


def drop_caches():
    subprocess.run(["sync"], check=True)
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3\n")


def precache(path):
    with open(path, "rb") as f:
        while f.read(DOWNLOAD_BLOCK):
            pass


def is_mounted(path):
    with open("/proc/mounts") as f:
        return any(line.split()[1] == path and line.split()[2] == FUSE_TYPE
                   for line in f)


class Daemon:
    """modelfs -f STORE MNT, waited for until mounted."""

    def __init__(self, args, store, mnt, extra=()):
        os.makedirs(mnt, exist_ok=True)
        self.mnt = mnt
        self.log = open(os.path.join(args.data, "remote-daemon.log"), "ab")
        self.proc = subprocess.Popen(
            [args.modelfs, "-f"] + list(extra) + [store, mnt],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log)
        end = time.monotonic() + MOUNT_TIMEOUT_S
        while not is_mounted(mnt):
            if self.proc.poll() is not None or time.monotonic() > end:
                self.stop()
                raise SystemExit("remote.py: modelfs did not mount %s "
                                 "(see %s)" % (mnt, self.log.name))
            time.sleep(POLL_S)

    def status(self):
        with open(os.path.join(self.mnt, ".status")) as f:
            return json.load(f)

    def stop(self):
        if is_mounted(self.mnt):
            subprocess.run(["fusermount3", "-u", self.mnt], check=False)
        try:
            self.proc.wait(MOUNT_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def scan(args, measure, system, path, warm=False):
    """mfsbench scan of every .npy in directory @path."""
    cmd = [args.bench, "scan", "--samples", args.samples, "--measure",
           measure, "--system", system]
    if warm:
        cmd.append("--warm")
    subprocess.run(cmd + [path], check=True)


def one_array_dir(args, mount_model_dir):
    """A directory holding only a link to the measured array of the
    mounted model (mfsbench scans directories)."""
    d = os.path.join(args.data, "remote-one")
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    os.symlink(os.path.join(mount_model_dir, args.array + ".npy"),
               os.path.join(d, args.array + ".npy"))
    return d


def fresh_dir(path):
    shutil.rmtree(path, ignore_errors=True)
    os.makedirs(path)
    return path


def lazy_first_use(args, url, container, stored, skeleton):
    drop_caches()
    precache(container)
    cache = fresh_dir(os.path.join(args.data, "remote-cache"))
    mnt = os.path.join(args.data, "mnt", "url")
    t0 = time.monotonic_ns()
    d = Daemon(args, url, mnt, ["--cache-dir", cache, "--poll", "0"])
    try:
        scan(args, "remote-one", "modelfs-url",
             one_array_dir(args, os.path.join(mnt, args.model)))
        t1 = time.monotonic_ns()
        fetched = d.status()["remote"]["bytes_fetched"]
    finally:
        d.stop()
    record(args, "remote", "modelfs-url", "first_use_ms",
           (t1 - t0) / NS_PER_MS, "ms")
    record(args, "remote", "modelfs-url", "fetched_x",
           (fetched - skeleton) / stored, "x")


def download_first_use(args, url, container):
    drop_caches()
    precache(container)
    store = fresh_dir(os.path.join(args.data, "remote-download"))
    mnt = os.path.join(args.data, "mnt", "downloaded")
    t0 = time.monotonic_ns()
    with urllib.request.urlopen(url + args.model + ".mfs") as r, \
            open(os.path.join(store, args.model + ".mfs"), "wb") as f:
        shutil.copyfileobj(r, f, DOWNLOAD_BLOCK)
    d = Daemon(args, store, mnt)
    try:
        scan(args, "remote-one", "download-local",
             one_array_dir(args, os.path.join(mnt, args.model)))
        t1 = time.monotonic_ns()
    finally:
        d.stop()
    shutil.rmtree(store, ignore_errors=True)
    record(args, "remote", "download-local", "first_use_ms",
           (t1 - t0) / NS_PER_MS, "ms")


def url_scans(args, url, container):
    drop_caches()
    precache(container)
    cache = fresh_dir(os.path.join(args.data, "remote-cache"))
    mnt = os.path.join(args.data, "mnt", "url")
    d = Daemon(args, url, mnt, ["--cache-dir", cache, "--poll", "0"])
    try:
        scan(args, "remote-cold", "modelfs-url",
             os.path.join(mnt, args.model))
        scan(args, "remote-warm", "modelfs-url",
             os.path.join(mnt, args.model), warm=True)
    finally:
        d.stop()


def local_scans(args, container):
    drop_caches()
    precache(container)
    mnt = os.path.join(args.data, "mnt", "local")
    d = Daemon(args, args.store, mnt)
    try:
        scan(args, "remote-cold", "modelfs-local",
             os.path.join(mnt, args.model))
    finally:
        d.stop()
    scan(args, "remote-warm", "plain", args.npy, warm=True)


def array_sizes(args, container):
    """(stored bytes of the measured array, bytes of header page +
    index) of @container, from modelctl inspect --json."""
    out = subprocess.run([args.modelctl, "inspect", "--json", container],
                         check=True, stdout=subprocess.PIPE).stdout
    man = json.loads(out)
    stored = [a["stored_size"] for a in man["arrays"]
              if a["name"] == args.array]
    if not stored:
        raise SystemExit("remote.py: %s has no array %s" %
                         (container, args.array))
    index_bytes = man["file_size"] - max(
        a["container_offset"] + a["stored_size"] for a in man["arrays"])
    return stored[0], 4096 + index_bytes


def main():
    p = argparse.ArgumentParser()
    for name in ("samples", "data", "store", "npy", "model", "array",
                 "modelfs", "modelctl", "bench"):
        p.add_argument("--" + name, required=True)
    p.add_argument("--reps", type=int, default=1)
    args = p.parse_args()
    container = os.path.join(args.store, args.model + ".mfs")
    subprocess.run([args.modelctl, "index", args.store], check=True,
                   stdout=subprocess.DEVNULL)
    stored, skeleton = array_sizes(args, container)
    skeleton += os.path.getsize(os.path.join(args.store, "index.json"))
    with Nginx(args.store) as ng:
        for _ in range(args.reps):
            lazy_first_use(args, ng.url, container, stored, skeleton)
            download_first_use(args, ng.url, container)
            url_scans(args, ng.url, container)
            local_scans(args, container)
    shutil.rmtree(os.path.join(args.data, "remote-cache"),
                  ignore_errors=True)


if __name__ == "__main__":
    main()
