"""The fidelity ladder: how well candidate budgets rank NAS-Bench-201 cells, per CPU-second.

For each candidate budget (dataset, resolution, training subset, width, depth, epochs, batch) it trains
the first `--cells` cells of the default sample (seed 0: the cells the README's study starts with),
`supervised` with two seeds and `rotation` with one, single-threaded, and reports:

- CPU seconds per run (median of `time.process_time` inside a single-threaded worker, so other load on
  the machine does not inflate it) and per cell (supervised + rotation, one seed each);
- the seed-to-seed Spearman rho of the supervised accuracies (the noise of the test metric);
- Spearman rho with NAS-Bench-201's 200-epoch CIFAR-10 test accuracy (the truth) of the supervised
  ranking (seed mean) and of the rotation ranking, with 95% bootstrap intervals;
- the same rho for the parameter count of the network trained (the baseline any budget must beat).

    python benchmarks/budget_fidelity.py                                # every candidate, 40 cells
    python benchmarks/budget_fidelity.py --only c16-c8-e3-n10k --cells 48
    python benchmarks/budget_fidelity.py --report                       # table and figure only

CIFAR-10 candidates read an image folder (`--cifar`, default /tmp/cifar10-jpeg: unpack
`shared/data/cifar10-jpeg.tar.gz` there). Runs go to a JSONL file (one line per run) that a rerun resumes
from; the table is written as Markdown and JSON next to it, the figure as PNG.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

RESULTS = Path(__file__).parent / "results"
CACHE = Path(os.environ.get("TMPDIR", "/tmp")) / "unnas-fidelity-cache"
BASE = {"name": "candidate", "epochs": 4, "width": 8, "cells_per_stage": 1, "batch_size": 128, "lr": 0.1}
RUNS = (("supervised", 0), ("supervised", 1), ("rotation", 0))


@dataclass(frozen=True)
class Candidate:
    """One rung of the ladder: a dataset at a resolution, and the budget's overrides."""

    family: str                       # one line in the figure
    dataset: str                      # digits or cifar10 (an image folder)
    image_size: int
    budget: dict[str, Any] = field(default_factory=dict)
    train_subset: int = 0
    test_subset: int = 0
    rotation: dict[str, Any] = field(default_factory=dict)   # rotation's overrides (batch, lr)
    precision: str = "fp32"           # bf16: autocast, to compare its ranking with fp32's (same budget)
    runs: tuple[tuple[str, int], ...] = RUNS
    rotation_as: str = ""             # a rung whose rotation runs are the same trainings (its runs are reused)

    @property
    def crop_padding(self) -> int:
        return max(1, round(4 * self.image_size / 32))  # CIFAR's 4 pixels at 32, scaled


_ROT_SMALL = {"batch_size": 32, "lr": 0.025}  # the paper's rotation ratio: a quarter of the images and lr
_D8 = "digits 8 px, C=8, N=1"
_C16 = "cifar10 16 px, C=8, N=1"
_C32 = "cifar10 32 px, C=8, N=1"


def _digits(family: str, size: int = 8, **budget: Any) -> Candidate:
    return Candidate(family, "digits", size, budget)


def _cifar(family: str, size: int, n: int, epochs: int = 3, batch: int = 64, **budget: Any) -> Candidate:
    lr = 0.1 * batch / 128  # linear scaling from the paper's 0.1 at 128 images
    return Candidate(family, "cifar10", size, {"epochs": epochs, "batch_size": batch, "lr": lr, **budget},
                     n, 2000, _ROT_SMALL)


