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
from typing import Any

from study.store.claims import ClaimSettings
from study.store.records import identity_hash
from study.spaces import NetShape, get_space


# How a run is summarised by one number (analysis/metrics.py reads them); `tse-E` for E >= 1 too.
SUMMARIES = ("best", "final", "test_loss", "train_loss", "tse")


def is_summary(name: object) -> bool:
    """Whether `name` names a run summary (`tse-2` included)."""
    text = str(name)
    return text in SUMMARIES or (text.startswith("tse-") and text[4:].isdigit() and int(text[4:]) >= 1)


@dataclass(frozen=True)
class Budget:
    """How long to train and with what optimiser recipe (the network's size is a NetShape, not this)."""

    name: str
    epochs: int
    batch_size: int = 128  # images per step (the paper's CIFAR-10 recipe: 128 at lr 0.1)
    lr: float = 0.1
    weight_decay: float = 5e-4
    momentum: float = 0.9
    nesterov: bool = True
    precise_bn: int = 0  # training images that recompute BN statistics before each test (0 = off)
    eval_batch_size: int = 512
    warmup_epochs: int = 0  # linear warm-up from lr / 10 over these epochs (unnas' evaluation phase: 5)

    def __post_init__(self) -> None:
        """The ranges a budget must be in: the one place they are checked (types come from the config schema)."""
        for key in ("epochs", "batch_size", "eval_batch_size"):
            if getattr(self, key) < 1:
                raise ValueError(f"budget.{key} must be a positive integer, got {getattr(self, key)}")
        if not 0 <= self.warmup_epochs < self.epochs:
            raise ValueError(f"budget.warmup_epochs must be in [0, budget.epochs), got {self.warmup_epochs}")
        if not self.lr > 0 or not math.isfinite(self.lr):
            raise ValueError(f"budget.lr must be a finite positive number, got {self.lr}")
        if self.precise_bn < 0 or not 0 <= self.weight_decay < math.inf:
            raise ValueError("budget.precise_bn and budget.weight_decay must be finite and not negative")
        if not 0 <= self.momentum < 1 or (self.nesterov and self.momentum == 0):
            raise ValueError(f"budget.momentum must be in [0, 1) (above 0 with nesterov), got {self.momentum}; "
                             "e.g. budget.momentum=0.9")


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


_LATER_BUDGET_KEYS = {"warmup_epochs": 0}  # budget settings added after studies existed, with their defaults
_NOT_IDENTITY = ("cache_dir", "download", "loader_workers", "max_unreadable")  # dataset options a run's result ignores


@dataclass(frozen=True)
class Setup:
    """Everything shared by the runs of one train command (picklable, sent once to each worker)."""

    space: str
    objective: str
    objective_options: dict[str, Any]
    dataset: str
    dataset_options: dict[str, Any]
    budget: Budget
    shape: NetShape  # the network trained: dataset input and classes, budget (or space) width and depth
    device: str
    threads: int
    config: dict[str, Any] = field(default_factory=dict)
    claims: ClaimSettings = ClaimSettings()
    precision: str = "fp32"  # fp32 or bf16 (autocast), resolved from `precision` for the device
    fuse: int = 1  # seeds of one cell trained side by side as one network (1: each alone); not an identity
    checkpoint_s: float = 600.0  # streaming datasets: seconds between checkpoints within an epoch (0: at epoch ends)

    @property
    def device_type(self) -> str:
        """`cpu` or `cuda` (no index: which GPU of a machine trained a run does not change it)."""
        return self.device.split(":")[0]

    def identity(self) -> dict[str, Any]:
        """What defines a run besides its cell and seed (threads, GPU index and paths do not)."""
        # Where data is cached and whether it may be downloaded do not change it: moving a study keeps its runs;
        # nor do a streaming loader's worker count (its batches do not depend on it) and its unreadable-file limit.
        dataset_options = {k: v for k, v in self.dataset_options.items() if k not in _NOT_IDENTITY}
        # Width and depth stay under "budget", where they were when they were budget fields: same hashes. The
        # ImageNet stem and a depth in cells enter only when set, so every earlier study keeps its hashes.
        budget = {**asdict(self.budget), "width": self.shape.width, "cells_per_stage": self.shape.cells_per_stage}
        for key, default in _LATER_BUDGET_KEYS.items():  # added later: only when set, so earlier runs keep their hashes
            if budget[key] == default:
                del budget[key]
        if self.shape.stem != "cifar":
            budget["stem"] = self.shape.stem
        if self.shape.depth:
            budget["depth"] = self.shape.depth
        identity = {"space": self.space, "objective": self.objective, "objective_options": self.objective_options,
                    "dataset": self.dataset, "dataset_options": dataset_options, "budget": budget}
        # Device type and precision change the numbers a run produces, so a GPU bf16 run is another run than
        # a CPU fp32 one. They enter only when they differ from (cpu, fp32), the setting every study was
        # trained with before they counted: those studies keep their identity hashes and run folders.
        if self.device_type != "cpu":
            identity["device"] = self.device_type
        if self.precision != "fp32":
            identity["precision"] = self.precision
        return identity


def provenance() -> dict[str, Any]:
    """Where and with what a record was produced."""
    import torch

    from study import __version__, git_commit

    return {"version": __version__, "git_commit": git_commit(), "torch": torch.__version__,
            "python": platform.python_version(), "host": socket.gethostname()}


def record(spec: RunSpec, setup: Setup, status: str, **fields: Any) -> dict[str, Any]:
    """A run record with the fields every record carries."""
    return {
        "cell_id": spec.cell_id, "arch": spec.arch, "canonical": spec.parsed(setup.space).canonical(),
        "objective": spec.objective, "seed": spec.seed,
        "space": setup.space, "dataset": setup.dataset, "budget": setup.budget.name,
        "identity": identity_hash(setup.identity()), "status": status, "device_type": setup.device_type,
        "precision": setup.precision,
        "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "config": setup.config, "provenance": provenance(), **fields,
    }


def network_size(space: Any, cell: Any, shape: NetShape) -> dict[str, Any]:
    """The trained shape and its params/FLOPs measured like cells.jsonl's (backbone + supervised head).

    cells.jsonl sizes every cell at the shape of the sample; a run trained at another shape (another
    budget or dataset) carries its own numbers here, so nothing presents the sample's as the run's.
    """
    params, flops = space.complexity(cell, shape)
    return {"net": asdict(shape), "net_params": params, "net_flops": flops}
