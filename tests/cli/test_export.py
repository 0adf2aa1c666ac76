"""modelctl export: .npy files numpy maps as they are (data at 4096, or
after NumPy's own compact header for an array with no elements, as the
manifest's data_offset says), metadata verbatim, nothing partial left
behind on failure."""
import io
import os
import stat
import subprocess

import numpy as np

import clitest
from clitest import CliTest, EXIT_FAIL, NPY_HEADER

CHUNK = 4096


def npy_data_offset(path):
    with open(path, "rb") as f:
        ver = np.lib.format.read_magic(f)
        assert ver == (1, 0), ver
        np.lib.format.read_array_header_1_0(f)
        return f.tell()


def numpy_header(arr):
    """The NPY 1.0 header NumPy itself writes for @arr."""
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buf, np.lib.format.header_data_from_array_1_0(arr))
    return buf.getvalue()


class TestExport(CliTest):
    def arrays(self):
        rng = np.random.default_rng(3)
        return {
            "emb": rng.standard_normal((300, 17)).astype(np.float32),
            "idx": np.asfortranarray(rng.integers(0, 1 << 40, (40, 9))),
            "flags": rng.integers(0, 2, 5000).astype(np.bool_),
            "z": (rng.standard_normal(33) + 1j).astype(np.complex128),
            "scalar": np.array(-7, dtype=np.int16),
            "empty": np.zeros((4, 0), dtype=np.float64),
            "empty3": np.zeros((0, 2, 5), dtype=np.uint8),
        }

    def pack(self, arrays, *opts, meta=b'{"name": "m"}'):
        out = self.path("m.mfs")
        mpath = self.write("meta.json", meta)
        self.ok("pack", out, "--metadata", mpath, *opts,
                *["%s=%s" % (n, self.save(n, a, "src"))
                  for n, a in arrays.items()])
        return out

    def check_export(self, arrays, dest, meta, mfs):
        self.assertEqual(sorted(os.listdir(dest)),
                         sorted([n + ".npy" for n in arrays] +
                                ["metadata.json"]))
        offsets = {a["name"]: a["data_offset"]
                   for a in self.manifest(mfs)["arrays"]}
        for n, want in arrays.items():
            p = os.path.join(dest, n + ".npy")
            off = npy_data_offset(p)
            if want.size:
                self.assertEqual(off, NPY_HEADER, n)
            else:
                # No elements: NumPy's own header, byte for byte.
                hdr = numpy_header(want)
                self.assertLess(len(hdr), NPY_HEADER, n)
                self.assertEqual(off, len(hdr), n)
                with open(p, "rb") as f:
                    self.assertEqual(f.read(), hdr, n)
            self.assertEqual(offsets[n], off, n)
            self.assertEqual(os.path.getsize(p), off + want.nbytes)
            # Every array maps, the empty ones included.
            got = np.load(p, mmap_mode="r")
            self.assertIsInstance(got, np.memmap, n)
            self.assertEqual(got.offset, off, n)
            self.assertEqual(got.dtype, want.dtype, n)
            self.assertEqual(got.shape, want.shape, n)
            self.assertEqual((got.flags.c_contiguous,
                              got.flags.f_contiguous),
                             (want.flags.c_contiguous,
                              want.flags.f_contiguous), n)
            np.testing.assert_array_equal(got, want, n)
        with open(os.path.join(dest, "metadata.json"), "rb") as f:
            self.assertEqual(f.read(), meta)

    def test_raw_roundtrip(self):
        arrays = self.arrays()
        out = self.pack(arrays)
        dest = self.path("out")
        r = self.ok("export", out, dest)
        self.assertEqual((r.out, r.err), ("", ""))
        self.check_export(arrays, dest, b'{"name": "m"}', out)
        umask = os.umask(0)
        os.umask(umask)
        for n in os.listdir(dest):
            mode = stat.S_IMODE(os.stat(os.path.join(dest, n)).st_mode)
            self.assertEqual(mode, 0o666 & ~umask, n)

    def test_lz4_many_chunks_roundtrip(self):
        arrays = self.arrays()
        arrays["runs"] = np.repeat(np.arange(50, dtype=np.int32), 3000)
        out = self.pack(arrays, "--lz4", "--chunk-size", str(CHUNK),
                        meta=b'{"x": [1, 2]}\n')
        dest = self.path("out")
        self.ok("export", out, dest)
        self.check_export(arrays, dest, b'{"x": [1, 2]}\n', out)

    def test_existing_dir_replaced_files(self):
        arrays = self.arrays()
        out = self.pack(arrays)
        dest = self.path("out")
        os.mkdir(dest)
        self.write("out/emb.npy", "stale")
        self.ok("export", out, dest)
        self.ok("export", out, dest)
        self.check_export(arrays, dest, b'{"name": "m"}', out)

    def test_corrupt_chunk_leaves_no_partial_file(self):
        arrays = {"a": np.arange(4 * CHUNK, dtype=np.uint8),
                  "b": np.arange(10, dtype=np.uint8)}
        out = self.pack(arrays, "--chunk-size", str(CHUNK))
        off = self.manifest(out)["arrays"][0]["container_offset"]
        with open(out, "r+b") as f:
            f.seek(off + 2 * CHUNK)
            f.write(b"\xff\xff")
        dest = self.path("out")
        self.fails(EXIT_FAIL, "export", out, dest,
                   expect=["modelctl: export: %s: array 'a' chunk 2" % out])
        self.assertEqual(os.listdir(dest), [])

    def test_missing_container(self):
        self.fails(EXIT_FAIL, "export", self.path("no.mfs"), self.path("d"),
                   expect=["no.mfs"])
        self.assertFalse(os.path.exists(self.path("d")))

    def test_dir_is_a_file(self):
        out = self.pack({"a": np.arange(3)})
        f = self.write("file", "x")
        self.fails(EXIT_FAIL, "export", out, f,
                   expect=["cannot create directory '%s'" % f,
                           "Not a directory"])

    def test_dir_parent_missing(self):
        out = self.pack({"a": np.arange(3)})
        d = self.path("no", "such")
        self.fails(EXIT_FAIL, "export", out, d,
                   expect=["cannot create directory '%s'" % d])

    def test_rename_onto_directory_fails(self):
        out = self.pack({"a": np.arange(3)})
        dest = self.path("out")
        os.makedirs(os.path.join(dest, "a.npy", "inside"))
        self.fails(EXIT_FAIL, "export", out, dest,
                   expect=["cannot rename into place '%s/a.npy'" % dest])
        self.assertEqual(os.listdir(dest), ["a.npy"])

    def tmpfs(self, opts):
        """Mounts a small tmpfs in the work dir, or skips (needs root)."""
        mnt = self.path("tmpfs")
        os.mkdir(mnt)
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", mnt],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        if r.returncode != 0:
            self.skipTest("cannot mount a tmpfs: %s" % r.stderr.decode())
        self.addCleanup(subprocess.run, ["umount", mnt])
        return mnt

    def test_disk_full_while_writing(self):
        out = self.pack({"big": np.arange(1 << 15, dtype=np.int64)})
        mnt = self.tmpfs("size=64k")
        dest = os.path.join(mnt, "out")
        self.fails(EXIT_FAIL, "export", out, dest,
                   expect=["cannot write '%s/.big.npy.tmp." % dest,
                           "No space left on device"])
        self.assertEqual(os.listdir(dest), [])

    def test_no_inode_for_the_temporary(self):
        out = self.pack({"a": np.arange(3)})
        # Two inodes: the root and DIR, none for a file.
        mnt = self.tmpfs("size=64k,nr_inodes=2")
        dest = os.path.join(mnt, "out")
        self.fails(EXIT_FAIL, "export", out, dest,
                   expect=["cannot create '%s/.a.npy.tmp." % dest,
                           "No space left on device"])
        self.assertEqual(os.listdir(dest), [])


if __name__ == "__main__":
    clitest.main()
