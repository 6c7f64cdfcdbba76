"""The searches of one command: what each one is, where its record lives, and running it once.

Layout under `<study_dir>/searches/<method>/<objective>/<dataset>-<budget>-<identity>/`: `seed<k>.json`
is a search's record (checksummed, written atomically once, like a run's), `seed<k>.ckpt` its per-epoch
state while it runs, `seed<k>.json.claim` the claim of the process running it. `identity` hashes
everything that defines a search besides its seed, so another budget or option is another search.
A search whose record is complete is never redone; an interrupted one resumes from its last epoch.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from study.spaces import NetShape
from study.store.claims import ClaimSettings
from study.store.records import identity_hash, read_record
from study.training.run import provenance

log = logging.getLogger(__name__)

SEARCHES_DIR = "searches"


@dataclass(frozen=True)
class SearchBudget:
    """How long to search and with what optimisers (the supernet's size is a NetShape, not this)."""

    name: str
    epochs: int
    batch_size: int = 64  # images per step, in each of the two steps
    lr: float = 0.025  # weights: SGD, cosine from lr to lr_min over the epochs
    lr_min: float = 0.001
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    grad_clip: float = 5.0  # max norm of the weights' gradient
    arch_lr: float = 3e-4  # alpha: Adam
    arch_beta1: float = 0.5
    arch_beta2: float = 0.999
    arch_weight_decay: float = 1e-3
    warmup_epochs: int = 0  # first epochs train the weights only (alpha frozen)
    portion: float = 0.5  # share of the training images for the weights; the rest for alpha
    eval_images: int = 0  # architecture-part images the supernet is scored on each epoch (0 = all)
    eval_batch_size: int = 512

    def __post_init__(self) -> None:
        """The ranges a search budget must be in (types come from the config schema)."""
        for key in ("epochs", "batch_size", "eval_batch_size"):
            if getattr(self, key) < 1:
                raise ValueError(f"search_budget.{key} must be a positive integer, got {getattr(self, key)}")
        for key in ("lr", "arch_lr"):
            if not 0 < getattr(self, key) < math.inf:
                raise ValueError(f"search_budget.{key} must be a finite positive number, got {getattr(self, key)}")
        if not 0 <= self.lr_min <= self.lr:
            raise ValueError(f"search_budget.lr_min must be in [0, lr], got {self.lr_min}")
        if not 0 < self.portion < 1:
            raise ValueError(f"search_budget.portion must be in (0, 1), got {self.portion}; unnas uses 0.5")
        if not 0 <= self.warmup_epochs < self.epochs:
            raise ValueError(f"search_budget.warmup_epochs must be in [0, epochs), got {self.warmup_epochs}")
        if min(self.weight_decay, self.arch_weight_decay, self.eval_images) < 0 or not self.grad_clip > 0:
            raise ValueError("search_budget weight decays and eval_images must not be negative, grad_clip positive")
        if not (0 <= self.momentum < 1 and 0 <= self.arch_beta1 < 1 and 0 <= self.arch_beta2 < 1):
            raise ValueError("search_budget.momentum, arch_beta1 and arch_beta2 must be in [0, 1)")

    def lr_at(self, epoch: int) -> float:
        """The weights' learning rate in `epoch`: cosine from lr to lr_min, set once per epoch."""
        return self.lr_min + 0.5 * (self.lr - self.lr_min) * (1 + math.cos(math.pi * epoch / self.epochs))


@dataclass(frozen=True)
class SearchSetup:
    """Everything shared by the searches of one command (picklable, sent once to each worker)."""

    space: str
    method: str
    method_options: dict[str, Any]
    objective: str
    objective_options: dict[str, Any]
    dataset: str
    dataset_options: dict[str, Any]
    budget: SearchBudget
    shape: NetShape  # the supernet: dataset input and classes, the search budget's (or space's) width and depth
    device: str
    threads: int
    config: dict[str, Any] = field(default_factory=dict)
    claims: ClaimSettings = ClaimSettings()
    precision: str = "fp32"
    command: tuple[str, ...] = ()  # the job's overrides: `python -m study.search <command>` resumes it

    @property
    def device_type(self) -> str:
        """`cpu` or `cuda`."""
        return self.device.split(":")[0]

    def identity(self) -> dict[str, Any]:
        """What defines a search besides its seed (threads, GPU index, paths and the command line do not)."""
        dataset_options = {k: v for k, v in self.dataset_options.items() if k not in ("cache_dir", "download")}
        identity = {"space": self.space, "method": self.method, "method_options": self.method_options,
                    "objective": self.objective, "objective_options": self.objective_options,
                    "dataset": self.dataset, "dataset_options": dataset_options,
                    "budget": {**asdict(self.budget), "width": self.shape.width,
                               "cells_per_stage": self.shape.cells_per_stage}}
        if self.device_type != "cpu":
            identity["device"] = self.device_type
        if self.precision != "fp32":
            identity["precision"] = self.precision
        return identity

    def tag(self) -> str:
        """`<dataset>-<budget>-<identity hash>`: the folder of these searches' records."""
        return f"{self.dataset}-{self.budget.name}-{identity_hash(self.identity())}"


@dataclass(frozen=True)
class SearchSpec:
    """One search: a seed, and where its record goes."""

    seed: int
    path: Path

    @property
    def label(self) -> str:
        """`seed k`, for log lines."""
        return f"seed {self.seed}"


def search_dir(study_dir: Path, setup: SearchSetup) -> Path:
    """The folder of the records of `setup`'s searches."""
    return Path(study_dir) / SEARCHES_DIR / setup.method / setup.objective / setup.tag()


def plan(study_dir: Path, setup: SearchSetup, seeds: list[int]) -> tuple[list[SearchSpec], int]:
    """The searches still to do, and how many are complete already (skipped)."""
    folder, identity = search_dir(study_dir, setup), identity_hash(setup.identity())
    todo, done = [], 0
    for seed in seeds:
        path = folder / f"seed{seed}.json"
        rec = read_record(path) if path.exists() else None
        if rec is not None and rec.get("status") == "complete" and rec.get("identity") == identity:
            done += 1
        else:
            todo.append(SearchSpec(seed, path))
    return todo, done


def iter_searches(study_dir: Path) -> list[tuple[Path, dict[str, Any]]]:
    """Every valid search record of a study, in a stable order; corrupted ones are skipped with a warning."""
    found = []
    for path in sorted((Path(study_dir) / SEARCHES_DIR).glob("*/*/*/seed*.json")):
        rec = read_record(path)
        if rec is not None:
            found.append((path, rec))
    return found


def search_record(spec: SearchSpec, setup: SearchSetup, status: str, **fields: Any) -> dict[str, Any]:
    """A search record with the fields every record carries (`cell_id` is the id of the cell found)."""
    return {
        "kind": "search", "cell_id": None, "arch": None, "method": setup.method,
        "method_options": setup.method_options, "objective": setup.objective, "seed": spec.seed,
        "space": setup.space, "dataset": setup.dataset, "budget": setup.budget.name,
        "identity": identity_hash(setup.identity()), "status": status, "device_type": setup.device_type,
        "precision": setup.precision, "net": asdict(setup.shape), "command": list(setup.command),
        "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "config": setup.config, "provenance": provenance(), **fields,
    }
