"""modelctl index: the index document of a store directory (lib/MOUNT.md,
"Store index"): every field checked against inspect --json and the
container header, entries that are not models skipped with a warning,
--content-names (hard links under objects/, old objects kept across a
replace), --output, atomic writing (no temporary left, a failed write
leaves the previous document) and byte-identical reruns."""
import json
import os
import re
import stat
import subprocess

import numpy as np

import clitest
from clitest import CliTest, EXIT_FAIL, EXIT_USAGE
from test_put import PutTest

INDEX = "index.json"
HEX16 = re.compile(r"^[0-9a-f]{16}$")
ENTRY_KEYS = ["arrays", "index_checksum", "object", "raw_size", "size"]


def header_index_checksum(path):
    """FORMAT.md: the index checksum is the u64 at header offset 40."""
    with open(path, "rb") as f:
        return "%016x" % int.from_bytes(f.read(48)[40:48], "little")


class IndexTest(PutTest):
    def setUp(self):
        super().setUp()
        os.makedirs(self.store)

    def index(self, *args, store=None):
        """Runs index (no warning expected) and returns the document."""
        r = self.ok("index", *args, store or self.store)
        self.assertEqual((r.out, r.err), ("", ""), r)
        return self.load()

    def load(self, path=None):
        with open(path or os.path.join(self.store, INDEX), "rb") as f:
            text = f.read()
        doc = json.loads(text)
        # Pretty-printed with 2-space indent and sorted keys, one final
        # newline: the same document gives the same bytes.
        self.assertEqual(text.decode(), json.dumps(doc, indent=2,
                                                   sort_keys=True) + "\n")
        return doc

    def temps(self, d=None):
        d = d or self.store
        return [n for n in os.listdir(d) if n.startswith(".")]

    def put_raw_and_lz4(self):
        self.put(self.pack(), "--key", "raw")
        self.put(self.pack("l.mfs", None, "--lz4"), "--key", "lz")

    def check_entry(self, key, entry, object_name=None):
        path = self.model(key)
        self.assertEqual(sorted(entry), ENTRY_KEYS)
        man = self.manifest(path)
        self.assertEqual(entry["object"], object_name or key + ".mfs")
        self.assertEqual(entry["size"], os.path.getsize(path))
        self.assertEqual(entry["size"], man["file_size"])
        self.assertEqual(entry["arrays"], len(man["arrays"]))
        self.assertEqual(entry["raw_size"], man["total_raw_size"])
        self.assertRegex(entry["index_checksum"], HEX16)
        self.assertEqual(entry["index_checksum"],
                         header_index_checksum(path))


class TestIndex(IndexTest):
    def test_raw_and_lz4_fields(self):
        self.put_raw_and_lz4()
        doc = self.index()
        self.assertEqual(sorted(doc), ["format", "models", "version"])
        self.assertEqual(doc["format"], "modelfs-index")
        self.assertEqual(doc["version"], 1)
        self.assertEqual(sorted(doc["models"]), ["lz", "raw"])
        for key, entry in doc["models"].items():
            self.check_entry(key, entry)
        codecs = {k: {a["codec"] for a in self.manifest(
            self.model(k))["arrays"]} for k in ("lz", "raw")}
        self.assertEqual(codecs, {"lz": {"lz4"}, "raw": {"none"}})
        self.assertEqual(doc["models"]["raw"]["raw_size"],
                         self.emb.nbytes + self.bias.nbytes)
        self.assertEqual(self.temps(), [])
        self.assertEqual(self.store_files(), [INDEX, "lz.mfs", "raw.mfs"])

    def test_empty_store(self):
        doc = self.index()
        self.assertEqual(doc, {"format": "modelfs-index", "models": {},
                               "version": 1})

    def test_content_key_entry(self):
        key = self.put(self.pack())
        entry = self.index()["models"][key]
        self.assertEqual(entry["index_checksum"], key)

    def test_rerun_is_byte_identical(self):
        self.put_raw_and_lz4()
        self.index()
        with open(os.path.join(self.store, INDEX), "rb") as f:
            first = f.read()
        self.index()
        with open(os.path.join(self.store, INDEX), "rb") as f:
            self.assertEqual(f.read(), first)
        self.assertEqual(self.temps(), [])

    def test_index_follows_a_replace_and_a_remove(self):
        self.put_raw_and_lz4()
        before = self.index()["models"]["raw"]
        self.put(self.pack("n.mfs", self.emb + 1), "--key", "raw")
        self.ok("rm", self.store, "lz")
        doc = self.index()
        self.assertEqual(sorted(doc["models"]), ["raw"])
        self.check_entry("raw", doc["models"]["raw"])
        self.assertNotEqual(doc["models"]["raw"]["index_checksum"],
                            before["index_checksum"])


