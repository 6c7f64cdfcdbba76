"""What a run is: its spec (cell, objective, seed, record path), the setup its command shares with every
run, the optimiser recipe, and the record it leaves (with provenance and the trained network's size).

Nothing here trains or imports torch at import time; the runner (runner.py), the training-free scorer
(scoring.py) and the commands build on these values.
"""

from __future__ import annotations

import math
import platform
import socket
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, ClassVar

from study.store.claims import ClaimSettings
from study.store.records import identity_hash
from study.training.loggers import LoggerSettings
from study.spaces import NetShape, get_space
from study import __version__, git_commit

# How a run is summarised by one number (analysis/metrics.py reads them); `tse-E` for E >= 1 too.
SUMMARIES = ("best", "final", "test_loss", "train_loss", "tse")


def is_summary(name: object) -> bool:
    """Whether `name` names a run summary (`tse-2` included)."""
    text = str(name)
    return text in SUMMARIES or (text.startswith("tse-") and text[4:].isdigit() and int(text[4:]) >= 1)


@dataclass(frozen=True)
class Recipe:
    """What trainings and searches share of an optimiser recipe, and the ranges it must be in (checked here
    once; types come from the config schema, study/commands/settings.py)."""

    group: ClassVar[str] = "budget"  # the config group, for messages
    later: ClassVar[dict[str, Any]] = {}  # fields added after studies existed: in identities only when not default

    name: str
    epochs: int
    batch_size: int = 128  # images per step (the paper's CIFAR-10 recipe: 128 at lr 0.1)
    lr: float = 0.1
    weight_decay: float = 5e-4
    momentum: float = 0.9
    nesterov: bool = True
    eval_batch_size: int = 512

    def __post_init__(self) -> None:
        """The ranges a recipe must be in: the one place they are checked."""
        for key in ("epochs", "batch_size", "eval_batch_size"):
            if getattr(self, key) < 1:
                raise ValueError(f"{self.group}.{key} must be a positive integer, got {getattr(self, key)}")
        if not self.lr > 0 or not math.isfinite(self.lr):
            raise ValueError(f"{self.group}.lr must be a finite positive number, got {self.lr}")
        if not 0 <= self.weight_decay < math.inf:
            raise ValueError(f"{self.group}.weight_decay must be finite and not negative, got {self.weight_decay}")
        if not 0 <= self.momentum < 1 or (self.nesterov and self.momentum == 0):
            raise ValueError(f"{self.group}.momentum must be in [0, 1) (above 0 with nesterov), got {self.momentum}; "
                             f"e.g. {self.group}.momentum=0.9")


@dataclass(frozen=True)
class Budget(Recipe):
    """How long to train and with what optimiser recipe (the network's size is a NetShape, not this)."""

    # Settings added after studies existed, with their defaults: in a run's identity only when set otherwise,
    # so earlier runs keep their hashes.
    later: ClassVar[dict[str, Any]] = {"warmup_epochs": 0}

    precise_bn: int = 0  # training images that recompute BN statistics before each test (0 = off)
    warmup_epochs: int = 0  # linear warm-up from lr / 10 over these epochs (unnas' evaluation phase: 5)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.precise_bn < 0:
            raise ValueError(f"budget.precise_bn must not be negative, got {self.precise_bn}")
        if not 0 <= self.warmup_epochs < self.epochs:
            raise ValueError(f"budget.warmup_epochs must be in [0, budget.epochs), got {self.warmup_epochs}")


@dataclass(frozen=True)
class RunSpec:
    """One training: a cell under an objective with a seed, and where its record goes."""

    cell_id: str
    arch: str
    objective: str
    seed: int
    path: Path
    cell: Any = field(default=None, compare=False)  # the parsed cell: the planner parses each row once

    def parsed(self, space: str) -> Any:
        """The run's cell as a value of its space (parsed from `arch` only when the planner did not)."""
        return self.cell if self.cell is not None else get_space(space).parse(self.arch)


_NOT_IDENTITY = ("cache_dir", "download", "loader_workers", "max_unreadable")  # dataset options a result ignores


