"""modelctl put: publishing containers and .npy files into a store
directory (keys given and content-derived), refusing corrupt containers
and invalid keys with nothing published and an existing model untouched."""
import json
import os
import re

import numpy as np

import clitest
from clitest import CliTest, EXIT_FAIL, EXIT_USAGE

CHUNK = 4096
CONTENT_KEY = re.compile(r"^[0-9a-f]{16}$")
SENTINEL = b"an older model that must survive\n"


class PutTest(CliTest):
    """Helpers shared by the put tests (also imported by test_store.py)."""

    def setUp(self):
        super().setUp()
        self.store = self.path("store")
        rng = np.random.default_rng(3)
        self.emb = rng.standard_normal((8, CHUNK // 4)).astype(np.float32)
        self.bias = np.arange(100, dtype=np.int16)

    def npy_args(self, emb=None):
        return ["emb=" + self.save("emb", self.emb if emb is None else emb),
                "bias=" + self.save("bias", self.bias)]

    def pack(self, name="m.mfs", emb=None, *opts):
        out = self.path(name)
        self.ok("pack", out, "--chunk-size", str(CHUNK), *opts,
                *self.npy_args(emb))
        return out

    def put(self, *args):
        """put STORE ARGS: the key printed, after checking it is the only
        stdout line and STORE/KEY.mfs is a valid container."""
        r = self.ok("put", self.store, *args)
        self.assertEqual(r.out.count("\n"), 1, r)
        key = r.out.strip()
        self.assertTrue(os.path.isfile(self.model(key)), r)
        self.ok("verify", self.model(key))
        return key

    def model(self, key):
        return os.path.join(self.store, key + ".mfs")

    def store_files(self):
        """Every entry of the store, hidden ones included, sorted."""
        return sorted(os.listdir(self.store))

    def read(self, path):
        with open(path, "rb") as f:
            return f.read()

    def flip(self, path, offset):
        with open(path, "r+b") as f:
            f.seek(offset)
            b = f.read(1)
            f.seek(offset)
            f.write(bytes([b[0] ^ 0x40]))


class TestPut(PutTest):
    def test_container_with_key_published_as_is(self):
        mfs = self.pack()
        self.assertEqual(self.put(mfs, "--key", "model-1"), "model-1")
        self.assertEqual(self.read(self.model("model-1")), self.read(mfs))
        self.assertEqual(self.store_files(), ["model-1.mfs"])

    def test_content_key_same_and_different(self):
        one = self.pack("one.mfs")
        key = self.put(one)
        self.assertRegex(key, CONTENT_KEY)
        # The same content (another copy of the file) gets the same key.
        self.assertEqual(self.put(self.pack("again.mfs")), key)
        self.assertEqual(self.store_files(), [key + ".mfs"])
        # Different content, a different key; both models stay.
        other = self.pack("two.mfs", self.emb + 1)
        key2 = self.put(other)
        self.assertRegex(key2, CONTENT_KEY)
        self.assertNotEqual(key2, key)
        self.assertEqual(self.store_files(), sorted([key + ".mfs",
                                                     key2 + ".mfs"]))

    def test_content_key_is_the_index_checksum(self):
        mfs = self.pack()
        key = self.put(mfs)
        with open(mfs, "rb") as f:
            header = f.read(48)
        # FORMAT.md: the index checksum is the u64 at header offset 40.
        self.assertEqual(key, "%016x" % int.from_bytes(header[40:48],
                                                        "little"))

    def test_npy_files_packed_and_published(self):
        key = self.put("--chunk-size", str(CHUNK), *self.npy_args())
        # Packing in one step gives the same container as pack + put.
        self.assertEqual(key, self.put(self.pack()))
        m = self.manifest(self.model(key))
        self.assertEqual([a["name"] for a in m["arrays"]], ["emb", "bias"])
        self.assertEqual([a["chunks"] for a in m["arrays"]], [8, 1])
        out = self.path("exported")
        self.ok("export", self.model(key), out)
        np.testing.assert_array_equal(np.load(os.path.join(out, "emb.npy")),
                                      self.emb)

    def test_npy_with_key_lz4_metadata_and_declared_dtype(self):
        meta = self.write("meta.json", '{"name": "demo"}')
        bits = np.arange(50, dtype=np.uint16)
        key = self.put("--key", "demo", "--lz4", "--metadata", meta,
                       "w:bfloat16=" + self.save("w", bits),
                       *self.npy_args())
        self.assertEqual(key, "demo")
        m = self.manifest(self.model("demo"))
        self.assertEqual({a["name"]: (a["dtype"], a["codec"])
                          for a in m["arrays"]},
                         {"w": ("bfloat16", "lz4"), "emb": ("float32", "lz4"),
                          "bias": ("int16", "lz4")})
        out = self.path("exported")
        self.ok("export", self.model("demo"), out)
        with open(os.path.join(out, "metadata.json")) as f:
            self.assertEqual(json.load(f), {"name": "demo"})

    def test_npy_directory_like_pack(self):
        self.save("b", self.bias, "src")
        self.save("a", self.emb, "src")
        self.save(".hidden", self.bias, "src")
        key = self.put(self.path("src"))
        names = [a["name"] for a in self.manifest(self.model(key))["arrays"]]
        self.assertEqual(names, ["a", "b"])
        self.ok("pack", self.path("p.mfs"), self.path("src"))
        self.assertEqual(key, self.put(self.path("p.mfs")))

    def test_single_npy_file(self):
        key = self.put(self.save("vec", self.bias), "--key", "v")
        m = self.manifest(self.model(key))
        self.assertEqual([a["name"] for a in m["arrays"]], ["vec"])

    def test_replaces_existing_key(self):
        self.put(self.pack("one.mfs"), "--key", "k")
        two = self.pack("two.mfs", self.emb * 2)
        self.put(two, "--key", "k")
        self.assertEqual(self.read(self.model("k")), self.read(two))
        self.assertEqual(self.store_files(), ["k.mfs"])

    def test_creates_missing_store_directory(self):
        self.assertFalse(os.path.exists(self.store))
        self.put(self.pack(), "--key", "k")
        self.assertEqual(self.store_files(), ["k.mfs"])


class TestPutRefusals(PutTest):
    def refuse(self, rc, *args, expect=()):
        """put must fail with @rc, leave an existing k.mfs untouched and
        nothing else (no temporary) behind."""
        os.makedirs(self.store, exist_ok=True)
        with open(self.model("k"), "wb") as f:
            f.write(SENTINEL)
        r = self.fails(rc, "put", self.store, *args, expect=expect)
        self.assertEqual(r.out, "")
        self.assertEqual(self.read(self.model("k")), SENTINEL)
        self.assertEqual(self.store_files(), ["k.mfs"])
        return r

    def test_flipped_data_byte(self):
        mfs = self.pack()
        emb = self.manifest(mfs)["arrays"][0]
        self.flip(mfs, emb["container_offset"] + 3 * CHUNK + 7)
        for args in (["--key", "k"], []):
            self.refuse(EXIT_FAIL, mfs, *args,
                        expect=["bad chunk", "array 'emb' chunk 3",
                                "not imported"])

    def test_flipped_byte_in_lz4_chunk(self):
        mfs = self.pack("z.mfs", None, "--lz4")
        bias = self.manifest(mfs)["arrays"][1]
        self.flip(mfs, bias["container_offset"] + 5)
        self.refuse(EXIT_FAIL, mfs, "--key", "k", expect=["array 'bias'"])

    def test_structural_damage(self):
        mfs = self.pack()
        data = self.read(mfs)
        self.write("trunc.mfs", data[:-10])
        self.refuse(EXIT_FAIL, self.path("trunc.mfs"), "--key", "k",
                    expect=["trunc.mfs"])
        self.write("junk.mfs", b"not a container at all" * 300)
        self.refuse(EXIT_FAIL, self.path("junk.mfs"), "--key", "k",
                    expect=["neither a modelfs container nor an .npy"])

    def test_missing_inputs(self):
        self.refuse(EXIT_FAIL, self.path("nope.mfs"), "--key", "k",
                    expect=["nope.mfs", "No such file or directory"])
        missing = self.path("missing.npy")
        self.refuse(EXIT_FAIL, "a=" + missing, "--key", "k",
                    expect=["cannot open '%s' (array 'a')" % missing])
        self.refuse(EXIT_FAIL, "a=" + self.save("a", self.bias),
                    "--metadata", self.path("none.json"), "--key", "k",
                    expect=["cannot read metadata file"])

    def test_bad_npy_inputs(self):
        a = self.save("a", self.bias)
        self.refuse(EXIT_FAIL, "a=" + a, "a=" + a, "--key", "k",
                    expect=["'a'"])
        self.refuse(EXIT_FAIL, "a b=" + a, "--key", "k",
                    expect=["character 0x20"])
        self.refuse(EXIT_FAIL, "x:float64=" + a, "--key", "k",
                    expect=["cannot declare dtype float64"])
        self.refuse(EXIT_FAIL, "x:nope=" + a, "--key", "k",
                    expect=["nope"])
        self.refuse(EXIT_FAIL, "x=" + self.write("t.npy", b"text"),
                    "--key", "k", expect=["array 'x'"])
        meta = self.write("meta.json", "[1, 2]")
        self.refuse(EXIT_FAIL, "a=" + a, "--metadata", meta, "--key", "k",
                    expect=["metadata file '%s'" % meta])
        os.mkdir(self.path("empty"))
        self.refuse(EXIT_FAIL, self.path("empty"), "--key", "k",
                    expect=["holds no .npy files"])

    def test_invalid_keys_are_usage_errors(self):
        mfs = self.pack()
        for key, why in [("..", "starts with '.'"),
                         (".hidden", "starts with '.'"),
                         ("a/b", "0x2f"), ("../k", "starts with '.'"),
                         ("a b", "0x20"), ("", "empty"),
                         ("k" * 129, "128"), ("-x", ""), ("é", "")]:
            r = self.refuse(EXIT_USAGE, mfs, "--key", key,
                            expect=["modelctl: put: invalid key '%s'" % key,
                                    why])
            self.assertIn("Try 'modelctl put --help'.", r.err)
        # The longest key is fine.
        self.assertEqual(self.put(mfs, "--key", "k" * 128), "k" * 128)

    def test_usage_errors(self):
        mfs = self.pack()
        self.refuse(EXIT_USAGE, mfs, "--lz4",
                    expect=["--lz4, --chunk-size and --metadata apply to "
                            ".npy inputs"])
        self.refuse(EXIT_USAGE, "a=" + mfs, mfs,
                    expect=["'%s' is not NAME=FILE.npy" % mfs])
        self.refuse(EXIT_USAGE, "--chunk-size", "3000", "a=" + mfs,
                    expect=["must be a power of two"])
        self.refuse(EXIT_USAGE, "--chunk-size", "x", "a=" + mfs,
                    expect=["is not a size"])
        self.refuse(EXIT_USAGE, mfs, "--bogus",
                    expect=["unknown option '--bogus'"])
        self.refuse(EXIT_USAGE, mfs, "--key",
                    expect=["option '--key' needs an argument"])
        self.refuse(EXIT_USAGE, expect=["missing the model"])
        self.fails(EXIT_USAGE, "put", expect=["missing STORE_DIR"])

    def test_store_directory_is_a_file(self):
        self.write("plain", "x")
        self.fails(EXIT_FAIL, "put", self.path("plain"), self.pack(),
                   expect=["store directory '%s' is not a directory"
                           % self.path("plain")])


if __name__ == "__main__":
    clitest.main()