class TestSkipped(IndexTest):
    def test_entries_that_are_not_models(self):
        self.put(self.pack(), "--key", "good")
        good = self.model("good")
        s = self.store
        with open(os.path.join(s, "corrupt.mfs"), "wb") as f:
            f.write(b"\x89MFS truncated")
        flipped = os.path.join(s, "flipped.mfs")
        with open(good, "rb") as f:
            data = bytearray(f.read())
        data[20] ^= 0x40  # header field file_size: header checksum fails
        with open(flipped, "wb") as f:
            f.write(data)
        os.mkfifo(os.path.join(s, "fifo.mfs"))
        os.symlink("good.mfs", os.path.join(s, "link.mfs"))
        os.mkdir(os.path.join(s, "dir.mfs"))
        os.link(good, os.path.join(s, "bad key.mfs"))
        os.link(good, os.path.join(s, "-dash.mfs"))
        os.link(good, os.path.join(s, ".hidden.mfs"))
        os.link(good, os.path.join(s, ".good.mfs.tmp.abcdef"))
        os.link(good, os.path.join(s, "good.mfs.bak"))
        os.link(good, os.path.join(s, ".mfs"))
        with open(os.path.join(s, "notes.txt"), "w") as f:
            f.write("not a model\n")
        # A previous index is replaced, never listed.
        with open(os.path.join(s, INDEX), "w") as f:
            f.write("{}\n")

        r = self.ok("index", s)
        self.assertEqual(r.out, "")
        doc = self.load()
        self.assertEqual(sorted(doc["models"]), ["good"])
        self.check_entry("good", doc["models"]["good"])
        warnings = sorted(r.err.splitlines())
        prefix = "modelctl: index: warning: skipping %s/" % s
        self.assertTrue(all(w.startswith(prefix) for w in warnings), r)
        reasons = {w[len(prefix):].split(": ", 1)[0]:
                   w[len(prefix):].split(": ", 1)[1] for w in warnings}
        self.assertEqual(sorted(reasons), sorted([
            "corrupt.mfs", "flipped.mfs", "fifo.mfs", "link.mfs",
            "dir.mfs", "bad key.mfs", "-dash.mfs"]), r)
        self.assertIn("smaller than the 4096-byte header", reasons[
            "corrupt.mfs"])
        self.assertIn("header_checksum", reasons["flipped.mfs"])
        self.assertIn("a FIFO, not a regular file", reasons["fifo.mfs"])
        self.assertIn("a symbolic link", reasons["link.mfs"])
        self.assertIn("a directory, not a regular file", reasons["dir.mfs"])
        self.assertIn("model key 'bad key'", reasons["bad key.mfs"])
        self.assertIn("model key '-dash'", reasons["-dash.mfs"])
        # Nothing was opened through the link or moved.
        self.assertTrue(os.path.islink(os.path.join(s, "link.mfs")))
        self.assertTrue(stat.S_ISFIFO(os.lstat(
            os.path.join(s, "fifo.mfs")).st_mode))

    def test_unreadable_directory_entry_list(self):
        self.fails(EXIT_FAIL, "index", self.path("nostore"),
                   expect=["modelctl: index: store directory '%s'" %
                           self.path("nostore"), "No such file"])
        f = self.write("plain", "x")
        self.fails(EXIT_FAIL, "index", f,
                   expect=["store directory '%s' is not a directory" % f])
        self.assertFalse(os.path.exists(self.path(INDEX)))


