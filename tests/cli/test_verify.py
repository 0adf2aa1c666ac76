"""modelctl verify (and inspect) on good, damaged, truncated and padded
containers."""
import os

import numpy as np

import clitest
from clitest import CliTest, EXIT_FAIL

CHUNK = 4096


class TestVerify(CliTest):
    def pack(self, name="m.mfs", lz4=False):
        """A container with 'emb' (10 chunks) and 'bias' (1 chunk)."""
        rng = np.random.default_rng(7)
        emb = rng.standard_normal((10, CHUNK // 4)).astype(np.float32)
        bias = np.arange(100, dtype=np.int16)
        out = self.path(name)
        args = ["pack", out, "--chunk-size", str(CHUNK),
                "emb=" + self.save("emb", emb),
                "bias=" + self.save("bias", bias)]
        self.ok(*(args + (["--lz4"] if lz4 else [])))
        return out

    def flip(self, path, offset):
        with open(path, "r+b") as f:
            f.seek(offset)
            b = f.read(1)
            f.seek(offset)
            f.write(bytes([b[0] ^ 0x40]))

    def offset_of(self, path, array):
        for a in self.manifest(path)["arrays"]:
            if a["name"] == array:
                return a["container_offset"]
        raise KeyError(array)

    def test_good_files(self):
        one, two = self.pack("one.mfs"), self.pack("two.mfs", lz4=True)
        r = self.ok("verify", one, two)
        self.assertEqual(r.out.splitlines(),
                         ["%s: ok, 2 arrays, 11 chunks" % one,
                          "%s: ok, 2 arrays, 11 chunks" % two])
        self.assertEqual(r.err, "")

    def test_flipped_data_byte_names_array_and_chunk(self):
        out = self.pack()
        self.flip(out, self.offset_of(out, "emb") + 3 * CHUNK + 100)
        r = self.fails(EXIT_FAIL, "verify", out,
                       expect=["modelctl: verify: 1 of 1 files failed"])
        lines = r.out.splitlines()
        self.assertEqual(len(lines), 2, r)
        self.assertTrue(lines[0].startswith(
            "%s: array 'emb' chunk 3: " % out), r)
        self.assertIn("checksum", lines[0])
        # The chunk is named once, not repeated from the library message.
        self.assertEqual(lines[0].count("chunk 3"), 1, r)
        self.assertEqual(lines[1], "%s: FAILED, 1 of 11 chunks bad" % out)
        # The structure is still valid: inspect works, export refuses.
        self.ok("inspect", out)

    def test_flipped_byte_in_lz4_chunk(self):
        out = self.pack(lz4=True)
        self.flip(out, self.offset_of(out, "bias") + 5)
        r = self.fails(EXIT_FAIL, "verify", out)
        self.assertTrue(r.out.startswith(
            "%s: array 'bias' chunk 0: " % out), r)

    def test_two_bad_chunks_two_lines(self):
        out = self.pack()
        base = self.offset_of(out, "emb")
        self.flip(out, base + 1)
        self.flip(out, base + 9 * CHUNK)
        r = self.fails(EXIT_FAIL, "verify", out)
        lines = r.out.splitlines()
        self.assertEqual([l.split(": ")[1] for l in lines[:2]],
                         ["array 'emb' chunk 0", "array 'emb' chunk 9"], r)
        self.assertEqual(lines[2], "%s: FAILED, 2 of 11 chunks bad" % out)

    def test_truncated_file(self):
        out = self.pack()
        os.truncate(out, os.path.getsize(out) - 1)
        self.fails(EXIT_FAIL, "inspect", out,
                   expect=["modelctl: inspect: %s: " % out, "file_size"])
        r = self.fails(EXIT_FAIL, "verify", out)
        self.assertTrue(r.out.startswith("%s: " % out), r)
        self.assertIn("file_size", r.out)

    def test_trailing_garbage(self):
        out = self.pack()
        with open(out, "ab") as f:
            f.write(b"garbage")
        self.fails(EXIT_FAIL, "inspect", out, expect=["file_size"])
        self.fails(EXIT_FAIL, "inspect", "--json", out, expect=["file_size"])
        self.fails(EXIT_FAIL, "verify", out)

    def test_not_a_container(self):
        txt = self.write("t.mfs", "hello\n" * 1000)
        r = self.fails(EXIT_FAIL, "verify", txt)
        self.assertIn("magic", r.out)
        self.fails(EXIT_FAIL, "inspect", txt, expect=["magic"])

    def test_missing_file(self):
        missing = self.path("nope.mfs")
        r = self.fails(EXIT_FAIL, "verify", missing)
        self.assertTrue(r.out.startswith(missing + ": "), r)
        self.fails(EXIT_FAIL, "inspect", missing, expect=[missing])

    def test_mixed_files_report_each(self):
        good, bad = self.pack("good.mfs"), self.pack("bad.mfs")
        self.flip(bad, self.offset_of(bad, "bias"))
        missing = self.path("missing.mfs")
        r = self.fails(EXIT_FAIL, "verify", good, bad, missing,
                       expect=["2 of 3 files failed"])
        lines = r.out.splitlines()
        self.assertEqual(lines[0], "%s: ok, 2 arrays, 11 chunks" % good)
        self.assertTrue(lines[1].startswith(
            "%s: array 'bias' chunk 0: " % bad))
        self.assertEqual(lines[2], "%s: FAILED, 1 of 11 chunks bad" % bad)
        self.assertTrue(lines[3].startswith(missing + ": "))
        self.assertEqual(len(lines), 4, r)


if __name__ == "__main__":
    clitest.main()
