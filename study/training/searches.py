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
import time
import traceback
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from study.spaces import NetShape
from study.store.claims import ClaimSettings, claimed
from study.store.records import (NotOwner, WriteError, clean_temporaries, identity_hash, read_record, write_guard,
                                 write_record)
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


def run_safely(spec: SearchSpec, setup: SearchSetup, data: Any, progress: Any = None) -> dict[str, Any]:
    """Claim and run one search; an exception becomes a `failed` record with its reason, not a crash.

    A search claimed by a live process elsewhere, or complete by now, is skipped (nothing is written).
    A failed write (disk full, read-only) stops the command: it would fail for every search.
    """
    from study.training.search_run import execute

    skipped = {"status": "skipped", "seed": spec.seed, "cell_id": None}
    with claimed(spec.path, setup.claims) as claim:
        if claim is None:
            return {**skipped, "reason": "in progress elsewhere"}
        rec = read_record(spec.path, quarantine_bad=True) if spec.path.exists() else None
        if rec is not None and rec.get("status") == "complete" and rec.get("identity") == identity_hash(setup.identity()):
            return {**skipped, "reason": "finished elsewhere"}
        clean_temporaries(spec.path)
        with write_guard(lambda path: claim.owns(path), {"claim": claim.owner}):
            t0 = time.perf_counter()
            try:
                return execute(spec, setup, data, progress)
            except NotOwner as e:
                log.warning("%s", e)
                return {**skipped, "reason": "claim taken over"}
            except WriteError:
                raise
            except Exception as e:  # a search's bug must not take the others down; the record keeps the reason
                log.debug("search %s failed", spec.path, exc_info=True)
                rec = search_record(spec, setup, "failed", reason=f"{type(e).__name__}: {e}",
                                    wall_s=time.perf_counter() - t0, traceback=traceback.format_exc(limit=8))
                write_record(spec.path, rec)
                return rec


def _fmt_s(seconds: float) -> str:
    m, s = divmod(int(round(seconds)), 60)
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"


class SearchProgress:
    """One log line per epoch and per finished search, with the time left at the current pace."""

    def __init__(self, total: int, epochs: int, label: str) -> None:
        self.total, self.epochs, self.label = total, epochs, label
        self.done = self.failed = 0
        self.skipped: dict[str, int] = {}
        self.first_failure = ""
        self.epochs_done, self.t0 = 0, time.perf_counter()

    def epoch(self, spec: SearchSpec, entry: dict[str, Any], resumed_at: int) -> None:
        """Log one finished epoch of a search (`resumed_at`: the epoch this attempt started from)."""
        self.epochs_done += 1
        pace = (time.perf_counter() - self.t0) / self.epochs_done
        left = (self.epochs - entry["epoch"]) + (self.total - self.done - 1) * self.epochs
        truth = entry.get("truth") or {}
        judged = f" [truth CIFAR-10 {100 * truth['nb201-cifar10']:.2f}%]" if "nb201-cifar10" in truth else ""
        arch_loss = "frozen" if entry["arch_loss"] is None else f"{entry['arch_loss']:.3f}"
        log.info("%s %s: epoch %d/%d, loss w %.3f a %s, supernet %.1f%%, cell %s%s (%.0fs), %s left", self.label,
                 spec.label, entry["epoch"], self.epochs, entry["weight_loss"], arch_loss, 100 * entry["supernet_acc"],
                 entry["cell"], judged, entry["wall_s"], _fmt_s(pace * max(0, left)))

    def update(self, rec: dict[str, Any]) -> None:
        """Count a finished search and log it."""
        if rec["status"] == "skipped":
            self.skipped[rec["reason"]] = self.skipped.get(rec["reason"], 0) + 1
            self.total -= 1
            log.info("%s seed %d: %s, skipped", self.label, rec["seed"], rec["reason"])
            return
        self.done += 1
        if rec["status"] == "complete":
            truth = rec.get("truth") or {}
            judged = f", truth CIFAR-10 {100 * truth['nb201-cifar10']:.2f}%" if "nb201-cifar10" in truth else ""
            result = f"found {rec['arch']}{judged}"
        else:
            self.failed += 1
            result = f"FAILED: {rec.get('reason')}"
            self.first_failure = self.first_failure or str(rec.get("reason"))
        log.info("[%d/%d] %s seed %d: %s (%.0f CPU s)", self.done, self.total, self.label, rec["seed"], result,
                 rec.get("cpu_s") or 0.0)


_WORKER: dict[str, Any] = {}


def _work(spec: SearchSpec) -> dict[str, Any]:
    return run_safely(spec, _WORKER["setup"], _WORKER["data"], SearchProgress(1, _WORKER["setup"].budget.epochs,
                                                                              _WORKER["label"]))


def _init(setup: SearchSetup, label: str) -> None:
    from study.training import workers

    workers._init(setup)  # signals, logging, threads, device and the dataset, as for training workers
    _WORKER.update(setup=setup, data=workers._WORKER["data"], label=label)


def run_searches(specs: list[SearchSpec], setup: SearchSetup, workers: int, label: str) -> SearchProgress:
    """Run `specs` with `workers` processes (inline when 1); returns the progress counters."""
    from study.training import workers as pool_tools
    from study.training.devices import configure_device, configure_threads

    progress = SearchProgress(len(specs), setup.budget.epochs, label)
    if not specs:
        return progress
    if workers == 1:
        configure_threads(setup.threads)
        configure_device(setup.device)
        data = pool_tools.load_data(setup)
        for spec in specs:
            progress.update(run_safely(spec, setup, data, progress))
        return progress
    import multiprocessing
    import signal
    from concurrent.futures import ProcessPoolExecutor, as_completed

    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"), initializer=_init,
                               initargs=(setup, label))
    try:
        for fut in as_completed([pool.submit(_work, spec) for spec in specs]):
            progress.update(fut.result())
    except BaseException:  # Ctrl-C, preemption, a write error: stop the searches now, each keeps its last epoch
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        pool_tools.stop_workers(pool)
        raise
    pool.shutdown()
    return progress
