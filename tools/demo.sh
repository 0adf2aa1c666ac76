#!/usr/bin/env bash
# demo.sh BUILD_DIR - generate a demo store, mount it, and show it.
#
# Two models: "itemknn" (an item-item similarity matrix in CSR form plus an
# item index, LZ4-compressed) and "embeddings" (float32 item and user
# factors, raw).  Mounted at /run/models when run as root, else at
# $HOME/modelfs-demo/mnt.  Unmount with: fusermount3 -u MOUNTPOINT
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-$here/build}" && pwd)
modelctl="$build/tools/modelctl"
modelfs="$build/fs/modelfs"
py=/usr/bin/python3

if [ "$(id -u)" = 0 ]; then
	base=/var/lib/modelfs-demo
	mnt=/run/models
else
	base=$HOME/modelfs-demo
	mnt=$base/mnt
fi
store=$base/store
src=$base/src
# Unmount a previous demo mount (also one whose daemon has exited: any
# access to it fails with ENOTCONN) so the store can be regenerated.  A
# plain unmount fails with EBUSY while processes still map its files; the
# lazy one (-z) detaches it anyway and lets those processes finish.
if grep -q " $mnt fuse.modelfs " /proc/mounts; then
	fusermount3 -u "$mnt" 2>/dev/null || fusermount3 -uz "$mnt"
fi
mkdir -p "$store" "$src" "$mnt"

echo "== generating demo arrays in $src"
"$py" - "$src" <<'PY'
import json, os, sys
import numpy as np

out = sys.argv[1]
rng = np.random.default_rng(42)
n_items, n_users, k, dim = 20000, 5000, 50, 64

# Item-item similarity in CSR: k neighbours per item, sorted columns.
indptr = np.arange(0, (n_items + 1) * k, k, dtype=np.int64)
indices = np.sort(rng.integers(0, n_items, size=(n_items, k), dtype=np.int32), axis=1).ravel()
data = rng.random(n_items * k, dtype=np.float32)
item_ids = np.arange(1000, 1000 + n_items, dtype=np.int64)
knn = os.path.join(out, "itemknn")
emb = os.path.join(out, "embeddings")
os.makedirs(knn, exist_ok=True)
os.makedirs(emb, exist_ok=True)
np.save(os.path.join(knn, "sim.indptr.npy"), indptr)
np.save(os.path.join(knn, "sim.indices.npy"), indices)
np.save(os.path.join(knn, "sim.data.npy"), data)
np.save(os.path.join(knn, "item_ids.npy"), item_ids)
np.save(os.path.join(emb, "item_factors.npy"), rng.standard_normal((n_items, dim), dtype=np.float32))
np.save(os.path.join(emb, "user_factors.npy"), rng.standard_normal((n_users, dim), dtype=np.float32))
np.save(os.path.join(emb, "item_bias.npy"), rng.standard_normal(n_items).astype(np.float64))
with open(os.path.join(out, "itemknn.json"), "w") as f:
    json.dump({"algorithm": "item-knn", "neighbors": k, "items": n_items}, f)
with open(os.path.join(out, "embeddings.json"), "w") as f:
    json.dump({"algorithm": "als", "features": dim, "items": n_items, "users": n_users}, f)
PY

echo "== packing the store $store"
# The demo's store holds the demo's models only (a model put by an earlier
# demo run that was interrupted would otherwise stay).
rm -f "$store"/*.mfs
"$modelctl" pack "$store/itemknn.mfs" --lz4 --metadata "$src/itemknn.json" "$src/itemknn"
"$modelctl" pack "$store/embeddings.mfs" --metadata "$src/embeddings.json" "$src/embeddings"
"$modelctl" inspect "$store/itemknn.mfs"

echo "== mounting $store at $mnt"
"$modelfs" "$store" "$mnt"
for _ in $(seq 50); do
	grep -q " $mnt fuse.modelfs " /proc/mounts && break
	sleep 0.1
done

echo "== ls -l $mnt/itemknn $mnt/embeddings"
ls -l "$mnt/itemknn" "$mnt/embeddings"
echo "== cat $mnt/itemknn/metadata.json"
cat "$mnt/itemknn/metadata.json"; echo

echo "== numpy reads the mounted model zero-copy:"
cmd="import numpy as np; d = np.load('$mnt/itemknn/sim.data.npy', mmap_mode='r'); e = np.load('$mnt/embeddings/item_factors.npy', mmap_mode='r'); print(d.dtype, d.shape, float(d[:5].sum()), e.shape, float(e[0] @ e[1]))"
echo "\$ $py -c \"$cmd\""
"$py" -c "$cmd"

echo
echo "== Python: one process fits a model and shares it with 4 workers"
echo "   (modelfs.sharing, the names of lenskit.sharing; see pool.py below)"
cat > "$src/pool.py" <<'PY'
import multiprocessing as mp
import os
import sys

import numpy as np
from sklearn.neighbors import NearestNeighbors

from modelfs.sharing import MountModelStore

_model = None


def attach(client, key, barrier):
    """Pool initializer: map the shared model once per worker."""
    global _model, _barrier
    _model = client.get_model(key)
    _barrier = barrier


def neighbours(item):
    _barrier.wait()  # one item per worker: all four hold the model
    knn = _model.object
    _dist, idx = knn.kneighbors(knn._fit_X[item:item + 1], n_neighbors=4)
    maps = sum(1 for line in open("/proc/self/maps") if sys.argv[1] in line)
    return os.getpid(), item, idx[0].tolist(), maps


if __name__ == "__main__":
    mnt = sys.argv[1]
    emb = np.load(os.path.join(mnt, "embeddings", "item_factors.npy"))
    knn = NearestNeighbors(algorithm="brute").fit(emb)
    with MountModelStore(mnt) as store:
        key = store.put_model(knn)
        print(f"put_model -> {key}: {sorted(os.listdir(os.path.join(mnt, key)))}")
        ctx = mp.get_context("spawn")
        with ctx.Pool(4, initializer=attach,
                      initargs=(store.client(), key, ctx.Barrier(4))) as pool:
            for pid, item, idx, maps in pool.map(neighbours, [0, 1, 2, 3],
                                                 chunksize=1):
                print(f"worker {pid}: item {item} -> neighbours {idx} "
                      f"({maps} mappings of files under {mnt})")
    print(f"store shut down: {key} removed from {mnt}: "
          f"{not os.path.exists(os.path.join(mnt, key))}")
PY
echo "\$ $py $src/pool.py $mnt"
"$py" "$src/pool.py" "$mnt"

echo
echo "The demo store stays mounted at $mnt; unmount it with: fusermount3 -u $mnt"