# A family varies one knob (one line in the figure); the lr follows the batch linearly (0.1 at 128).
CANDIDATES: dict[str, Candidate] = {
    # Built-in digits (the default study's data). Epochs at batch 128; d8-c8-e4 is the default budget.
    "d8-c8-e4": _digits(f"{_D8}, batch 128: epochs", epochs=4),
    "d8-c8-e6": _digits(f"{_D8}, batch 128: epochs", epochs=6),
    "d8-c8-e8": _digits(f"{_D8}, batch 128: epochs", epochs=8),
    # Batch size (more, smaller steps per epoch).
    "d8-c8-e4-b64": _digits(f"{_D8}, batch 64: epochs", epochs=4, batch_size=64, lr=0.05),
    "d8-c8-e3-b32": _digits(f"{_D8}, batch 32: epochs", epochs=3, batch_size=32, lr=0.025),
    "d8-c8-e4-b32": _digits(f"{_D8}, batch 32: epochs", epochs=4, batch_size=32, lr=0.025),
    "d8-c8-e8-b32": _digits(f"{_D8}, batch 32: epochs", epochs=8, batch_size=32, lr=0.025),
    "d8-c8-e2-b16": _digits(f"{_D8}, batch 16: epochs", epochs=2, batch_size=16, lr=0.0125),
    "d8-c8-e3-b16": _digits(f"{_D8}, batch 16: epochs", epochs=3, batch_size=16, lr=0.0125),
    # One knob at a time from d8-c8-e8 (the first digits rung with a signal): width, depth, resolution.
    "d8-c16-e8": _digits("digits 8 px, 8 epochs: width C=16", epochs=8, width=16),
    "d8-c8-N2-e8": _digits("digits 8 px, 8 epochs: depth N=2", epochs=8, cells_per_stage=2),
    "d16-c8-e8": _digits("digits 16 px (upsampled), 8 epochs", 16, epochs=8),
    # CIFAR-10 (the shared JPEG copy), downsampled to 16 px and at full 32 px, on training subsets.
    "c16-c8-e3-n5k": _cifar(f"{_C16}, 3 epochs: training images", 16, 5000),
    "c16-c8-e3-n10k": _cifar(f"{_C16}, 3 epochs: training images", 16, 10000),   # the `short` budget
    "c16-c8-e3-n10k-b32": replace(_cifar("cifar10 16 px, 10k images: batch 32", 16, 10000, batch=32),
                                  rotation_as="c16-c8-e3-n10k"),   # rotation's batch is 32 in both
    "c16-c8-e6-n10k": _cifar("cifar10 16 px, 10k images: 6 epochs", 16, 10000, epochs=6),
    "c16-c16-e3-n5k": _cifar("cifar10 16 px, 5k images: width C=16", 16, 5000, width=16),
    "c32-c8-e3-n2k": _cifar(f"{_C32}, 3 epochs: training images", 32, 2000),
    "c32-c8-e3-n5k": _cifar(f"{_C32}, 3 epochs: training images", 32, 5000),
    "c32-c8-e3-n10k": _cifar(f"{_C32}, 3 epochs: training images", 32, 10000),  # `short` before this ladder
}
# bf16 twins: supervised seed 0 only, compared with the fp32 candidate's seed 0 (and its seed-to-seed rho).
BF16 = {f"{name}-bf16": name for name in ("c16-c8-e3-n5k",)}
CANDIDATES.update({twin: replace(CANDIDATES[name], family="bf16", precision="bf16", runs=(("supervised", 0),))
                   for twin, name in BF16.items()})
_DATA: dict[tuple, Any] = {}


def load(c: Candidate, cifar: str) -> Any:
    """The candidate's dataset (cached per process)."""
    from study.data import build_dataset

    key = (c.dataset, c.image_size, c.train_subset, c.test_subset)
    if key not in _DATA:
        if c.dataset == "digits":
            _DATA[key] = build_dataset("digits", image_size=c.image_size)
        else:
            _DATA[key] = build_dataset("imagefolder", data_root=cifar, cache_dir=str(CACHE), image_size=c.image_size,
                                       train_subset=c.train_subset, test_subset=c.test_subset)
    return _DATA[key]


