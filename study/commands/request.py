"""The train command as a typed request: the config read once into plain values, each value checked once.

Types are checked by the config schema when Hydra composes (conf/budget's schema, study/commands/settings.py);
ranges by the values themselves (`Budget`, `NetShape`); device and precision by study/training/devices.py.
Nothing below the command reads a DictConfig.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from study.commands import settings
from study.errors import UserError
from study.training import devices
from study.training.run import Setup

# Dataset keys that describe the data's shape (read into the NetShape) or an objective's input, not how to build it.
_NOT_BUILD_OPTIONS = ("name", "channels", "n_classes", "crop_padding")


@dataclass(frozen=True)
class TrainRequest:
    """A typed train command: what to train (setup, seeds, which cells) and how to spread it (workers, shards)."""

    study_dir: Path
    setup: Setup
    seeds: list[int]
    workers: int
    shards: int = 1
    shard: int | None = None
    cells: list[Any] | None = None  # ids or row numbers; None = every cell of the sample
    dry_run: bool = False


def dataset_build_options(cfg: DictConfig, study_dir: Path) -> dict[str, Any]:
    """The configured dataset's builder options (a DataError for an unknown dataset name)."""
    from study.data import DATASETS

    DATASETS.get(cfg.dataset.name)  # unknown name -> DataError listing the choices
    options = {k: v for k, v in OmegaConf.to_container(cfg.dataset, resolve=True).items()
               if k not in _NOT_BUILD_OPTIONS}
    if "cache_dir" in options and options["cache_dir"] is None:
        options["cache_dir"] = str(study_dir / "cache")  # decoded images and downloads live with the study
    return options


def job_setup(cfg: DictConfig, group: str) -> dict[str, Any]:
    """What a train and a search command read alike from their config: the fields of a `JobSetup` (all but
    `threads`, which each command sets by its own policy), with `group`'s recipe for the objective."""
    from study.objectives.base import objective_class

    # A task of a local multi-GPU job takes its own GPU before anything in the process can initialise CUDA.
    devices.pin_visible_gpus(devices.current_slot())
    study_dir = settings.study_dir(cfg)
    objective = OmegaConf.select(cfg, "objective.name")
    objective_class(objective)  # unknown name -> UserError listing the choices
    budget, shape = settings.recipe_for(cfg, group, objective)
    device = devices.resolve_device(str(OmegaConf.select(cfg, "device")))
    options = {k: v for k, v in OmegaConf.to_container(cfg.objective, resolve=True).items() if k != "name"}
    options["crop_padding"] = settings.non_negative_int(cfg, "dataset.crop_padding", "dataset.crop_padding")
    return dict(space=settings.space_name(cfg), objective=objective, objective_options=options,
                dataset=cfg.dataset.name, dataset_options=dataset_build_options(cfg, study_dir), budget=budget,
                shape=shape, device=device, config=settings.plain(cfg), claims=settings.claim_settings(cfg),
                logger=settings.logger_settings(cfg),
                precision=devices.resolve_precision(str(OmegaConf.select(cfg, "precision")), device))


def stream_threads(cfg: DictConfig, dataset_options: dict[str, Any], cores: int, workers: int) -> int:
    """A streamed job's torch threads (a training's or a search's): the cores its process gets, shared with its
    loader workers, which take all but one of them when `dataset.loader_workers=auto` (set here)."""
    if dataset_options.get("loader_workers", "auto") == "auto":
        dataset_options["loader_workers"] = max(1, cores // workers - 1)
    return settings.auto_int(cfg, "threads", max(1, cores // workers))


def parse(cfg: DictConfig) -> TrainRequest:
    """The request of a composed train config; UserError for anything invalid."""
    from study.data import DATASETS

    common = job_setup(cfg, "budget")
    settings.check_summary(cfg)
    study_dir, device, shape = settings.study_dir(cfg), common["device"], common["shape"]
    dataset_options = common["dataset_options"]
    cores = devices.cpu_count()
    streams = DATASETS.get(cfg.dataset.name).streams
    # CPU: one single-threaded worker per core (a small network cannot keep two threads busy inside a
    # step). CUDA: several trainings share each GPU, since one small network leaves it mostly idle. A
    # streaming dataset: one training, whose loader workers decode on the other cores.
    default_workers = 1 if streams else min(4, cores) if device.startswith("cuda") else cores
    workers = settings.auto_int(cfg, "workers", default_workers)
    threads = stream_threads(cfg, dataset_options, cores, workers) if streams \
        else settings.auto_int(cfg, "threads", devices.auto_threads(cores, workers))  # in memory: one each
    seeds = settings.seeds(cfg)
    # Streamed batches come one model at a time: seeds of a cell train one after another.
    fuse = 1 if streams else settings.auto_int(cfg, "fuse", devices.fuse_auto(device.split(":")[0], shape))
    setup = Setup(**common, threads=threads, fuse=min(fuse, len(seeds)),
                  checkpoint_s=settings.number(cfg, "checkpoint_s", "checkpoint_s"))
    shard = OmegaConf.select(cfg, "shard")
    wanted = OmegaConf.select(cfg, "cells")
    if wanted is not None and not OmegaConf.is_list(wanted):
        raise UserError(f"cells must be a list of cell ids or row numbers, got {wanted!r}; e.g. cells=[3,17]")
    return TrainRequest(
        study_dir=study_dir, setup=setup, seeds=seeds, workers=workers,
        shards=settings.positive_int(cfg, "shards", "shards"),
        shard=None if shard is None else settings.integer(cfg, "shard", "shard"),
        cells=None if wanted is None else list(wanted), dry_run=settings.boolean(cfg, "dry_run"),
    )
