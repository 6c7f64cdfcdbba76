"""The in-memory CIFAR-10 path before and after a change: the trainer's own epoch, two code trees side by side.

Each round runs, in a fresh single-threaded process per code tree (alternating, so load on a shared machine
hits both), one training epoch (`train_epoch`) and one evaluation (`test_each`) of the NAS-Bench-201 network
at the default study's size (C=8, N=1) on CIFAR-10 images held as uint8 tensors, for supervised (batch 128)
and rotation (batch 32), and reports the CPU seconds of each, and the milliseconds per step of the loop
itself (a network too small to matter: 8x8 grayscale, C=1, 16 images a step); the table gives medians over
rounds. Give the trees with `--code` (e.g. a `git archive` of the base commit and this worktree).

    python benchmarks/inmemory_path.py --code /tmp/base --code . [--images 4096 --rounds 5 --json out.json]

Images: CIFAR-10 JPEGs unpacked at /tmp/cifar10-jpeg (decoded once and cached as .npy beside this run's
temporary files), else random uint8 images of CIFAR's shape.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

CIFAR_DIR = Path("/tmp/cifar10-jpeg")
CHILD = """
import json, sys, time
sys.path.insert(0, {code!r})
import numpy as np, torch
torch.set_num_threads(1)
from study.data import ImageData
from study.objectives import create_objective
from study.spaces import NetShape, get_space
from study.training.run import Budget
from study.training.trainer import make_optimizer, test_each, train_epoch
x = torch.from_numpy(np.load({images!r})).permute(0, 3, 1, 2).contiguous()
y = torch.from_numpy(np.load({labels!r}))
mean = torch.tensor([125.3, 123.0, 113.9]) / 255
std = torch.tensor([63.0, 62.1, 66.7]) / 255
data = ImageData("cifar", x[:-1024], y[:-1024], x[-1024:], y[-1024:], 10, mean, std)
space = get_space("nb201")
cell = space.sample(1, seed=0)[0]
out = {{}}
for name, batch in (("supervised", 128), ("rotation", 32)):
    objective = create_objective(name, data, crop_padding=4)
    torch.manual_seed(0)
    model = objective.build(space.build(cell, NetShape(3, 32, 10, 8, 1)))
    opt = make_optimizer(model, Budget("b", 1, batch, 0.1))
    gens = [torch.Generator().manual_seed(0)]
    train_epoch(model, objective, data, opt, batch, gens)  # warm-up: allocator, kernel choice
    t0 = time.process_time()
    train_epoch(model, objective, data, opt, batch, gens)
    t1 = time.process_time()
    test_each(model, objective, data, 512, [0])
    t2 = time.process_time()
    out[name] = {{"train_s": t1 - t0, "test_s": t2 - t1}}
# The loop's own cost: a network too small to matter (8x8 grayscale, C=1), 16 images a step.
tiny = ImageData("tiny", x[:2048, :1, :8, :8].contiguous(), y[:2048], x[-256:, :1, :8, :8].contiguous(), y[-256:], 10,
                 mean[:1], std[:1])
objective = create_objective("supervised", tiny, crop_padding=1)
torch.manual_seed(0)
model = objective.build(space.build(cell, NetShape(1, 8, 10, 1, 1)))
opt = make_optimizer(model, Budget("b", 1, 16, 0.1))
gens = [torch.Generator().manual_seed(0)]
train_epoch(model, objective, tiny, opt, 16, gens)
t0 = time.process_time()
train_epoch(model, objective, tiny, opt, 16, gens)
out["loop"] = {{"ms_per_step": (time.process_time() - t0) * 1000 / -(-tiny.train_x.shape[0] // 16)}}
print(json.dumps(out))
"""


def images(n: int, folder: Path) -> tuple[Path, Path, str]:
    """`n` CIFAR-10 training images and labels saved as .npy in `folder` (random ones without the JPEGs)."""
    if (CIFAR_DIR / "train").is_dir():
        from PIL import Image

        classes = sorted(p.name for p in (CIFAR_DIR / "train").iterdir())
        per_class = n // 10 + 1
        files = [(f, k) for k, c in enumerate(classes)
                 for f in sorted((CIFAR_DIR / "train" / c).glob("*.jpg"))[:per_class]][:n]
        x = np.stack([np.asarray(Image.open(f).convert("RGB")) for f, _ in files])
        y, what = np.array([k for _, k in files]), f"CIFAR-10 JPEGs from {CIFAR_DIR}"
    else:
        rng = np.random.default_rng(0)
        x, y, what = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, n), "random images"
    np.save(folder / "x.npy", x)
    np.save(folder / "y.npy", y.astype(np.int64))
    return folder / "x.npy", folder / "y.npy", what


def main() -> None:
    """Alternate the code trees over rounds; print medians (and write JSON)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--code", type=Path, action="append", required=True, help="a code tree (repeat)")
    p.add_argument("--images", type=int, default=4096, help="training + 1,024 test images")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    runs: dict[str, list[dict]] = {str(c): [] for c in args.code}
    with tempfile.TemporaryDirectory() as tmp:
        x, y, what = images(args.images + 1024, Path(tmp))
        for r in range(args.rounds):
            for code in (args.code if r % 2 == 0 else args.code[::-1]):
                child = CHILD.format(code=str(code.resolve()), images=str(x), labels=str(y))
                done = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, check=True,
                                      env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})
                runs[str(code)].append(json.loads(done.stdout.strip().splitlines()[-1]))
    table = {code: {obj: {k: statistics.median(run[obj][k] for run in rs) for k in rs[0][obj]}
                    for obj in ("supervised", "rotation", "loop")} for code, rs in runs.items()}
    result = {"data": what, "train_images": args.images, "rounds": args.rounds, "median_cpu_s": table, "runs": runs}
    for code, objs in table.items():
        print(code, json.dumps(objs))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
