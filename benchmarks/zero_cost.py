"""Training-free scores on NAS-Bench-201 cells: CPU seconds per cell and rank correlation with the truth.

    OMP_NUM_THREADS=1 python benchmarks/zero_cost.py --data-root /tmp/cifar10-jpeg --cells 500 --workers 2

For the first --cells cells of the default sample (`draw("nb201", n, seed=0)`), on the paper network
(C=16, N=5, 10 classes, initialised from seed 0 exactly as a run with seed=0 would be) and one batch of
--batch CIFAR-10 training images chosen by seed 0: naswot, synflow, jacob_cov, and the labelled
baselines snip and grad_norm (both from one shared labelled backward pass, so they carry one time).
Each worker runs one torch thread; times are CPU seconds of the worker process per score. Rows are
appended to --out/zero_cost.jsonl as cells finish (rerunning resumes); the summary, Spearman rho with a
95% bootstrap interval against NAS-Bench-201's 200-epoch CIFAR-10 accuracy (joined on `arch`) beside
the parameter count's, goes to --out/zero_cost.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script from anywhere

from benchmarks.cifar_images import normalised, require_folder, training_images  # noqa: E402

SCORES = ("naswot", "synflow", "jacob_cov", "snip", "grad_norm")
GOALS = {"naswot": 0.85, "synflow": 0.85, "jacob_cov": 0.70}
MAX_CPU_S = 3.0
_STATE: dict = {}


def load_batch(root: Path, n: int, seed: int):
    """n CIFAR-10 training images (normalised (n, 3, 32, 32)) and labels, chosen by a seeded permutation."""
    x, y = training_images(root, n, seed)
    return normalised(x), y


def _init(x, y, width: int, depth: int) -> None:
    import torch

    torch.set_num_threads(1)
    _STATE.update(x=x, y=y, width=width, depth=depth)


def network(arch: str, fused: bool, width: int = 16, depth: int = 5):
    """The supervised network of a cell (paper size by default), initialised from seed 0 as a run with seed=0 is."""
    import torch

    from study.spaces.modules import PooledLinear
    from study.spaces.nb201.network import Trunk
    from study.spaces import get_space

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        trunk = Trunk(get_space("nb201").parse(arch), 3, width, depth, fused=fused)
        return torch.nn.Sequential(trunk, PooledLinear(trunk.c_out, 10))


def score_cell(item: tuple[int, str]) -> dict:
    """Every score of one cell with its CPU seconds."""
    from study.objectives import zero_cost as zc

    index, arch = item
    x, y = _STATE["x"], _STATE["y"]
    row: dict = {"index": index, "arch": arch}
    jobs = {"naswot": (False, lambda m: {"naswot": zc.naswot(m, x)}),
            "synflow": (True, lambda m: {"synflow": zc.synflow(m, tuple(x.shape[1:]))}),
            "jacob_cov": (True, lambda m: {"jacob_cov": zc.jacob_cov(m, x)}),
            "labelled": (True, lambda m: labelled(zc, m, x, y))}
    for name, (fused, run) in jobs.items():
        model = network(arch, fused, _STATE["width"], _STATE["depth"])
        t0 = time.process_time()
        values = run(model)
        cpu = time.process_time() - t0
        for key, value in values.items():
            row[key], row[f"{key}_cpu_s"] = value, cpu
    return row


def labelled(zc, model, x, y) -> dict:
    """snip and grad_norm from one labelled backward pass (they differ only in how gradients are summed)."""
    import torch

    layers = zc.labelled_grads(model, x, y)
    with torch.no_grad():
        return {"snip": float(sum((m.weight.grad * m.weight).abs().sum() for m in layers)),
                "grad_norm": float(sum(m.weight.grad.norm() for m in layers))}


def summarize(rows: list[dict], truth: dict[str, float], bootstrap: int, width: int = 16, depth: int = 5) -> dict:
    """Spearman rho (95% bootstrap interval) of every score and of the parameter count against the truth."""
    from analysis.uncertainty import bootstrap_ci, rank_correlations
    from study.spaces import NetShape
    from study.spaces.nb201 import complexity
    from study.spaces import get_space

    acc = np.array([truth[r["arch"]] for r in rows])
    space = get_space("nb201")
    params = np.array([complexity(space.parse(r["arch"]), NetShape(3, 32, 10, width, depth))[0] for r in rows], float)
    table = {}
    for name, values in [*((s, np.array([r[s] for r in rows], float)) for s in SCORES), ("params", params)]:
        ok = np.isfinite(values)
        rho = rank_correlations(values[ok], acc[ok])["spearman"]
        low, high = bootstrap_ci(values[ok], acc[ok], "spearman", n_resamples=bootstrap, seed=0)
        times = np.array([r[f"{name}_cpu_s"] for r in rows]) if name != "params" else np.zeros(1)
        table[name] = {"spearman": rho, "low": low, "high": high, "n_cells": int(ok.sum()),
                       "cpu_s_mean": float(times.mean()), "cpu_s_max": float(times.max()),
                       "goal_rho": GOALS.get(name), "uses_labels": name in ("snip", "grad_norm")}
    return table


def markdown(table: dict, meta: dict) -> str:
    """The summary as a Markdown table."""
    lines = [f"Training-free scores vs NAS-Bench-201 CIFAR-10 200-epoch accuracy, the first {meta['n_cells']} cells "
             f"of the default sample, C={meta['width']} N={meta['cells_per_stage']} network at init (seed 0), "
             f"one batch of {meta['batch']} CIFAR-10 training images (seed 0), one CPU thread per cell.",
             "", f"    {meta['command']}", "",
             "| score | labels | Spearman rho | 95% CI | CPU s/cell (mean) | max | goal rho |",
             "|---|---|---|---|---|---|---|"]
    for name, r in table.items():
        goal = "" if r["goal_rho"] is None else f">= {r['goal_rho']:.2f}"
        cpu = "-" if name == "params" else f"{r['cpu_s_mean']:.2f}"
        top = "-" if name == "params" else f"{r['cpu_s_max']:.2f}"
        lines.append(f"| {name} | {'yes' if r['uses_labels'] else 'no'} | {r['spearman']:.3f} | "
                     f"[{r['low']:.3f}, {r['high']:.3f}] | {cpu} | {top} | {goal} |")
    lines += ["", "snip and grad_norm share one labelled forward/backward pass; their time is that pass's."]
    return "\n".join(lines) + "\n"


def main() -> None:
    """Score the cells not yet in the JSONL, then write the summary."""
    import pandas as pd

    from study.spaces import draw

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-root", type=Path, default=Path("/tmp/cifar10-jpeg"))
    p.add_argument("--truth", type=Path, default=None,
                   help="NAS-Bench-201 truth (index, arch, cifar10_test, ...); default: the one the package ships")
    p.add_argument("--cells", type=int, default=500)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--width", type=int, default=16, help="C (16: the paper network)")
    p.add_argument("--depth", type=int, default=5, help="N, cells per stage (5: the paper network)")
    p.add_argument("--bootstrap", type=int, default=1000)
    p.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    args = p.parse_args()
    require_folder(args.data_root)
    args.out.mkdir(parents=True, exist_ok=True)
    jsonl = args.out / "zero_cost.jsonl"
    done = {}
    if jsonl.exists():
        for line in jsonl.read_text().splitlines():
            if line.strip():
                row = json.loads(line)
                done[row["index"]] = row
    cells = [c.to_str() for c in draw("nb201", args.cells, seed=0)]
    todo = [(i, a) for i, a in enumerate(cells) if i not in done]
    x, y = load_batch(args.data_root, args.batch, seed=0)  # here, so a bad folder stops the script at once
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(args.workers, initializer=_init, initargs=(x, y, args.width, args.depth)) as pool, \
            open(jsonl, "a") as f:
        for row in pool.imap_unordered(score_cell, todo):
            f.write(json.dumps(row) + "\n")
            f.flush()
            done[row["index"]] = row
            print(f"[{len(done)}/{len(cells)}] " + " ".join(f"{s}={row[s]:.4g} ({row[s + '_cpu_s']:.2f}s)"
                                                              for s in SCORES), flush=True)
    from study.spaces import get_space

    truth_df = pd.read_csv(args.truth or get_space("nb201").benchmark.file)
    truth = dict(zip(truth_df["arch"], truth_df["cifar10_test"]))
    rows = [done[i] for i in range(len(cells))]
    table = summarize(rows, truth, args.bootstrap, args.width, args.depth)
    command = "OMP_NUM_THREADS=1 python benchmarks/zero_cost.py " + " ".join(sys.argv[1:])
    meta = {"n_cells": len(rows), "batch": args.batch, "width": args.width, "cells_per_stage": args.depth,
            "threads": 1, "command": command}
    (args.out / "zero_cost.json").write_text(json.dumps({**meta, "scores": table}, indent=2) + "\n")
    (args.out / "zero_cost.md").write_text(markdown(table, meta))
    print(markdown(table, meta))


if __name__ == "__main__":
    main()