@dataclass(frozen=True)
class JobSetup:
    """What every job of one command shares, trainings and searches alike (picklable, sent once to each
    worker), and the one rule of what makes two jobs the same (`identity`)."""

    space: str
    objective: str
    objective_options: dict[str, Any]
    dataset: str
    dataset_options: dict[str, Any]
    budget: Recipe
    shape: NetShape  # the network trained or searched: dataset input and classes, the budget's width and depth
    device: str
    threads: int
    config: dict[str, Any] = field(default_factory=dict)
    claims: ClaimSettings = ClaimSettings()
    precision: str = "fp32"  # fp32 or bf16 (autocast), resolved from `precision` for the device
    logger: LoggerSettings = LoggerSettings()  # per-epoch tracking; not an identity (logging changes no result)

    @property
    def device_type(self) -> str:
        """`cpu` or `cuda` (no index: which GPU of a machine ran a job does not change it)."""
        return self.device.split(":")[0]

    def own_identity(self) -> dict[str, Any]:
        """What defines this kind of job beyond the shared part (a search: its method)."""
        return {}

    def identity(self) -> dict[str, Any]:
        """What defines a job besides its cell and seed (threads, GPU index and paths do not)."""
        # Where data is cached and whether it may be downloaded do not change it: moving a study keeps its jobs;
        # nor do a streaming loader's worker count (its batches do not depend on it) and its unreadable-file limit.
        dataset_options = {k: v for k, v in self.dataset_options.items() if k not in _NOT_IDENTITY}
        # Width and depth stay under "budget", where they were when they were budget fields: same hashes. The
        # ImageNet stem and a depth in cells enter only when set, so every earlier study keeps its hashes.
        budget = {**asdict(self.budget), "width": self.shape.width, "cells_per_stage": self.shape.cells_per_stage}
        for key, default in self.budget.later.items():  # added later: only when set, so earlier jobs keep their hashes
            if budget[key] == default:
                del budget[key]
        if self.shape.stem != "cifar":
            budget["stem"] = self.shape.stem
        if self.shape.depth:
            budget["depth"] = self.shape.depth
        identity = {"space": self.space, **self.own_identity(), "objective": self.objective,
                    "objective_options": self.objective_options, "dataset": self.dataset,
                    "dataset_options": dataset_options, "budget": budget}
        # Device type and precision change the numbers a job produces, so a GPU bf16 run is another run than
        # a CPU fp32 one. They enter only when they differ from (cpu, fp32), the setting every study was
        # trained with before they counted: those studies keep their identity hashes and folders.
        if self.device_type != "cpu":
            identity["device"] = self.device_type
        if self.precision != "fp32":
            identity["precision"] = self.precision
        return identity

    def identity_hash(self) -> str:
        """The short hash of `identity()` that names the jobs' folders and marks their records."""
        return identity_hash(self.identity())

    def stamp(self, status: str) -> dict[str, Any]:
        """The fields every record of this setup carries, runs and searches alike."""
        return {"space": self.space, "dataset": self.dataset, "budget": self.budget.name,
                "identity": self.identity_hash(), "status": status, "device_type": self.device_type,
                "precision": self.precision, "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "config": self.config, "provenance": provenance()}


@dataclass(frozen=True)
class Setup(JobSetup):
    """Everything shared by the runs of one train command."""

    budget: Budget
    fuse: int = 1  # seeds of one cell trained side by side as one network (1: each alone); not an identity
    checkpoint_s: float = 600.0  # streaming datasets: seconds between checkpoints within an epoch (0: at epoch ends)


def provenance() -> dict[str, Any]:
    """Where and with what a record was produced."""
    import torch

    return {"version": __version__, "git_commit": git_commit(), "torch": torch.__version__,
            "python": platform.python_version(), "host": socket.gethostname()}


def record(spec: RunSpec, setup: Setup, status: str, **fields: Any) -> dict[str, Any]:
    """A run record with the fields every record carries."""
    return {"cell_id": spec.cell_id, "arch": spec.arch, "canonical": spec.parsed(setup.space).canonical(),
            "objective": spec.objective, "seed": spec.seed, **setup.stamp(status), **fields}


def network_size(space: Any, cell: Any, shape: NetShape) -> dict[str, Any]:
    """The trained shape and its params/FLOPs measured like cells.jsonl's (backbone + supervised head).

    cells.jsonl sizes every cell at the shape of the sample; a run trained at another shape (another
    budget or dataset) carries its own numbers here, so nothing presents the sample's as the run's.
    """
    params, flops = space.complexity(cell, shape)
    return {"net": asdict(shape), "net_params": params, "net_flops": flops}
