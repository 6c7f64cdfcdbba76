"""`python -m study.train -m objective=rotation,supervised`: train every sampled cell under an objective.

Each Hydra job is one (objective, seed[, shard]); it trains its cells of `<study_dir>/cells.jsonl` that
have no complete record yet and writes one record per run. Rerunning the same command skips finished
runs and resumes interrupted ones from their checkpoints. `shards=N`, `cells=[...]`/`cell=a,b` and
`dry_run=true` group the work for a cluster (see study/commands/shards.py and study/commands/sweep.py).
"""

from __future__ import annotations

import functools
import json
import logging
import math
import shlex
import signal
import sys
from dataclasses import asdict, fields, replace
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from study.commands import shards as sharding
from study.commands.sweep import expand_argv
from study.commands import settings
from study.commands.cli import hydra_entry
from study.training import devices
from study.errors import UserError
from study.store.records import STUDY_FILE, read_cells, writable
from study.training.runner import plan, raise_mismatch
from study.training.run import Setup
from study.spaces import NetShape, cell_id, get_space
from study.training.run import Budget
from study.training.workers import Interrupted, groups, run_all

log = logging.getLogger("study.train")

# The network's width and depth are budget settings for the user (budget.width=16) and a NetShape in code.
_SHAPE_KEYS = ("width", "cells_per_stage")
_BUDGET_KEYS = {f.name for f in fields(Budget)} | set(_SHAPE_KEYS)


def resolve_budget(cfg: DictConfig, objective: str) -> Budget:
    """The optimiser recipe for `objective`: the base values with that objective's overrides applied."""
    return resolve_run(cfg, objective)[0]


def resolve_run(cfg: DictConfig, objective: str) -> tuple[Budget, NetShape]:
    """The recipe and the network shape trained for `objective` (budget values with its overrides applied).

    Width and depth come from the budget; conf/budget/*.yaml takes them from the space's `shapes` entry for
    the budget's name when conf/space/<name>.yaml has one, and `budget.width=...` on the command line wins.
    """
    raw = OmegaConf.to_container(cfg.budget, resolve=True)
    per_objective = raw.pop("objectives", None) or {}
    if isinstance(per_objective, dict):
        per_objective = {name: over or {} for name, over in per_objective.items()}  # `rotation:` alone = no change
    if not isinstance(per_objective, dict) or not all(isinstance(v, dict) for v in per_objective.values()):
        raise UserError("budget.objectives must map objective names to settings, e.g. budget.objectives.rotation.lr=0.025")
    raw.update(per_objective.get(objective, {}))
    unknown = (set(raw) | {k for over in per_objective.values() for k in over}) - _BUDGET_KEYS  # typos in any objective
    if unknown:
        raise UserError(f"unknown budget setting(s) {sorted(unknown)}; known: {sorted(_BUDGET_KEYS)}")
    for key in ("epochs", "width", "cells_per_stage", "batch_size", "precise_bn", "eval_batch_size"):
        if isinstance(raw.get(key), bool) or not isinstance(raw.get(key), int):
            raise UserError(f"budget.{key} must be an integer, got {raw.get(key)!r}")
    for key in ("lr", "weight_decay", "momentum"):
        if isinstance(raw.get(key), bool) or not isinstance(raw.get(key), (int, float)) or not math.isfinite(raw[key]):
            raise UserError(f"budget.{key} must be a finite number, got {raw.get(key)!r}")
    if not isinstance(raw.get("nesterov", True), bool):
        raise UserError(f"budget.nesterov must be true or false, got {raw.get('nesterov')!r}")
    if not 0 <= raw["momentum"] < 1 or (raw.get("nesterov", True) and raw["momentum"] == 0):
        raise UserError(f"budget.momentum must be in [0, 1) (above 0 with nesterov), got {raw['momentum']}; "
                        "e.g. budget.momentum=0.9")
    shape = settings.net_shape(cfg, {k: raw.pop(k, None) for k in _SHAPE_KEYS})
    try:
        return Budget(**raw), shape
    except (TypeError, ValueError) as e:
        raise UserError(str(e)) from None


