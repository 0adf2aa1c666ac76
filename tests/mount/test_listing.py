"""Mount test 3: ls, stat, cat manifest.json/metadata.json, xattrs and
holder tracking.

- directory listings are exact;
- st_size of an array file is its header length (the manifest's
  data_offset: 4096, or NumPy's compact header for an array with no
  elements) + raw size, of the JSON files the length of their content;
- mode and ownership mirror the container file (write bits removed,
  directories get x where r is set);
- manifest.json equals `modelctl inspect --json` and describes the arrays
  as packed (cross-checked against the container's own chunk table);
- metadata.json is the packed metadata file byte for byte;
- user.modelfs.* xattrs on arrays and model dirs; open handles and holder
  pids follow open/close, also in /.status."""

import errno
import json
import os
import re
import stat
import subprocess
import time

import numpy as np

import harness as h

METADATA = {
    "alpha": ('{\n  "name": "alpha",  "n": 3,\n  "nested": {"list": '
              '[1, 2.5, null, true]},\n  "unicode": "caf\u00e9 \u2603 "'
              '\n}\n').encode("utf-8"),
    "beta": b'{"k":"v"}',
    "gamma": None,  # no --metadata: the library's default document
}
MODES = {"alpha": 0o640, "beta": 0o644, "gamma": 0o604}
OWNERS = {"alpha": (4242, 4343), "beta": (0, 0), "gamma": (0, 4343)}


def want_modes(cmode):
    fmode = cmode & 0o7777 & ~0o222
    dmode = fmode | ((fmode & 0o444) >> 2)
    return fmode, dmode


def xattr(path, name):
    return os.getxattr(path, name)


def wait_for(pred, timeout=3.0):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v or time.monotonic() > deadline:
            return v
        time.sleep(0.02)


def holders_of(path):
    raw = xattr(path, "user.modelfs.holders").decode()
    return raw, set(int(x) for x in re.findall(r"\d+", raw))


def handles_of(path):
    raw = xattr(path, "user.modelfs.open_handles").decode().strip()
    h.check(re.fullmatch(r"\d+", raw),
            "user.modelfs.open_handles of %s is %r, not a number" %
            (path, raw))
    return int(raw)


def check_manifest(errors, key, man, ins, arrays, container, chunk_size,
                   lz4):
    """@man: served manifest, @ins: modelctl inspect, @arrays: source."""
    if man.get("key") != key:
        errors.append("%s: manifest key %r" % (key, man.get("key")))
    a = {k: v for k, v in man.items() if k != "key"}
    b = {k: v for k, v in ins.items() if k != "key"}
    if a != b:
        diff = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
        errors.append("%s: manifest.json differs from modelctl inspect "
                      "--json in %s" % (key, diff))
    need = ["key", "format_version", "file_size", "total_raw_size",
            "total_stored_size", "arrays"]
    missing = [k for k in need if k not in man]
    if missing:
        errors.append("%s: manifest lacks %s" % (key, missing))
        return
    parsed = h.parse_container(container)
    if man["file_size"] != os.stat(container).st_size:
        errors.append("%s: file_size %s, container has %d bytes" %
                      (key, man["file_size"], os.stat(container).st_size))
    if man["format_version"] != 1:
        errors.append("%s: format_version %r" % (key, man["format_version"]))
    if [x.get("name") for x in man["arrays"]] != [x.name for x in arrays]:
        errors.append("%s: manifest array names %s, expected %s" %
                      (key, [x.get("name") for x in man["arrays"]],
                       [x.name for x in arrays]))
        return
    tot_raw = tot_stored = 0
    for src, ent, par in zip(arrays, man["arrays"], parsed["arrays"]):
        w = "%s/%s" % (key, src.name)
        cs = chunk_size
        raw = len(src.raw)
        nchunks = (raw + cs - 1) // cs
        want = {
            "name": src.name, "file": src.name + ".npy",
            "dtype": src.dtype_name,
            "npy_descr": src.data.dtype.str,
            "shape": list(src.data.shape),
            "order": "F" if src.fortran else "C",
            "codec": "lz4" if lz4 else "none",
            "raw_size": raw, "data_offset": h.npy_header_len(src),
            "container_offset": par["data_offset"],
            "stored_size": par["stored_length"],
            "chunk_size": cs, "chunks": nchunks,
        }
        for k, v in want.items():
            if ent.get(k) != v:
                errors.append("%s: manifest %s = %r, expected %r" %
                              (w, k, ent.get(k), v))
        sums = ent.get("chunk_checksums")
        if not isinstance(sums, str) or len(sums) != 16 * nchunks:
            errors.append("%s: chunk_checksums %r" % (w, sums))
        else:
            try:
                got = [int(sums[i:i + 16], 16)
                       for i in range(0, len(sums), 16)]
            except ValueError:
                got = None
            if got != [c[2] for c in par["chunks"]]:
                errors.append("%s: chunk_checksums differ from the "
                              "container's chunk table" % w)
        if not lz4 and par["stored_length"] != raw:
            errors.append("%s: raw array stored in %d bytes" %
                          (w, par["stored_length"]))
        tot_raw += raw
        tot_stored += par["stored_length"]
    if man["total_raw_size"] != tot_raw:
        errors.append("%s: total_raw_size %s, expected %d" %
                      (key, man["total_raw_size"], tot_raw))
    if man["total_stored_size"] != tot_stored:
        errors.append("%s: total_stored_size %s, expected %d" %
                      (key, man["total_stored_size"], tot_stored))


