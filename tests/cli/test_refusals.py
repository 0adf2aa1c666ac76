"""modelctl pack refusals: exit 1 with a message, nothing at OUT.mfs, no
temporary file, and an existing OUT.mfs untouched."""
import os
import subprocess

import numpy as np

import clitest
from clitest import CliTest, EXIT_FAIL

METADATA_LIMIT = 16 << 20
SENTINEL = b"an older model that must survive\n"


class TestPackRefusals(CliTest):
    def setUp(self):
        super().setUp()
        self.good = self.save("good", np.arange(10, dtype=np.float32))
        self.out = self.path("out.mfs")

    def refuse(self, *args, expect=(), stdin=None):
        """pack OUT.mfs ARGS must fail with @expect in the message, both
        when OUT.mfs is absent and when an older one is present."""
        self.fails(EXIT_FAIL, "pack", self.out, *args, expect=expect,
                   stdin=stdin)
        self.assert_nothing_left(self.out)
        self.write("out.mfs", SENTINEL)
        self.fails(EXIT_FAIL, "pack", self.out, *args, expect=expect,
                   stdin=stdin)
        with open(self.out, "rb") as f:
            self.assertEqual(f.read(), SENTINEL)
        os.unlink(self.out)
        self.assert_nothing_left(self.out)

    def test_missing_npy_file(self):
        missing = self.path("missing.npy")
        self.refuse("a=" + self.good, "b=" + missing,
                    expect=["cannot open '%s' (array 'b')" % missing,
                            "No such file or directory"])

    def test_missing_directory(self):
        d = self.path("nodir")
        self.refuse(d, expect=["cannot open directory '%s'" % d])

    def test_directory_without_npy_files(self):
        os.mkdir(self.path("src"))
        self.write("src/readme.txt", "x")
        self.save(".hidden", np.arange(3), "src")
        self.refuse(self.path("src"), expect=["holds no .npy files"])

    def test_dangling_symlink_in_directory(self):
        self.save("a", np.arange(3), "src")
        os.symlink(self.path("gone.npy"), self.path("src", "b.npy"))
        self.refuse(self.path("src"), expect=["cannot stat", "b.npy"])

    def test_bad_names(self):
        for name, why in [("a b", "character 0x20"), (".x", "starts with"),
                          ("", "empty"), ("a/b", "character 0x2f"),
                          ("n" * 201, "longer than 200")]:
            self.refuse("%s=%s" % (name, self.good),
                        expect=["array name", why])

    def test_bad_name_from_directory(self):
        self.save("ok", np.arange(3), "src")
        self.save("not ok", np.arange(3), "src")
        self.refuse(self.path("src"), expect=["'not ok'", "character 0x20"])

    def test_duplicate_names(self):
        other = self.save("other", np.arange(3))
        self.refuse("w=" + self.good, "v=" + other, "w=" + other,
                    expect=["array name 'w' is given twice"])

    def test_unknown_declared_dtype(self):
        self.refuse("w:bfloat17=" + self.good,
                    expect=["unknown dtype 'bfloat17'"])

    def test_declared_dtype_of_other_itemsize(self):
        self.refuse("w:bfloat16=" + self.good,
                    expect=["array 'w': cannot declare dtype bfloat16 (2 "
                            "bytes per item)", "float32 has 4 bytes"])

    def test_unsupported_npy_dtypes(self):
        cases = {
            "str": (np.array(["ab", "c"]), "<U2"),
            "obj": (np.array([{}, 1], dtype=object), "|O"),
            "big": (np.arange(3, dtype=">f4"), ">f4"),
            "rec": (np.zeros(2, dtype=[("a", "<i4")]), "structured"),
        }
        for name, (arr, why) in cases.items():
            p = self.path(name + ".npy")
            np.save(p, arr, allow_pickle=True)
            self.refuse("x=" + p, expect=["array 'x': %s" % p, why])

    def test_not_an_npy_file(self):
        p = self.write("text.npy", "just text\n")
        self.refuse("x=" + p, expect=["array 'x': %s" % p])

    def test_truncated_npy_file(self):
        p = self.save("t", np.arange(100, dtype=np.int64))
        os.truncate(p, os.path.getsize(p) - 8)
        self.refuse("x=" + p, expect=["array 'x': %s" % p])

    def test_invalid_metadata_json(self):
        m = self.write("bad.json", '{"a": 1,\n "b": }')
        self.refuse("--metadata", m, "x=" + self.good,
                    expect=["metadata file '%s': " % m, "not valid JSON",
                            "line 2"])

    def test_metadata_not_an_object(self):
        m = self.write("list.json", "[1, 2]")
        self.refuse("--metadata", m, "x=" + self.good,
                    expect=["metadata file '%s': " % m, "object"])

    def test_metadata_missing_or_a_directory(self):
        m = self.path("none.json")
        self.refuse("--metadata", m, "x=" + self.good,
                    expect=["cannot read metadata file '%s'" % m])
        self.refuse("--metadata", self.dir, "x=" + self.good,
                    expect=["cannot read metadata file '%s'" % self.dir,
                            "Is a directory"])

    def test_metadata_too_large(self):
        m = self.path("huge.json")
        with open(m, "wb") as f:
            f.truncate(METADATA_LIMIT + 1)
        self.refuse("--metadata", m, "x=" + self.good,
                    expect=["larger than the limit of %d bytes"
                            % METADATA_LIMIT])
        # A stream is capped while it is read.
        self.refuse("--metadata", "/dev/stdin", "x=" + self.good,
                    stdin=b" " * (METADATA_LIMIT + 1),
                    expect=["larger than the limit"])

    def test_output_directory_missing(self):
        out = self.path("nodir", "out.mfs")
        self.fails(EXIT_FAIL, "pack", out, "x=" + self.good,
                   expect=["cannot create '%s'" % out,
                           "No such file or directory"])
        self.assertFalse(os.path.exists(self.path("nodir")))

    def test_output_is_a_directory(self):
        os.makedirs(self.path("out.mfs", "keep"))
        self.fails(EXIT_FAIL, "pack", self.out, "x=" + self.good,
                   expect=["cannot write '%s'" % self.out])
        self.assertEqual(os.listdir(self.out), ["keep"])
        self.assertEqual([n for n in os.listdir(self.dir)
                          if n.startswith(".")], [])

    def test_disk_full(self):
        mnt = self.path("tmpfs")
        os.mkdir(mnt)
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k",
                            "tmpfs", mnt], stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE)
        if r.returncode != 0:
            self.skipTest("cannot mount a tmpfs: %s" % r.stderr.decode())
        self.addCleanup(subprocess.run, ["umount", mnt])
        big = self.save("big", np.arange(1 << 15, dtype=np.int64))
        out = os.path.join(mnt, "m.mfs")
        self.fails(EXIT_FAIL, "pack", out, "a=" + self.good, "big=" + big,
                   expect=["No space left on device"])
        self.assertEqual(os.listdir(mnt), [])


if __name__ == "__main__":
    clitest.main()
