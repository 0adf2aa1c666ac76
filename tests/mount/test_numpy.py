"""Mount test 1: every dtype and layout, raw and LZ4, single- and
multi-chunk, loads through the mount with np.load(mmap_mode="r") bit for
bit, as a memmap whose data starts at offset 4096 -- or, for an array with
no elements, right after NumPy's own compact header (byte for byte), so
that empty arrays map too."""

import os

import numpy as np

import harness as h


def check_array(m, key, a, errors):
    path = m.p(key, a.name + ".npy")
    what = "%s/%s.npy" % (key, a.name)
    try:
        st = os.stat(path)
    except OSError as e:
        errors.append("%s: stat failed: %s" % (what, e))
        return
    hlen = h.npy_header_len(a)
    want_size = hlen + len(a.raw)
    if st.st_size != want_size:
        errors.append("%s: st_size %d, expected %d" %
                      (what, st.st_size, want_size))
    # Empty arrays too: their compact header keeps the data offset below
    # the page-aligned file size numpy's mmap would refuse.
    try:
        mm = np.load(path, mmap_mode="r")
    except Exception as e:  # noqa: B902 - report any failure
        errors.append("%s: np.load(mmap_mode='r') failed: %r" % (what, e))
        return
    if not isinstance(mm, np.memmap):
        errors.append("%s: np.load returned %s, not a memmap" %
                      (what, type(mm).__name__))
    elif mm.offset != hlen:
        errors.append("%s: memmap offset %d, expected %d" %
                      (what, mm.offset, hlen))
    src = a.data
    if mm.dtype != src.dtype:
        errors.append("%s: dtype %s, expected %s" % (what, mm.dtype,
                                                     src.dtype))
    if mm.shape != src.shape:
        errors.append("%s: shape %s, expected %s" % (what, mm.shape,
                                                     src.shape))
    if a.fortran and not (mm.flags.f_contiguous and
                          not mm.flags.c_contiguous):
        errors.append("%s: not loaded in Fortran order" % what)
    got = np.asarray(mm).tobytes(order="A" if a.fortran else "C")
    if got != a.raw:
        diff = next(i for i in range(min(len(got), len(a.raw)))
                    if got[i] != a.raw[i]) if len(got) == len(a.raw) \
            else "length %d vs %d" % (len(got), len(a.raw))
        errors.append("%s: data differs from the source (first diff %s)" %
                      (what, diff))
    del mm
    # The served file's data is the source .npy's data byte for byte, and
    # an empty array's header is the one numpy itself writes for it.
    with open(path, "rb") as f:
        served = f.read()
    if served[hlen:] != a.raw:
        errors.append("%s: bytes after the %d-byte header differ" %
                      (what, hlen))
    if a.data.size == 0 and served[:hlen] != h.numpy_npy_header(a):
        errors.append("%s: header %r is not numpy's %r" %
                      (what, served[:hlen], h.numpy_npy_header(a)))


def main(work):
    rng = np.random.default_rng(1234)
    arrays = h.dtype_arrays(rng)
    # One array large enough for several default-size (256 KiB) chunks,
    # compressible in part, size not a multiple of any chunk size.
    big = np.concatenate([
        h.compressible_array(rng, np.int64, 90001),
        rng.integers(-2**40, 2**40, 30011, dtype=np.int64)])
    default_arrays = arrays + [h.Array("multi.default", big)]
    store = work.dir("store")
    models = {
        "raw-4k": dict(lz4=False, chunk_size=4096, arrays=arrays),
        "lz4-4k": dict(lz4=True, chunk_size=4096, arrays=arrays),
        "raw-16k": dict(lz4=False, chunk_size=16384, arrays=arrays),
        "lz4-default": dict(lz4=True, chunk_size=None,
                            arrays=default_arrays),
        "raw-default": dict(lz4=False, chunk_size=None,
                            arrays=default_arrays),
    }
    for key, spec in models.items():
        h.pack(work, os.path.join(store, key + ".mfs"), spec["arrays"],
               lz4=spec["lz4"], chunk_size=spec["chunk_size"])
    errors = []
    with h.mounted(work, store) as m:
        h.check(sorted(k for k in os.listdir(m.path) if k != ".status") ==
                sorted(models), "root listing %s, expected %s" %
                (sorted(os.listdir(m.path)), sorted(models)))
        for key, spec in models.items():
            man = h.inspect(os.path.join(store, key + ".mfs"))
            chunks = {x["name"]: x["chunks"] for x in man["arrays"]}
            if spec["chunk_size"] == 4096:
                h.check(chunks["int64.big"] > 1, "%s: int64.big should span"
                        " several chunks, has %s" % (key, chunks))
            if spec["chunk_size"] is None:
                h.check(chunks["multi.default"] > 1,
                        "%s: multi.default has %s chunks" %
                        (key, chunks["multi.default"]))
            for a in spec["arrays"]:
                check_array(m, key, a, errors)
        m.check_alive()
    h.check(not errors, "%d problems:\n  %s" % (len(errors),
                                                 "\n  ".join(errors)))


if __name__ == "__main__":
    h.run(main)
