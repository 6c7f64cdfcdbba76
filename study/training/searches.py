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
from pathlib import Path
from typing import Any, ClassVar

from study.spaces import SPACES, benchmark_of
from study.store.records import complete_at, read_record
from study.training.run import JobSetup, Recipe

log = logging.getLogger(__name__)

SEARCHES_DIR = "searches"


@dataclass(frozen=True)
class SearchBudget(Recipe):
    """How long to search and with what optimisers (the supernet's size is a NetShape, not this)."""

    group: ClassVar[str] = "search_budget"
    later: ClassVar[dict[str, Any]] = {"grad_clip_alpha": False}

    batch_size: int = 64  # images per step, in each of the two steps
    lr: float = 0.025  # weights: SGD, cosine from lr to lr_min over the epochs
    lr_min: float = 0.001
    grad_clip: float = 5.0  # max norm of the weights' gradient
    grad_clip_alpha: bool = False  # the norm also counts alpha's gradient of the weight step (unnas, xautodl)
    arch_lr: float = 3e-4  # alpha: Adam
    arch_beta1: float = 0.5
    arch_beta2: float = 0.999
    arch_weight_decay: float = 1e-3
    warmup_epochs: int = 0  # first epochs train the weights only (alpha frozen)
    portion: float = 0.5  # share of the training images for the weights; the rest for alpha
    eval_images: int = 0  # architecture-part images the supernet is scored on each epoch (0 = all)

    def __post_init__(self) -> None:
        """The ranges a search budget must be in beyond a training recipe's."""
        super().__post_init__()
        if not 0 < self.arch_lr < math.inf:
            raise ValueError(f"search_budget.arch_lr must be a finite positive number, got {self.arch_lr}")
        if not 0 <= self.lr_min <= self.lr:
            raise ValueError(f"search_budget.lr_min must be in [0, lr], got {self.lr_min}")
        if not 0 < self.portion < 1:
            raise ValueError(f"search_budget.portion must be in (0, 1), got {self.portion}; unnas uses 0.5")
        if not 0 <= self.warmup_epochs < self.epochs:
            raise ValueError(f"search_budget.warmup_epochs must be in [0, epochs), got {self.warmup_epochs}")
        if min(self.arch_weight_decay, self.eval_images) < 0 or not self.grad_clip > 0:
            raise ValueError("search_budget weight decays and eval_images must not be negative, grad_clip positive")
        if not (0 <= self.arch_beta1 < 1 and 0 <= self.arch_beta2 < 1):
            raise ValueError("search_budget.momentum, arch_beta1 and arch_beta2 must be in [0, 1)")

    def lr_at(self, epoch: int) -> float:
        """The weights' learning rate in `epoch`: cosine from lr to lr_min, set once per epoch."""
        return self.lr_min + 0.5 * (self.lr - self.lr_min) * (1 + math.cos(math.pi * epoch / self.epochs))


@dataclass(frozen=True)
class SearchSetup(JobSetup):
    """Everything shared by the searches of one command: a job setup plus the method."""

    budget: SearchBudget
    method: str = "darts"
    method_options: dict[str, Any] = field(default_factory=dict)
    command: tuple[str, ...] = ()  # the job's overrides: `python -m study.search <command>` resumes it

    def own_identity(self) -> dict[str, Any]:
        return {"method": self.method, "method_options": self.method_options}

    def tag(self) -> str:
        """`<dataset>-<budget>-<identity hash>`: the folder of these searches' records."""
        return f"{self.dataset}-{self.budget.name}-{self.identity_hash()}"


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
    folder, identity = search_dir(study_dir, setup), setup.identity_hash()
    specs = [SearchSpec(seed, folder / f"seed{seed}.json") for seed in seeds]
    todo = [spec for spec in specs if not complete_at(spec.path, identity)]
    return todo, len(specs) - len(todo)


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
    return {"kind": "search", "cell_id": None, "arch": None, "method": setup.method,
            "method_options": setup.method_options, "objective": setup.objective, "seed": spec.seed,
            **setup.stamp(status), "net": asdict(setup.shape), "command": list(setup.command), **fields}


def truth_note(truth: Any, space: str) -> str:
    """`truth CIFAR-10 93.17%`: the space's benchmark on its main column, when it judged the cell; else ''."""
    bench = benchmark_of(space) if isinstance(space, str) and space in SPACES.names() else None
    value = truth.get(bench.main) if bench is not None and isinstance(truth, dict) else None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return ""
    return f"truth {bench.label(bench.main)} {100 * value:.2f}%"
