"""Plan the runs of one (objective, seed) over a study's cells, train the missing ones, write records."""

from __future__ import annotations

import logging
import platform
import socket
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from study.errors import UserError
from study.store.claims import ClaimSettings
from study.store.records import identity_hash, read_record, run_dir, write_record
from study.spaces import NetShape, cell_id, get_space
from study.training.trainer import Budget

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunSpec:
    """One training: a cell under an objective with a seed, and where its record goes."""

    cell_id: str
    arch: str
    objective: str
    seed: int
    path: Path


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

    @property
    def device_type(self) -> str:
        """`cpu` or `cuda` (no index: which GPU of a machine trained a run does not change it)."""
        return self.device.split(":")[0]

    def identity(self) -> dict[str, Any]:
        """What defines a run besides its cell and seed (threads, GPU index and paths do not)."""
        # Where data is cached and whether it may be downloaded do not change it: moving a study keeps its runs.
        dataset_options = {k: v for k, v in self.dataset_options.items() if k not in ("cache_dir", "download")}
        # Width and depth stay under "budget", where they were when they were budget fields: same hashes.
        budget = {**asdict(self.budget), "width": self.shape.width, "cells_per_stage": self.shape.cells_per_stage}
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


def plan(study_dir: Path, cells: list[dict[str, Any]], setup: Setup, seed: int) -> tuple[list[RunSpec], int]:
    """The runs still to do for `seed`, and how many are already complete (skipped)."""
    space = get_space(setup.space)
    identity = identity_hash(setup.identity())
    folder = run_dir(study_dir, setup.objective, setup.dataset, setup.budget.name, identity, seed)
    todo, done = [], 0
    for row in cells:
        try:
            cell = space.parse(row["arch"])
        except UserError as e:
            raise UserError(f"cells.jsonl: cell {row['id']!r}: {e}; re-sample (the same study.sample settings plus force=true) instead of editing the file") from None
        cid = cell_id(cell.canonical())
        if cid != row["id"]:
            raise_mismatch(row)
        path = folder / f"{cid}.json"
        rec = read_record(path) if path.exists() else None
        if rec is not None and rec.get("status") == "complete" and rec.get("identity") == identity:
            done += 1
            continue
        todo.append(RunSpec(cid, cell.to_str(), setup.objective, seed, path))
    return todo, done


def raise_mismatch(row: dict[str, Any]) -> None:
    """A cells-file row whose id does not match its architecture (edited by hand)."""
    raise UserError(
        f"cells.jsonl: cell {row['id']!r} does not match its arch {row['arch']!r}; "
        "re-sample (python -m study.sample force=true) instead of editing the file"
    )


def provenance() -> dict[str, Any]:
    """Where and with what a record was produced."""
    import torch

    from study import __version__, git_commit

    return {"version": __version__, "git_commit": git_commit(), "torch": torch.__version__,
            "python": platform.python_version(), "host": socket.gethostname()}


def record(spec: RunSpec, setup: Setup, status: str, **fields: Any) -> dict[str, Any]:
    """A run record with the fields every record carries."""
    return {
        "cell_id": spec.cell_id, "arch": spec.arch, "canonical": get_space(setup.space).parse(spec.arch).canonical(),
        "objective": spec.objective, "seed": spec.seed,
        "space": setup.space, "dataset": setup.dataset, "budget": setup.budget.name,
        "identity": identity_hash(setup.identity()), "status": status, "device_type": setup.device_type,
        "precision": setup.precision,
        "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "config": setup.config, "provenance": provenance(), **fields,
    }


# A run whose epochs take this long (or any run at the paper budget, silent for hours otherwise) logs
# one line per epoch, so a long study shows it is alive between its per-run lines.
HEARTBEAT_S = 30.0


