"""Remote test 5: options, bad origins and bad indexes.

- Usage errors (exit 2, naming what is wrong): a remote option with a
  directory store, a URL without the trailing '/', bad option values.
- Start-up failures (exit 1, the reason in the log): no index at the
  origin, an index that is not JSON or not a modelfs index, a cache
  directory another daemon serving the same URL holds, SigV4 without
  keys.
- Bad index entries (a bad key, an object name leaving the store, a
  checksum that is not 16 hex digits, a size or checksum the object's
  header contradicts) are skipped with the reason; the rest is served.
- No origin and no cache at the first start: the mount starts empty and
  shows the models once the origin answers.
- --header and --aws-sigv4 reach the origin (nginx's log shows them).
"""

import json
import os
import subprocess

import numpy as np

import remote as r  # first: puts the mount harness on the path
import harness as h

START_TIMEOUT = 20


def run_daemon(args, env=None):
    """Runs modelfs -f @args to its end (it must fail before mounting);
    returns (status, output)."""
    p = subprocess.run([h.MODELFS, "-f"] + args, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=START_TIMEOUT,
                       env=env)
    return p.returncode, p.stdout.decode(errors="replace")


def expect(args, status, needle, env=None):
    rc, out = run_daemon(args, env)
    h.check(rc == status and needle in out,
            "modelfs %s: exit %d (expected %d), output lacks %r:\n%s" %
            (" ".join(args), rc, status, needle, out))


def usage_errors(work, mnt):
    store = work.dir("store")
    url = "http://127.0.0.1:9/"
    expect(["--cache-dir", "/tmp", store, mnt], 2,
           "--cache-dir applies to a store at a URL only")
    expect(["--prefetch", store, mnt], 2,
           "--prefetch applies to a store at a URL only")
    expect(["http://127.0.0.1:9/store", mnt], 2, "must end in '/'")
    for opt, val, needle in [
            ("--connections", "0", "--connections needs a number from 1"),
            ("--connections", "65", "--connections needs a number from 1"),
            ("--poll", "-1", "--poll needs a number of seconds"),
            ("--read-deadline", "0", "--read-deadline needs a number"),
            ("--cache-size", "lots", "--cache-size needs a size"),
            ("--header", "no colon", "--header needs 'NAME: VALUE'"),
            ("--aws-sigv4", "", "--aws-sigv4 needs a provider")]:
        expect([opt, val, url, mnt], 2, needle)
    expect([url, mnt, "--poll"], 2, "--poll needs a number of seconds")


def start_failures(work, mnt):
    origin = work.dir("origin-bad")
    cache = work.dir("cache-bad")
    with r.Nginx(origin) as ng:
        args = ["--cache-dir", cache, ng.url, mnt]
        expect(args, 1, "index.json: not found at the origin (publish one "
               "with modelctl index)")
        with open(os.path.join(origin, "index.json"), "w") as f:
            f.write("{not json")
        expect(args, 1, "index.json: not JSON")
        with open(os.path.join(origin, "index.json"), "w") as f:
            json.dump({"format": "modelfs-index", "version": 2,
                       "models": {}}, f)
        expect(args, 1, "not a modelfs-index document of version 1")
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("AWS_")}
        expect(["--aws-sigv4", "aws:amz:us-east-1:s3"] + args, 1,
               "AWS_ACCESS_KEY_ID", env=env)


