"""Ranking fidelity per CPU-minute of candidate budgets for the default (digits) study.

For each candidate budget it trains the first `--cells` cells of the default sample (seed 0, so the same
cells the README's study starts with) under `supervised` with two seeds and under `rotation` with one,
and reports:

- the seed-to-seed Spearman rho of the supervised best accuracies: the noise ceiling, the best rank
  agreement any objective can reach against a supervised ranking measured at that budget;
- the Spearman rho of rotation (seed 0) against supervised (mean of the two seeds);
- CPU seconds per run (median, `time.process_time` inside a single-threaded worker, so other load on
  the machine does not inflate it) and the projected wall time of the 500-cell study (rotation +
  supervised, one seed) on a 2-core machine.

    python benchmarks/budget_fidelity.py                       # the built-in candidates, 40 cells
    python benchmarks/budget_fidelity.py --only s8-c8-e4 --cells 20

Results go to a JSONL file (one line per run) that a rerun resumes from, and the table is printed
(and written as Markdown next to it).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

# name: (image_size, crop_padding, budget overrides). Crop padding stays CIFAR's 4/32 of the image side.
CANDIDATES: dict[str, tuple[int, int, dict[str, Any]]] = {
    "s16-c8-e8": (16, 2, {"width": 8, "epochs": 8}),          # the provisional default
    "s16-c8-e4": (16, 2, {"width": 8, "epochs": 4}),
    "s8-c8-e8": (8, 1, {"width": 8, "epochs": 8}),
    "s8-c8-e4": (8, 1, {"width": 8, "epochs": 4}),
    "s8-c8-e2": (8, 1, {"width": 8, "epochs": 2}),
    "s8-c4-e4": (8, 1, {"width": 4, "epochs": 4}),
    "s8-c8-e4-b256": (8, 1, {"width": 8, "epochs": 4, "batch_size": 256, "lr": 0.2}),
    "s8-c8-e4-b64": (8, 1, {"width": 8, "epochs": 4, "batch_size": 64, "lr": 0.05}),
    "s8-c8-e4-pbn": (8, 1, {"width": 8, "epochs": 4, "precise_bn": 512}),
}
BASE = {"name": "candidate", "epochs": 8, "width": 8, "cells_per_stage": 1, "batch_size": 128, "lr": 0.1}
RUNS = (("supervised", 0), ("supervised", 1), ("rotation", 0))
_DATA: dict[int, Any] = {}


def train_one(task: dict[str, Any]) -> dict[str, Any]:
    """Train one (candidate, cell, objective, seed) single-threaded; returns accuracy and CPU seconds."""
    import torch

    from study.data import build_dataset
    from study.spaces.nb201.network import Trunk
    from study.objectives import create_objective
    from study.spaces.nb201 import NB201Cell
    from study.training.trainer import Budget, train

    torch.set_num_threads(1)
    size, pad, overrides = CANDIDATES[task["candidate"]]
    if size not in _DATA:
        _DATA[size] = build_dataset("digits", image_size=size)
    data = _DATA[size]
    settings = {**BASE, **overrides}
    width, cells_per_stage = settings.pop("width"), settings.pop("cells_per_stage")
    budget = Budget(**settings)
    objective = create_objective(task["objective"], data, crop_padding=pad)
    t0 = time.process_time()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(task["seed"])
        model = objective.build(Trunk(NB201Cell.from_str(task["arch"]), data.channels, width, cells_per_stage))
    history = train(model, objective, data, budget, task["seed"])
    return {**task, "best": history.best, "final": history.final, "cpu_s": time.process_time() - t0}


def summarize(rows: list[dict[str, Any]], cells: int) -> list[dict[str, Any]]:
    """One table row per candidate with all its runs present."""
    from scipy.stats import spearmanr

    table = []
    for name in CANDIDATES:
        acc = {(r["arch"], r["objective"], r["seed"]): r["best"] for r in rows if r["candidate"] == name}
        archs = sorted({a for a, _, _ in acc})
        archs = [a for a in archs if all((a, o, s) in acc for o, s in RUNS)]
        if len(archs) < 5:
            continue
        s0 = [acc[a, "supervised", 0] for a in archs]
        s1 = [acc[a, "supervised", 1] for a in archs]
        rot = [acc[a, "rotation", 0] for a in archs]
        sup = [(x + y) / 2 for x, y in zip(s0, s1)]
        cpu = {o: statistics.median(r["cpu_s"] for r in rows if r["candidate"] == name and r["objective"] == o)
               for o in ("supervised", "rotation")}
        per_cell = cpu["supervised"] + cpu["rotation"]
        table.append({
            "candidate": name, "n_cells": len(archs), "sup_cpu_s": cpu["supervised"], "rot_cpu_s": cpu["rotation"],
            "study_min_2core": 500 * per_cell / 2 / 60,
            "sup_acc": statistics.mean(sup), "rot_acc": statistics.mean(rot),
            "rho_sup_seeds": spearmanr(s0, s1).statistic, "rho_rot_sup": spearmanr(rot, sup).statistic,
        })
    return table


def markdown(table: list[dict[str, Any]]) -> str:
    """The table as Markdown."""
    head = ("| candidate | cells | sup CPU s/run | rot CPU s/run | 500-cell study, 2 cores (min) | sup acc | rot acc "
            "| rho sup seed0 vs seed1 | rho rot vs sup |\n|---|---|---|---|---|---|---|---|---|\n")
    return head + "".join(
        f"| {t['candidate']} | {t['n_cells']} | {t['sup_cpu_s']:.2f} | {t['rot_cpu_s']:.2f} | "
        f"{t['study_min_2core']:.1f} | {t['sup_acc']:.3f} | {t['rot_acc']:.3f} | {t['rho_sup_seeds']:.2f} | "
        f"{t['rho_rot_sup']:.2f} |\n" for t in table)


def main() -> None:
    """Run the missing runs of the chosen candidates and print the fidelity table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=40)
    parser.add_argument("--workers", type=int, default=2, help="single-threaded worker processes")
    parser.add_argument("--only", nargs="*", default=list(CANDIDATES), choices=list(CANDIDATES))
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "budget_fidelity.jsonl")
    args = parser.parse_args()

    from study.spaces import draw

    archs = [c.to_str() for c in draw("nb201", args.cells, seed=0)]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    rows = [json.loads(line) for line in args.out.read_text().splitlines()] if args.out.exists() else []
    have = {(r["candidate"], r["arch"], r["objective"], r["seed"]) for r in rows}
    # Candidate-major order, so each candidate's row completes early and an interrupted run still reports.
    tasks = [{"candidate": c, "arch": a, "objective": o, "seed": s}
             for c in args.only for a in archs for o, s in RUNS if (c, a, o, s) not in have]
    print(f"{len(tasks)} runs to do ({len(rows)} already in {args.out})", flush=True)
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(args.workers, mp_context=ctx) as pool, args.out.open("a") as sink:
        for i, fut in enumerate(as_completed([pool.submit(train_one, t) for t in tasks]), 1):
            row = fut.result()
            rows.append(row)
            sink.write(json.dumps(row) + "\n")
            sink.flush()
            if i % 20 == 0:
                print(f"{i}/{len(tasks)} runs", flush=True)
    table = summarize([r for r in rows if r["arch"] in set(archs)], args.cells)
    text = markdown(table)
    print(text)
    args.out.with_suffix(".md").write_text(text)


if __name__ == "__main__":
    main()
