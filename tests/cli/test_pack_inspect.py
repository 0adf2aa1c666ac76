"""modelctl pack and inspect: what gets packed, and what inspect shows."""
import json
import os
import pty
import subprocess
import threading

import numpy as np

import clitest
from clitest import CliTest, table_rows

DEFAULT_CHUNK = 256 << 10
PROGRESS_MIN = 64 << 20


class TestPackInspect(CliTest):
    def four_arrays(self):
        rng = np.random.default_rng(1)
        return {
            "a": rng.standard_normal((100, 30)).astype(np.float32),
            "b": np.asfortranarray(np.arange(12, dtype=np.int64)
                                   .reshape(3, 4)),
            "s": np.array(3.5),
            "e": np.zeros((0, 5), dtype=np.uint8),
        }

    def test_table_columns_and_values(self):
        arrays = self.four_arrays()
        meta = self.write("m.json", '{"model": "knn", "k": 20}')
        out = self.path("model.mfs")
        self.ok("pack", out, "--metadata", meta,
                *["%s=%s" % (n, self.save(n, a)) for n, a in arrays.items()])
        r = self.ok("inspect", out)
        header, rows = table_rows(r.out)
        self.assertEqual(header, "%s: %d bytes, 4 arrays, metadata %d bytes"
                         % (out, os.path.getsize(out),
                            os.path.getsize(meta)))
        self.assertEqual(r.out.splitlines()[1].split(),
                         ["ARRAY", "DTYPE", "SHAPE", "ORDER", "CODEC", "RAW",
                          "STORED", "RATIO"])
        # Rows in command-line order.
        self.assertEqual([l.split()[0] for l in r.out.splitlines()[2:]],
                         list(arrays))
        want_shape = {"a": "(100,30)", "b": "(3,4)", "s": "()",
                      "e": "(0,5)"}
        for name, arr in arrays.items():
            row = rows[name]
            self.assertEqual(row["DTYPE"], str(arr.dtype))
            self.assertEqual(row["SHAPE"], want_shape[name])
            self.assertEqual(row["ORDER"], "F" if name == "b" else "C")
            self.assertEqual(row["CODEC"], "none")
            self.assertEqual(int(row["RAW"]), arr.nbytes)
            self.assertEqual(int(row["STORED"]), arr.nbytes)
            self.assertEqual(row["RATIO"], "1.00" if arr.nbytes else "-")

    def test_json_is_the_manifest(self):
        arrays = self.four_arrays()
        out = self.path("knn-v2.mfs")
        self.ok("pack", out,
                *["%s=%s" % (n, self.save(n, a)) for n, a in arrays.items()])
        man = self.manifest(out)
        self.assertEqual(man["key"], "knn-v2")
        self.assertEqual(man["file_size"], os.path.getsize(out))
        self.assertEqual([a["name"] for a in man["arrays"]], list(arrays))
        for a in man["arrays"]:
            arr = arrays[a["name"]]
            self.assertEqual(a["file"], a["name"] + ".npy")
            self.assertEqual(a["dtype"], str(arr.dtype))
            self.assertEqual(a["npy_descr"], arr.dtype.str)
            self.assertEqual(tuple(a["shape"]), arr.shape)
            self.assertEqual(a["raw_size"], arr.nbytes)
            self.assertEqual(a["chunk_size"], DEFAULT_CHUNK)
            self.assertEqual(a["container_offset"] % clitest.PAGE, 0)
        self.assertEqual(man["total_raw_size"],
                         sum(a.nbytes for a in arrays.values()))

    def test_pack_directory(self):
        src = self.path("src")
        want = {"z": np.arange(5, dtype=np.int32),
                "m.x": np.ones((2, 2), dtype=np.float64),
                "a_1": np.arange(7, dtype=np.uint16)}
        for n, a in want.items():
            self.save(n, a, "src")
        # Hidden, non-.npy and non-regular entries are not arrays.
        self.save(".hidden", np.arange(3), "src")
        self.write("src/notes.txt", "not an array")
        self.write("src/npy", "no suffix")
        os.mkdir(os.path.join(src, "sub.npy"))
        out = self.path("d.mfs")
        self.ok("pack", out, src)
        man = self.manifest(out)
        self.assertEqual([a["name"] for a in man["arrays"]], sorted(want))
        self.ok("export", out, self.path("x"))
        for n, a in want.items():
            got = np.load(self.path("x", n + ".npy"))
            np.testing.assert_array_equal(got, a)
            self.assertEqual(got.dtype, a.dtype)

    def test_declared_bfloat16(self):
        bits = np.arange(1000, dtype=np.uint16) * 7
        out = self.path("bf.mfs")
        self.ok("pack", out, "w:bfloat16=%s" % self.save("w", bits),
                "plain=%s" % self.save("p", bits))
        man = self.manifest(out)
        self.assertEqual([(a["dtype"], a["npy_descr"]) for a in
                          man["arrays"]],
                         [("bfloat16", "<u2"), ("uint16", "<u2")])
        _, rows = table_rows(self.ok("inspect", out).out)
        self.assertEqual(rows["w"]["DTYPE"], "bfloat16")
        self.ok("export", out, self.path("x"))
        got = np.load(self.path("x", "w.npy"), mmap_mode="r")
        self.assertEqual(got.dtype, np.dtype("<u2"))
        np.testing.assert_array_equal(got, bits)

    def test_lz4_and_chunk_size(self):
        # Compressible: long runs of a repeated pattern.
        arr = np.repeat(np.arange(64, dtype=np.int64), 4096)
        src = self.save("x", arr)
        out = self.path("z.mfs")
        self.ok("pack", out, "--lz4", "--chunk-size", "64K", "x=" + src)
        a = self.manifest(out)["arrays"][0]
        self.assertEqual(a["codec"], "lz4")
        self.assertEqual(a["chunk_size"], 64 << 10)
        self.assertEqual(a["chunks"], -(-arr.nbytes // (64 << 10)))
        self.assertLess(a["stored_size"], arr.nbytes // 10)
        _, rows = table_rows(self.ok("inspect", out).out)
        self.assertEqual(rows["x"]["CODEC"], "lz4")
        self.assertEqual(int(rows["x"]["STORED"]), a["stored_size"])
        self.assertEqual(rows["x"]["RATIO"],
                         "%.2f" % (arr.nbytes / a["stored_size"]))

    def test_chunk_size_spellings(self):
        src = self.save("x", np.arange(10, dtype=np.uint8))
        for spelling, size in [("4096", 4096), ("8k", 8192),
                               ("16KiB", 16384), ("1M", 1 << 20),
                               ("2MiB", 2 << 20), ("64M", 64 << 20)]:
            out = self.path("c%d.mfs" % size)
            self.ok("pack", "--chunk-size", spelling, out, "x=" + src)
            self.assertEqual(self.manifest(out)["arrays"][0]["chunk_size"],
                             size, spelling)

    def test_default_is_raw_with_default_chunk(self):
        out = self.path("d.mfs")
        self.ok("pack", out, "x=" + self.save("x", np.arange(10)))
        a = self.manifest(out)["arrays"][0]
        self.assertEqual((a["codec"], a["chunk_size"]), ("none",
                                                         DEFAULT_CHUNK))

    def test_replaces_existing_output(self):
        out = self.path("r.mfs")
        self.ok("pack", out, "old=" + self.save("o", np.arange(3)))
        self.ok("pack", out, "new=" + self.save("n", np.arange(4)))
        self.assertEqual([a["name"] for a in self.manifest(out)["arrays"]],
                         ["new"])
        self.assertEqual([n for n in os.listdir(self.dir)
                          if n.startswith(".")], [])

    def test_metadata_from_a_pipe(self):
        doc = b'{"from": "stdin", "n": [1, 2, 3]}'
        out = self.path("p.mfs")
        self.ok("pack", out, "--metadata", "/dev/stdin",
                "x=" + self.save("x", np.arange(3)), stdin=doc)
        self.ok("export", out, self.path("x"))
        with open(self.path("x", "metadata.json"), "rb") as f:
            self.assertEqual(f.read(), doc)

    def big_input(self):
        """An input just over the progress threshold (zeros: packs fast)."""
        p = self.path("big.npy")
        arr = np.lib.format.open_memmap(p, mode="w+", dtype=np.uint8,
                                        shape=(PROGRESS_MIN + 4096,))
        del arr
        return p

    def test_progress_on_a_terminal(self):
        src = self.big_input()
        out = self.path("big.mfs")
        master, slave = pty.openpty()
        proc = subprocess.Popen([clitest.MODELCTL, "pack", "--lz4", out,
                                 "big=" + src],
                                stdout=subprocess.DEVNULL, stderr=slave)
        os.close(slave)
        chunks = []

        def drain():
            while True:
                try:
                    data = os.read(master, 4096)
                except OSError:  # EIO: the child closed the terminal
                    return
                if not data:
                    return
                chunks.append(data)

        t = threading.Thread(target=drain)
        t.start()
        rc = proc.wait(timeout=300)
        t.join()
        os.close(master)
        err = b"".join(chunks).decode()
        self.assertEqual(rc, 0, err)
        total = "/ %.1f MiB" % ((PROGRESS_MIN + 4096) / (1 << 20))
        self.assertIn("\rmodelctl: pack: ", err)
        self.assertIn(total, err)
        self.assertIn("MiB/s", err)
        # The final line reports everything done.
        last = err.replace("\r\n", "\n").rstrip("\n").split("\r")[-1]
        self.assertIn("%.1f %s" % ((PROGRESS_MIN + 4096) / (1 << 20),
                                   total), last)

    def test_no_progress_when_not_a_terminal(self):
        src = self.big_input()
        r = self.ok("pack", "--lz4", self.path("big.mfs"), "big=" + src)
        self.assertEqual(r.err, "")


if __name__ == "__main__":
    clitest.main()