class TestContentNames(IndexTest):
    def objects(self):
        return sorted(os.listdir(os.path.join(self.store, "objects")))

    def test_hard_links_named_by_index_checksum(self):
        self.put_raw_and_lz4()
        doc = self.index("--content-names")
        names = []
        for key, entry in doc["models"].items():
            name = "%s.%s.mfs" % (key, entry["index_checksum"])
            names.append(name)
            self.check_entry(key, entry, "objects/" + name)
            obj = os.path.join(self.store, "objects", name)
            self.assertTrue(os.path.samefile(obj, self.model(key)))
            self.assertEqual(header_index_checksum(obj),
                             entry["index_checksum"])
        self.assertEqual(self.objects(), sorted(names))
        self.assertEqual(self.temps(), [])
        # Without --content-names the index names the top-level files
        # again; the objects stay.
        doc = self.index()
        self.assertEqual(doc["models"]["raw"]["object"], "raw.mfs")
        self.assertEqual(self.objects(), sorted(names))

    def test_replace_keeps_the_old_object(self):
        self.put(self.pack(), "--key", "m")
        old = self.index("--content-names")["models"]["m"]
        old_obj = os.path.join(self.store, old["object"])
        with open(old_obj, "rb") as f:
            old_bytes = f.read()
        self.put(self.pack("n.mfs", self.emb + 1), "--key", "m")
        new = self.index("--content-names")["models"]["m"]
        self.check_entry("m", new, "objects/m.%s.mfs" %
                         new["index_checksum"])
        self.assertNotEqual(new["object"], old["object"])
        self.assertEqual(self.objects(), sorted([
            os.path.basename(old["object"]),
            os.path.basename(new["object"])]))
        with open(old_obj, "rb") as f:
            self.assertEqual(f.read(), old_bytes)
        self.assertTrue(os.path.samefile(
            os.path.join(self.store, new["object"]), self.model("m")))

    def test_rerun_keeps_objects_and_bytes(self):
        self.put_raw_and_lz4()
        self.index("--content-names")
        ino = {n: os.stat(os.path.join(self.store, "objects", n)).st_ino
               for n in self.objects()}
        with open(os.path.join(self.store, INDEX), "rb") as f:
            first = f.read()
        self.index("--content-names")
        with open(os.path.join(self.store, INDEX), "rb") as f:
            self.assertEqual(f.read(), first)
        self.assertEqual({n: os.stat(os.path.join(
            self.store, "objects", n)).st_ino for n in self.objects()}, ino)

    def test_wrong_file_under_an_object_name_is_replaced(self):
        self.put(self.pack(), "--key", "m")
        name = "m.%s.mfs" % header_index_checksum(self.model("m"))
        os.mkdir(os.path.join(self.store, "objects"))
        bad = os.path.join(self.store, "objects", name)
        with open(bad, "wb") as f:
            f.write(b"not this model")
        self.index("--content-names")
        with open(bad, "rb") as f, open(self.model("m"), "rb") as g:
            self.assertEqual(f.read(), g.read())
        self.assertEqual(self.temps(os.path.dirname(bad)), [])

    def test_objects_is_not_a_directory(self):
        self.put(self.pack(), "--key", "m")
        self.write("store/objects", "a file")
        self.fails(EXIT_FAIL, "index", "--content-names", self.store,
                   expect=["'%s/objects' is not a directory" % self.store])
        self.assertFalse(os.path.exists(os.path.join(self.store, INDEX)))

    def test_objects_link_to_a_directory_refused(self):
        self.put(self.pack(), "--key", "m")
        os.mkdir(self.path("elsewhere"))
        os.symlink(self.path("elsewhere"), os.path.join(self.store,
                                                        "objects"))
        self.fails(EXIT_FAIL, "index", "--content-names", self.store,
                   expect=["'%s/objects' is not a directory" % self.store])
        self.assertEqual(os.listdir(self.path("elsewhere")), [])


