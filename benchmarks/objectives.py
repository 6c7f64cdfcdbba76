"""Training-step throughput of every objective against supervised, on one median cell.

    python benchmarks/objectives.py                      # C=16 N=5, 32x32, random colour images
    python benchmarks/objectives.py --width 8 --cells 1 --data-root /tmp/cifar10-jpeg

A step is what the trainer does per batch: the objective's batched transform of a uint8 batch (crop, flip,
Lab conversion, tiling, ...), forward, loss, backward and an SGD step. Batch sizes are the paper
budget's per objective (128 images for supervised and colorization, 32 for rotation and jigsaw) unless
--batch is given. The cell is the one of median FLOPs among 100 sampled cells. Throughput is in images
per second (a rotation image is four network inputs, a jigsaw image four tiles); each figure is the
median of --repeats timings of --steps steps after two warm-up steps, one thread unless --threads.
Also per CPU second of this process: with one thread that is what a dedicated core would give, and it
stays meaningful on a machine shared with other jobs, where wall-clock figures are not.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script from anywhere

from study.data import ImageData, build_dataset, fingerprint
from study.objectives import create_objective, list_objectives
from study.spaces import NetShape, draw, get_space
from study.spaces.nb201.network import Trunk
from study.training.trainer import make_optimizer
from study.training.run import Budget
from study.objectives.base import objective_class

PAPER_BATCH = {"supervised": 128, "colorization": 128, "rotation": 32, "jigsaw": 32}


def random_data(n: int, size: int) -> ImageData:
    """Random colour images (every colour is in gamut, so Lab binning costs what it costs on photos)."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=gen)
    y = torch.randint(0, 10, (n,), generator=gen)
    return ImageData("random", x, y, x[:64], y[:64], 10, torch.full((3,), 0.5), torch.full((3,), 0.29),
                     fingerprint(x))


def median_cell(n: int = 100):
    """The cell of median FLOPs among n sampled cells (seed 0)."""
    from study.spaces.nb201 import complexity

    cells = draw("nb201", n, seed=0)
    flops = [complexity(c, NetShape(3, 32, 10, 16, 5))[1] for c in cells]
    return cells[sorted(range(n), key=flops.__getitem__)[n // 2]]


def throughput(name: str, data: ImageData, cell, width: int, cells: int, batch: int, steps: int,
               repeats: int) -> tuple[float, float]:
    """Median images per wall-clock second and per CPU second (robust on a shared machine) of one step."""
    obj = create_objective(name, data, crop_padding=4)
    torch.manual_seed(0)
    model = obj.build(Trunk(cell, obj.c_in, width, cells))
    model.train()
    opt = make_optimizer(model, Budget("bench", 1, batch, 0.01))
    gen = torch.Generator().manual_seed(0)

    def step(k: int) -> None:
        idx = torch.arange(k * batch, (k + 1) * batch) % data.train_x.shape[0]
        inputs, targets = obj.train_batch(data.train_x[idx], data.train_y[idx], gen)
        loss = obj.loss(model(inputs), targets)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for k in range(2):
        step(k)
    rates, cpu_rates = [], []
    for r in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        for k in range(steps):
            step(k)
        rates.append(steps * batch / (time.perf_counter() - t0))
        cpu_rates.append(steps * batch / (time.process_time() - c0))
    return statistics.median(rates), statistics.median(cpu_rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--cells", type=int, default=5)
    parser.add_argument("--batch", type=int, default=0, help="images per step for every objective (0 = paper's)")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--data-root", default=None, help="an image folder (train/<class>/*), e.g. CIFAR-10 as JPEGs")
    parser.add_argument("--cache-dir", default="/tmp/unnas-bench-cache")
    trained = [n for n in list_objectives() if objective_class(n).trains]  # training-free ones take no steps
    parser.add_argument("--objectives", default=",".join(trained))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.data_root:
        data = build_dataset("imagefolder", data_root=args.data_root, cache_dir=args.cache_dir, train_subset=2048)
    else:
        data = random_data(2048, 32)
    cell = median_cell()
    print(f"cell {get_space('nb201').parse(cell.to_str()).to_str()}  C={args.width} N={args.cells}  "
          f"{data.name} {data.image_size}x{data.image_size}  {args.threads} thread(s)")
    names = args.objectives.split(",")
    rates = {}
    for name in names:
        batch = args.batch or PAPER_BATCH.get(name, 128)
        wall, cpu = throughput(name, data, cell, args.width, args.cells, batch, args.steps, args.repeats)
        rates[name] = cpu
        print(f"{name:>13}: batch {batch:4d} images  {wall:8.1f} images/s  {cpu:8.1f} images/CPU-s", flush=True)
    if "supervised" in rates:
        print("per CPU-s, relative to supervised: "
              + ", ".join(f"{n} {rates[n] / rates['supervised']:.2f}x" for n in names))


if __name__ == "__main__":
    main()
