"""One lifecycle for the jobs a command runs, trainings and searches alike.

A job is one spec (a run: cell, objective, seed; a search: a seed) with a record path. What differs between
kinds of job is a `Kind` (runner.py's `Runs`, search_run.py's `Searches`): how a group of specs executes,
what a failed record holds, what a progress line says of a result. Everything else is here, once:

- planning asks `study.store.records.is_complete` (the one rule of "this job is done");
- claimed execution (`run_claimed`): a job claimed by a live process elsewhere, or finished since it was
  planned, is skipped; a raised exception becomes a `failed` record with its reason, never replacing a
  complete one; a lost claim skips; a failed write stops the command (it would fail for every job);
- the pool (`run_jobs`): worker processes that load the dataset once, are born deaf to the parent's
  signals and die with it (lifecycle.py); Ctrl-C or a stop signal stops them and keeps what is finished
  (`Interrupted`); a worker that dies on its own ends the command in one line (`WorkerDied`);
- `Progress`: one line per finished job with done/total and the time left at the current pace.

Small networks leave cores idle inside one training, so several single-threaded jobs side by side use a
CPU better than one multi-threaded one (benchmarks/throughput.py measures both).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import sys
import threading
import time
import traceback
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from contextlib import ExitStack
from multiprocessing import resource_tracker
from pathlib import Path
from typing import Any, ClassVar

from study.errors import Stopped
from study.store.claims import claimed, drop_dead
from study.store.records import (NotOwner, WriteError, clean_temporaries, complete_at, is_complete, read_record,
                                 write_guard)
from study.training.devices import configure_device, configure_threads
from study.training.lifecycle import (WorkerDied, deaf_children, die_with_parent, how_it_died, quiet_resource_tracker,
                                      running, stop_workers)
from study.training.run import JobSetup
from study.training.terminal import ERASE, PROGRESS, Tally, bar

log = logging.getLogger(__name__)


class Kind:
    """What differs between kinds of job; subclasses are passed as classes (they pickle by reference)."""

    noun: ClassVar[str] = "job"
    nouns: ClassVar[str] = "jobs"
    kept: ClassVar[str] = "jobs in progress keep their last epoch"

    @staticmethod
    def groups(specs: list[Any], setup: Any) -> list[list[Any]]:
        """The specs in the groups that execute together (default: each alone)."""
        return [[spec] for spec in specs]

    @staticmethod
    def execute(group: list[Any], setup: Any, data: Any) -> list[dict[str, Any]]:
        """Execute a group and write each job's record; returns the records."""
        raise NotImplementedError

    @staticmethod
    def failed(spec: Any, setup: Any, reason: str, wall_s: float, trace: str) -> dict[str, Any]:
        """Write and return the `failed` record of a job that raised."""
        raise NotImplementedError

    @staticmethod
    def result(rec: dict[str, Any]) -> str:
        """What a progress line says of a complete record."""
        return "complete"

    @staticmethod
    def who(spec_or_rec: Any, with_seed: bool) -> str:
        """Which job a line is about (`cell 3f2a seed 1`, `seed 1`)."""
        seed = spec_or_rec["seed"] if isinstance(spec_or_rec, dict) else spec_or_rec.seed
        return f"seed {seed}"


def load_data(setup: JobSetup) -> Any:
    """The configured dataset, on the configured device."""
    from study.data import build_dataset

    return build_dataset(setup.dataset, **setup.dataset_options).to(setup.device)


class Interrupted(Stopped):
    """Ctrl-C or a stop signal stopped the command (a KeyboardInterrupt, so Hydra passes it on untouched);
    finished jobs and per-epoch checkpoints are kept; rerun to resume."""

    def __init__(self, progress: "Progress", signum: int = signal.SIGINT) -> None:
        super().__init__(signum)
        self.progress = progress


def skipped(spec: Any, reason: str) -> dict[str, Any]:
    """What `run_claimed` returns for a job it left to another process (nothing is written)."""
    return {"status": "skipped", "cell_id": getattr(spec, "cell_id", None), "seed": spec.seed, "reason": reason}


def finished_since(path: Path, identity: str, since: float | None) -> bool:
    """Whether the job's record is complete now, or was written after `since` (by another process)."""
    rec = read_record(path, quarantine_bad=True) if path.exists() else None  # a corrupted record is redone
    if rec is None or rec.get("identity") != identity:
        return False
    if is_complete(rec):
        return True
    try:
        return since is not None and path.stat().st_mtime >= since
    except FileNotFoundError:
        return False