def train_one(task: dict[str, Any]) -> dict[str, Any]:
    """Train one (candidate, cell, objective, seed) single-threaded; returns accuracy and CPU seconds."""
    import torch

    from study.spaces.nb201.network import Trunk
    from study.objectives import create_objective
    from study.spaces.nb201 import NB201Cell
    from study.training.trainer import train
    from study.training.run import Budget

    torch.set_num_threads(1)
    c = CANDIDATES[task["candidate"]]
    data = load(c, task["cifar"])
    extra = c.rotation if task["objective"] == "rotation" else {}
    settings = {**BASE, **c.budget, **extra}
    width, cells_per_stage = settings.pop("width"), settings.pop("cells_per_stage")
    settings.pop("stem", None), settings.pop("depth", None)  # NetShape keys: the default budget keeps the CIFAR skeleton
    budget = Budget(**settings)
    objective = create_objective(task["objective"], data, crop_padding=c.crop_padding)
    t0 = time.process_time()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(task["seed"])
        model = objective.build(Trunk(NB201Cell.from_str(task["arch"]), data.channels, width, cells_per_stage))
    history = train(model, objective, data, budget, task["seed"], precision=c.precision)
    row = {k: v for k, v in task.items() if k != "cifar"}
    return {**row, "best": history.best, "final": history.final, "cpu_s": time.process_time() - t0}


def own_runs(c: Candidate) -> tuple[tuple[str, int], ...]:
    """The runs a candidate trains itself: those it shares with `rotation_as` are read from that rung."""
    return tuple(r for r in c.runs if not (c.rotation_as and r[0] == "rotation"))


def _rho(x: list[float], y: list[float], seed: int = 0) -> dict[str, float]:
    """Spearman rho with a 95% percentile bootstrap interval over cells."""
    import numpy as np

    from analysis.uncertainty import bootstrap_ci
    from scipy.stats import spearmanr

    xa, ya = np.asarray(x, float), np.asarray(y, float)
    low, high = bootstrap_ci(xa, ya, "spearman", n_resamples=1000, level=0.95, seed=seed)
    return {"rho": float(spearmanr(xa, ya).statistic), "low": low, "high": high}


def summarize(rows: list[dict[str, Any]], archs: list[str]) -> list[dict[str, Any]]:
    """One table row per candidate with all its runs present on at least 5 cells."""
    from analysis.truth import nb201
    from study.spaces import NetShape
    from study.spaces.nb201 import NB201Cell
    from study.spaces.nb201.space import complexity

    truth = nb201().table["nb201-cifar10"]
    table = []
    for name, c in CANDIDATES.items():
        if c.runs != RUNS:
            continue  # bf16 twins: see precision()
        acc = {(r["arch"], r["objective"], r["seed"]): r for r in rows if r["candidate"] == name
               and not (c.rotation_as and r["objective"] == "rotation")}
        if c.rotation_as:
            acc.update({(r["arch"], r["objective"], r["seed"]): r for r in rows
                        if r["candidate"] == c.rotation_as and r["objective"] == "rotation"})
        done = [a for a in archs if all((a, o, s) in acc for o, s in RUNS)]
        if len(done) < 5:
            continue
        s0 = [acc[a, "supervised", 0]["best"] for a in done]
        s1 = [acc[a, "supervised", 1]["best"] for a in done]
        rot = [acc[a, "rotation", 0]["best"] for a in done]
        sup = [(x + y) / 2 for x, y in zip(s0, s1)]
        true = [float(truth[a]) for a in done]
        b = {**BASE, **c.budget}
        c_in, n_classes = (1, 10) if c.dataset == "digits" else (3, 10)
        shape = NetShape(c_in, c.image_size, n_classes, b["width"], b["cells_per_stage"])
        params = [complexity(NB201Cell.from_str(a), shape)[0] for a in done]
        cpu = {o: statistics.median(acc[a, o, 0]["cpu_s"] for a in done) for o in ("supervised", "rotation")}
        from scipy.stats import spearmanr

        table.append({
            "candidate": name, "family": c.family, "n_cells": len(done),
            "sup_cpu_s": cpu["supervised"], "rot_cpu_s": cpu["rotation"],
            "cell_cpu_s": cpu["supervised"] + cpu["rotation"],
            "sup_acc": statistics.mean(sup), "rot_acc": statistics.mean(rot),
            "rho_sup_seeds": float(spearmanr(s0, s1).statistic),
            "truth_sup": _rho(sup, true), "truth_sup_seed0": _rho(s0, true), "truth_rot": _rho(rot, true),
            "truth_params": _rho(params, true), "rho_rot_sup": float(spearmanr(rot, sup).statistic),
        })
    return table


