"""modelctl usage: help texts, --version, and exit status 2 for every
usage error."""
import os

import numpy as np

import clitest
from clitest import CliTest, EXIT_FAIL, EXIT_OK, EXIT_USAGE

COMMANDS = ["pack", "inspect", "verify", "export"]


class TestUsage(CliTest):
    def setUp(self):
        super().setUp()
        self.npy = self.save("a", np.arange(4, dtype=np.int32))
        self.mfs = self.path("m.mfs")
        self.ok("pack", self.mfs, "a=" + self.npy)

    def usage_error(self, *args, expect=()):
        r = self.fails(EXIT_USAGE, *args, expect=expect)
        self.assertIn("--help'.", r.err)
        self.assertEqual(r.out, "")
        return r

    def test_main_help_lists_commands_and_exit_codes(self):
        for flag in ["--help", "-h", "help"]:
            r = self.ok(flag)
            self.assertTrue(r.out.startswith("Usage: modelctl"), r)
            for c in COMMANDS:
                self.assertIn("\n  %s " % c, r.out)
            self.assertIn("Exit status: 0 success, 1 the operation failed, "
                          "2 usage error", r.out)

    def test_command_help_three_ways(self):
        for c in COMMANDS:
            text = self.ok("help", c).out
            self.assertTrue(text.startswith("Usage: modelctl %s" % c), text)
            self.assertIn("Exit status", text)
            self.assertEqual(self.ok(c, "--help").out, text)
            self.assertEqual(self.ok(c, "-h").out, text)
            # --help wins wherever it stands.
            self.assertEqual(self.ok(c, "x", "--help").out, text)

    def test_version(self):
        r = self.ok("--version")
        self.assertRegex(r.out, r"^modelctl \d+\.\d+\.\d+ "
                                r"\(libmodelfs \d+\.\d+\.\d+\)\n$")

    def test_no_arguments(self):
        r = self.run_ctl()
        self.assertEqual(r.rc, EXIT_USAGE, r)
        self.assertTrue(r.err.startswith("Usage: modelctl"), r)

    def test_unknown_command_and_global_option(self):
        self.usage_error("frobnicate", expect=["modelctl: unknown command "
                                               "'frobnicate'"])
        self.usage_error("--bogus", expect=["unknown option '--bogus'"])
        self.usage_error("help", "frobnicate",
                         expect=["unknown command 'frobnicate'"])
        self.usage_error("help", "pack", "verify",
                         expect=["help takes one command name"])

    def test_unknown_options(self):
        for c in COMMANDS:
            self.usage_error(c, "--bogus", self.mfs,
                             expect=["modelctl: %s: unknown option "
                                     "'--bogus'" % c])
            self.usage_error(c, "-q", self.mfs,
                             expect=["modelctl: %s: unknown option '-q'"
                                     % c])
        self.usage_error("inspect", "--json=yes", self.mfs,
                         expect=["option '--json=yes' takes no argument"])
        self.usage_error("pack", self.mfs, "--lz4=1", "a=" + self.npy,
                         expect=["option '--lz4=1' takes no argument"])

    def test_missing_arguments(self):
        self.usage_error("pack", expect=["missing OUT.mfs"])
        self.usage_error("pack", self.path("o.mfs"),
                         expect=["missing inputs"])
        self.usage_error("pack", self.path("o.mfs"), "a=" + self.npy,
                         "--metadata",
                         expect=["option '--metadata' needs an argument"])
        self.usage_error("pack", self.path("o.mfs"), "a=" + self.npy,
                         "--chunk-size",
                         expect=["option '--chunk-size' needs an argument"])
        self.usage_error("inspect", expect=["missing FILE.mfs"])
        self.usage_error("verify", expect=["missing FILE.mfs"])
        self.usage_error("export", expect=["missing FILE.mfs and DIR"])
        self.usage_error("export", self.mfs, expect=["missing DIR"])

    def test_too_many_arguments(self):
        self.usage_error("inspect", self.mfs, self.mfs,
                         expect=["inspect takes one FILE.mfs"])
        self.usage_error("export", self.mfs, self.path("d"), "extra",
                         expect=["export takes FILE.mfs and DIR"])
        self.assertFalse(os.path.exists(self.path("d")))

    def test_pack_input_shapes(self):
        out = self.path("o.mfs")
        # One argument without '=' must be a directory.
        self.usage_error("pack", out, self.npy,
                         expect=["'%s' is not a directory; give files as "
                                 "NAME=FILE.npy" % self.npy])
        # Several inputs are all NAME=FILE.
        self.usage_error("pack", out, "a=" + self.npy, self.dir,
                         expect=["'%s' is not NAME=FILE.npy" % self.dir])
        self.assert_nothing_left(out)

    def test_bad_chunk_sizes(self):
        out = self.path("o.mfs")
        for bad in ["abc", "", "-4096", "+4096", " 4096", "4096X", "4G",
                    "1.5M", "99999999999999999999999"]:
            self.usage_error("pack", out, "--chunk-size", bad,
                             "a=" + self.npy,
                             expect=["--chunk-size '%s' is not a size" % bad])
        for bad in ["3000", "2K", "2048", "0", "128M", "65537K",
                    "18014398509481984M"]:
            self.usage_error("pack", out, "--chunk-size", bad,
                             "a=" + self.npy,
                             expect=["--chunk-size '%s' must be a power of "
                                     "two from 4096 (4K) to 67108864 (64M) "
                                     "bytes" % bad])
        self.assert_nothing_left(out)

    def test_output_write_failure(self):
        with open("/dev/full", "wb") as full:
            r = self.run_ctl("--help", stdout=full)
        self.assertEqual(r.rc, EXIT_FAIL, r)
        self.assertIn("modelctl: cannot write the output", r.err)


if __name__ == "__main__":
    clitest.main()
