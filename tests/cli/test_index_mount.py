"""A store directory holding index.json and objects/ (written by
'modelctl index --content-names') served by the real daemon: the mount
shows exactly the models, neither the index nor the content-named objects
(whose names, KEY.HEX.mfs, would be valid keys at the top level); and
'modelctl index' refusing the mount itself."""
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "mount"))
import harness as h  # noqa: E402

from test_mount_cmds import EXIT_FAIL, fails, ok  # noqa: E402


def main(work):
    store = work.dir("store")
    src = work.dir("src")
    np.save(os.path.join(src, "w.npy"), np.arange(100, dtype=np.float64))
    ok("put", store, "--key", "alpha", "w=%s/w.npy" % src)
    ok("put", store, "--key", "beta", "--lz4", "w=%s/w.npy" % src)
    ok("index", "--content-names", store)
    with open(os.path.join(store, "index.json")) as f:
        models = json.load(f)["models"]
    objects = sorted(os.listdir(os.path.join(store, "objects")))
    h.check(objects == sorted(os.path.basename(m["object"])
                              for m in models.values()),
            "objects/: %r, index: %r" % (objects, models))
    with h.mounted(work, store) as m:
        names = sorted(n for n in os.listdir(m.path) if n != ".status")
        h.check(names == ["alpha", "beta"], "mount root: %r" % names)
        st = m.status()
        h.check(sorted(x["key"] for x in st["models"]) == ["alpha", "beta"],
                ".status models: %r" % st["models"])
        h.check(st.get("skipped", []) == [],
                ".status skipped: %r" % st.get("skipped"))
        arr = np.load(os.path.join(m.path, "beta", "w.npy"))
        h.check(np.array_equal(arr, np.arange(100, dtype=np.float64)),
                "beta/w.npy differs")
        # The mount is no store directory: its store is named.
        fails(EXIT_FAIL, "index", m.path,
              expect=["modelctl: index: '%s' is a modelfs mount" % m.path,
                      store])
        m.check_alive()


if __name__ == "__main__":
    h.run(main)