def heartbeat(spec: RunSpec, setup: Setup) -> Callable[[int, Any], None]:
    """An on_epoch callback logging `cell X: epoch k/n ...` at INFO for slow epochs or the paper budget."""
    def log_epoch(epoch: int, history: Any) -> None:
        if history.epoch_s[-1] >= HEARTBEAT_S or setup.budget.name == "paper":
            log.info("%s seed %d cell %s: epoch %d/%d, loss %.4f, test %.4f (%.0fs)", spec.objective, spec.seed,
                     spec.cell_id, epoch + 1, setup.budget.epochs, history.train_loss[-1], history.test_acc[-1],
                     history.epoch_s[-1])
    return log_epoch


def execute(spec: RunSpec, setup: Setup, data: Any) -> dict[str, Any]:
    """Train one run and write its record (complete or failed); returns the record."""
    import torch

    from study.training.checkpoint import Checkpointer
    from study.training.checkpoint import path_for as checkpoint_path
    from study.spaces.modules import count_params
    from study.objectives import create_objective
    from study.training.trainer import Diverged, train

    space = get_space(setup.space)
    cell = space.parse(spec.arch)
    objective = create_objective(setup.objective, data, **setup.objective_options)
    if not objective.trains:  # a training-free score: no trainer, no checkpoint
        from study.training.scoring import score_run

        return score_run(spec, setup, data, objective)
    # The objective may feed the backbone other channels than the dataset has (colorization: lightness).
    with torch.random.fork_rng(devices=[]):  # the seed fixes the init without touching global state
        torch.manual_seed(spec.seed)
        model = objective.build(space.build(cell, replace(setup.shape, c_in=objective.c_in)))
    model = model.to(setup.device)
    # A requeued job resumes from the last epoch saved by an earlier attempt (see study/training/checkpoint.py).
    ckpt = Checkpointer(checkpoint_path(spec.path), {"cell_id": spec.cell_id, "seed": spec.seed,
                                                      "identity": identity_hash(setup.identity())}, setup.config,
                      device=setup.device)
    start = ckpt.load(model, setup.device)
    resumed = {"resumed_from_epoch": ckpt.resumes[-1] if ckpt.resumes else None, "resumes": ckpt.resumes,
               "rng_restarts": ckpt.rng_restarts}
    try:
        history = train(model, objective, data, setup.budget, spec.seed, start=start, on_state=ckpt.save,
                        precision=setup.precision, on_epoch=heartbeat(spec, setup))
    except Diverged as e:
        rec = record(spec, setup, "failed", reason=str(e), params=count_params(model),
                     wall_s=ckpt.wall_s(), device=setup.device, **resumed)
    else:
        rec = record(
            spec, setup, "complete", reason=None, test_acc_best=history.best, test_acc_final=history.final,
            best_epoch=history.test_acc.index(history.best), epochs=len(history.test_acc),
            history={"train_loss": history.train_loss, "test_acc": history.test_acc},
            params=count_params(model), wall_s=ckpt.wall_s(), device=setup.device, **resumed,
        )
    rec["dataset_fingerprint"] = getattr(data, "fingerprint", None)
    rec.update(network_size(space, cell, setup.shape))
    write_record(spec.path, rec)
    ckpt.discard()
    return rec


def network_size(space: Any, cell: Any, shape: NetShape) -> dict[str, Any]:
    """The trained shape and its params/FLOPs measured like cells.jsonl's (backbone + supervised head).

    cells.jsonl sizes every cell at the shape of the sample; a run trained at another shape (another
    budget or dataset) carries its own numbers here, so nothing presents the sample's as the run's.
    """
    params, flops = space.complexity(cell, shape)
    return {"net": asdict(shape), "net_params": params, "net_flops": flops}


def failed_record(spec: RunSpec, setup: Setup, reason: str, wall_s: float, **fields: Any) -> dict[str, Any]:
    """Record a run that raised, so failures never hide."""
    rec = record(spec, setup, "failed", reason=reason, wall_s=wall_s, device=setup.device, **fields)
    write_record(spec.path, rec)
    return rec
