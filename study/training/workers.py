"""Run many trainings on one machine: a pool of worker processes, each holding the dataset once.

Small networks leave cores idle inside one training, so several single-threaded trainings side by side
use a CPU better than one multi-threaded one (benchmarks/throughput.py measures both). Each worker sets
its own thread count, loads the dataset onto its device once, then takes runs until none are left.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import threading
import time
import traceback
from contextlib import ExitStack
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

from study.errors import Stopped
from study.store.claims import claimed, drop_dead
from study.store.records import NotOwner, WriteError, clean_temporaries, identity_hash, read_record, write_guard
from study.training.devices import configure_device, configure_threads
from study.training.lifecycle import (WorkerDied, deaf_children, die_with_parent, how_it_died, quiet_resource_tracker,
                                      running, stop_workers)
from study.training.run import RunSpec, Setup
from study.training.runner import execute_group, failed_record

log = logging.getLogger(__name__)

_WORKER: dict[str, Any] = {}


def load_data(setup: Setup) -> Any:
    """The configured dataset, on the configured device."""
    from study.data import build_dataset

    return build_dataset(setup.dataset, **setup.dataset_options).to(setup.device)


class Interrupted(Stopped):
    """Ctrl-C or a stop signal stopped the training (a KeyboardInterrupt, so Hydra passes it on untouched);
    finished runs and per-epoch checkpoints are kept; rerun to resume."""

    def __init__(self, progress: "Progress", signum: int = signal.SIGINT) -> None:
        super().__init__(signum)
        self.progress = progress


def _init(setup: Setup, parent: int) -> None:
    # Ctrl-C reaches the whole process group: the parent alone decides to stop and ends the workers, so
    # that none prints its own traceback or takes another run. Likewise a preemption: the task process
    # decides what it means (submitit checkpoints and requeues it there); a worker only stops when that
    # process terminates it, cleanly, from its last per-epoch checkpoint, or when that process is gone.
    die_with_parent(parent)
    if not logging.getLogger().handlers:  # a spawned worker starts unconfigured: its INFO lines (per-epoch
        # heartbeats, resumes, claims taken over) would be lost
        logging.basicConfig(level=logging.INFO, format="[%(asctime)s] %(message)s", datefmt="%H:%M:%S")
    configure_threads(setup.threads)
    configure_device(setup.device)
    _WORKER["setup"] = setup
    _WORKER["data"] = load_data(setup)


def skipped(spec: RunSpec, reason: str) -> dict[str, Any]:
    """What `run_safely` returns for a run it left to another worker (nothing is written)."""
    return {"status": "skipped", "cell_id": spec.cell_id, "seed": spec.seed, "reason": reason}


def finished_since(spec: RunSpec, setup: Setup, since: float | None) -> bool:
    """Whether the run's record is complete now, or was written after `since` (by another worker)."""
    if not spec.path.exists():
        return False
    rec = read_record(spec.path, quarantine_bad=True)  # a corrupted record is moved aside and redone
    if rec is None or rec.get("identity") != identity_hash(setup.identity()):
        return False
    if rec["status"] == "complete":
        return True
    try:
        return since is not None and spec.path.stat().st_mtime >= since
    except FileNotFoundError:
        return False


def run_safely(spec: RunSpec, setup: Setup, data: Any, since: float | None = None) -> dict[str, Any]:
    """Claim and train one run; see `run_group_safely`."""
    return run_group_safely([spec], setup, data, since)[0]


