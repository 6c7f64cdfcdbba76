"""Running searches: one from start to record (build the supernet under the objective's head, resume it from
its per-epoch checkpoint, search, judge the cell found after every epoch, write the record), and `Searches`,
the kind of job the shared lifecycle (study/training/jobs.py) runs: claims, worker pool, progress.

The checkpoint lies next to the record (`seed<k>.ckpt`), is written atomically after every epoch by
the one checkpoint mechanism (study/training/checkpoint.py), and is deleted once the record is written.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import replace
from typing import Any

import torch
from torch import nn

from study.spaces import cell_id, searchable
from study.spaces.modules import count_params
from study.store.records import write_record
from study.training.checkpoint import Checkpointer, path_for
from study.training.found import write_found
from study.training.jobs import Kind, fmt_s
from study.training.loggers import open_tracker, scalars
from study.training.methods import create_method
from study.training.search import SearchState, search
from study.training.searches import SearchSetup, SearchSpec, search_record, truth_note
from study.objectives import create_objective

log = logging.getLogger(__name__)

MEDIAN_OF = 25  # cells sampled to pick the median-size cell whose training epoch a search is compared with


def save(ckpt: Checkpointer, model: nn.Module, state: SearchState, extra: dict[str, Any] | None = None) -> None:
    """Write a search's state after an epoch (`restore` reads it back)."""
    ckpt.keep(model.state_dict(), state.epoch, weight_opt=state.weight_opt, arch_opt=state.arch_opt,
              generator=state.generator, history=state.history, extra=extra or {})


def restore(ckpt: Checkpointer, model: nn.Module) -> tuple[SearchState | None, dict[str, Any]]:
    """A search's saved state (weights and alpha loaded into `model`) and its once-measured facts, or None."""
    saved = ckpt.restore(model, needs=("arch_opt", "weight_opt", "history"))
    if saved is None:
        return None, {}
    log.info("resuming search %s from epoch %d", ckpt.path, saved["epoch"])
    return (SearchState(int(saved["epoch"]), list(saved["history"]), saved["weight_opt"], saved["arch_opt"],
                        saved["generator"]), dict(saved.get("extra") or {}))