def parse(cfg: DictConfig) -> tuple[Path, Setup, list[int], int]:
    """Typed (study_dir, setup, seeds, workers) from the config; UserError for anything invalid."""
    from study.data import DATASETS
    from study.objectives.base import objective_class

    study_dir = settings.study_dir(cfg)
    objective = OmegaConf.select(cfg, "objective.name")
    objective_class(objective)  # unknown name -> UserError listing the choices
    budget, shape = resolve_run(cfg, objective)
    dataset_options = {k: v for k, v in OmegaConf.to_container(cfg.dataset, resolve=True).items()
                       if k not in ("name", "channels", "n_classes", "crop_padding")}
    DATASETS.get(cfg.dataset.name)  # unknown name -> DataError listing the choices
    if "cache_dir" in dataset_options and dataset_options["cache_dir"] is None:
        dataset_options["cache_dir"] = str(study_dir / "cache")  # decoded images and downloads live with the study
    device = devices.resolve_device(str(OmegaConf.select(cfg, "device")))
    precision = devices.resolve_precision(str(OmegaConf.select(cfg, "precision")), device)
    cores = devices.cpu_count()
    # CPU: one single-threaded worker per core (a small network cannot keep two threads busy inside a
    # step). CUDA: several trainings share each GPU, since one small network leaves it mostly idle.
    default_workers = min(4, cores) if device.startswith("cuda") else cores
    workers = settings.auto_int(cfg, "workers", default_workers)
    threads = settings.auto_int(cfg, "threads", max(1, cores // workers))
    seeds = settings.seeds(cfg)
    fuse = settings.auto_int(cfg, "fuse", devices.fuse_auto(device.split(":")[0], shape))
    options = {k: v for k, v in OmegaConf.to_container(cfg.objective, resolve=True).items() if k != "name"}
    options["crop_padding"] = settings.non_negative_int(cfg, "dataset.crop_padding", "dataset.crop_padding")
    setup = Setup(
        space=settings.space_name(cfg), objective=objective, objective_options=options,
        dataset=cfg.dataset.name, dataset_options=dataset_options, budget=budget, shape=shape,
        device=device, threads=threads, config=settings.plain(cfg), claims=settings.claim_settings(cfg),
        precision=precision, fuse=min(fuse, len(seeds)),
    )
    return study_dir, setup, seeds, workers


def check_cells(cells: list[dict], space_name: str) -> None:
    """Refuse a hand-edited cells file here, before Hydra starts (plan() would, but only once it runs)."""
    space = get_space(space_name)
    for row in cells:
        try:
            cell = space.parse(row["arch"])
        except UserError as e:
            raise UserError(f"cells.jsonl: cell {row['id']!r}: {e}; re-sample (the same study.sample settings plus force=true) instead of editing the file") from None
        if cell_id(cell.canonical()) != row["id"]:
            raise_mismatch(row)


@functools.lru_cache(maxsize=None)  # once per dataset setting, though every sweep value is checked
def check_dataset(name: str, options_json: str, n_classes: int) -> None:
    """The dataset's own cheap checks (study/data), so a bad dataset setting is refused here, not in every worker."""
    from study.data import preflight

    preflight(name, json.loads(options_json), n_classes)


def check(cfg: DictConfig) -> None:
    """Refuse a train command before anything runs: bad values, no sample, incompatible objective."""
    from study.objectives.base import objective_class

    devices.pin_visible_gpus(devices.current_slot())  # in a local job's task, before anything touches CUDA

    study_dir, setup, _, _ = parse(cfg)
    cells = read_cells(study_dir)
    if not writable(study_dir):  # before Hydra, whose first act is a log folder inside study_dir
        raise UserError(f"study_dir {study_dir} is read-only: training writes its records and logs there; "
                        f"copy the study to a writable folder (cp -r {study_dir} NEW) and train with study_dir=NEW")
    check_cells(cells, setup.space)
    n_classes = settings.positive_int(cfg, "dataset.n_classes", "dataset.n_classes")
    check_dataset(setup.dataset, json.dumps(setup.dataset_options, sort_keys=True), n_classes)
    assigned(cfg, cells)
    cls = objective_class(setup.objective)
    if cls.needs_color and settings.integer(cfg, "dataset.channels", "dataset.channels") != 3:
        raise UserError(
            f"objective {setup.objective!r} needs colour images but dataset {setup.dataset!r} is grayscale; "
            "use an RGB dataset (e.g. dataset=cifar10)"
        )
    check_objective_options(setup, settings.positive_int(cfg, "dataset.channels", "dataset.channels"),
                            settings.positive_int(cfg, "dataset.image_size", "dataset.image_size"), n_classes)


def check_objective_options(setup: Setup, channels: int, image_size: int, n_classes: int) -> None:
    """Build the objective on a one-image stand-in of the dataset's shape, so bad options fail here, not per run."""
    import torch

    from study.data import ImageData
    from study.objectives import create_objective

    x = torch.zeros(1, channels, image_size, image_size, dtype=torch.uint8)
    y = torch.zeros(1, dtype=torch.int64)
    stand_in = ImageData(setup.dataset, x, y, x, y, n_classes, torch.zeros(channels), torch.ones(channels))
    try:
        create_objective(setup.objective, stand_in, **setup.objective_options)
    except TypeError as e:  # an option the objective does not take
        raise UserError(f"objective {setup.objective!r}: {e}; its options are in conf/objective/{setup.objective}.yaml") from None


def task(cfg: DictConfig) -> None:
    """Train every sampled cell that lacks a complete record for this objective and seed."""
    from study.data import build_dataset

    study_dir, setup, seeds, workers = parse(cfg)
    warn_if_resized(study_dir, setup.shape)
    slot = devices.current_slot()
    rows, where = assigned(cfg, read_cells(study_dir), slot)
    cells = [cell for _, cell in rows]
    setup = replace(setup, device=devices.pinned_device(setup.device, slot, _gpus(setup.device)))
    todo, done = [], 0
    for seed in seeds:
        planned, finished = plan(study_dir, cells, setup, seed)
        todo, done = todo + planned, done + finished
        if settings.boolean(cfg, "dry_run"):
            pending = {spec.cell_id for spec in planned}
            print(f"{setup.objective} seed {seed}{where}: trains {len(planned)} of {len(cells)} cells ({finished} complete, "
                  "skipped): " + (" ".join(f"#{row}:{cell['id']}" for row, cell in rows if cell["id"] in pending) or "-"))
    if settings.boolean(cfg, "dry_run"):
        return
    label = f"{setup.objective} seed {','.join(map(str, seeds))}{where}"
    cells_total = len(cells) * len(seeds)
    if done:
        log.info("%s: skipping %d of %d runs with a complete record", label, done, cells_total)
    if not todo:
        log.info("%s: all %d runs are complete; nothing to train", label, cells_total)
        return
    n_groups = len(groups(todo, setup.fuse))
    fused = f", {setup.fuse} seeds of a cell as one network" if setup.fuse > 1 else ""
    log.info("%s: training %d runs (%s budget, %s, %d worker(s) x %d thread(s) on %s%s)", label, len(todo),
             setup.budget.name, setup.dataset, min(workers, n_groups), setup.threads, setup.device, fused)
    workers = min(workers, n_groups)
    if workers > 1:  # decode or download once here: workers then read the cache, and errors stay one line
        build_dataset(setup.dataset, **setup.dataset_options)
    progress = run_all(todo, setup, workers, label)
    log.info("%s: %d trained, %d failed; records in %s", label, progress.done - progress.failed,
             progress.failed, study_dir / "runs")
    _RUNS["done"] += progress.done
    if progress.failed:
        _RUNS["failed"] += progress.failed
        _RUNS["jobs"].append(f"{label}: {progress.failed} run(s) failed ({progress.first_failure})")
    if progress.skipped:
        log.info("%s: %s; rerun later to pick up any they leave unfinished", label,
                 ", ".join(f"{n} run(s) {why}" for why, n in sorted(progress.skipped.items())))


def warn_if_resized(study_dir: Path, shape: NetShape) -> None:
    """Say so when the trained shape is not the one cells.jsonl's params and FLOPs were computed at."""
    try:
        sampled = json.loads((study_dir / STUDY_FILE).read_text())["sample"]["net"]
    except (OSError, ValueError, KeyError, TypeError):
        return  # no or an old study.json: nothing to compare with
    if sampled != asdict(shape):
        differ = ", ".join(f"{k} {sampled.get(k)} -> {v}" for k, v in asdict(shape).items() if sampled.get(k) != v)
        log.warning("this network differs from the sampled one (%s): cells.jsonl's params and FLOPs do not describe "
                    "it; each run record carries its own (net, net_params, net_flops)", differ)


def assigned(cfg: DictConfig, cells: list[dict], slot: devices.Slot = devices.Slot()) -> tuple[list, str]:
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
    return devices.gpu_count() if device.startswith("cuda") else 0


_main = hydra_entry("train", task, check)
# Runs this process trained, over every job of its sweep: when all of them failed, the command exits 1.
_RUNS: dict = {"done": 0, "failed": 0, "jobs": []}


def main() -> None:
    """`python -m study.train`: expand the sweep conveniences in argv, then run the Hydra app."""
    from omegaconf import OmegaConf

    from study.commands.cli import CONF_DIR
    from study.commands.cluster import WithoutSbatchErrors, slurm_preflight, sweep_summary
    from study.commands.sweep import chosen_cells

    argv = list(sys.argv[1:])
    default_dir = str(OmegaConf.load(CONF_DIR / "common.yaml").study_dir)
    sys.argv[1:] = sharding.preset_device(expand_argv(sys.argv[1:], chosen_cells(sys.argv[1:], default_dir)))
    devices.remember_visible_gpus()
    sharding.register_resolvers()
    slurm = slurm_preflight(sys.argv[1:])
    if slurm:  # submitit echoes sbatch's refusal itself; the one line below says it and what to change
        sys.stderr = WithoutSbatchErrors(sys.stderr)
    try:
        _main()
    except Exception as e:  # only reached for slurm: Hydra passes errors on with HYDRA_FULL_ERROR=1
        if not slurm or "sbatch: error" not in str(e):
            raise
        reason = [line for line in str(e).splitlines() if "sbatch: error" in line][0]
        print(f"error: SLURM refused the job ({reason.strip()}); change the hydra.launcher.* setting it names "
              "(the request is in conf/hydra/launcher/slurm.yaml; device=cpu asks for no GPU)", file=sys.stderr)
        sys.exit(2)
    except (Interrupted, KeyboardInterrupt) as e:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        done = f"{e.progress.done} run(s) finished, " if isinstance(e, Interrupted) else ""
        print(f"interrupted: {done}finished runs and each run's last epoch are kept; resume with: "
              f"{shlex.join(['python', '-m', 'study.train', *argv])}", file=sys.stderr)
        sys.exit(130)
    sweep_summary(argv, default_dir)
    if _RUNS["done"] and _RUNS["failed"] == _RUNS["done"]:
        print(f"error: every run failed: {'; '.join(_RUNS['jobs'])}; see the reasons with "
              "`python -m launch.status`", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    # Run the importable copy of this module: jobs sent through submitit pickle the task by reference,
    # and functions of `__main__` cannot be found in the job's process.
    from study.train import main as _entry

    _entry()
