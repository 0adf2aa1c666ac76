"""modelctl rm, ls (on a store directory), gc, and a put killed with
SIGKILL mid-write: no partial model, a temporary file that only a gc or the
next put removes, and never the temporary of a live writer."""
import fcntl
import json
import os
import signal
import subprocess
import time

import numpy as np

import clitest
from clitest import CliTest, EXIT_FAIL, EXIT_OK, EXIT_USAGE, MODELCTL
from test_put import PutTest

NEW_COMMANDS = ["put", "rm", "ls", "holders", "gc"]
# Sizes (MiB) of the model a put is caught writing; the next is tried if
# the put was too quick to be caught.
BIG_SIZES_MIB = [64, 256, 768]
MIB = 1 << 20


def writer_temps(store, key):
    """Temporaries of a writer publishing KEY.mfs in @store."""
    prefix = "." + key + ".mfs.tmp."
    return [n for n in os.listdir(store) if n.startswith(prefix)]


class TestRm(PutTest):
    def test_rm_one_and_several(self):
        mfs = self.pack()
        for k in ["a", "b", "c"]:
            self.put(mfs, "--key", k)
        r = self.ok("rm", self.store, "a")
        self.assertEqual((r.out, r.err), ("", ""))
        self.assertEqual(self.store_files(), ["b.mfs", "c.mfs"])
        self.ok("rm", self.store, "b", "c")
        self.assertEqual(self.store_files(), [])

    def test_rm_unknown_key(self):
        self.put(self.pack(), "--key", "a")
        self.fails(EXIT_FAIL, "rm", self.store, "nope",
                   expect=["modelctl: rm: no model 'nope' in store"])
        # The others are still removed; the status says one failed.
        self.fails(EXIT_FAIL, "rm", self.store, "nope", "a",
                   expect=["no model 'nope'"])
        self.assertEqual(self.store_files(), [])

    def test_rm_invalid_key_removes_nothing(self):
        self.put(self.pack(), "--key", "a")
        self.write("x.mfs", "not a model")
        for key in ["..", "../x", "a/b", ".a", "a b", "k" * 129]:
            r = self.fails(EXIT_USAGE, "rm", self.store, "a", key,
                           expect=["modelctl: rm: invalid key '%s'" % key])
            self.assertIn("Try 'modelctl rm --help'.", r.err)
        self.assertEqual(self.store_files(), ["a.mfs"])
        self.assertTrue(os.path.exists(self.path("x.mfs")))

    def test_rm_missing_store(self):
        self.fails(EXIT_FAIL, "rm", self.path("nostore"), "a",
                   expect=["store directory '%s': No such file"
                           % self.path("nostore")])
        self.assertFalse(os.path.exists(self.path("nostore")))
        self.fails(EXIT_USAGE, "rm", self.store, expect=["missing KEY"])
        self.fails(EXIT_USAGE, "rm", expect=["missing STORE_DIR"])


class TestLs(PutTest):
    def make_store(self):
        """Models 'b' (2 arrays) and 'a' (1 array), a truncated container,
        a container under an invalid key, and files ls must ignore."""
        self.put(self.pack(), "--key", "b")
        self.put("--key", "a", "v=" + self.save("v", self.bias))
        data = self.read(self.model("b"))
        self.write("store/cut.mfs", data[:5000])
        self.write("store/bad key.mfs", data)
        self.write("store/.b.mfs.tmp.XyZ123", data[:100])
        self.write("store/.hidden.mfs", data)
        self.write("store/readme.txt", "not a model")
        return data

    def test_table(self):
        data = self.make_store()
        a_size = os.path.getsize(self.model("a"))
        r = self.ok("ls", self.store)
        lines = r.out.splitlines()
        self.assertEqual(lines[0].split(),
                         ["KEY", "FILE_SIZE", "RAW_SIZE", "ARRAYS"])
        self.assertEqual([l.split() for l in lines[1:3]],
                         [["a", str(a_size), "200", "1"],
                          ["b", str(len(data)),
                           str(self.emb.nbytes + self.bias.nbytes), "2"]])
        self.assertEqual(len(lines), 5, r)
        self.assertTrue(lines[3].startswith("invalid bad key.mfs: "), r)
        self.assertIn("key", lines[3])
        self.assertTrue(lines[4].startswith("invalid cut.mfs: "), r)
        # The reason is not prefixed with the path a second time.
        self.assertNotIn(self.store, lines[4])
        self.assertEqual(r.err, "")

    def test_json(self):
        data = self.make_store()
        doc = json.loads(self.ok("ls", "--json", self.store).out)
        self.assertEqual(doc["path"], self.store)
        self.assertIs(doc["mount"], False)
        self.assertEqual(doc["models"], [
            {"key": "a", "file": "a.mfs",
             "file_size": os.path.getsize(self.model("a")),
             "raw_size": 200, "arrays": 1},
            {"key": "b", "file": "b.mfs", "file_size": len(data),
             "raw_size": self.emb.nbytes + self.bias.nbytes, "arrays": 2}])
        self.assertEqual([i["file"] for i in doc["invalid"]],
                         ["bad key.mfs", "cut.mfs"])
        self.assertIn("0x20", doc["invalid"][0]["error"])
        self.assertIn("5000", doc["invalid"][1]["error"])

    def test_empty_and_missing(self):
        os.mkdir(self.store)
        self.assertEqual(self.ok("ls", self.store).out.split(),
                         ["KEY", "FILE_SIZE", "RAW_SIZE", "ARRAYS"])
        doc = json.loads(self.ok("ls", "--json", self.store).out)
        self.assertEqual((doc["models"], doc["invalid"]), ([], []))
        self.fails(EXIT_FAIL, "ls", self.path("nostore"),
                   expect=["cannot open store directory"])
        self.fails(EXIT_USAGE, "ls", expect=["missing STORE_DIR"])
        self.fails(EXIT_USAGE, "ls", self.store, self.store,
                   expect=["ls takes one STORE_DIR"])