def run_claimed(specs: list[Any], setup: JobSetup, data: Any, kind: type[Kind],
                since: float | None = None) -> list[dict[str, Any]]:
    """Claim and execute a group of jobs; an exception becomes `failed` records with its reason instead of a
    crash. Returns one result per spec.

    A job claimed by a live process elsewhere, or finished since `since` (when it was planned), is skipped;
    the others run without it. A job whose record is complete is never rewritten as failed, whatever
    happens after it was written. A failed write (disk full, read-only) stops the command with a
    WriteError: it would fail for every job.
    """
    identity = setup.identity_hash()
    results: dict[Path, dict[str, Any]] = {}
    with ExitStack() as stack:
        claims = {}
        for spec in specs:
            claim = stack.enter_context(claimed(spec.path, setup.claims))
            if claim is None:
                results[spec.path] = skipped(spec, "in progress elsewhere")
            elif finished_since(spec.path, identity, since):
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
                    for rec, spec in zip(kind.execute(mine, setup, data), mine):
                        results[spec.path] = rec
                except NotOwner as e:
                    log.warning("%s", e)
                    for spec in mine:
                        results.setdefault(spec.path, skipped(spec, "claim taken over"))
                except WriteError:
                    raise
                except Exception as e:  # a job's bug must not take the command down; the record keeps the reason
                    log.debug("%ss %s failed", kind.noun, [str(s.path) for s in mine], exc_info=True)
                    for spec in mine:
                        if spec.path in results or complete_at(spec.path, identity):
                            continue  # written before it raised: a finished record is never replaced
                        results[spec.path] = kind.failed(spec, setup, f"{type(e).__name__}: {e}",
                                                         time.perf_counter() - t0, traceback.format_exc(limit=8))
    return [results[spec.path] for spec in specs]


def fmt_s(seconds: float) -> str:
    """`1h05m` or `3m07s`."""
    m, s = divmod(int(round(seconds)), 60)
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"


class Progress:
    """One log line per finished job with done/total and the time left at the current pace."""

    def __init__(self, total: int, label: str, kind: type[Kind] = Kind, per_seed: bool = False) -> None:
        self.total, self.label, self.kind, self.done, self.failed = total, label, kind, 0, 0
        self.per_seed = per_seed  # several seeds in one command: each line names its job's seed
        self.skipped: dict[str, int] = {}
        self.first_failure = ""  # the reason of the first failed job, for a one-line summary
        self.t0 = time.perf_counter()

    def update(self, rec: dict[str, Any]) -> None:
        """Count a finished job and log it (on a terminal a bar may say it instead: study/training/terminal.py)."""
        who = self.kind.who(rec, self.per_seed)
        if rec["status"] == "skipped":  # another process has it: not ours to count
            self.skipped[rec["reason"]] = self.skipped.get(rec["reason"], 0) + 1
            self.total -= 1
            log.info("%s %s: %s, skipped", self.label, who, rec["reason"], extra={PROGRESS: self.tally()})
            return
        self.done += 1
        elapsed = time.perf_counter() - self.t0
        eta = elapsed / self.done * (self.total - self.done)
        if rec["status"] == "complete":
            result = self.kind.result(rec)
        else:
            self.failed += 1
            result = f"FAILED: {rec.get('reason')}"
            self.first_failure = self.first_failure or str(rec.get("reason"))
        if rec.get("resumed_from_epoch") is not None:
            result += f", resumed from epoch {rec['resumed_from_epoch']}"
        pace = f", {rec['images_per_s']:.0f} images/s" if rec.get("images_per_s") else ""
        log.info("[%d/%d] %s %s: %s (%.1fs%s), %s left", self.done, self.total, self.label, who, result,
                 rec.get("wall_s") or 0.0, pace, fmt_s(eta),
                 extra={PROGRESS: self.tally(fmt_s(eta), quiet=rec["status"] == "complete")})

    def tally(self, left: str = "", quiet: bool = False) -> Tally:
        """The counts a progress bar shows."""
        return Tally(self.label, self.done, self.total, self.failed, left, quiet)


_WORKER: dict[str, Any] = {}