def cell_epoch_cpu_s(setup: SearchSetup, objective: Any, data: Any, steps: int = 8) -> float:
    """CPU seconds of one training epoch of the space's median-size cell at this search's data and batch,
    from `steps` timed SGD steps (after two untimed ones): the unit a search's cost is counted in."""
    space = searchable(setup.space)
    cells = space.sample(MEDIAN_OF, 0)
    cells.sort(key=lambda c: space.complexity(c, setup.shape)[0])
    shape = replace(setup.shape, c_in=objective.c_in)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = objective.build(space.build(cells[len(cells) // 2], shape)).to(setup.device)
    opt = torch.optim.SGD(net.parameters(), lr=1e-3, momentum=0.9)
    source = data.batches(objective.views(), 0)
    gen = torch.Generator(device=source.device).manual_seed(0)
    n, bs = source.train_count(), setup.budget.batch_size
    picks = (torch.randint(0, n, (min(bs, n),), generator=gen, device=source.device) for _ in range(2 + steps))
    spent = 0.0
    try:
        for step, batch in enumerate(source.at(picks, key=(0,))):
            c0 = time.process_time()  # this process's seconds: a stream's decoding is its loader workers'
            inputs, targets = objective.train_batch(*batch, gen)
            loss = objective.loss(net(inputs), targets)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss.item()  # wait for the device
            spent += (time.process_time() - c0) if step >= 2 else 0.0
    finally:
        source.close()
    return spent / steps * math.ceil(n / bs)


def execute(spec: SearchSpec, setup: SearchSetup, data: Any) -> dict[str, Any]:
    """Run one search (resuming it if a checkpoint says so) and write its record; returns the record."""

    space = searchable(setup.space)
    objective = create_objective(setup.objective, data, **setup.objective_options)
    method = create_method(setup.method, **setup.method_options)
    with torch.random.fork_rng(devices=[]):  # the seed fixes weights and alpha without touching global state
        torch.manual_seed(spec.seed)
        supernet = space.supernet(replace(setup.shape, c_in=objective.c_in))
        model = objective.build(supernet).to(setup.device)
    ckpt = Checkpointer(path_for(spec.path), {"seed": spec.seed, "identity": setup.identity_hash()}, setup.config,
                        device=setup.device)
    start, extra = restore(ckpt, model)
    extra["command"] = list(setup.command)  # what `launch.status` offers to resume it with
    if "cell_epoch_cpu_s" not in extra:
        extra["cell_epoch_cpu_s"] = cell_epoch_cpu_s(setup, objective, data)
    ckpt.start_clock()
    truth = getattr(space, "truth", None)
    line = EpochLine(spec, setup)
    tracker = open_tracker(setup.logger, spec.path, {  # per-epoch tracking (logger=csv, ...); None when off
        "study": str(setup.logger.study_dir), "method": setup.method, "objective": setup.objective, "seed": spec.seed,
        "dataset": setup.dataset, "budget": setup.budget.name, "identity": setup.identity_hash()},
        0 if start is None else start.epoch)

    def judge(alpha: dict[str, list[list[float]]]) -> dict[str, Any]:
        cell = space.derive(alpha)
        return {"cell": cell.to_str(), "cell_id": cell_id(cell.canonical()),
                "truth": truth(cell) if callable(truth) else None}

    def on_epoch(net: nn.Module, state: SearchState) -> None:
        save(ckpt, net, state, extra)
        line.log(state.history[-1])
        if tracker is not None:
            tracker.epoch(scalars(state.history[-1]))  # the entry's numbers and cell; alpha stays in the record

    try:
        state = search(supernet, model, objective, data, setup.budget, method, spec.seed, judge, start, on_epoch,
                       setup.precision)
    finally:
        if tracker is not None:
            tracker.close()
    last = state.history[-1]
    cell = space.parse(last["cell"])
    rec = search_record(
        spec, setup, "complete", cell_id=last["cell_id"], arch=last["cell"], canonical=cell.canonical(),
        truth=last["truth"], alpha=last["alpha"], alpha_layout={k: list(v) for k, v in supernet.layout.items()},
        supernet_acc=last["supernet_acc"], epochs=len(state.history), history=state.history,
        cpu_s=ckpt.cpu_s(), wall_s=ckpt.wall_s(), cell_epoch_cpu_s=extra["cell_epoch_cpu_s"],
        supernet_params=count_params(model) - sum(a.numel() for a in supernet.alphas.values()),
        cell_params=space.complexity(cell, setup.shape)[0], resumes=ckpt.resumes,
        resumed_from_epoch=ckpt.resumes[-1] if ckpt.resumes else None, rng_restarts=ckpt.rng_restarts,
        device=setup.device, dataset_fingerprint=getattr(data, "fingerprint", None),
    )
    write_record(spec.path, rec)
    ckpt.discard()
    try:  # derived data: a failure here must never turn the finished search into a failed one
        write_found(spec.path.parents[4])  # <study_dir>/searches/<method>/<objective>/<tag>/seed<k>.json
    except Exception as e:
        log.warning("search %s is complete, but the list of found cells was not rebuilt (%s: %s); the next "
                    "finished search or `python -m analysis.search` rebuilds it", spec.path, type(e).__name__, e)
    return rec


class EpochLine:
    """One log line per finished epoch of a search, with the time this search has left at its pace."""

    def __init__(self, spec: SearchSpec, setup: SearchSetup) -> None:
        self.spec, self.setup, self.t0, self.epochs_done = spec, setup, time.perf_counter(), 0

    def log(self, entry: dict[str, Any]) -> None:
        """Log the epoch `entry` of the search's history."""
        self.epochs_done += 1
        pace = (time.perf_counter() - self.t0) / self.epochs_done
        left = self.setup.budget.epochs - entry["epoch"]
        arch_loss = "frozen" if entry["arch_loss"] is None else f"{entry['arch_loss']:.3f}"
        note = truth_note(entry.get("truth"), self.setup.space)
        judged = f" [{note}]" if note else ""
        log.info("search %s/%s seed %d: epoch %d/%d, loss w %.3f a %s, supernet %.1f%%, cell %s%s (%.0fs), %s left",
                 self.setup.method, self.setup.objective, self.spec.seed, entry["epoch"], self.setup.budget.epochs,
                 entry["weight_loss"], arch_loss, 100 * entry["supernet_acc"], entry["cell"], judged, entry["wall_s"],
                 fmt_s(pace * max(0, left)))


class Searches(Kind):
    """Searches as jobs: each seed alone."""

    noun, nouns = "search", "searches"
    kept = "searches in progress keep their last epoch"

    @staticmethod
    def execute(group: list[SearchSpec], setup: SearchSetup, data: Any) -> list[dict[str, Any]]:
        return [execute(spec, setup, data) for spec in group]

    @staticmethod
    def failed(spec: SearchSpec, setup: SearchSetup, reason: str, wall_s: float, trace: str) -> dict[str, Any]:
        rec = search_record(spec, setup, "failed", reason=reason, wall_s=wall_s, traceback=trace)
        write_record(spec.path, rec)
        return rec

    @staticmethod
    def result(rec: dict[str, Any]) -> str:
        note = truth_note(rec.get("truth"), rec.get("space"))
        return f"found {rec['arch']}{', ' + note if note else ''}, {rec.get('cpu_s') or 0.0:.0f} CPU s"