def run_group_safely(specs: list[RunSpec], setup: Setup, data: Any, since: float | None = None) -> list[dict[str, Any]]:
    """Claim and train runs of one cell side by side; an exception becomes `failed` records with its reason
    instead of a crash. Returns one result per run.

    A run claimed by a live worker elsewhere, or finished since `since` (when it was planned), is skipped;
    the others train without it. A failed write (disk full, read-only) stops the study with a WriteError:
    it would fail for every run.
    """
    results: dict[Path, dict[str, Any]] = {}
    with ExitStack() as stack:
        claims = {}
        for spec in specs:
            claim = stack.enter_context(claimed(spec.path, setup.claims))
            if claim is None:
                results[spec.path] = skipped(spec, "in progress elsewhere")
            elif finished_since(spec, setup, since):
                results[spec.path] = skipped(spec, "finished elsewhere")
            else:
                clean_temporaries(spec.path)
                claims[spec.path] = claim
        mine = [spec for spec in specs if spec.path in claims]
        if mine:
            guard = write_guard(lambda path: path in claims and claims[path].owns(path),
                                lambda path: {"claim": claims[path].owner})
            with guard:
                t0 = time.perf_counter()
                try:
                    for rec, spec in zip(execute_group(mine, setup, data), mine):
                        results[spec.path] = rec
                except NotOwner as e:
                    log.warning("%s", e)
                    for spec in mine:
                        results.setdefault(spec.path, skipped(spec, "claim taken over"))
                except WriteError:
                    raise
                except Exception as e:  # a run's bug must not take the study down; the record keeps the reason
                    log.debug("runs %s failed", [str(s.path) for s in mine], exc_info=True)
                    for spec in mine:
                        if spec.path not in results and not finished_since(spec, setup, None):  # not written before it raised
                            results[spec.path] = failed_record(spec, setup, f"{type(e).__name__}: {e}",
                                                               time.perf_counter() - t0,
                                                               traceback=traceback.format_exc(limit=8))
    return [results[spec.path] for spec in specs]


def groups(specs: list[RunSpec], fuse: int) -> list[list[RunSpec]]:
    """The runs in groups of up to `fuse` seeds of one cell (and objective), in the order the cells come."""
    by_cell: dict[str, list[RunSpec]] = {}
    for spec in specs:
        by_cell.setdefault(spec.cell_id, []).append(spec)
    return [runs[i:i + max(1, fuse)] for runs in by_cell.values() for i in range(0, len(runs), max(1, fuse))]


def _work(group: list[RunSpec], since: float | None = None) -> list[dict[str, Any]]:
    with running():
        return run_group_safely(group, _WORKER["setup"], _WORKER["data"], since)


def _fmt_s(seconds: float) -> str:
    m, s = divmod(int(round(seconds)), 60)
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"


class Progress:
    """One log line per finished run with done/total and the time left at the current pace."""

    def __init__(self, total: int, label: str, per_seed: bool = False) -> None:
        self.total, self.label, self.done, self.failed = total, label, 0, 0
        self.per_seed = per_seed  # several seeds in one command: each line names its run's seed
        self.skipped: dict[str, int] = {}
        self.first_failure = ""  # the reason of the first failed run, for a one-line summary
        self.t0 = time.perf_counter()

    def update(self, rec: dict[str, Any]) -> None:
        """Count a finished run and log it."""
        if rec["status"] == "skipped":  # another worker has it: not ours to count as trained
            self.skipped[rec["reason"]] = self.skipped.get(rec["reason"], 0) + 1
            self.total -= 1
            log.info("%s cell %s%s: %s, skipped", self.label, rec["cell_id"], self._seed(rec), rec["reason"])
            return
        self.done += 1
        elapsed = time.perf_counter() - self.t0
        eta = elapsed / self.done * (self.total - self.done)
        if rec["status"] == "complete" and rec.get("test_acc_best") is None:  # a training-free score
            result = f"score {rec['score']:.6g}"
        elif rec["status"] == "complete":
            result = f"best {rec['test_acc_best']:.4f} final {rec['test_acc_final']:.4f}"
        else:
            self.failed += 1
            result = f"FAILED: {rec.get('reason')}"
            self.first_failure = self.first_failure or str(rec.get("reason"))
        if rec.get("resumed_from_epoch") is not None:
            result += f", resumed from epoch {rec['resumed_from_epoch']}"
        pace = f", {rec['images_per_s']:.0f} images/s" if rec.get("images_per_s") else ""
        log.info("[%d/%d] %s cell %s%s: %s (%.1fs%s), %s left", self.done, self.total, self.label, rec["cell_id"],
                 self._seed(rec), result, rec.get("wall_s", 0.0), pace, _fmt_s(eta))

    def _seed(self, rec: dict[str, Any]) -> str:
        return f" seed {rec['seed']}" if self.per_seed and rec.get("seed") is not None else ""