def _init(setup: JobSetup, parent: int, kind: type[Kind]) -> None:
    # Ctrl-C reaches the whole process group: the parent alone decides to stop and ends the workers, so
    # that none prints its own traceback or takes another job. Likewise a preemption: the task process
    # decides what it means (submitit checkpoints and requeues it there); a worker only stops when that
    # process terminates it, cleanly, from its last per-epoch checkpoint, or when that process is gone.
    die_with_parent(parent)
    if not logging.getLogger().handlers:  # a spawned worker starts unconfigured: its INFO lines (per-epoch
        # heartbeats, resumes, claims taken over) would be lost; on a terminal each first erases the parent's bar
        logging.basicConfig(level=logging.INFO, format=(ERASE if sys.stderr.isatty() else "") + "[%(asctime)s] "
                            "%(message)s", datefmt="%H:%M:%S")
    configure_threads(setup.threads)
    configure_device(setup.device)
    _WORKER.update(setup=setup, kind=kind, data=load_data(setup))


def _work(group: list[Any], since: float | None = None) -> list[dict[str, Any]]:
    with running():
        return run_claimed(group, _WORKER["setup"], _WORKER["data"], _WORKER["kind"], since)


def run_jobs(specs: list[Any], setup: JobSetup, workers: int, label: str, kind: type[Kind]) -> Progress:
    """Run `specs` in `kind`'s groups with `workers` processes (inline when 1); returns the progress counters."""
    progress = Progress(len(specs), label, kind, per_seed=len({spec.seed for spec in specs}) > 1)
    if not specs:
        return progress
    since = time.time()  # records written after this were written by another command
    with bar():  # on a terminal: one line redrawn per finished job instead of a line each
        return _run(specs, setup, workers, kind, progress, since)


def _run(specs: list[Any], setup: JobSetup, workers: int, kind: type[Kind], progress: Progress,
         since: float) -> Progress:
    """`run_jobs`' work, inline or in a pool of `workers` processes."""
    work = kind.groups(specs, setup)
    if workers == 1:
        configure_threads(setup.threads)
        configure_device(setup.device)
        data = load_data(setup)
        try:
            for group in work:
                for rec in run_claimed(group, setup, data, kind, since):
                    progress.update(rec)
        except KeyboardInterrupt as e:  # the job in progress keeps its last epoch's checkpoint
            raise Interrupted(progress, getattr(e, "signum", signal.SIGINT)) from None
        return progress
    # spawn, not fork: a forked child of a process that already ran torch's thread pools can deadlock.
    ctx = multiprocessing.get_context("spawn")
    quiet_resource_tracker()
    with deaf_children():
        # multiprocessing's resource tracker starts with the pool's first lock. Started here it ignores SIGHUP
        # and SIGUSR2 too (it ignores SIGINT and SIGTERM itself), so a hang-up or a scheduler's signal to the
        # whole process group cannot kill it and leave its successor printing a KeyError per semaphore.
        resource_tracker.ensure_running()
        pool = ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init, initargs=(setup, os.getpid(), kind))
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
        raise WorkerDied(_died(codes, lost, progress, kind)) from None
    except BaseException:  # preemption (submitit's SIGUSR2 handler exits), a write error
        _stop(pool, specs)
        raise
    pool.shutdown()
    return progress


def _stop(pool: ProcessPoolExecutor, specs: list[Any]) -> tuple[dict[int, int | None], list[Any]]:
    """Stop the workers; drop the claims any of them left by dying. Returns exit codes and the jobs it held."""
    codes = stop_workers(pool)
    dropped = set(drop_dead([spec.path for spec in specs], set(codes)))
    return codes, [spec for spec in specs if spec.path in dropped]


def _died(codes: dict[int, int | None], lost: list[Any], progress: Progress, kind: type[Kind]) -> str:
    """The one line saying which worker died how, in which job, and what is kept."""
    stopped = (128 + signal.SIGTERM, -signal.SIGTERM)  # the pool terminates the others once one dies
    culprits = [code for code in codes.values() if code not in stopped] or list(codes.values())
    jobs = ", ".join(f"{getattr(s, 'objective', '')} {kind.who(s, True)}".strip() for s in lost)
    verb = "training" if kind.noun == "run" else f"running {kind.noun}"
    hint = "; if memory ran out, run with fewer workers=" if culprits[0] == -signal.SIGKILL else ""
    return (f"a worker process was {how_it_died(culprits[0])}{f' while {verb} ' + jobs if jobs else ''}; "
            f"the command stopped: {progress.done} {kind.nouns} finished and are kept, {kind.kept}; "
            f"rerun the same command to resume{hint}")