def main(work):
    rng = np.random.default_rng(3)
    arrays = [
        h.Array("emb", h.random_array(rng, "float32", (3, 4))),
        h.Array("F.cube", h.random_array(rng, "int16", (7, 5, 3), "F")),
        h.Array("bf", h.random_array(rng, "bfloat16", (10,)), "bfloat16"),
        h.Array("zero-d", h.random_array(rng, "float64", ())),
        h.Array("none_", h.random_array(rng, "uint8", (0,))),
        h.Array("long", h.random_array(rng, "complex64", (2000,))),
    ]
    store = work.dir("store")
    cfg = {"alpha": (False, 4096), "beta": (True, 8192),
           "gamma": (True, 262144)}
    for key, (lz4, cs) in cfg.items():
        path = os.path.join(store, key + ".mfs")
        h.pack(work, path, arrays, lz4=lz4,
               chunk_size=cs if cs != 262144 else None,
               metadata=METADATA[key])
        os.chmod(path, MODES[key])
        os.chown(path, *OWNERS[key])
    # Files that are not models.
    with open(os.path.join(store, "README.txt"), "w") as f:
        f.write("not a model\n")
    os.mkdir(os.path.join(store, "subdir"))

    errors = []
    with h.mounted(work, store) as m:
        root = sorted(os.listdir(m.path))
        if [k for k in root if k != ".status"] != sorted(cfg):
            errors.append("root lists %s, expected %s" % (root, sorted(cfg)))
        st = os.stat(m.path)
        if not stat.S_ISDIR(st.st_mode):
            errors.append("root is not a directory")
        for key in cfg:
            cpath = os.path.join(store, key + ".mfs")
            cst = os.stat(cpath)
            fmode, dmode = want_modes(cst.st_mode)
            d = m.p(key)
            names = sorted(os.listdir(d))
            want = sorted(["manifest.json", "metadata.json"] +
                          [a.name + ".npy" for a in arrays])
            if names != want:
                errors.append("%s lists %s, expected %s" % (key, names, want))
            dst = os.stat(d)
            if not stat.S_ISDIR(dst.st_mode) or \
                    stat.S_IMODE(dst.st_mode) != dmode:
                errors.append("%s: dir mode %o, expected dir %o" %
                              (key, dst.st_mode, dmode))
            if (dst.st_uid, dst.st_gid) != (cst.st_uid, cst.st_gid):
                errors.append("%s: dir owner %d:%d, expected %d:%d" %
                              (key, dst.st_uid, dst.st_gid, cst.st_uid,
                               cst.st_gid))
            for n in want:
                p = os.path.join(d, n)
                fst = os.stat(p)
                if not stat.S_ISREG(fst.st_mode) or \
                        stat.S_IMODE(fst.st_mode) != fmode:
                    errors.append("%s/%s: mode %o, expected file %o" %
                                  (key, n, fst.st_mode, fmode))
                if (fst.st_uid, fst.st_gid) != (cst.st_uid, cst.st_gid):
                    errors.append("%s/%s: owner %d:%d, expected %d:%d" %
                                  (key, n, fst.st_uid, fst.st_gid,
                                   cst.st_uid, cst.st_gid))
                content = h.read_file(p)
                if fst.st_size != len(content):
                    errors.append("%s/%s: st_size %d but %d bytes read" %
                                  (key, n, fst.st_size, len(content)))
            # manifest.json (via cat)
            man_raw = subprocess.run(["cat", os.path.join(d,
                                                          "manifest.json")],
                                     stdout=subprocess.PIPE).stdout
            try:
                man = json.loads(man_raw)
            except ValueError as e:
                errors.append("%s/manifest.json is not JSON: %s: %r" %
                              (key, e, man_raw[:200]))
                man = None
            if man is not None:
                check_manifest(errors, key, man, h.inspect(cpath), arrays,
                               cpath, cfg[key][1], cfg[key][0])
            offsets = {}
            if man is not None:
                offsets = {x.get("name"): x.get("data_offset")
                           for x in man.get("arrays", [])}
            for a in arrays:
                p = os.path.join(d, a.name + ".npy")
                size = os.stat(p).st_size
                # The header is as long as the manifest's data_offset says
                # (check_manifest holds that to 4096 or numpy's header).
                hlen = offsets.get(a.name)
                if not isinstance(hlen, int):
                    errors.append("%s/%s: manifest data_offset %r" %
                                  (key, a.name, hlen))
                    hlen = h.npy_header_len(a)
                if size != hlen + len(a.raw):
                    errors.append("%s/%s.npy: st_size %d, expected %d" %
                                  (key, a.name, size, hlen + len(a.raw)))
                # head -c 200 gives the start of the NPY header (all of an
                # empty array's compact one)
                head = subprocess.run(["head", "-c", "200", p],
                                      stdout=subprocess.PIPE).stdout
                if not head.startswith(b"\x93NUMPY\x01\x00") or \
                        len(head) != min(200, size):
                    errors.append("%s/%s.npy: head -c 200 gave %d bytes: "
                                  "%r" % (key, a.name, len(head), head[:16]))
                # reads at and across the end of the file
                fd = os.open(p, os.O_RDONLY)
                try:
                    tail = os.pread(fd, 100, size - 50)
                    past = os.pread(fd, 100, size)
                    far = os.pread(fd, 100, size + 12345)
                finally:
                    os.close(fd)
                # the header ends in space padding and "\n" (NPY format);
                # an empty array's is numpy's own
                if a.data.size:
                    want_tail = (b" " * 49 + b"\n" + a.raw)[-50:]
                else:
                    want_tail = h.numpy_npy_header(a)[-50:]
                if tail != want_tail or past != b"" or far != b"":
                    errors.append("%s/%s.npy: reads at the end gave %d, %d, "
                                  "%d bytes (expected 50 right ones, 0, 0)"
                                  % (key, a.name, len(tail), len(past),
                                     len(far)))
                # xattrs
                try:
                    names_x = set(os.listxattr(p))
                    for x in ("user.modelfs.dtype", "user.modelfs.shape",
                              "user.modelfs.codec"):
                        if x not in names_x:
                            errors.append("%s/%s.npy: listxattr lacks %s "
                                          "(has %s)" % (key, a.name, x,
                                                        sorted(names_x)))
                    vals = {
                        "user.modelfs.dtype": a.dtype_name.encode(),
                        "user.modelfs.shape": ",".join(
                            str(s) for s in a.data.shape).encode(),
                        "user.modelfs.codec":
                            b"lz4" if cfg[key][0] else b"none",
                    }
                    for x, v in vals.items():
                        got = xattr(p, x)
                        if got != v:
                            errors.append("%s/%s.npy: %s = %r, expected %r"
                                          % (key, a.name, x, got, v))
                except OSError as e:
                    errors.append("%s/%s.npy: xattr: %s" % (key, a.name, e))
                err = h.expect_errno(errno.ENODATA, os.getxattr, p,
                                     "user.modelfs.nonexistent")
                if err:
                    errors.append(err)
            # metadata.json
            meta = h.read_file(os.path.join(d, "metadata.json"))
            if METADATA[key] is not None:
                if meta != METADATA[key]:
                    errors.append("%s/metadata.json %r, expected verbatim "
                                  "%r" % (key, meta, METADATA[key]))
            else:
                try:
                    if json.loads(meta) != {}:
                        errors.append("%s/metadata.json default is %r" %
                                      (key, meta))
                except ValueError:
                    errors.append("%s/metadata.json default %r is not "
                                  "JSON" % (key, meta))
        # Nonexistent names.
        for p in (m.p("nope"), m.p("alpha", "nope.npy"),
                  m.p("alpha", "emb"), m.p("alpha.mfs"),
                  m.p("README.txt"), m.p("subdir")):
            err = h.expect_errno(errno.ENOENT, os.stat, p)
            if err:
                errors.append(err)

        # Holder tracking: xattrs and .status follow open/close.
        d = m.p("beta")
        mine = os.getpid()
        if not wait_for(lambda: handles_of(d) == 0):
            errors.append("beta: open_handles %d with nothing open" %
                          handles_of(d))
        fds = [os.open(m.p("beta", "emb.npy"), os.O_RDONLY),
               os.open(m.p("beta", "long.npy"), os.O_RDONLY)]
        r, w = os.pipe()
        child = os.fork()
        if child == 0:
            try:
                os.close(w)
                fd = os.open(m.p("beta", "bf.npy"), os.O_RDONLY)
                os.read(r, 1)  # wait for the parent
                os.close(fd)
            finally:
                os._exit(0)
        os.close(r)
        try:
            time.sleep(0.2)  # let the child open its file
            if handles_of(d) != 3:
                errors.append("beta: open_handles %d with 3 open "
                              "(2 here, 1 in a child)" % handles_of(d))
            raw, pids = holders_of(d)
            if not {mine, child} <= pids:
                errors.append("beta: holders %r, expected pids %d and %d" %
                              (raw, mine, child))
            if handles_of(m.p("alpha")) != 0:
                errors.append("alpha: open_handles %d, none open" %
                              handles_of(m.p("alpha")))
            stj = m.status()
            ent = [x for x in stj.get("models", []) if x.get("key") == "beta"]
            if len(ent) != 1:
                errors.append(".status models has %d entries for beta: %s" %
                              (len(ent), json.dumps(stj)[:600]))
            else:
                ent = ent[0]
                hold = {x.get("pid"): x.get("handles")
                        for x in ent.get("holders", [])}
                if ent.get("open_handles") != 3 or \
                        hold != {mine: 2, child: 1}:
                    errors.append(".status beta: open_handles %r, holders %r;"
                                  " expected 3 and {%d: 2, %d: 1}" %
                                  (ent.get("open_handles"), hold, mine,
                                   child))
            if stj.get("totals", {}).get("open_handles") != 3:
                errors.append(".status totals.open_handles %r, expected 3" %
                              stj.get("totals", {}).get("open_handles"))
        finally:
            os.close(w)
            os.waitpid(child, 0)
            for fd in fds:
                os.close(fd)
        if not wait_for(lambda: handles_of(d) == 0):
            errors.append("beta: open_handles %d after every close" %
                          handles_of(d))
        raw, pids = holders_of(d)
        if pids & {mine, child}:
            errors.append("beta: holders %r after every close" % raw)
        out = subprocess.run(["ls", "-la", m.path, m.p("alpha")],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        if out.returncode != 0:
            errors.append("ls -la failed: %s" % out.stderr.decode())
        m.check_alive()
    h.check(not errors, "%d problems:\n  %s" % (len(errors),
                                                 "\n  ".join(errors)))


if __name__ == "__main__":
    h.run(main)
