"""Training throughput: our step against the reference NAS-Bench-201 pipeline, side by side.

Ours: the network from study.spaces.nb201.network with data resident on the device as uint8 tensors, batched
augmentation (study.data.augment), SGD from study.training.trainer. Reference: xautodl's TinyNetwork fed by a torchvision
DataLoader with the standard CIFAR transforms (RandomCrop 32 pad 4, flip, ToTensor, Normalize) and a plain
SGD step, as NAS-Bench-201 trains. Same cells, batch size, thread count and device; the two alternate in
rounds so drift on a shared machine hits both, and medians over rounds are reported.

    python benchmarks/throughput.py [--width 8 --cells-per-stage 1 --threads 1 --json out.json]
    python benchmarks/throughput.py --width 16 --cells-per-stage 5 --rounds 3    # the paper network
    python benchmarks/throughput.py --width 16 --cells-per-stage 5 --precision bf16   # bf16 autocast (AMX CPUs)
    python benchmarks/throughput.py --per-edge        # A/B: one ReLU-conv-BN per edge instead of FusedCell
    python benchmarks/throughput.py --split           # where each pipeline's step goes: conv, BN, the rest
    python benchmarks/throughput.py --fused           # then K seeds stacked as one network (benchmarks/fused.py)

Data: CIFAR-10 JPEGs unpacked at /tmp/cifar10-jpeg (see ../shared/data/README.md) if present, else random
uint8 images of CIFAR shape (the output says which). Also measured: the matmul peak (torch.mm) at the same
thread count, FLOPs per image and achieved FLOP/s, and the projected wall time of the default study and of
one paper-budget training.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from study.data import ImageData, channel_stats  # noqa: E402
from study.objectives import create_objective  # noqa: E402
from study.spaces import NetShape, draw  # noqa: E402
from study.spaces.nb201 import NB201Cell, complexity  # noqa: E402
from study.spaces.nb201.network import Trunk  # noqa: E402
from study.training.run import Budget
from study.training.trainer import make_optimizer  # noqa: E402
from study.training.devices import autocast, compute_precision

CIFAR_DIR = Path("/tmp/cifar10-jpeg")
MEAN = [x / 255 for x in (125.3, 123.0, 113.9)]
STD = [x / 255 for x in (63.0, 62.1, 66.7)]


def cells() -> dict[str, NB201Cell]:
    """A conv-heavy, a light and a median cell (median FLOPs among the default sample's 500)."""
    sample = draw("nb201", 500, seed=0)
    by_flops = sorted(sample, key=lambda c: complexity(c, NetShape(3, 32, 10, 16, 5))[1])
    return {"conv-heavy": NB201Cell.from_str("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|"
                                             "nor_conv_3x3~1|nor_conv_3x3~2|"),
            "light": NB201Cell.from_str("|avg_pool_3x3~0|+|skip_connect~0|avg_pool_3x3~1|+|skip_connect~0|"
                                        "nor_conv_1x1~1|skip_connect~2|"),
            "median": by_flops[len(by_flops) // 2]}


def load_images(n: int, seed: int, cifar: Path | None = None) -> tuple[np.ndarray, np.ndarray, str]:
    """`n` CIFAR-10 training images (N, 32, 32, 3) uint8 with labels, or random ones if none are unpacked."""
    if cifar is not None:  # torchvision's pickle format (the GPU bundle's subset): needs no PIL
        from study.data.cifar import CIFAR_DIR as BATCHES, read_cifar_batches

        x, y = read_cifar_batches(cifar / BATCHES, ["data_batch_1"])
        return (x[:n].permute(0, 2, 3, 1).contiguous().numpy(), y[:n].numpy(),
                f"CIFAR-10 batches from {cifar} ({min(n, len(y))} images)")
    if (CIFAR_DIR / "train").is_dir():
        from PIL import Image

        classes = sorted(p.name for p in (CIFAR_DIR / "train").iterdir())
        files = [(f, k) for k, c in enumerate(classes) for f in sorted((CIFAR_DIR / "train" / c).glob("*.jpg"))[:n // 10 + 1]]
        files = files[:n]
        x = np.stack([np.asarray(Image.open(f).convert("RGB")) for f, _ in files])
        return x, np.array([k for _, k in files]), f"CIFAR-10 JPEGs from {CIFAR_DIR} ({len(files)} images)"
    rng = np.random.default_rng(seed)
    return (rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, n),
            f"random uint8 images of CIFAR shape ({n}; {CIFAR_DIR} not found)")


def ours(cell: NB201Cell, x: np.ndarray, y: np.ndarray, args: argparse.Namespace) -> Callable[[int], None]:
    """A function that runs `k` of our training steps (device-resident data, batched augmentation)."""
    xt = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous().to(args.device)  # (N, 3, 32, 32) uint8
    yt = torch.from_numpy(y).to(args.device)
    mean, std = channel_stats(xt.cpu())
    data = ImageData("bench", xt, yt, xt[:256], yt[:256], 10, mean.to(args.device), std.to(args.device))
    objective = create_objective("supervised", data, crop_padding=4)
    budget = Budget("bench", 1, args.batch_size, 0.1)
    trunk = Trunk(cell, 3, args.width, args.cells_per_stage, channels_last=not args.contiguous,
                  fused=not args.per_edge)
    model = objective.build(trunk).to(args.device)
    opt = make_optimizer(model, budget)
    gen = torch.Generator(device=args.device).manual_seed(0)
    state = {"pos": 0, "order": torch.randperm(len(xt), generator=gen, device=args.device)}

    def steps(k: int) -> None:
        model.train()
        for _ in range(k):
            if state["pos"] + args.batch_size > len(xt):
                state["pos"], state["order"] = 0, torch.randperm(len(xt), generator=gen, device=args.device)
            idx = state["order"][state["pos"]:state["pos"] + args.batch_size]
            state["pos"] += args.batch_size
            inputs, targets = objective.train_batch(xt[idx], yt[idx], gen)
            with autocast(inputs.device, args.precision):
                loss = objective.loss(model(inputs), targets)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        loss.item()  # wait for the device
    return steps


class _ArrayDataset(torch.utils.data.Dataset):
    """Images as torchvision's CIFAR10 serves them: a PIL image per item through the transforms."""

    def __init__(self, x: np.ndarray, y: np.ndarray, transform: Callable) -> None:
        self.x, self.y, self.transform = x, y, transform

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        from PIL import Image

        return self.transform(Image.fromarray(self.x[i])), int(self.y[i])


class _TorchDataset(torch.utils.data.Dataset):
    """The same per-image steps in plain torch, for machines without torchvision or PIL (a bare GPU image)."""

    def __init__(self, x: np.ndarray, y: np.ndarray) -> None:
        self.x, self.y = x, y
        self.mean, self.std = torch.tensor(MEAN)[:, None, None], torch.tensor(STD)[:, None, None]

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        img = torch.from_numpy(self.x[i]).permute(2, 0, 1).float().div(255.0)  # ToTensor: (3, 32, 32)
        padded = torch.nn.functional.pad(img, (4, 4, 4, 4))
        oy, ox = torch.randint(0, 9, (2,)).tolist()
        img = padded[:, oy:oy + 32, ox:ox + 32]
        if torch.rand(()) < 0.5:
            img = img.flip(2)
        return (img - self.mean) / self.std, int(self.y[i])


def reference_dataset(x: np.ndarray, y: np.ndarray) -> tuple[torch.utils.data.Dataset, str]:
    """The reference's per-image pipeline: torchvision's transforms on PIL images, else the same in torch."""
    try:
        import PIL  # noqa: F401
        import torchvision.transforms as T
    except ImportError:
        return _TorchDataset(x, y), "torch per-image transforms (no torchvision/PIL here)"
    transform = T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.ToTensor(), T.Normalize(MEAN, STD)])
    return _ArrayDataset(x, y, transform), "torchvision transforms on PIL images"


def reference(cell: NB201Cell, x: np.ndarray, y: np.ndarray, args: argparse.Namespace) -> Callable[[int], None]:
    """A function that runs `k` steps of the reference pipeline (xautodl TinyNetwork + DataLoader)."""
    from xautodl.models.cell_infers.tiny_network import TinyNetwork
    from xautodl.models.cell_searchs.genotypes import Structure

    dataset, _ = reference_dataset(x, y)
    # num_workers=0: the same threads as ours; loader worker processes would use cores ours does not get.
    loader = torch.utils.data.DataLoader(dataset, batch_size=args.batch_size, shuffle=True,
                                         drop_last=True, num_workers=0)
    model = TinyNetwork(args.width, args.cells_per_stage, Structure.str2structure(cell.to_str()), 10).to(args.device)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)
    criterion = nn.CrossEntropyLoss()
    state = {"it": iter(loader)}

    def steps(k: int) -> None:
        model.train()
        for _ in range(k):
            try:
                images, labels = next(state["it"])
            except StopIteration:
                state["it"] = iter(loader)
                images, labels = next(state["it"])
            images, labels = images.to(args.device, non_blocking=True), labels.to(args.device, non_blocking=True)
            _, logits = model(images)
            loss = criterion(logits, labels)
            opt.zero_grad()
            loss.backward()
            opt.step()
        loss.item()
    return steps


def split(fn: Callable[[int], None], steps: int, ms_step: float) -> dict[str, float]:
    """ms per step in conv kernels, BN kernels and the rest: profiled shares of `steps` steps times `ms_step`."""
    from kernel_floor import kernel_shares  # noqa: E402  (benchmarks/ is on sys.path)

    shares = kernel_shares(lambda: fn(steps))
    return {"conv": shares["conv"] * ms_step, "bn": shares["bn"] * ms_step,
            "rest": (1 - shares["conv"] - shares["bn"]) * ms_step}


def matmul_peak(threads: int, device: str, n: int = 1024, reps: int = 20,
                dtype: torch.dtype = torch.float32) -> float:
    """Measured torch.mm GFLOP/s in `dtype` at this thread count (best of several tries)."""
    a, b = (torch.randn(n, n, device=device, dtype=dtype) for _ in range(2))
    best = 0.0
    for _ in range(5):
        torch.mm(a, b)
        _sync(device)
        t0 = clock(device)
        for _ in range(reps):
            torch.mm(a, b)
        _sync(device)
        seconds = (clock(device) - t0) / (1 if device.startswith("cuda") else threads)
        best = max(best, 2 * n ** 3 * reps / seconds / 1e9)
    return best


def clock(device: str) -> float:
    """Seconds: this process's CPU time on CPU (other load on a shared machine does not count against
    either pipeline; both run in this process with the same threads), wall time on a GPU."""
    return time.perf_counter() if device.startswith("cuda") else time.process_time()


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed(fn: Callable[[int], None], steps: int, device: str) -> float:
    """Seconds per step of `steps` steps."""
    _sync(device)
    t0 = clock(device)
    fn(steps)
    _sync(device)
    seconds = clock(device) - t0
    # CPU time adds up over threads; divide to get the wall time of an otherwise idle machine.
    return seconds / (1 if device.startswith("cuda") else torch.get_num_threads()) / steps


def main() -> None:
    """Measure, print the table, optionally write JSON."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--width", type=int, default=8)
    p.add_argument("--cells-per-stage", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--steps", type=int, default=10, help="steps per timed round")
    p.add_argument("--images", type=int, default=2048)
    p.add_argument("--contiguous", action="store_true", help="our network without channels_last (A/B)")
    p.add_argument("--per-edge", action="store_true",
                   help="our network with one ReLU-conv-BN per edge, as the reference computes it (A/B)")
    p.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16"),
                   help="our autocast (auto: bf16 on CUDA, fp32 on CPU); the reference always trains in fp32")
    p.add_argument("--no-projection", action="store_true", help="skip the default-study projection")
    p.add_argument("--split", action="store_true",
                   help="CPU: split each pipeline's step into conv kernels, BN kernels and the rest (torch.profiler)")
    p.add_argument("--fused", action="store_true",
                   help="then trainings per CPU-second with K = 1, 2, 3, 4, 8 seeds stacked (benchmarks/fused.py)")
    p.add_argument("--json", type=Path)
    p.add_argument("--cifar", type=Path, help="read images from this folder's cifar-10-batches-py/ instead")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    x, y, source = load_images(args.images, seed=0, cifar=args.cifar)
    # Peak in the dtype our convolutions run in: bf16 under autocast (tensor cores, AMX), else fp32.
    bf16 = compute_precision(args.precision, torch.device(args.device).type) == "bf16"
    peak = matmul_peak(args.threads, args.device, dtype=torch.bfloat16 if bf16 else torch.float32)
    print(f"data: {source}\ndevice {args.device}, {args.threads} thread(s), batch {args.batch_size}, "
          f"C={args.width} N={args.cells_per_stage}, our precision {args.precision}; "
          f"torch.mm peak {peak:.1f} GFLOP/s ({'bf16' if bf16 else 'fp32'})")
    results: dict[str, Any] = {"device": args.device, "threads": args.threads, "batch_size": args.batch_size,
                               "width": args.width, "cells_per_stage": args.cells_per_stage, "data": source,
                               "precision": args.precision, "fused": not args.per_edge,
                               "matmul_gflops": peak, "matmul_dtype": "bf16" if bf16 else "fp32",
                               "reference_data": reference_dataset(x[:1], y[:1])[1], "cells": {}}
    print(f"{'cell':<11} {'ours img/s':>10} {'ref img/s':>10} {'ratio':>6} {'ours ms':>8} {'ref ms':>8} "
          f"{'MFLOP/img':>9} {'GFLOP/s':>8} {'%peak':>6}")
    splits: list[tuple[str, dict[str, Any]]] = []
    for name, cell in cells().items():
        fns = {"ours": ours(cell, x, y, args), "reference": reference(cell, x, y, args)}
        for fn in fns.values():
            fn(2)  # warm-up: allocator, oneDNN primitives, first DataLoader iterator
        secs: dict[str, list[float]] = {k: [] for k in fns}
        for _ in range(args.rounds):
            for k, fn in fns.items():
                secs[k].append(timed(fn, args.steps, args.device))
        ms = {k: statistics.median(v) * 1e3 for k, v in secs.items()}
        img_s = {k: args.batch_size / v * 1e3 for k, v in ms.items()}
        macs = complexity(cell, NetShape(3, 32, 10, args.width, args.cells_per_stage))[1]
        flops = 2 * macs  # one multiply-accumulate = 2 FLOPs; a training step is ~3x the forward pass
        gflops = 3 * flops * img_s["ours"] / 1e9
        row = {"arch": cell.to_str(), "ours_img_s": img_s["ours"], "reference_img_s": img_s["reference"],
               "ratio": img_s["ours"] / img_s["reference"], "ours_ms_step": ms["ours"],
               "reference_ms_step": ms["reference"], "mflops_per_image": flops / 1e6,
               "ours_gflops": gflops, "percent_of_peak": 100 * gflops / peak}
        results["cells"][name] = row
        print(f"{name:<11} {row['ours_img_s']:>10.0f} {row['reference_img_s']:>10.0f} {row['ratio']:>6.2f} "
              f"{row['ours_ms_step']:>8.1f} {row['reference_ms_step']:>8.1f} {row['mflops_per_image']:>9.1f} "
              f"{gflops:>8.2f} {row['percent_of_peak']:>6.1f}")
        if args.split and args.device == "cpu":
            row["split_ms_step"] = {k: split(fn, args.steps, ms[k]) for k, fn in fns.items()}
            splits.append((name, row))
    if splits:
        print("split of a step (shares under torch.profiler, applied to the timed ms/step):")
        print(f"{'cell':<11} {'pipeline':<10} {'conv ms':>8} {'BN ms':>8} {'rest ms':>8}")
        for name, row in splits:
            for k, part in row["split_ms_step"].items():
                print(f"{name:<11} {k:<10} {part['conv']:>8.1f} {part['bn']:>8.1f} {part['rest']:>8.1f}")
            ours_kernels = row["split_ms_step"]["ours"]["conv"] + row["split_ms_step"]["ours"]["bn"]
            row["ratio_if_only_kernels"] = row["reference_ms_step"] / ours_kernels
            print(f"{name:<11} ratio if our step were its conv and BN kernels alone: {row['ratio_if_only_kernels']:.2f}")
    median = results["cells"]["median"]["ours_img_s"]
    results["paper_training_h"] = 50_000 * 100 / median / 3600 if args.width == 16 and args.cells_per_stage == 5 else None
    if results["paper_training_h"] is not None:
        print(f"one paper-budget training (CIFAR-10, 100 epochs, median cell, supervised): "
              f"{results['paper_training_h']:.1f} h at this rate")
    from study_projection import project_default_study  # noqa: E402  (benchmarks/ is on sys.path)

    if not args.no_projection:
        results["default_study"] = project_default_study(args.threads)
        print(results["default_study"]["summary"])
    if args.fused:
        from fused import run as fused_run  # noqa: E402  (benchmarks/ is on sys.path)

        results["fused"] = fused_run(device=args.device, threads=args.threads)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