def bad_entries(work, rng):
    origin = work.dir("origin-entries")
    good = [h.Array("g", rng.standard_normal(1000))]
    h.pack(work, os.path.join(origin, "good.mfs"), good)
    h.pack(work, os.path.join(origin, "liar.mfs"), good)
    r.index(origin)
    with open(os.path.join(origin, "index.json")) as f:
        doc = json.load(f)
    ok = doc["models"]["good"]
    doc["models"]["bad key!"] = dict(ok)
    doc["models"]["escape"] = dict(ok, object="../good.mfs")
    doc["models"]["hexless"] = dict(ok, index_checksum="xyz")
    doc["models"]["liar"]["index_checksum"] = "0123456789abcdef"
    with open(os.path.join(origin, "index.json"), "w") as f:
        json.dump(doc, f)
    with r.Nginx(origin) as ng:
        with r.mount_url(work, ng.url, work.dir("cache-entries")) as m:
            keys = sorted(n for n in os.listdir(m.path) if n[0] != ".")
            h.check(keys == ["good"], "served: %s" % keys)
            h.check(h.load_matches(m.p("good", "g.npy"), good[0]),
                    "good/g differs")
            log = m.log()
            for needle in ['model "bad key!" skipped: its key is not valid',
                           'model "escape" skipped: "object" is not a safe',
                           'model "hexless" skipped: "index_checksum" is '
                           'not 16 hex digits',
                           "model liar (", "does not match the index"]:
                h.check(needle in log, "log lacks %r:\n%s" % (needle, log))


def late_origin(work, rng):
    """No origin and no cache at the first start: an empty mount that
    fills once the origin answers.  The daemon's URL is the fault proxy's
    fixed port; the proxy starts late."""
    origin = work.dir("origin-late")
    arrays = [h.Array("l", rng.standard_normal(2000))]
    h.pack(work, os.path.join(origin, "late.mfs"), arrays)
    r.index(origin)
    with r.Nginx(origin) as ng:
        port = r.free_port()
        url = "http://127.0.0.1:%d/" % port
        with r.mount_url(work, url, work.dir("cache-late"),
                         ["--poll", "1", "--read-deadline", "1"]) as m:
            h.check(not [n for n in os.listdir(m.path) if n[0] != "."],
                    "models shown before the origin answered")
            h.check("the mount starts empty" in m.log(), m.log())
            with r.FaultProxy(ng.url, port=port):
                r.wait_for(lambda: os.path.isdir(m.p("late")),
                           "model shown once the origin answers")
                h.check(h.load_matches(m.p("late", "l.npy"), arrays[0]),
                        "late/l differs")


def headers_reach(work, rng):
    origin = work.dir("origin-headers")
    arrays = [h.Array("x", rng.standard_normal(2000))]
    h.pack(work, os.path.join(origin, "m.mfs"), arrays)
    r.index(origin)
    env = dict(os.environ, AWS_ACCESS_KEY_ID="AKIDEXAMPLE",
               AWS_SECRET_ACCESS_KEY="wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLE",
               AWS_SESSION_TOKEN="token-of-the-test")
    saved = dict(os.environ)
    os.environ.update(env)
    try:
        with r.Nginx(origin) as ng:
            with r.mount_url(work, ng.url, work.dir("cache-headers"),
                             ["--header", "X-Modelfs-Test: fleet-42",
                              "--aws-sigv4", "aws:amz:us-east-1:s3"]) as m:
                h.check(h.load_matches(m.p("m", "x.npy"), arrays[0]),
                        "m/x differs")
            ents = ng.entries()
    finally:
        os.environ.clear()
        os.environ.update(saved)
    h.check(ents and all(e["test_header"] == "fleet-42" for e in ents),
            "--header not sent: %s" % ents)
    h.check(all(e["authorization"].startswith("AWS4-HMAC-SHA256 ") and
                e["amz_token"] == "token-of-the-test" for e in ents),
            "requests not signed: %s" % ents)


def second_daemon(work, rng):
    origin = work.dir("origin-two")
    h.pack(work, os.path.join(origin, "m.mfs"),
           [h.Array("x", rng.standard_normal(100))])
    r.index(origin)
    cache = work.dir("cache-two")
    with r.Nginx(origin) as ng:
        with r.mount_url(work, ng.url, cache):
            mnt2 = work.dir("mnt-second")
            expect(["--cache-dir", cache, ng.url, mnt2], 1,
                   "is in use by another modelfs serving")


def main(work):
    rng = np.random.default_rng(15)
    mnt = work.dir("mnt-unused")
    usage_errors(work, mnt)
    start_failures(work, mnt)
    bad_entries(work, rng)
    second_daemon(work, rng)
    headers_reach(work, rng)
    late_origin(work, rng)


if __name__ == "__main__":
    h.run(main)
