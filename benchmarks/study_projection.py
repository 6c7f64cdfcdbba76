"""Projected wall time of the README's default study, and run-level parallelism on this machine.

    python benchmarks/study_projection.py             # projection from a few real default-budget runs
    python benchmarks/study_projection.py --parallel  # also: 1 run x all cores vs single-thread runs side by side

The projection trains a few cells of the default sample with the real default budget and digits config,
single-threaded, under supervised and rotation, and scales the median CPU seconds to 500 cells spread over
one single-threaded worker per core. CPU time (`time.process_time`) is used because other processes
share the machine; the wall-clock figure assumes the cores are otherwise idle.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def default_config() -> tuple[dict[str, Any], dict[str, Any]]:
    """The default budget and digits dataset settings as plain dicts (from conf/)."""
    budget = yaml.safe_load((ROOT / "conf/budget/default.yaml").read_text())
    dataset = yaml.safe_load((ROOT / "conf/dataset/digits.yaml").read_text())
    return budget, dataset


def one_run(arch: str, objective: str, threads: int, seed: int = 0) -> dict[str, float]:
    """Train one default-budget run; returns its CPU and wall seconds."""
    import torch

    from study.data import build_dataset
    from study.network import Trunk
    from study.objectives import create_objective
    from study.space import NB201Cell
    from study.trainer import Budget, train

    torch.set_num_threads(threads)
    raw, ds = default_config()
    overrides = (raw.pop("objectives", None) or {}).get(objective, {})
    budget = Budget(**{**raw, **overrides})
    data = build_dataset("digits", image_size=ds["image_size"], test_fraction=ds["test_fraction"],
                         split_seed=ds["split_seed"])
    obj = create_objective(objective, data, crop_padding=ds["crop_padding"])
    c0, w0 = time.process_time(), time.perf_counter()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = obj.build(Trunk(NB201Cell.from_str(arch), data.channels, budget.width, budget.cells_per_stage))
    train(model, obj, data, budget, seed)
    return {"cpu_s": time.process_time() - c0, "wall_s": time.perf_counter() - w0}


def project_default_study(threads: int = 1, n_cells: int = 3) -> dict[str, Any]:
    """Median single-thread CPU seconds per run of the default budget, scaled to the 500-cell study."""
    from study.sampler import draw
    from study.settings import cpu_count

    archs = [c.to_str() for c in draw("nb201", n_cells, seed=0)]
    cpu = {o: statistics.median(one_run(a, o, 1)["cpu_s"] for a in archs) for o in ("supervised", "rotation")}
    cores = cpu_count()
    minutes = 500 * (cpu["supervised"] + cpu["rotation"]) / cores / 60
    return {"supervised_cpu_s": cpu["supervised"], "rotation_cpu_s": cpu["rotation"], "cores": cores,
            "default_study_min": minutes,
            "summary": (f"default study: {cpu['supervised']:.2f} + {cpu['rotation']:.2f} CPU s per cell "
                        f"(supervised + rotation, median of {n_cells}) -> {minutes:.1f} min for 500 cells "
                        f"on {cores} idle core(s)")}


def _startup() -> float:
    """Runs in a fresh worker: time to import torch and the library and load the dataset."""
    t0 = time.perf_counter()
    from study.data import build_dataset
    from study.objectives import create_objective  # noqa: F401

    build_dataset("digits", image_size=default_config()[1]["image_size"])
    return time.perf_counter() - t0


def parallelism(arch: str, cores: int) -> dict[str, float]:
    """Runs per minute: one run using all cores vs `cores` single-thread runs side by side."""
    ctx = multiprocessing.get_context("spawn")
    t0 = time.perf_counter()
    with ProcessPoolExecutor(1, mp_context=ctx) as pool:
        one = pool.submit(one_run, arch, "supervised", cores).result()["wall_s"]
    t1 = time.perf_counter()
    with ProcessPoolExecutor(cores, mp_context=ctx) as pool:
        startup = statistics.median(pool.map(_startup, range(cores)))
        t2 = time.perf_counter()
        side = [f.result()["wall_s"] for f in [pool.submit(one_run, arch, "supervised", 1) for _ in range(cores)]]
        t3 = time.perf_counter()
    del t0, t1
    return {"one_run_all_cores_s": one, "runs_per_min_threads": 60 / one,
            "side_by_side_s": t3 - t2, "runs_per_min_workers": 60 * cores / (t3 - t2),
            "worker_startup_s": startup, "single_thread_run_s": statistics.median(side)}


def main() -> None:
    """Print the projection (and the parallelism comparison with --parallel)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cells", type=int, default=3)
    p.add_argument("--parallel", action="store_true")
    args = p.parse_args()
    print(project_default_study(1, args.cells)["summary"])
    if args.parallel:
        from study.sampler import draw

        cores = len(os.sched_getaffinity(0))
        arch = draw("nb201", 1, seed=0)[0].to_str()
        r = parallelism(arch, cores)
        print(f"one supervised run with {cores} threads: {r['one_run_all_cores_s']:.2f} s wall "
              f"({r['runs_per_min_threads']:.1f} runs/min); {cores} single-thread runs side by side: "
              f"{r['side_by_side_s']:.2f} s ({r['runs_per_min_workers']:.1f} runs/min, each "
              f"{r['single_thread_run_s']:.2f} s); worker startup {r['worker_startup_s']:.2f} s")


if __name__ == "__main__":
    main()
