"""Memory of a training process on a streaming dataset: flat in the number of images (and blind to their size).

For trees of N small JPEGs (N = 500, 2,000, 8,000 by default), a fresh process lists the tree
(`dataset=imagenet`), trains one epoch of a small network on it through one loader worker, and reports its
peak resident memory (ru_maxrss), its loader worker's, and the listing's bytes. The same images held in memory as the in-memory
datasets hold them would take N x 3 x 224 x 224 bytes at the paper's crop size. Also printed: the listing
of a synthetic ImageNet-1K (1,281,167 names of ImageNet's form), which is what a process holds per image.

    python benchmarks/stream_memory.py [--sizes 500 2000 8000 --json benchmarks/results/stream_memory.json]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
CHILD = """
import json, resource, sys, torch
sys.path.insert(0, {root!r})
from study.data import build_dataset
from study.objectives import create_objective
from study.spaces import NetShape, get_space
from study.training.run import Budget
from study.training.trainer import train
torch.set_num_threads(1)
data = build_dataset("imagenet", data_root={tree!r}, image_size=32, resize=36, loader_workers=1)
objective = create_objective("supervised", data)
space = get_space("nb101")
model = objective.build(space.build(space.sample(1, 0)[0], NetShape(3, 32, data.n_classes, 4, 1, stem="imagenet")))
train(model, objective, data, Budget("m", 1, 32, 0.01, eval_batch_size=64), seed=0)
listing = data.train.files.nbytes + data.train.labels.nbytes + data.test.files.nbytes + data.test.labels.nbytes
del data  # ends the loader's worker processes, so their peak is counted below
import gc; gc.collect()
print(json.dumps({{"maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "worker_maxrss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
                  "listing_bytes": listing}}))
"""


def make_tree(root: Path, n: int, classes: int = 10) -> None:
    """`n` training and n // 10 test JPEGs of 64 x 48 noise fields in `classes` class folders."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, count in (("train", n), ("val", max(classes, n // 10))):
        for k in range(count):
            folder = root / split / f"n{k % classes:08d}"
            folder.mkdir(parents=True, exist_ok=True)
            img = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
            Image.fromarray(img).save(folder / f"n{k % classes:08d}_{k}.JPEG", quality=90)


def imagenet_listing_bytes() -> int:
    """Bytes of the listing arrays of ImageNet-1K's training set (names of its form, labels as int32)."""
    n, per = 1_281_167, 1_281_167 // 1000 + 1
    names = np.array([f"n{c:08d}/n{c:08d}_{i}.JPEG".encode() for c in range(1000) for i in range(per)][:n])
    return names.nbytes + 4 * n


def main() -> None:
    """Measure each size in a fresh process; print (and optionally write) the table."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[500, 2000, 8000])
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    rows = []
    for n in args.sizes:
        with tempfile.TemporaryDirectory() as tmp:
            make_tree(Path(tmp), n)
            code = CHILD.format(root=str(ROOT), tree=tmp)
            done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                                  env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})
            row = {"images": n, **json.loads(done.stdout.strip().splitlines()[-1]),
                   "in_memory_224_mb": n * 3 * 224 * 224 / 2**20}
            rows.append(row)
            print(json.dumps(row))
    result = {"rows": rows, "imagenet_listing_mb": imagenet_listing_bytes() / 2**20,
              "peak_rss_self_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    print(json.dumps(result, indent=1))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
