"""Plan the runs of one (objective, seed) over a study's cells, train the missing ones, write records.

What a run is (its spec, setup and record) lives in study/training/run.py.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

from study.errors import UserError
from study.store.cells import resample_command
from study.store.records import NotOwner, complete_at, may_write, run_dir, write_record
from study.spaces import cell_id, get_space
from study.training.jobs import Kind, Progress, run_jobs
from study.training.loggers import open_tracker
from study.training.run import RunSpec, Setup, network_size, record

log = logging.getLogger(__name__)


def parse_cells(cells: list[dict[str, Any]], space_name: str, study_dir: Path | None = None) -> list[Any]:
    """Each cells-file row as a cell of its space, checked against its id; UserError for an edited row
    (naming the command that re-samples `study_dir` when it is given)."""
    space = get_space(space_name)
    parsed = []
    for row in cells:
        try:
            cell = space.parse(row["arch"])
        except UserError as e:
            raise UserError(f"cells.jsonl: cell {row['id']!r}: {e}; {_resample(study_dir)}") from None
        if cell_id(cell.canonical()) != row["id"]:
            raise_mismatch(row, study_dir)
        parsed.append(cell)
    return parsed


def _resample(study_dir: Path | None) -> str:
    how = resample_command(study_dir) if study_dir is not None else "(the same study.sample settings plus force=true)"
    return f"re-sample {how} instead of editing the file"


def plan(study_dir: Path, cells: list[dict[str, Any]], setup: Setup, seed: int,
         parsed: list[Any] | None = None) -> tuple[list[RunSpec], int]:
    """The runs still to do for `seed`, and how many are already complete (skipped).

    `parsed` holds the rows' cells when the caller has parsed them already (`parse_cells`).
    """
    parsed = parse_cells(cells, setup.space) if parsed is None else parsed
    identity = setup.identity_hash()
    folder = run_dir(study_dir, setup.objective, setup.dataset, setup.budget.name, identity, seed)
    specs = [RunSpec(row["id"], cell.to_str(), setup.objective, seed, folder / f"{row['id']}.json", cell)
             for row, cell in zip(cells, parsed)]
    todo = [spec for spec in specs if not complete_at(spec.path, identity)]
    return todo, len(specs) - len(todo)


def raise_mismatch(row: dict[str, Any], study_dir: Path | None = None) -> None:
    """A cells-file row whose id does not match its architecture (edited by hand)."""
    raise UserError(f"cells.jsonl: cell {row['id']!r} does not match its arch {row['arch']!r}; {_resample(study_dir)}")


# A run whose epochs take this long (or any run at the paper budget, silent for hours otherwise) logs
# one line per epoch, so a long study shows it is alive between its per-run lines.
HEARTBEAT_S = 30.0


def heartbeat(spec: RunSpec, setup: Setup) -> Callable[[int, Any], None]:
    """An on_epoch callback logging `cell X: epoch k/n ...` at INFO for slow epochs or the paper budget."""
    def log_epoch(epoch: int, history: Any) -> None:
        if history.epoch_s[-1] >= HEARTBEAT_S or setup.budget.name == "paper":
            pace = f", {history.images_per_s[-1]:.0f} images/s" if history.images_per_s else ""
            log.info("%s seed %d cell %s: epoch %d/%d, loss %.4f, test %.4f (%.0fs%s)", spec.objective, spec.seed,
                     spec.cell_id, epoch + 1, setup.budget.epochs, history.train_loss[-1], history.test_acc[-1],
                     history.epoch_s[-1], pace)
    return log_epoch


def run_fields(spec: RunSpec, setup: Setup) -> dict[str, Any]:
    """Which run a logger's rows are about: the columns before each epoch's values."""
    return {"study": str(setup.logger.study_dir), "objective": spec.objective, "seed": spec.seed,
            "cell_id": spec.cell_id, "arch": spec.arch, "dataset": setup.dataset, "budget": setup.budget.name,
            "identity": setup.identity_hash()}


def epoch_row(epoch: int, history: Any, lr: float) -> dict[str, Any]:
    """What a logger records of a finished epoch (`epoch` counted from 0, logged from 1, as the heartbeat says)."""
    return {"epoch": epoch + 1, "train_loss": history.train_loss[-1], "test_acc": history.test_acc[-1],
            "test_loss": history.test_loss[-1], "lr": lr, "epoch_s": history.epoch_s[-1],
            "images_per_s": history.images_per_s[-1], "loader_wait": history.loader_wait[-1]}


def pace_fields(history: Any) -> dict[str, Any]:
    """What a record says about a training's speed: images per second (mean over epochs), the share of time
    it waited for data, and the images a streaming loader could not read."""
    rates, waits = history.images_per_s, history.loader_wait
    return {"images_per_s": sum(rates) / len(rates) if rates else None,
            "loader_wait": sum(waits) / len(waits) if waits else None, "unreadable_images": history.unreadable}


def execute(spec: RunSpec, setup: Setup, data: Any) -> dict[str, Any]:
    """Train one run and write its record (complete or failed); returns the record."""
    return execute_group([spec], setup, data)[0]


def execute_group(specs: list[RunSpec], setup: Setup, data: Any) -> list[dict[str, Any]]:
    """Train runs of one cell (different seeds) side by side as one network and write each one's record.

    Each model is built from its own seed exactly as alone and resumes from its own checkpoint; models
    that resume from different epochs train in separate groups. One model runs as itself; several run
    stacked (study/training/stacking.py) unless the objective's network cannot be, then one after another.
    Records and checkpoints are each run's own, as alone, plus `fused` (how many trained together).
    """
    import torch

    from study.objectives import create_objective
    from study.training.checkpoint import Checkpointer
    from study.training.checkpoint import path_for as checkpoint_path

    space = get_space(setup.space)
    cell = specs[0].parsed(setup.space)
    if any(spec.arch != specs[0].arch for spec in specs):
        raise ValueError("runs trained side by side must share their cell")
    objective = create_objective(setup.objective, data, **setup.objective_options)
    if not objective.trains:  # a training-free score: no trainer, no checkpoint
        from study.training.scoring import score_run

        return [score_run(spec, setup, data, objective) for spec in specs]
    models, ckpts, starts = [], [], []
    for spec in specs:
        # The objective may feed the backbone other channels than the dataset has (colorization: lightness).
        with torch.random.fork_rng(devices=[]):  # the seed fixes the init without touching global state
            torch.manual_seed(spec.seed)
            model = objective.build(space.build(cell, replace(setup.shape, c_in=objective.c_in)))
        models.append(model.to(setup.device))
        # A requeued job resumes from the last epoch saved by an earlier attempt (see study/training/checkpoint.py).
        ckpt = Checkpointer(checkpoint_path(spec.path), {"cell_id": spec.cell_id, "seed": spec.seed,
                                                          "identity": setup.identity_hash()},
                            setup.config, device=setup.device)
        starts.append(ckpt.load(models[-1], setup.device))
        ckpts.append(ckpt)
    recs: list[dict[str, Any] | None] = [None] * len(specs)
    by_epoch: dict[int, list[int]] = {}
    for i, start in enumerate(starts):
        by_epoch.setdefault(0 if start is None else start.epoch, []).append(i)
    for members in by_epoch.values():
        _train_together(members, specs, setup, data, space, cell, objective, models, ckpts, starts, recs)
    assert all(rec is not None for rec in recs), "every run of the group has a result"
    return recs


def _train_together(members: list[int], specs: list[RunSpec], setup: Setup, data: Any, space: Any, cell: Any,
                    objective: Any, models: list, ckpts: list, starts: list, recs: list) -> None:
    """Train `members` (indices into the other lists) as one network and fill their records in `recs`."""
    from study.spaces.modules import count_params
    from study.training.stacking import NotStackable, Stacked
    from study.training.trainer import cosine_lr, fit

    net = models[members[0]]
    if len(members) > 1:
        try:
            if getattr(data, "streams", False):
                raise NotStackable(f"dataset {setup.dataset} streams one batch at a time")
            net = Stacked([models[i] for i in members])
        except NotStackable as e:
            log.info("%s cell %s: seeds train one after another, not side by side (%s)",
                     setup.objective, specs[members[0]].cell_id, e)
            for i in members:
                _train_together([i], specs, setup, data, space, cell, objective, models, ckpts, starts, recs)
            return
    k = len(members)
    for i in members:  # time spent building the group's models, or training an earlier group, is not theirs
        ckpts[i].start_clock(share=k)
    together = {"fused": k, **({"fused_seeds": [specs[i].seed for i in members]} if k > 1 else {})}

    def finish(m: int, status: str, **fields: Any) -> None:
        i = members[m]
        spec, ckpt = specs[i], ckpts[i]
        resumed = {"resumed_from_epoch": ckpt.resumes[-1] if ckpt.resumes else None, "resumes": ckpt.resumes,
                   "rng_restarts": ckpt.rng_restarts}
        if any(ckpt.resume_steps):  # a streamed run resumed within an epoch: at which step
            resumed["resume_steps"] = ckpt.resume_steps
        rec = record(spec, setup, status, params=count_params(models[i]), wall_s=ckpt.wall_s(), cpu_s=ckpt.cpu_s(),
                     device=setup.device, **fields, **resumed, **together)
        rec["dataset_fingerprint"] = getattr(data, "fingerprint", None)
        rec.update(network_size(space, cell, setup.shape))
        try:
            write_record(spec.path, rec)
        except NotOwner as e:  # another worker took this run over; the models beside it go on
            log.warning("%s", e)
            recs[i] = {"status": "skipped", "cell_id": spec.cell_id, "seed": spec.seed, "reason": "claim taken over"}
            return
        ckpt.discard()
        recs[i] = rec

    def on_state(m: int, state: Any) -> None:
        spec = specs[members[m]]
        if not may_write(spec.path):  # its claim was taken over: the run is another worker's now, checkpoint too
            if k == 1:
                raise NotOwner(f"not saving {spec.path.stem}'s checkpoint: this worker no longer holds its claim")
            return  # the seeds beside it go on; its record will be refused the same way
        ckpts[members[m]].save_state(net.state_dict() if k == 1 else net.model_state(m), state)

    # Per-epoch tracking (logger=csv, ...): one guarded logger per run, none at all when it is off.
    trackers = [open_tracker(setup.logger, specs[i].path, run_fields(specs[i], setup),
                             0 if starts[i] is None else starts[i].epoch) for i in members] if setup.logger.on else None

    def on_epoch(m: int, epoch: int, history: Any) -> None:
        heartbeat(specs[members[m]], setup)(epoch, history)
        if trackers is not None:
            lr = cosine_lr(setup.budget.lr, epoch, setup.budget.epochs, setup.budget.warmup_epochs)
            trackers[m].epoch(epoch_row(epoch, history, lr))

    def on_diverged(m: int, epoch: int) -> None:
        finish(m, "failed", reason=f"diverged at epoch {epoch}")

    def progress(line: str) -> None:
        spec = specs[members[0]]
        log.info("%s seed %d cell %s: %s", spec.objective, spec.seed, spec.cell_id, line)

    try:
        histories = fit(net, objective, data, setup.budget, [specs[i].seed for i in members],
                        [starts[i] for i in members], on_epoch, on_state, on_diverged, setup.precision,
                        checkpoint_s=setup.checkpoint_s, progress=progress)
    finally:
        for tracker in trackers or ():
            tracker.close()
    for m, history in enumerate(histories):
        if history is not None:
            finish(m, "complete", reason=None, test_acc_best=history.best, test_acc_final=history.final,
                   best_epoch=history.test_acc.index(history.best), epochs=len(history.test_acc),
                   history={"train_loss": history.train_loss, "test_acc": history.test_acc,
                            "test_loss": history.test_loss}, **pace_fields(history))


class Runs(Kind):
    """Trainings (and training-free scores) as jobs: up to `fuse` seeds of a cell run as one group."""

    noun, nouns = "run", "runs"
    kept = "runs in training keep their last epoch"

    @staticmethod
    def groups(specs: list[RunSpec], setup: Setup) -> list[list[RunSpec]]:
        """The runs in groups of up to `setup.fuse` seeds of one cell, in the order the cells come."""
        return groups(specs, setup.fuse)

    @staticmethod
    def execute(group: list[RunSpec], setup: Setup, data: Any) -> list[dict[str, Any]]:
        return execute_group(group, setup, data)

    @staticmethod
    def failed(spec: RunSpec, setup: Setup, reason: str, wall_s: float, trace: str) -> dict[str, Any]:
        rec = record(spec, setup, "failed", reason=reason, wall_s=wall_s, device=setup.device, traceback=trace)
        write_record(spec.path, rec)
        return rec

    @staticmethod
    def result(rec: dict[str, Any]) -> str:
        if rec.get("test_acc_best") is None:  # a training-free score
            return f"score {rec['score']:.6g}"
        return f"best {rec['test_acc_best']:.4f} final {rec['test_acc_final']:.4f}"

    @staticmethod
    def who(spec_or_rec: Any, with_seed: bool) -> str:
        get = spec_or_rec.get if isinstance(spec_or_rec, dict) else lambda k: getattr(spec_or_rec, k)
        return f"cell {get('cell_id')}" + (f" seed {get('seed')}" if with_seed and get("seed") is not None else "")


def groups(specs: list[RunSpec], fuse: int) -> list[list[RunSpec]]:
    """The runs in groups of up to `fuse` seeds of one cell (and objective), in the order the cells come."""
    by_cell: dict[str, list[RunSpec]] = {}
    for spec in specs:
        by_cell.setdefault(spec.cell_id, []).append(spec)
    return [runs[i:i + max(1, fuse)] for runs in by_cell.values() for i in range(0, len(runs), max(1, fuse))]


def run_all(specs: list[RunSpec], setup: Setup, workers: int, label: str) -> Progress:
    """Train `specs` with `workers` processes (inline when 1), up to `setup.fuse` seeds of a cell as one
    network; returns the progress counters."""
    return run_jobs(specs, setup, workers, label, Runs)
