"""Projected wall time of the README's default study, and run-level parallelism on this machine.

    python benchmarks/study_projection.py             # projection from a few real default-budget runs
    python benchmarks/study_projection.py --parallel  # also: the real train command, 1 worker x all cores
                                                      # vs one single-thread worker per core

The projection trains a few cells of the default sample with the real default budget and digits config,
single-threaded, under supervised and rotation, and scales the median CPU seconds to 500 cells spread over
one single-threaded worker per core. CPU time (`time.process_time`) is used because other processes
share the machine; the wall-clock figure assumes the cores are otherwise idle.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def default_cfg() -> Any:
    """The train command's config at the default budget on digits (conf/ composed as study.train does)."""
    from hydra import compose, initialize_config_dir

    from study.commands.cli import CONF_DIR  # importing the command layer registers the config schemas

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose("train", ["budget=default", "dataset=digits"])


def default_config() -> tuple[dict[str, Any], dict[str, Any]]:
    """The default budget and digits dataset settings as plain dicts."""
    from omegaconf import OmegaConf

    cfg = OmegaConf.to_container(default_cfg(), resolve=True)
    return cfg["budget"], cfg["dataset"]


def default_run(arch: str, objective: str, seed: int = 0) -> tuple[Any, Any, Any, Any]:
    """The model, objective, dataset and budget of one default-budget run of `arch` on digits."""
    import torch

    from study.data import build_dataset
    from study.spaces.nb201.network import Trunk
    from study.objectives import create_objective
    from study.spaces.nb201 import NB201Cell
    from omegaconf import OmegaConf

    from study.commands.settings import budget_for

    cfg = default_cfg()
    budget, shape = budget_for(cfg, objective)  # the recipe study.train would run, per-objective overrides applied
    ds = OmegaConf.to_container(cfg.dataset, resolve=True)
    data = build_dataset("digits", image_size=ds["image_size"], test_fraction=ds["test_fraction"],
                         split_seed=ds["split_seed"])
    obj = create_objective(objective, data, crop_padding=ds["crop_padding"])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = obj.build(Trunk(NB201Cell.from_str(arch), data.channels, shape.width, shape.cells_per_stage))
    return model, obj, data, budget


def one_run(arch: str, objective: str, threads: int, seed: int = 0) -> dict[str, float]:
    """Train one default-budget run; returns its CPU and wall seconds (training and testing, not set-up)."""
    import torch

    from study.training.trainer import train

    torch.set_num_threads(threads)
    model, obj, data, budget = default_run(arch, objective, seed)
    c0, w0 = time.process_time(), time.perf_counter()
    train(model, obj, data, budget, seed)
    return {"cpu_s": time.process_time() - c0, "wall_s": time.perf_counter() - w0}


def project_default_study(threads: int = 1, n_cells: int = 3) -> dict[str, Any]:
    """Median single-thread CPU seconds per run of the default budget, scaled to the 500-cell study."""
    from study.spaces import draw
    from study.training.devices import cpu_count

    archs = [c.to_str() for c in draw("nb201", n_cells, seed=0)]
    cpu = {o: statistics.median(one_run(a, o, 1)["cpu_s"] for a in archs) for o in ("supervised", "rotation")}
    cores = cpu_count()
    minutes = 500 * (cpu["supervised"] + cpu["rotation"]) / cores / 60
    return {"supervised_cpu_s": cpu["supervised"], "rotation_cpu_s": cpu["rotation"], "cores": cores,
            "default_study_min": minutes,
            "summary": (f"default study: {cpu['supervised']:.2f} + {cpu['rotation']:.2f} CPU s per cell "
                        f"(supervised + rotation, median of {n_cells}) -> {minutes:.1f} min for 500 cells "
                        f"on {cores} idle core(s)")}


def parallelism(n_cells: int, cores: int, repeats: int = 2) -> dict[str, Any]:
    """The real train command on `n_cells` default cells: 1 worker x all cores vs 1 thread x `cores` workers.

    Each layout trains the same cells under rotation and supervised in a fresh study directory, startup
    included; the two layouts alternate `repeats` times so drift on a shared machine hits both.
    """
    import shutil
    import subprocess
    import tempfile

    layouts = {"threads": (1, cores), "workers": (cores, 1)}
    walls: dict[str, list[float]] = {k: [] for k in layouts}
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "sample"
        subprocess.run([sys.executable, "-m", "study.sample", f"n={n_cells}", f"study_dir={base}"],
                       cwd=ROOT, check=True, capture_output=True)
        for _ in range(repeats):
            for name, (workers, threads) in layouts.items():
                study = Path(tmp) / name
                shutil.rmtree(study, ignore_errors=True)
                shutil.copytree(base, study)
                t0 = time.perf_counter()
                subprocess.run([sys.executable, "-m", "study.train", "-m", "objective=rotation,supervised",
                                f"workers={workers}", f"threads={threads}", f"study_dir={study}"],
                               cwd=ROOT, check=True, capture_output=True)
                walls[name].append(time.perf_counter() - t0)
    runs = 2 * n_cells
    med = {k: statistics.median(v) for k, v in walls.items()}
    return {"cells": n_cells, "cores": cores, "wall_s": walls,
            "runs_per_min": {k: 60 * runs / v for k, v in med.items()},
            "summary": (f"{n_cells} cells x (rotation + supervised), real train command, median of {repeats}: "
                        f"1 worker x {cores} threads {med['threads']:.1f} s ({60 * runs / med['threads']:.1f} "
                        f"runs/min); {cores} workers x 1 thread {med['workers']:.1f} s "
                        f"({60 * runs / med['workers']:.1f} runs/min)")}


def main() -> None:
    """Print the projection (and the parallelism comparison with --parallel)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cells", type=int, default=3)
    p.add_argument("--parallel", action="store_true",
                   help="also time the real train command: one worker using all cores vs one worker per core")
    p.add_argument("--parallel-cells", type=int, default=24)
    args = p.parse_args()
    print(project_default_study(1, args.cells)["summary"])
    if args.parallel:
        print(parallelism(args.parallel_cells, len(os.sched_getaffinity(0)))["summary"])


if __name__ == "__main__":
    main()