class TestGc(PutTest):
    def test_removes_unlocked_keeps_locked_and_other_files(self):
        os.mkdir(self.store)
        self.write("store/.dead.mfs.tmp.AbC123", "partial")
        self.write("store/.import.tmp.QwE456", "partial")
        self.write("store/.live.mfs.tmp.ZzZ789", "being written")
        self.write("store/keep.mfs", "x")
        self.write("store/.other", "x")
        with open(os.path.join(self.store, ".live.mfs.tmp.ZzZ789")) as live:
            fcntl.flock(live, fcntl.LOCK_EX)
            r = self.ok("gc", self.store)
            self.assertEqual(sorted(r.out.splitlines()), [
                os.path.join(self.store, ".dead.mfs.tmp.AbC123"),
                os.path.join(self.store, ".import.tmp.QwE456")])
            self.assertEqual(self.store_files(),
                             [".live.mfs.tmp.ZzZ789", ".other", "keep.mfs"])
            # The lock holder lets go (the writer died): the next gc
            # removes its file.
            fcntl.flock(live, fcntl.LOCK_UN)
            r = self.ok("gc", self.store)
        self.assertEqual(r.out.splitlines(),
                         [os.path.join(self.store, ".live.mfs.tmp.ZzZ789")])
        self.assertEqual(self.store_files(), [".other", "keep.mfs"])
        self.assertEqual(self.ok("gc", self.store).out, "")

    def test_gc_errors(self):
        self.fails(EXIT_FAIL, "gc", self.path("nostore"),
                   expect=["store directory"])
        self.fails(EXIT_USAGE, "gc", expect=["missing STORE_DIR"])
        self.fails(EXIT_USAGE, "gc", "a", "b", expect=["gc takes one"])

    def test_put_cleans_first(self):
        os.mkdir(self.store)
        self.write("store/.dead.mfs.tmp.AbC123", "partial")
        r = self.ok("put", self.store, self.pack(), "--key", "k")
        self.assertEqual(r.out, "k\n")
        self.assertIn("removed temporary file of a dead writer '%s'"
                      % os.path.join(self.store, ".dead.mfs.tmp.AbC123"),
                      r.err)
        self.assertEqual(self.store_files(), ["k.mfs"])

    def test_gc_removes_staged_files_of_dead_puts_only(self):
        """A put without --key stages its finished container as
        .put-PID-SEQ.mfs before renaming it to its content key; gc removes
        those of processes that are gone and keeps those of live ones."""
        os.mkdir(self.store)
        dead = subprocess.Popen(["true"])
        dead.wait()
        dead_name = ".put-%d-0.mfs" % dead.pid
        live_name = ".put-%d-0.mfs" % os.getpid()
        self.write("store/" + dead_name, "finished but never renamed")
        self.write("store/" + live_name, "being renamed right now")
        r = self.ok("gc", self.store)
        self.assertIn(dead_name, r.out + r.err)
        self.assertEqual(self.store_files(), [live_name])


