"""`python -m study.train -m objective=rotation,supervised`: train every sampled cell under an objective.

Each Hydra job is one (objective, seed[, shard]); it trains its cells of `<study_dir>/cells.jsonl` that
have no complete record yet and writes one record per run. Rerunning the same command skips finished
runs and resumes interrupted ones from their checkpoints. `shards=N`, `cells=[...]`/`cell=a,b` and
`dry_run=true` group the work for a cluster (see launch/shards.py and launch/sweep.py).
"""

from __future__ import annotations

import logging
import sys
from dataclasses import fields, replace
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from launch import shards as sharding
from launch.sweep import expand_argv
from study import settings
from study.cli import hydra_entry
from study.errors import UserError
from study.records import read_cells
from study.runner import Setup, plan
from study.trainer import Budget
from study.workers import run_all

log = logging.getLogger("study.train")

_BUDGET_KEYS = {f.name for f in fields(Budget)}


def resolve_budget(cfg: DictConfig, objective: str) -> Budget:
    """The budget for `objective`: the base values with that objective's overrides applied."""
    raw = OmegaConf.to_container(cfg.budget, resolve=True)
    per_objective = raw.pop("objectives", None) or {}
    raw.update(per_objective.get(objective, {}))
    unknown = set(raw) - _BUDGET_KEYS
    if unknown:
        raise UserError(f"unknown budget setting(s) {sorted(unknown)}; known: {sorted(_BUDGET_KEYS)}")
    for key in ("epochs", "width", "cells_per_stage", "batch_size", "precise_bn", "eval_batch_size"):
        if isinstance(raw.get(key), bool) or not isinstance(raw.get(key), int):
            raise UserError(f"budget.{key} must be an integer, got {raw.get(key)!r}")
    for key in ("lr", "weight_decay", "momentum"):
        if isinstance(raw.get(key), bool) or not isinstance(raw.get(key), (int, float)):
            raise UserError(f"budget.{key} must be a number, got {raw.get(key)!r}")
    try:
        return Budget(**raw)
    except (TypeError, ValueError) as e:
        raise UserError(str(e)) from None


def resolve_device(value: str) -> str:
    """`auto` -> cuda when available, else cpu; anything else must be a device torch knows."""
    import torch

    if value == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(value)
    except (RuntimeError, TypeError):
        raise UserError(f"device {value!r} is not a torch device; use device=cpu, device=cuda or device=auto") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError("device=cuda but no CUDA GPU is visible; use device=cpu or device=auto")
    return value


def parse(cfg: DictConfig) -> tuple[Path, Setup, int, int]:
    """Typed (study_dir, setup, seed, workers) from the config; UserError for anything invalid."""
    from study.data import list_datasets
    from study.objectives.base import objective_class

    study_dir = settings.study_dir(cfg)
    objective = OmegaConf.select(cfg, "objective.name")
    objective_class(objective)  # unknown name -> UserError listing the choices
    dataset_options = {k: v for k, v in OmegaConf.to_container(cfg.dataset, resolve=True).items()
                       if k not in ("name", "channels", "n_classes", "crop_padding")}
    if cfg.dataset.name not in list_datasets():
        raise UserError(f"unknown dataset {cfg.dataset.name!r}; choose one of: {', '.join(list_datasets())}")
    device = resolve_device(str(OmegaConf.select(cfg, "device")))
    cores = settings.cpu_count()
    default_workers = 1 if device.startswith("cuda") else cores
    workers = settings.auto_int(cfg, "workers", default_workers)
    threads = settings.auto_int(cfg, "threads", max(1, cores // workers))
    options = {k: v for k, v in OmegaConf.to_container(cfg.objective, resolve=True).items() if k != "name"}
    options["crop_padding"] = settings.integer(cfg, "dataset.crop_padding", "dataset.crop_padding")
    setup = Setup(
        space=settings.space_name(cfg), objective=objective, objective_options=options,
        dataset=cfg.dataset.name, dataset_options=dataset_options, budget=resolve_budget(cfg, objective),
        device=device, threads=threads, config=settings.plain(cfg),
    )
    return study_dir, setup, settings.integer(cfg, "seed", "seed"), workers


def check(cfg: DictConfig) -> None:
    """Refuse a train command before anything runs: bad values, no sample, incompatible objective."""
    from study.objectives.base import objective_class

    study_dir, setup, _, _ = parse(cfg)
    assigned(cfg, read_cells(study_dir))
    cls = objective_class(setup.objective)
    if cls.needs_color and settings.integer(cfg, "dataset.channels", "dataset.channels") != 3:
        raise UserError(
            f"objective {setup.objective!r} needs colour images but dataset {setup.dataset!r} is grayscale; "
            "use an RGB dataset (e.g. dataset=cifar10)"
        )


def task(cfg: DictConfig) -> None:
    """Train every sampled cell that lacks a complete record for this objective and seed."""
    study_dir, setup, seed, workers = parse(cfg)
    slot = sharding.current_slot()
    rows, where = assigned(cfg, read_cells(study_dir), slot)
    cells = [cell for _, cell in rows]
    setup = replace(setup, device=sharding.pinned_device(setup.device, slot, _gpus(setup.device)))
    todo, done = plan(study_dir, cells, setup, seed)
    label = f"{setup.objective} seed {seed}{where}"
    if settings.boolean(cfg, "dry_run"):
        pending = {spec.cell_id for spec in todo}
        print(f"{label}: trains {len(todo)} of {len(cells)} cells ({done} complete, skipped): "
              + (" ".join(f"#{row}:{cell['id']}" for row, cell in rows if cell["id"] in pending) or "-"))
        return
    if done:
        log.info("%s: skipping %d of %d cells with a complete record", label, done, len(cells))
    if not todo:
        log.info("%s: all %d runs are complete; nothing to train", label, len(cells))
        return
    log.info("%s: training %d cells (%s budget, %s, %d worker(s) x %d thread(s) on %s)",
             label, len(todo), setup.budget.name, setup.dataset, min(workers, len(todo)), setup.threads, setup.device)
    progress = run_all(todo, setup, min(workers, len(todo)), label)
    log.info("%s: %d trained, %d failed; records in %s", label, progress.done - progress.failed,
             progress.failed, study_dir / "runs")


def assigned(cfg: DictConfig, cells: list[dict], slot: sharding.Slot = sharding.Slot()) -> tuple[list, str]:
    """The (row, cell) pairs this task trains and a label suffix naming its shard."""
    shards = settings.positive_int(cfg, "shards", "shards")
    shard = OmegaConf.select(cfg, "shard")
    if shard is not None:
        shard = settings.integer(cfg, "shard", "shard")
    wanted = OmegaConf.select(cfg, "cells")
    if wanted is not None and not OmegaConf.is_list(wanted):
        raise UserError(f"cells must be a list of cell ids or row numbers, got {wanted!r}; e.g. cells=[3,17]")
    rows = sharding.share(sharding.choose(cells, wanted), shard, shards, slot)
    where = "" if shard is None else f" shard {shard}/{shards}"
    return rows, where + (f" task {slot.rank}/{slot.tasks}" if slot.tasks > 1 else "")


def _gpus(device: str) -> int:
    return sharding.gpu_count() if device.startswith("cuda") else 0


_main = hydra_entry("train", task, check)


def main() -> None:
    """`python -m study.train`: expand the sweep conveniences in argv, then run the Hydra app."""
    sys.argv[1:] = expand_argv(sys.argv[1:])
    sharding.register_resolvers()
    _main()


if __name__ == "__main__":
    main()
