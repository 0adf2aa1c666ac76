"""Mount test 6: a store full of bad containers.

Mutations of a valid container (truncations at several offsets, a header
byte and an index byte flipped, trailing garbage), an empty file, random
bytes and a valid container under a bad key ("bad key!.mfs"), next to two
good models, a dotfile ".hidden.mfs" and a writer's temporary file
".x.mfs.tmp.abc" (both valid containers).  The daemon must start, log one
line per bad file naming it with a reason, serve exactly the two good
models, and say nothing about the hidden files."""

import errno
import os
import shutil

import numpy as np

import harness as h


def main(work):
    rng = np.random.default_rng(6)
    arrays = [
        h.Array("a", h.random_array(rng, "float32", (2000,))),
        h.Array("b", h.compressible_array(rng, np.int64, 3000)),
    ]
    tmpl_dir = work.dir("templates")
    good = os.path.join(tmpl_dir, "good.mfs")
    h.pack(work, good, arrays, lz4=True, chunk_size=8192,
           metadata=b'{"model": "template"}')
    blob = h.read_file(good)
    parsed = h.parse_container(good)
    idx = parsed["index_offset"]
    size = len(blob)

    store = work.dir("store")

    def put(name, data):
        with open(os.path.join(store, name), "wb") as f:
            f.write(data)

    bad = {
        "trunc-0100.mfs": blob[:100],
        "trunc-4095.mfs": blob[:4095],
        "trunc-4096.mfs": blob[:4096],
        "trunc-mid.mfs": blob[:size // 2],
        "trunc-index.mfs": blob[:idx + 8],
        "trunc-last.mfs": blob[:-1],
        "flip-magic.mfs": bytes([blob[0] ^ 0x01]) + blob[1:],
        "flip-header.mfs": blob[:17] + bytes([blob[17] ^ 0x40]) + blob[18:],
        "flip-index.mfs": blob[:idx + 20] + bytes([blob[idx + 20] ^ 0x10]) +
        blob[idx + 21:],
        "flip-lastbyte.mfs": blob[:-1] + bytes([blob[-1] ^ 0x80]),
        "trailing.mfs": blob + b"garbage at the end\n",
        "empty.mfs": b"",
        "random.mfs": rng.integers(0, 256, 3 * 4096 + 7,
                                   dtype=np.uint8).tobytes(),
        "bad key!.mfs": blob,
        "-dash.mfs": blob,
    }
    for name, data in bad.items():
        put(name, data)
    hidden = [".hidden.mfs", ".x.mfs.tmp.abc"]
    for name in hidden:
        put(name, blob)
    shutil.copyfile(good, os.path.join(store, "good-one.mfs"))
    h.pack(work, os.path.join(store, "good_two.mfs"), arrays[:1], lz4=False,
           chunk_size=4096)

    errors = []
    with h.mounted(work, store) as m:
        names = sorted(n for n in os.listdir(m.path) if n != ".status")
        if names != ["good-one", "good_two"]:
            errors.append("root lists %s, expected exactly the two good "
                          "models" % names)
        for a in arrays:
            if not h.load_matches(m.p("good-one", a.name + ".npy"), a):
                errors.append("good-one/%s.npy wrong" % a.name)
        if not h.load_matches(m.p("good_two", "a.npy"), arrays[0]):
            errors.append("good_two/a.npy wrong")
        for name in list(bad) + hidden:
            stem = name[:-4] if name.endswith(".mfs") else name
            for p in (m.p(stem), m.p(name)):
                err = h.expect_errno(errno.ENOENT, os.stat, p)
                if err:
                    errors.append(err)
        st = m.status()
        if not isinstance(st, dict):
            errors.append(".status is not a JSON object: %r" % st)
        m.check_alive()
        log = m.log()
    lines = log.splitlines()
    for name in bad:
        hits = [ln for ln in lines if name in ln]
        if not hits:
            errors.append("no log line names %r" % name)
        elif not any(len(ln.replace(name, "").strip(" :-'\"")) >= 10
                     for ln in hits):
            errors.append("log line for %r gives no reason: %r" %
                          (name, hits))
    for name in hidden:
        if name in log:
            errors.append("hidden file %r mentioned in the log" % name)
    if errors:
        errors.append("daemon log:\n" + log)
    h.check(not errors, "%d problems:\n  %s" % (len(errors),
                                                 "\n  ".join(errors)))


if __name__ == "__main__":
    h.run(main)