class TestKilledPut(PutTest):
    """A real put caught mid-write (its temporary file present), stopped
    with SIGSTOP so the state is stable while the test looks."""

    def caught_put(self, key):
        """Starts put --key KEY of a big model and stops it as soon as its
        temporary file appears; returns (process, temporary name)."""
        for mib in BIG_SIZES_MIB:
            npy = self.path("big.npy")
            n = mib * MIB // 8
            np.save(npy, np.frombuffer(os.urandom(n * 8), dtype=np.float64))
            proc = subprocess.Popen([MODELCTL, "put", self.store, "--key",
                                     key, "big=" + npy],
                                    stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE)
            temps = []
            while proc.poll() is None and not temps:
                temps = writer_temps(self.store, key)
            if temps:
                os.kill(proc.pid, signal.SIGSTOP)
                self.wait_stopped(proc)
                # Stopped after its lock: stopped between creating the
                # file and locking it, a gc would rightly remove it.
                if (writer_temps(self.store, key) == temps and
                        self.locked(os.path.join(self.store, temps[0]))):
                    self.addCleanup(self.reap, proc)
                    return proc, temps[0]
                os.kill(proc.pid, signal.SIGCONT)
            proc.communicate()
            if os.path.exists(self.model(key)):
                os.unlink(self.model(key))  # too quick: try a bigger one
        self.fail("no put of up to %d MiB could be caught mid-write"
                  % BIG_SIZES_MIB[-1])

    @staticmethod
    def locked(path):
        """True if another process holds the flock of @path."""
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)
        return False

    def wait_stopped(self, proc):
        """Waits until @proc is stopped (state T) or gone."""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and proc.poll() is None:
            with open("/proc/%d/stat" % proc.pid) as f:
                # The state follows the command name, which is in ().
                if f.read().rsplit(")", 1)[1].split()[0] in "Tt":
                    return
            time.sleep(0.001)

    def reap(self, proc):
        if proc.poll() is None:
            proc.kill()
        proc.communicate()

    def setUp(self):
        super().setUp()
        os.mkdir(self.store)

    def kill(self, proc):
        proc.kill()
        proc.communicate()
        self.assertEqual(proc.returncode, -signal.SIGKILL)

    def test_killed_put_leaves_no_model_and_gc_removes_temp(self):
        proc, temp = self.caught_put("big")
        self.kill(proc)
        self.assertEqual(self.store_files(), [temp])
        self.assertFalse(os.path.exists(self.model("big")))
        # Invisible to ls (not even as invalid).
        doc = json.loads(self.ok("ls", "--json", self.store).out)
        self.assertEqual((doc["models"], doc["invalid"]), ([], []))
        r = self.ok("gc", self.store)
        self.assertEqual(r.out, os.path.join(self.store, temp) + "\n")
        self.assertEqual(self.store_files(), [])

    def test_killed_put_temp_removed_by_next_put(self):
        proc, temp = self.caught_put("big")
        self.kill(proc)
        r = self.ok("put", self.store, self.pack(), "--key", "small")
        self.assertEqual(r.out, "small\n")
        self.assertIn(temp, r.err)
        self.assertEqual(self.store_files(), ["small.mfs"])

    def test_live_put_survives_gc_and_completes(self):
        self.put(self.pack(), "--key", "big")
        old = self.read(self.model("big"))
        proc, temp = self.caught_put("big2")
        r = self.ok("gc", self.store)
        self.assertEqual(r.out, "")
        self.assertIn(temp, self.store_files())
        # A concurrent put's own clean-up leaves it too.
        self.ok("put", self.store, self.pack(), "--key", "other")
        self.assertIn(temp, self.store_files())
        os.kill(proc.pid, signal.SIGCONT)
        out, err = proc.communicate()
        self.assertEqual(proc.returncode, EXIT_OK, err)
        self.assertEqual(out, b"big2\n")
        self.assertEqual(self.store_files(),
                         ["big.mfs", "big2.mfs", "other.mfs"])
        self.ok("verify", self.model("big2"))
        self.assertEqual(self.read(self.model("big")), old)


class TestHelp(CliTest):
    def test_listed_with_help_and_exit_statuses(self):
        main = self.ok("--help").out
        for c in NEW_COMMANDS:
            self.assertIn("\n  %s " % c, main)
            text = self.ok("help", c).out
            self.assertTrue(text.startswith("Usage: modelctl %s" % c), text)
            self.assertIn("Exit status", text)
            self.assertEqual(self.ok(c, "--help").out, text)
            self.assertEqual(self.ok(c, "-h").out, text)
            self.fails(EXIT_USAGE, c, "--bogus",
                       expect=["modelctl: %s: unknown option '--bogus'" % c])
        # Invalid keys are usage errors, and the help says so.
        for c in ["put", "rm", "holders"]:
            self.assertIn("invalid KEY", self.ok("help", c).out)


if __name__ == "__main__":
    clitest.main()
