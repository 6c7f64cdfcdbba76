"""Seeds side by side: trainings per CPU-second with K seeds of a cell stacked as one network, against K alone.

Two settings, single-threaded, CPU time (`time.process_time`, so other load on the machine does not count):

- the default budget, whole trainings: the first `--cells` cells of the default sample, supervised and
  rotation, trained to the end on the built-in digits (4 epochs, C=8, N=1) with seeds 0..7 alone and with
  K = 2, 3, 4, 8 seeds stacked (study.training.trainer.fit, as `study.train seed=[...]` runs them);
- the paper network (C=16, N=5) on CIFAR-shaped 32-pixel images: `--steps` training steps of batch 128
  (whole trainings take hours), K models stacked against one alone.

    python benchmarks/fused.py [--cells 4 --steps 2 --json benchmarks/results/fused.json]   # and fused.md
    python benchmarks/throughput.py --fused       # the same, after the side-by-side table

Also run by benchmarks/gpu_check.sh on a GPU (`--device cuda`): there the stacked network fills the device
that one small network leaves idle.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from study.data import ImageData, build_dataset  # noqa: E402
from study.objectives import create_objective  # noqa: E402
from study.spaces import NetShape, draw, get_space  # noqa: E402
from study.training.stacking import Stacked  # noqa: E402
from study.training.trainer import fit, make_optimizer, train, train_epoch  # noqa: E402
from study.training.run import Budget

KS = (1, 2, 3, 4, 8)
DEFAULT = Budget(name="default", epochs=4, batch_size=128, lr=0.1)  # conf/budget/default.yaml
SHAPE = NetShape(c_in=1, image_size=8, n_classes=10, width=8, cells_per_stage=1)


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _clock(device: str) -> float:
    """CPU time on a CPU (other processes do not count); wall time on a GPU, where the device does the work."""
    _sync(device)
    return time.perf_counter() if device.startswith("cuda") else time.process_time()


def _models(objective: Any, arch: str, seeds: list[int], shape: NetShape, device: str) -> list[torch.nn.Module]:
    space = get_space("nb201")
    out = []
    for seed in seeds:
        torch.manual_seed(seed)
        out.append(objective.build(space.build(space.parse(arch), replace(shape, c_in=objective.c_in))).to(device))
    return out


def default_budget(cells: int, device: str, ks: tuple[int, ...] = KS, epochs: int = DEFAULT.epochs) -> list[dict[str, Any]]:
    """Whole default-budget trainings: CPU seconds per training alone and stacked, per K and objective."""
    budget = replace(DEFAULT, epochs=epochs)
    data = build_dataset("digits").to(device)
    archs = [c.to_str() for c in draw("nb201", cells, seed=0)]
    rows = []
    for name in ("supervised", "rotation"):
        objective = create_objective(name, data)
        alone: dict[int, list[float]] = {}  # seed -> seconds per cell
        stacked: dict[int, list[float]] = {k: [] for k in ks if k > 1}
        for arch in archs:
            for seed in range(max(ks)):
                model = _models(objective, arch, [seed], SHAPE, device)[0]
                t0 = _clock(device)
                train(model, objective, data, budget, seed)
                alone.setdefault(seed, []).append(_clock(device) - t0)
            for k in stacked:
                net = Stacked(_models(objective, arch, list(range(k)), SHAPE, device))
                t0 = _clock(device)
                fit(net, objective, data, budget, list(range(k)), [None] * k, None, None, lambda m, e: None)
                stacked[k].append(_clock(device) - t0)
            print(f"  {name} {arch}: alone {statistics.mean(v[-1] for v in alone.values()):.2f} s/training, "
                  + ", ".join(f"K={k} {v[-1] / k:.2f}" for k, v in stacked.items()), flush=True)
        one = statistics.mean(alone[0])
        for k in ks:
            separate = sum(statistics.mean(alone[s]) for s in range(k))  # K seeds alone, one after another
            together = separate if k == 1 else statistics.mean(stacked[k])
            rows.append({"setting": "default budget (digits 8 px, C=8, N=1, 4 epochs)", "objective": name, "k": k,
                         "cells": len(archs), "s_alone": separate, "s_fused": together,
                         "trainings_per_cpu_s_alone": k / separate, "trainings_per_cpu_s_fused": k / together,
                         "speedup": separate / together, "cost_vs_one_seed": together / one})
    return rows


def paper_network(steps: int, device: str, ks: tuple[int, ...] = KS) -> list[dict[str, Any]]:
    """Steps of the paper network (C=16, N=5) on 32-pixel RGB images: seconds per model-step, alone and stacked."""
    gen = torch.Generator().manual_seed(0)
    n = 128 * steps
    x = torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=gen)
    y = torch.randint(0, 10, (n,), generator=gen)
    data = ImageData("cifar-shaped", x, y, x[:128], y[:128], 10, torch.full((3,), 0.47), torch.full((3,), 0.25))
    data = data.to(device)
    shape = NetShape(c_in=3, image_size=32, n_classes=10, width=16, cells_per_stage=5)
    archs = {"median": draw("nb201", 500, seed=0)[250].to_str(),
             "conv-heavy": "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"}
    budget = replace(DEFAULT, epochs=1)
    rows = []
    objective = create_objective("supervised", data)
    for label, arch in archs.items():
        per_model: dict[int, float] = {}
        for k in ks:
            models = _models(objective, arch, list(range(k)), shape, device)
            net = models[0] if k == 1 else Stacked(models)
            opt = make_optimizer(net, budget)
            gens = [torch.Generator(device=device).manual_seed(s) for s in range(k)]
            small = replace(data, train_x=data.train_x[:256], train_y=data.train_y[:256])
            train_epoch(net, objective, small, opt, 128, gens)  # warm-up: allocator, kernel choice
            t0 = _clock(device)
            train_epoch(net, objective, data, opt, 128, gens)
            per_model[k] = (_clock(device) - t0) / steps / k
            print(f"  paper network {label}: K={k} {per_model[k] * 1e3:.0f} ms per model-step", flush=True)
        for k in ks:
            rows.append({"setting": "paper network (C=16, N=5, 32 px, batch 128), training steps", "objective":
                         "supervised", "cell": label, "k": k, "s_per_model_step_alone": per_model[1],
                         "s_per_model_step_fused": per_model[k], "speedup": per_model[1] / per_model[k]})
    return rows


def report(rows: list[dict[str, Any]]) -> str:
    """The Markdown table of a run."""
    lines = ["| setting | objective | K | trainings per CPU-s alone | fused | speedup | cost of K seeds / one seed |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        if "trainings_per_cpu_s_alone" in r:
            lines.append(f"| {r['setting']} | {r['objective']} | {r['k']} | {r['trainings_per_cpu_s_alone']:.3f} | "
                         f"{r['trainings_per_cpu_s_fused']:.3f} | {r['speedup']:.2f}x | {r['cost_vs_one_seed']:.2f}x |")
        else:
            lines.append(f"| {r['setting']}, {r['cell']} cell | {r['objective']} | {r['k']} | "
                         f"{1 / r['s_per_model_step_alone']:.2f} steps/s | {1 / r['s_per_model_step_fused']:.2f} | "
                         f"{r['speedup']:.2f}x | {r['k'] / r['speedup']:.2f}x |")
    return "\n".join(lines)


def run(cells: int = 6, steps: int = 3, device: str = "cpu", threads: int = 1, paper: bool = True,
        ks: tuple[int, ...] = KS, epochs: int = DEFAULT.epochs) -> dict[str, Any]:
    """Both settings; returns the rows and the table."""
    torch.set_num_threads(threads)
    print(f"fused seeds: {threads} thread(s) on {device}", flush=True)
    rows = default_budget(cells, device, ks, epochs) + (paper_network(steps, device, ks) if paper else [])
    table = report(rows)
    print(table)
    return {"device": device, "threads": threads, "rows": rows, "table": table}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cells", type=int, default=6, help="cells of the default sample for the default budget")
    p.add_argument("--steps", type=int, default=3, help="timed steps per K for the paper network")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--no-paper", action="store_true", help="only the default budget")
    p.add_argument("--ks", default=",".join(map(str, KS)), help="fusion widths, comma-separated (1 is needed)")
    p.add_argument("--epochs", type=int, default=DEFAULT.epochs, help="default-budget epochs (fewer: a dry run)")
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    ks = tuple(sorted({1, *(int(k) for k in args.ks.split(","))}))
    out = run(args.cells, args.steps, args.device, args.threads, not args.no_paper, ks, args.epochs)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=1) + "\n")
        args.json.with_suffix(".md").write_text(
            f"Seeds stacked as one network against the same seeds alone, {args.threads} thread(s) on {args.device} "
            "(trainings per CPU-second; paper network: model-steps per second).\n\n    "
            + " ".join(["python benchmarks/fused.py", *sys.argv[1:]]) + "\n\n" + out["table"] + "\n")


if __name__ == "__main__":
    main()