def precision(rows: list[dict[str, Any]], archs: list[str]) -> list[dict[str, Any]]:
    """bf16 against fp32 on the same budget: rho(fp32 seed 0, bf16 seed 0) beside rho(fp32 seed 0, seed 1)."""
    from scipy.stats import spearmanr

    out = []
    for twin, name in BF16.items():
        acc = {(r["candidate"], r["arch"], r["seed"]): r for r in rows if r["objective"] == "supervised"}
        done = [a for a in archs if all(k in acc for k in ((name, a, 0), (name, a, 1), (twin, a, 0)))]
        if len(done) < 5:
            continue
        f0, f1, b0 = ([acc[c, a, s]["best"] for a in done] for c, s in ((name, 0), (name, 1), (twin, 0)))
        out.append({"candidate": name, "n_cells": len(done),
                    "rho_fp32_bf16": float(spearmanr(f0, b0).statistic),
                    "rho_fp32_seeds": float(spearmanr(f0, f1).statistic),
                    "cpu_s_fp32": statistics.median(acc[name, a, 0]["cpu_s"] for a in done),
                    "cpu_s_bf16": statistics.median(acc[twin, a, 0]["cpu_s"] for a in done)})
    return out


def _ci(r: dict[str, float]) -> str:
    return f"{r['rho']:.2f} [{r['low']:.2f}, {r['high']:.2f}]" if not math.isnan(r["low"]) else f"{r['rho']:.2f}"


def markdown(table: list[dict[str, Any]]) -> str:
    """The ladder as Markdown: cost, noise, and rho with the truth beside the params baseline."""
    head = ("| candidate | cells | CPU s/run sup | CPU s/run rot | CPU s/cell (sup+rot) | sup seed-to-seed ρ "
            "| ρ(sup, truth) | ρ(rot, truth) | ρ(params, truth) | ρ(rot, sup) |\n"
            "|---|---|---|---|---|---|---|---|---|---|\n")
    return head + "".join(
        f"| {t['candidate']} | {t['n_cells']} | {t['sup_cpu_s']:.1f} | {t['rot_cpu_s']:.1f} | {t['cell_cpu_s']:.1f} "
        f"| {t['rho_sup_seeds']:.2f} | {_ci(t['truth_sup'])} | {_ci(t['truth_rot'])} | {_ci(t['truth_params'])} "
        f"| {t['rho_rot_sup']:.2f} |\n" for t in table)