def run_all(specs: list[RunSpec], setup: Setup, workers: int, label: str) -> Progress:
    """Train `specs` with `workers` processes (inline when 1), up to `setup.fuse` seeds of a cell as one
    network; returns the progress counters."""
    progress = Progress(len(specs), label, per_seed=len({spec.seed for spec in specs}) > 1)
    if not specs:
        return progress
    since = time.time()  # records written after this were written by another command
    work = groups(specs, setup.fuse)
    if workers == 1:
        configure_threads(setup.threads)
        configure_device(setup.device)
        data = load_data(setup)
        try:
            for group in work:
                for rec in run_group_safely(group, setup, data, since):
                    progress.update(rec)
        except KeyboardInterrupt as e:  # the run in training keeps its last epoch's checkpoint
            raise Interrupted(progress, getattr(e, "signum", signal.SIGINT)) from None
        return progress
    # spawn, not fork: a forked child of a process that already ran torch's thread pools can deadlock.
    ctx = multiprocessing.get_context("spawn")
    quiet_resource_tracker()
    pool = ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init, initargs=(setup, os.getpid()))
    pending: set[Future] = set()
    try:
        with deaf_children():  # the workers start here, one per submit
            pending = {pool.submit(_work, group, since) for group in work}
        while pending:
            finished, pending = wait(pending, return_when=FIRST_COMPLETED)
            for fut in finished:
                for rec in fut.result():
                    progress.update(rec)
    except KeyboardInterrupt as e:  # Ctrl-C, or a stop signal turned into Stopped by the command
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not interrupt the cleanup
        _stop(pool, specs)
        raise Interrupted(progress, getattr(e, "signum", signal.SIGINT)) from None
    except BrokenProcessPool:  # a worker died on its own: SIGKILL, the out-of-memory killer, a crash
        codes, lost = _stop(pool, specs)
        raise WorkerDied(_died(codes, lost, progress)) from None
    except BaseException:  # preemption (submitit's SIGUSR2 handler exits), a write error
        _stop(pool, specs)
        raise
    pool.shutdown()
    return progress


def _stop(pool: ProcessPoolExecutor, specs: list[RunSpec]) -> tuple[dict[int, int | None], list[RunSpec]]:
    """Stop the workers; drop the claims any of them left by dying. Returns exit codes and the runs it held."""
    codes = stop_workers(pool)
    dropped = set(drop_dead([spec.path for spec in specs], set(codes)))
    return codes, [spec for spec in specs if spec.path in dropped]


def _died(codes: dict[int, int | None], lost: list[RunSpec], progress: Progress) -> str:
    """The one line saying which worker died how, in which run, and what is kept."""
    stopped = (128 + signal.SIGTERM, -signal.SIGTERM)  # the pool terminates the others once one dies
    culprits = [code for code in codes.values() if code not in stopped] or list(codes.values())
    runs = ", ".join(f"{s.objective} seed {s.seed} cell {s.cell_id}" for s in lost)
    hint = "; if memory ran out, train with fewer workers=" if culprits[0] == -signal.SIGKILL else ""
    return (f"a worker process was {how_it_died(culprits[0])}{' while training ' + runs if runs else ''}; "
            f"the training stopped: {progress.done} run(s) finished and are kept, runs in training keep their "
            f"last epoch; rerun the same command to resume{hint}")
