"""Mount test: the mount speaks the protocol lib/MOUNT.md specifies.

A store with one model (a raw and an LZ4 array) and one bad entry is
mounted; a process holds an array file.  /.status, read as root, carries
exactly the keys MOUNT.md lists for the top level, `totals`, `models[]`,
`models[].holders[]` and `skipped[]`, in the listed order; every extended
attribute MOUNT.md lists answers on its node, and listxattr of each node
gives exactly its names; manifest.json carries the keys MOUNT.md lists."""

import json
import os
import re

import numpy as np

import harness as h

SPEC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                    "lib", "MOUNT.md")


def spec_sections():
    """{heading: [first-column backticked names of its table rows]}."""
    sections, current = {}, None
    with open(SPEC) as f:
        for line in f:
            if line.startswith("#"):
                current = line.strip("# \n")
                sections[current] = []
            elif current and line.startswith("| `"):
                first = line.split("|")[1]
                sections[current] += re.findall(r"`([^`]+)`", first)
    return sections


def xattr_rows():
    """[(node, name)] of MOUNT.md's extended attribute table."""
    rows = []
    with open(SPEC) as f:
        for line in f:
            cells = [c.strip() for c in line.split("|")[1:-1]]
            if len(cells) == 3 and cells[1].startswith("`user.modelfs."):
                rows.append((cells[0].strip("`"), cells[1].strip("`")))
    return rows


def check_keys(what, obj, want):
    got = list(obj.keys())
    h.check(got == want, "%s keys\n  got  %s\n  spec %s" % (what, got, want))


def main(work):
    store = work.dir("store")
    rng = np.random.default_rng(11)
    arrays = [h.Array("a", h.random_array(rng, "float32", (64, 3))),
              h.Array("b", h.compressible_array(rng, np.int32, 5000))]
    h.pack(work, os.path.join(store, "m.mfs"), arrays, lz4=True,
           metadata=b'{"spec": true}')
    with open(os.path.join(store, "bad.mfs"), "wb") as f:
        f.write(b"not a container")
    sec = spec_sections()
    with h.mounted(work, store) as m:
        fd = os.open(m.p("m", "a.npy"), os.O_RDONLY)
        try:
            st = m.status()
            # "remote" is only there for a store at a URL (MOUNT.md).
            check_keys("top level", st,
                       [k for k in sec["Top level"] if k != "remote"])
            check_keys("totals", st["totals"], sec["`totals`"])
            h.check(len(st["models"]) == 1, "models %r" % st["models"])
            model = st["models"][0]
            check_keys("models[]", model, sec["`models[]`"])
            h.check(len(model["holders"]) == 1, "holders %r" %
                    model["holders"])
            check_keys("holders[]", model["holders"][0],
                       sec["`models[].holders[]`"])
            h.check(len(st["skipped"]) == 1, "skipped %r" % st["skipped"])
            check_keys("skipped[]", st["skipped"][0], sec["`skipped[]`"])
            nodes = {"root": m.path, "KEY/": m.p("m"),
                     "ARRAY.npy": m.p("m", "b.npy")}
            rows = xattr_rows()
            h.check(len(rows) >= 6, "xattr rows read from MOUNT.md: %r" %
                    rows)
            for node, path in nodes.items():
                names = [n for nd, n in rows if nd == node]
                h.check(names, "MOUNT.md lists no xattr of %s" % node)
                for name in names:
                    val = os.getxattr(path, name)
                    h.check(len(val) > 0 or name == "user.modelfs.shape",
                            "%s %s is empty" % (node, name))
                h.check(sorted(os.listxattr(path)) == sorted(names),
                        "listxattr %s: %r, spec %r" %
                        (node, os.listxattr(path), names))
            h.check(os.getxattr(m.p("m", "b.npy"), "user.modelfs.codec")
                    == b"lz4", "codec of b")
            h.check(os.getxattr(m.p("m", "b.npy"), "user.modelfs.shape")
                    == b"5000", "shape of b")
            h.check(os.getxattr(m.path, "user.modelfs.store_dir") ==
                    os.path.realpath(store).encode(), "store_dir")
            holders = os.getxattr(m.p("m"), "user.modelfs.holders")
            h.check(holders == str(os.getpid()).encode(),
                    "holders %r" % holders)
            manifest = json.loads(h.read_file(m.p("m", "manifest.json")))
            check_keys("manifest.json", manifest,
                       sec["3. Files of a model"])
        finally:
            os.close(fd)


if __name__ == "__main__":
    h.run(main)
