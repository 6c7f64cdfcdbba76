"""Running searches: one from start to record (build the supernet under the objective's head, resume it from
its per-epoch checkpoint, search, judge the cell found after every epoch, write the record), each under its
claim, several side by side in worker processes, with progress lines and the time left.

The checkpoint lies next to the record (`seed<k>.ckpt`), is written atomically after every epoch with
the machinery of study/training/checkpoint.py, and is deleted once the record is written.
"""

from __future__ import annotations

import logging
import math
import time
import traceback
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch import nn

from study.spaces import cell_id, searchable
from study.spaces.modules import count_params
from study.store.claims import claimed
from study.store.records import (NotOwner, WriteError, clean_temporaries, identity_hash, read_record, write_guard,
                                 write_record)
from study.training.checkpoint import Checkpointer, mismatch, save_atomic
from study.training.search import SearchState, create_method, search
from study.training.searches import SearchSetup, SearchSpec, search_record

log = logging.getLogger(__name__)

FORMAT = 1
MEDIAN_OF = 25  # cells sampled to pick the median-size cell whose training epoch a search is compared with


@dataclass
class SearchCheckpointer(Checkpointer):
    """A search's per-epoch state: weights with alpha, both optimisers, the generator, the history."""

    extra: dict[str, Any] = field(default_factory=dict)  # once-measured facts a resumed search keeps

    def load_search(self, model: nn.Module) -> SearchState | None:
        """The saved state (weights and alpha loaded into `model`), or None to start from scratch."""
        if not self.path.exists():
            return None
        try:
            saved = torch.load(self.path, map_location=self.device, weights_only=True)
            if saved.get("format") != FORMAT or saved.get("identity") != self.identity or "arch_opt" not in saved:
                log.warning("ignoring checkpoint %s: it belongs to another search or format", self.path)
                return None
            problem = mismatch(model.state_dict(), saved["model"])
            if problem:
                log.warning("ignoring checkpoint %s: written by a different supernet (%s)", self.path, problem)
                return None
            model.load_state_dict(saved["model"])
        except Exception as e:  # unreadable: searching from scratch is safe
            log.warning("ignoring unreadable checkpoint %s (%s: %s)", self.path, type(e).__name__, e)
            return None
        state = SearchState(int(saved["epoch"]), list(saved["history"]), saved["weight_opt"], saved["arch_opt"],
                            self._generator_state(saved))
        self.resumes = list(saved["resumes"]) + [state.epoch]
        self.rng_restarts = list(saved.get("rng_restarts", [])) + ([state.epoch] if state.generator is None else [])
        self.wall_before, self.cpu_before = float(saved["wall_s"]), float(saved["cpu_s"])
        self.extra = dict(saved.get("extra") or {})
        log.info("resuming search %s from epoch %d", self.path, state.epoch)
        return state

    def save_search(self, model: nn.Module, state: SearchState) -> None:
        """Write the state after an epoch atomically."""
        save_atomic(self.path, {
            "format": FORMAT, "identity": self.identity, "epoch": state.epoch, "model": model.state_dict(),
            "device_type": torch.device(self.device).type, "rng_restarts": self.rng_restarts,
            "weight_opt": state.weight_opt, "arch_opt": state.arch_opt, "generator": state.generator,
            "history": state.history, "resumes": self.resumes, "wall_s": self.wall_s(), "cpu_s": self.cpu_s(),
            "extra": self.extra, "config": self.config,
        })


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
    gen = torch.Generator(device=data.train_x.device).manual_seed(0)
    n, bs = data.train_x.shape[0], setup.budget.batch_size
    spent = 0.0
    for step in range(2 + steps):
        c0 = time.process_time()
        idx = torch.randint(0, n, (min(bs, n),), generator=gen, device=data.train_x.device)
        inputs, targets = objective.train_batch(data.train_x[idx], data.train_y[idx], gen)
        loss = objective.loss(net(inputs), targets)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        loss.item()  # wait for the device
        spent += (time.process_time() - c0) if step >= 2 else 0.0
    return spent / steps * math.ceil(n / bs)


def execute(spec: SearchSpec, setup: SearchSetup, data: Any, progress: Any = None) -> dict[str, Any]:
    """Run one search (resuming it if a checkpoint says so) and write its record; returns the record."""
    from study.objectives import create_objective
    from study.training.checkpoint import path_for

    space = searchable(setup.space)
    objective = create_objective(setup.objective, data, **setup.objective_options)
    method = create_method(setup.method, **setup.method_options)
    with torch.random.fork_rng(devices=[]):  # the seed fixes weights and alpha without touching global state
        torch.manual_seed(spec.seed)
        supernet = space.supernet(replace(setup.shape, c_in=objective.c_in))
        model = objective.build(supernet).to(setup.device)
    ckpt = SearchCheckpointer(path_for(spec.path), {"seed": spec.seed, "identity": identity_hash(setup.identity())},
                              setup.config, device=setup.device)
    start = ckpt.load_search(model)
    ckpt.extra["command"] = list(setup.command)  # what `launch.status` offers to resume it with
    if "cell_epoch_cpu_s" not in ckpt.extra:
        ckpt.extra["cell_epoch_cpu_s"] = cell_epoch_cpu_s(setup, objective, data)
    ckpt.start_clock()
    truth = getattr(space, "truth", None)

    def judge(alpha: dict[str, list[list[float]]]) -> dict[str, Any]:
        cell = space.derive(alpha)
        return {"cell": cell.to_str(), "cell_id": cell_id(cell.canonical()),
                "truth": truth(cell) if callable(truth) else None}

    def on_epoch(net: nn.Module, state: SearchState) -> None:
        ckpt.save_search(net, state)
        if progress is not None:
            progress.epoch(spec, state.history[-1])

    state = search(supernet, model, objective, data, setup.budget, method, spec.seed, judge, start, on_epoch,
                   setup.precision)
    last = state.history[-1]
    cell = space.parse(last["cell"])
    rec = search_record(
        spec, setup, "complete", cell_id=last["cell_id"], arch=last["cell"], canonical=cell.canonical(),
        truth=last["truth"], alpha=last["alpha"], alpha_layout={k: list(v) for k, v in supernet.layout.items()},
        supernet_acc=last["supernet_acc"], epochs=len(state.history), history=state.history,
        cpu_s=ckpt.cpu_s(), wall_s=ckpt.wall_s(), cell_epoch_cpu_s=ckpt.extra["cell_epoch_cpu_s"],
        supernet_params=count_params(model) - sum(a.numel() for a in supernet.alphas.values()),
        cell_params=space.complexity(cell, setup.shape)[0], resumes=ckpt.resumes,
        resumed_from_epoch=ckpt.resumes[-1] if ckpt.resumes else None, rng_restarts=ckpt.rng_restarts,
        device=setup.device, dataset_fingerprint=getattr(data, "fingerprint", None),
    )
    write_record(spec.path, rec)
    ckpt.discard()
    from study.training.found import write_found

    write_found(spec.path.parents[4])  # <study_dir>/searches/<method>/<objective>/<tag>/seed<k>.json
    return rec


def run_safely(spec: SearchSpec, setup: SearchSetup, data: Any, progress: Any = None) -> dict[str, Any]:
    """Claim and run one search; an exception becomes a `failed` record with its reason, not a crash.

    A search claimed by a live process elsewhere, or complete by now, is skipped (nothing is written).
    A failed write (disk full, read-only) stops the command: it would fail for every search.
    """
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

    def epoch(self, spec: SearchSpec, entry: dict[str, Any]) -> None:
        """Log one finished epoch of a search, with the time left at this command's pace."""
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
