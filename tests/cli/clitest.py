"""Shared helpers of the modelctl tests (suite 'cli').

Each test runs the real binary ($MODELFS_BUILD_DIR/tools/modelctl) in a
fresh temporary directory and checks exit status, output and the files
left behind.  Inputs are made with numpy, so run these with /usr/bin/python3.
"""
import json
import os
import shutil
import subprocess
import tempfile
import unittest

import numpy as np

BUILD_DIR = os.environ.get("MODELFS_BUILD_DIR", "build")
MODELCTL = os.path.join(BUILD_DIR, "tools", "modelctl")

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2
PAGE = 4096
NPY_HEADER = 4096


class Result:
    def __init__(self, proc):
        self.rc = proc.returncode
        self.out = proc.stdout
        self.err = proc.stderr

    def __repr__(self):
        return "rc=%d\nstdout:\n%s\nstderr:\n%s" % (self.rc, self.out,
                                                     self.err)


class CliTest(unittest.TestCase):
    """A test case with a private work directory and modelctl runners."""

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="modelctl-test-")
        self.addCleanup(shutil.rmtree, self.dir, True)

    def path(self, *parts):
        return os.path.join(self.dir, *parts)

    def run_ctl(self, *args, stdin=None, stdout=subprocess.PIPE):
        proc = subprocess.run([MODELCTL] + [str(a) for a in args],
                              input=stdin, stdout=stdout,
                              stderr=subprocess.PIPE, timeout=300)
        r = Result(proc)
        if r.out is not None:
            r.out = r.out.decode("utf-8", "replace")
        r.err = r.err.decode("utf-8", "replace")
        return r

    def ok(self, *args, **kw):
        r = self.run_ctl(*args, **kw)
        self.assertEqual(r.rc, EXIT_OK, r)
        return r

    def fails(self, rc, *args, expect=(), **kw):
        """Runs modelctl expecting exit status @rc and every string of
        @expect in stderr, whose lines must start with 'modelctl: '."""
        r = self.run_ctl(*args, **kw)
        self.assertEqual(r.rc, rc, r)
        self.assertTrue(r.err.startswith("modelctl: "), r)
        for e in expect:
            self.assertIn(e, r.err, r)
        return r

    def save(self, name, arr, subdir=None):
        """Saves @arr as NAME.npy (in @subdir) and returns its path."""
        d = self.path(subdir) if subdir else self.dir
        os.makedirs(d, exist_ok=True)
        p = os.path.join(d, name + ".npy")
        np.save(p, arr)
        return p

    def write(self, name, data):
        p = self.path(name)
        with open(p, "wb" if isinstance(data, bytes) else "w") as f:
            f.write(data)
        return p

    def manifest(self, mfs):
        return json.loads(self.ok("inspect", "--json", mfs).out)

    def assert_nothing_left(self, out):
        """No file at @out and no writer temporary beside it."""
        self.assertFalse(os.path.exists(out), out)
        d, base = os.path.split(out)
        temps = [n for n in os.listdir(d or ".")
                 if n.startswith("." + base + ".tmp")]
        self.assertEqual(temps, [], "temporary files left in %s" % d)


def table_rows(out):
    """Parses inspect's table: (header line, {array: {column: cell}})."""
    lines = out.splitlines()
    titles = lines[1].split()
    rows = {}
    for line in lines[2:]:
        cells = line.split()
        rows[cells[0]] = dict(zip(titles, cells))
    return lines[0], rows


def main():
    unittest.main(verbosity=2)