def figure(table: list[dict[str, Any]], path: Path) -> None:
    """rho with the truth against CPU seconds per cell, supervised and rotation side by side: one line per
    family (rungs that differ in one knob), the parameter count of the same networks as a grey band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FixedLocator, NullFormatter, ScalarFormatter

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.6), sharey=True)
    families = list(dict.fromkeys(t["family"] for t in table))
    colours = plt.get_cmap("tab10" if len(families) <= 10 else "tab20")
    params = [t["truth_params"]["rho"] for t in table]
    for ax, key, title in ((axes[0], "truth_sup", "supervised (mean of 2 seeds)"), (axes[1], "truth_rot", "rotation")):
        for i, fam in enumerate(families):
            rows = sorted((t for t in table if t["family"] == fam), key=lambda t: t["cell_cpu_s"])
            ax.plot([t["cell_cpu_s"] for t in rows], [t[key]["rho"] for t in rows], "o-", color=colours(i),
                    label=fam, ms=4)
            for t in rows:
                ax.annotate(t["candidate"], (t["cell_cpu_s"], t[key]["rho"]), fontsize=5.5, alpha=0.7,
                            xytext=(3, 3), textcoords="offset points")
        ax.axhspan(min(params), max(params), color="grey", alpha=0.2, lw=0)
        ax.axhline(statistics.median(params), color="grey", lw=1.2, label="parameter count, same networks")
        ax.axhline(0, color="black", lw=0.5)
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(FixedLocator([2, 5, 10, 20, 50, 100, 200]))
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("CPU s per cell (supervised + rotation, 1 thread)", fontsize=8)
        ax.grid(alpha=0.3, lw=0.5)
    axes[0].set_ylabel("Spearman ρ with the NAS-Bench-201\nCIFAR-10 truth (200 epochs)")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=6.5, frameon=False, loc="center right")
    fig.tight_layout(rect=(0, 0, 0.72, 1))
    fig.savefig(path, dpi=150)


def main() -> None:
    """Run the missing runs of the chosen candidates and write the ladder table and figure."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=40)
    parser.add_argument("--workers", type=int, default=2, help="single-threaded worker processes")
    parser.add_argument("--only", nargs="*", default=list(CANDIDATES), choices=list(CANDIDATES))
    parser.add_argument("--cifar", default="/tmp/cifar10-jpeg", help="CIFAR-10 as train/ and test/ image folders")
    parser.add_argument("--out", type=Path, default=RESULTS / "budget_fidelity.jsonl")
    parser.add_argument("--report", action="store_true", help="only summarise the runs already in --out")
    args = parser.parse_args()

    from study.spaces import draw

    archs = [c.to_str() for c in draw("nb201", args.cells, seed=0)]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    rows = [json.loads(line) for line in args.out.read_text().splitlines()] if args.out.exists() else []
    have = {(r["candidate"], r["arch"], r["objective"], r["seed"]) for r in rows}
    # Candidate-major order, so each candidate's row completes early and an interrupted run still reports.
    tasks = [] if args.report else [
        {"candidate": c, "arch": a, "objective": o, "seed": s, "cifar": args.cifar}
        for c in args.only for a in archs for o, s in own_runs(CANDIDATES[c]) if (c, a, o, s) not in have]
    if any(CANDIDATES[t["candidate"]].dataset == "cifar10" for t in tasks):
        if not (Path(args.cifar) / "train").is_dir():
            sys.exit(f"error: no CIFAR-10 image folder at {args.cifar}; unpack shared/data/cifar10-jpeg.tar.gz there "
                     "or pass --cifar PATH")
        for size in sorted({CANDIDATES[t["candidate"]].image_size for t in tasks}):  # decode once, not per worker
            load(Candidate("", "cifar10", size), args.cifar)
    print(f"{len(tasks)} runs to do ({len(rows)} already in {args.out})", flush=True)
    if tasks:
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(args.workers, mp_context=ctx) as pool, args.out.open("a") as sink:
            for i, fut in enumerate(as_completed([pool.submit(train_one, t) for t in tasks]), 1):
                row = fut.result()
                rows.append(row)
                sink.write(json.dumps(row) + "\n")
                sink.flush()
                if i % 20 == 0:
                    print(f"{i}/{len(tasks)} runs", flush=True)
    table = summarize(rows, archs)
    text = markdown(table)
    bf16 = precision(rows, archs)
    if bf16:
        text += ("\n| fp32 candidate | cells | ρ(fp32 seed 0, bf16 seed 0) | ρ(fp32 seed 0, fp32 seed 1) | CPU s fp32 "
                 "| CPU s bf16 |\n|---|---|---|---|---|---|\n" + "".join(
                     f"| {b['candidate']} | {b['n_cells']} | {b['rho_fp32_bf16']:.2f} | {b['rho_fp32_seeds']:.2f} "
                     f"| {b['cpu_s_fp32']:.1f} | {b['cpu_s_bf16']:.1f} |\n" for b in bf16))
    print(text)
    args.out.with_suffix(".md").write_text(text)
    args.out.with_suffix(".json").write_text(json.dumps({"ladder": table, "precision": bf16}, indent=1) + "\n")
    if table:
        figure(table, args.out.with_suffix(".png"))


if __name__ == "__main__":
    main()