class TestOutputAndFailures(IndexTest):
    def test_output_elsewhere(self):
        self.put_raw_and_lz4()
        out = self.path("out", "store-index.json")
        os.makedirs(os.path.dirname(out))
        r = self.ok("index", "--output", out, self.store)
        self.assertEqual((r.out, r.err), ("", ""))
        doc = self.load(out)
        self.assertEqual(sorted(doc["models"]), ["lz", "raw"])
        self.assertFalse(os.path.exists(os.path.join(self.store, INDEX)))
        self.assertEqual(os.listdir(os.path.dirname(out)),
                         ["store-index.json"])
        # Same bytes as the default place would get.
        self.index()
        with open(out, "rb") as f, \
                open(os.path.join(self.store, INDEX), "rb") as g:
            self.assertEqual(f.read(), g.read())

    def test_output_directory_missing(self):
        out = self.path("no", "such", "index.json")
        self.fails(EXIT_FAIL, "index", "--output", out, self.store,
                   expect=["cannot create '%s/.index.json.tmp." %
                           self.path("no", "such"),
                           "No such file or directory"])

    def test_output_onto_a_directory(self):
        out = self.path("taken")
        os.mkdir(out)
        self.fails(EXIT_FAIL, "index", "--output", out, self.store,
                   expect=["cannot rename into place '%s'" % out])
        self.assertEqual(self.temps(self.dir), [])

    def tmpfs(self, opts):
        """Mounts a small tmpfs in the work dir, or skips (needs root)."""
        mnt = self.path("tmpfs")
        os.mkdir(mnt)
        return self.tmpfs_at(mnt, opts)

    def tmpfs_at(self, mnt, opts):
        """Mounts a small tmpfs on directory @mnt, or skips."""
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", mnt],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        if r.returncode != 0:
            self.skipTest("cannot mount a tmpfs: %s" % r.stderr.decode())
        self.addCleanup(subprocess.run, ["umount", mnt])
        return mnt

    def remount(self, mnt, how):
        r = subprocess.run(["mount", "-o", "remount," + how, mnt],
                           stderr=subprocess.PIPE)
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_unwritable_directory_keeps_previous_index(self):
        mnt = self.tmpfs("size=1m")
        self.store = os.path.join(mnt, "store")
        os.mkdir(self.store)
        self.put(self.pack(), "--key", "a")
        self.remount(mnt, "ro")
        self.fails(EXIT_FAIL, "index", "--content-names", self.store,
                   expect=["cannot create directory '%s/objects'" %
                           self.store, "Read-only file system"])
        self.remount(mnt, "rw")
        first = self.index("--content-names")
        with open(os.path.join(self.store, INDEX), "rb") as f:
            first_bytes = f.read()
        self.put(self.pack("b.mfs", self.emb + 1), "--key", "b")
        self.remount(mnt, "ro")
        self.fails(EXIT_FAIL, "index", self.store,
                   expect=["modelctl: index: cannot create '%s/.index.json"
                           ".tmp." % self.store, "Read-only file system"])
        # b has no object yet: it cannot be linked, and no index names it.
        self.fails(EXIT_FAIL, "index", "--content-names", self.store,
                   expect=["cannot link '%s/objects/b." % self.store,
                           "Read-only file system"])
        self.assertEqual(self.store_files(), ["a.mfs", "b.mfs", INDEX,
                                              "objects"])
        with open(os.path.join(self.store, INDEX), "rb") as f:
            self.assertEqual(f.read(), first_bytes)
        self.assertEqual(sorted(first["models"]), ["a"])

    def test_objects_on_another_file_system_are_copied(self):
        self.put_raw_and_lz4()
        os.chmod(self.model("raw"), 0o640)
        objects = os.path.join(self.store, "objects")
        os.mkdir(objects)
        self.tmpfs_at(objects, "size=1m")
        doc = self.index("--content-names")
        for key, entry in doc["models"].items():
            obj = os.path.join(self.store, entry["object"])
            self.assertFalse(os.path.samefile(obj, self.model(key)))
            with open(obj, "rb") as f, open(self.model(key), "rb") as g:
                self.assertEqual(f.read(), g.read())
            self.assertEqual(os.stat(obj).st_mode,
                             os.stat(self.model(key)).st_mode)
            self.check_entry(key, entry, entry["object"])
        self.assertEqual(self.temps(objects), [])

    def test_copy_that_does_not_fit(self):
        self.put(self.pack(), "--key", "m")
        objects = os.path.join(self.store, "objects")
        os.mkdir(objects)
        self.tmpfs_at(objects, "size=16k")
        self.fails(EXIT_FAIL, "index", "--content-names", self.store,
                   expect=["cannot write '%s/.m." % objects,
                           "No space left on device"])
        self.assertEqual(os.listdir(objects), [])
        self.assertFalse(os.path.exists(os.path.join(self.store, INDEX)))

    def test_descriptor_shortage_is_no_verdict(self):
        """Running out of descriptors says nothing about an entry: the
        command fails rather than write an index without the model."""
        import resource
        self.put(self.pack(), "--key", "m")

        def limit():
            resource.setrlimit(resource.RLIMIT_NOFILE, (5, 5))
        p = subprocess.run([clitest.MODELCTL, "index", self.store],
                           stderr=subprocess.PIPE, preexec_fn=limit)
        err = p.stderr.decode()
        self.assertEqual(p.returncode, EXIT_FAIL, err)
        self.assertIn("Too many open files", err)
        self.assertNotIn("warning", err)
        self.assertFalse(os.path.exists(os.path.join(self.store, INDEX)))

    def test_disk_full_leaves_no_temporary(self):
        mnt = self.tmpfs("size=64k")
        self.store = os.path.join(mnt, "store")
        os.mkdir(self.store)
        self.put(self.pack(), "--key", "a")
        self.index()
        os.mkdir(os.path.join(mnt, "pad"))
        fd = os.open(os.path.join(mnt, "pad", "fill"),
                     os.O_WRONLY | os.O_CREAT)
        try:
            while os.write(fd, b"\0" * 4096) > 0:
                pass
        except OSError:
            pass
        finally:
            os.close(fd)
        self.fails(EXIT_FAIL, "index", self.store,
                   expect=["cannot write '%s/.index.json.tmp." % self.store,
                           "No space left on device"])
        self.assertEqual(self.temps(), [])

    def test_usage_errors(self):
        self.fails(EXIT_USAGE, "index", expect=["missing STORE_DIR"])
        self.fails(EXIT_USAGE, "index", "a", "b",
                   expect=["index takes one STORE_DIR, got 2"])
        self.fails(EXIT_USAGE, "index", "--output", expect=["--output"])
        self.fails(EXIT_USAGE, "index", "--output", "", self.store,
                   expect=["--output needs a file name"])
        self.fails(EXIT_USAGE, "index", "--bogus", self.store,
                   expect=["--bogus"])
        r = self.ok("index", "--help")
        self.assertIn("Usage: modelctl index", r.out)
        self.assertIn("index", self.ok("--help").out)


if __name__ == "__main__":
    clitest.main()
