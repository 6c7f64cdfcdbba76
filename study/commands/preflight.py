"""What the train command checks before anything runs: the sample, the folder, the dataset, the objective.

Each check is cheap (no decoding, no download, no training) and says in one line what is wrong and how to
fix it, so a mistake is refused at the command line, not once per worker or per run.
"""

from __future__ import annotations

import functools
import json
import logging
from dataclasses import asdict
from pathlib import Path

from study.commands import shards as sharding
from study.commands.request import TrainRequest
from study.errors import UserError
from study.spaces import NetShape
from study.store.cells import read_cells, read_info
from study.store.records import StudyError, room_to_write
from study.training import devices, loggers
from study.training.run import Setup
from study.training.runner import parse_cells

log = logging.getLogger(__name__)


def check(req: TrainRequest) -> None:
    """Refuse a train request before anything runs: no sample, a read-only study, a bad dataset or objective, a
    logger whose package is missing."""
    cells = read_cells(req.study_dir)
    read_info(req.study_dir)  # a damaged study.json stops the command (docs/outputs.md), as it stops the analysis
    # Before Hydra, whose first act is a log folder inside study_dir.
    room_to_write(req.study_dir, "study_dir", f"training writes its records and logs there; copy the study to a "
                  f"writable folder (cp -r {req.study_dir} NEW) and train with study_dir=NEW")
    parse_cells(cells, req.setup.space, req.study_dir)
    setup = req.setup
    loggers.check(setup.logger)
    images = check_dataset(setup.dataset, json.dumps(setup.dataset_options, sort_keys=True), setup.shape.n_classes)
    if images is not None and setup.budget.batch_size > images:  # one step per epoch, not the recipe's batches
        raise UserError(f"batch size {setup.budget.batch_size} ({setup.objective}'s budget) is more than the {images} "
                        f"training images of dataset {setup.dataset}: every epoch would be one step; set "
                        f"budget.batch_size={images} or less, or train on more images")
    sharding.share(sharding.choose(cells, req.cells), req.shard, req.shards, devices.current_slot())
    check_objective(setup)


@functools.lru_cache(maxsize=None)  # once per dataset setting, though every sweep value is checked
def check_dataset(name: str, options_json: str, n_classes: int) -> int | None:
    """The dataset's own cheap checks (study/data), so a bad dataset setting is refused here, not in every worker;
    returns its number of training images when that is cheap to know."""
    from study.data import preflight

    return preflight(name, json.loads(options_json), n_classes)


def check_objective(setup: Setup) -> None:
    """Build the objective on a one-image stand-in of the dataset's shape, so bad options fail here, not per run."""
    import torch

    from study.data import DATASETS, ImageData
    from study.data.stream import stand_in as stream_stand_in
    from study.objectives import create_objective
    from study.objectives.base import objective_class

    channels, size = setup.shape.c_in, setup.shape.image_size
    if objective_class(setup.objective).needs_color and channels != 3:
        raise UserError(f"objective {setup.objective!r} needs colour images but dataset {setup.dataset!r} is "
                        "grayscale; use an RGB dataset (e.g. dataset=cifar10)")
    if DATASETS.get(setup.dataset).streams:
        stand_in = stream_stand_in(setup.dataset, setup.dataset_options, size, setup.shape.n_classes)
    else:
        x = torch.zeros(1, channels, size, size, dtype=torch.uint8)
        y = torch.zeros(1, dtype=torch.int64)
        stand_in = ImageData(setup.dataset, x, y, x, y, setup.shape.n_classes, torch.zeros(channels), torch.ones(channels))
    try:
        create_objective(setup.objective, stand_in, **setup.objective_options)
    except TypeError as e:  # an option the objective does not take
        raise UserError(f"objective {setup.objective!r}: {e}; its options are in conf/objective/{setup.objective}.yaml") from None


def warn_if_resized(study_dir: Path, shape: NetShape) -> None:
    """Say so when the trained shape is not the one cells.jsonl's params and FLOPs were computed at."""
    try:
        sampled = read_info(study_dir)["sample"]["net"]
    except (StudyError, KeyError, TypeError):
        return  # no, an old or a damaged study.json: nothing to compare with (analysis names the damage)
    if not isinstance(sampled, dict):
        return
    sampled = {**asdict(NetShape(1, 1, 1, 1, 1)), **sampled}  # keys newer than the sample take their defaults
    if sampled != asdict(shape):
        differ = ", ".join(f"{k} {sampled.get(k)} -> {v}" for k, v in asdict(shape).items() if sampled.get(k) != v)
        log.warning("this network differs from the sampled one (%s): cells.jsonl's params and FLOPs do not describe "
                    "it; each run record carries its own (net, net_params, net_flops)", differ)
