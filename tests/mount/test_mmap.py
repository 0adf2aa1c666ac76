"""Mount test 2: the C program mmap_check maps array files through the
mount (raw and LZ4, several dtypes, multi-chunk) and compares them with
the original .npy files; it also checks that write access (O_RDWR,
O_WRONLY, PROT_WRITE+MAP_SHARED) is refused.

usage: test_mmap.py PATH/TO/mmap_check"""

import os
import subprocess
import sys

import numpy as np

import harness as h

MMAP_CHECK = None


def main(work):
    h.check(MMAP_CHECK and os.access(MMAP_CHECK, os.X_OK),
            "mmap_check not given or not executable: %r" % MMAP_CHECK)
    rng = np.random.default_rng(77)
    arrays = [
        h.Array("f32", h.random_array(rng, "float32", (1000, 37))),
        h.Array("i64.fortran", h.random_array(rng, "int64", (123, 45), "F")),
        h.Array("u8.odd", h.random_array(rng, "uint8", (40961,))),
        h.Array("c128", h.random_array(rng, "complex128", (333,))),
        h.Array("bf16", h.random_array(rng, "bfloat16", (64, 65)),
                "bfloat16"),
        h.Array("zip", h.compressible_array(rng, np.int32, 50001)),
        h.Array("scalar", h.random_array(rng, "float64", ())),
        h.Array("empty", h.random_array(rng, "int16", (0, 5))),
    ]
    store = work.dir("store")
    srcs = {}
    for key, lz4 in (("raw", False), ("lz4", True)):
        srcs[key] = h.pack(work, os.path.join(store, key + ".mfs"), arrays,
                           lz4=lz4, chunk_size=8192)
    failures = []
    with h.mounted(work, store) as m:
        for key in ("raw", "lz4"):
            for a in arrays:
                served = m.p(key, a.name + ".npy")
                orig = os.path.join(srcs[key], a.name + ".npy")
                p = subprocess.run([MMAP_CHECK, served, orig],
                                   stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, timeout=60)
                out = (p.stdout + p.stderr).decode(errors="replace")
                h.log(out.rstrip())
                if p.returncode != 0:
                    failures.append("%s/%s: mmap_check exit %d:\n%s" %
                                    (key, a.name, p.returncode, out))
        m.check_alive()
    h.check(not failures, "\n".join(failures))


if __name__ == "__main__":
    if len(sys.argv) > 1:
        MMAP_CHECK = sys.argv[1]
    h.run(main)
