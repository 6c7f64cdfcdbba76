"""The life of a worker process: born deaf to Ctrl-C, dies with its parent, stops cleanly when terminated.

The parent alone decides when the study stops (Ctrl-C reaches the whole process group, a preemption's
SIGUSR2 is the job's to handle); it then terminates its workers (SIGTERM). A worker in a run unwinds
(its claim is released, a half-written file removed) and leaves at once; a worker between runs or still
starting leaves at once. A worker whose parent dies without stopping it (SIGKILL, a crash) gets SIGTERM
from the kernel (Linux's parent-death signal) and does the same, instead of training on for nobody.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Any, Iterator

from study.errors import Failed

log = logging.getLogger(__name__)

# Signals a worker ignores from birth: the parent decides what they mean and stops the workers itself.
PARENTS_SIGNALS = (signal.SIGINT, signal.SIGUSR2, signal.SIGHUP)
_STATE: dict[str, bool] = {"busy": False, "stopping": False}


class WorkerDied(Failed):
    """A worker process ended without being asked to (killed, out of memory); the study stopped."""


def quit_now(signum: int) -> None:
    """Leave this process at once with status 128 + signum, after flushing what it printed."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(128 + signum)


def _on_term(signum: int, frame: Any) -> None:
    if _STATE["stopping"]:
        return  # a second SIGTERM (the parent's and the kernel's) must not interrupt the unwinding
    _STATE["stopping"] = True
    if not _STATE["busy"]:
        quit_now(signum)  # starting up or between runs: nothing to unwind
    raise SystemExit(128 + signum)  # unwinds the run: claim released, half-written files removed


def die_with_parent(parent: int) -> None:
    """In a worker: ignore the parent's signals, stop cleanly on SIGTERM, and get SIGTERM when `parent` dies."""
    for signum in PARENTS_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _on_term)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, PARENTS_SIGNALS)  # inherited blocked (see deaf_children)
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG (Linux)
    except (OSError, AttributeError):  # not Linux: the parent's own handlers still stop the workers
        pass
    if os.getppid() != parent:  # the parent died before the line above: nobody will take the results
        quit_now(signal.SIGTERM)


@contextlib.contextmanager
def running() -> Iterator[None]:
    """In a worker, around one run: a SIGTERM now unwinds the run, then the worker leaves at once.

    The pool's worker loop would catch the SystemExit, send it back and wait for the next run forever
    (its own end of the queue keeps the pipe open), so the exit happens here.
    """
    _STATE["busy"] = True
    try:
        yield
    except SystemExit:
        if _STATE["stopping"]:
            quit_now(signal.SIGTERM)
        raise
    finally:
        _STATE["busy"] = False


@contextlib.contextmanager
def deaf_children() -> Iterator[None]:
    """Around starting worker processes: they inherit Ctrl-C, SIGUSR2 and SIGHUP ignored from their first
    instruction (an exec keeps ignored signals ignored), so none prints a traceback while it imports.

    In this process the signals are blocked meanwhile, not lost: one that arrives is delivered on exit.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, PARENTS_SIGNALS)
    handlers = {s: signal.signal(s, signal.SIG_IGN) for s in PARENTS_SIGNALS}
    try:
        yield
    finally:
        for signum, handler in handlers.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)


def quiet_resource_tracker() -> None:
    """Keep multiprocessing's resource tracker from warning about "leaked semaphore objects" when this
    process is killed outright (SIGKILL): it cleans them up all the same, and nobody can act on the warning.

    The tracker starts with the first worker and reads the filter from the environment it inherits.
    """
    quiet = "ignore:resource_tracker:UserWarning"
    current = os.environ.get("PYTHONWARNINGS", "")
    if quiet not in current.split(","):
        os.environ["PYTHONWARNINGS"] = f"{current},{quiet}" if current else quiet


def stop_workers(pool: ProcessPoolExecutor, grace_s: float = 30.0) -> dict[int, int | None]:
    """Start nothing more and stop the running runs now instead of waiting for them to finish; returns
    each worker's pid and exit code (negative: the signal that ended it).

    Waiting would outlast a preemption's signal delay (a paper-budget run takes hours) and keep Ctrl-C
    waiting; a stopped run loses at most the epoch in progress and resumes from its checkpoint. The
    futures are not cancelled one by one: once the workers are gone the pool marks every future broken
    itself, and a future cancelled meanwhile makes its manager thread crash with a traceback.
    """
    processes = list((getattr(pool, "_processes", None) or {}).values())  # private, but the only handle
    before = {proc.pid: proc.exitcode for proc in processes}  # exit codes of workers that died on their own
    manager = getattr(pool, "_executor_manager_thread", None)
    pool.shutdown(wait=False)  # no replacement workers, nothing new handed out
    for proc in processes:
        if proc.is_alive():
            proc.terminate()  # SIGTERM: the worker unwinds (see running)
    deadline = time.monotonic() + grace_s
    for proc in processes:
        proc.join(max(0.0, deadline - time.monotonic()))
        if proc.is_alive():
            proc.kill()
            proc.join()
    if manager is not None:
        # The pool's manager thread ends once its workers are gone. Unjoined, it can close its wake-up pipe
        # just before the interpreter's exit hook writes to it (an OSError traceback at exit, Python < 3.12).
        manager.join(grace_s)
    if processes:
        log.debug("stopped %d worker(s); their runs resume from their last checkpoint", len(processes))
    return {proc.pid: proc.exitcode if before[proc.pid] is None else before[proc.pid] for proc in processes}


def how_it_died(exitcode: int | None) -> str:
    """`killed by SIGKILL (...)` or `exit status 3`: how a worker process ended."""
    if exitcode is None:
        return "for no known reason"
    if exitcode < 0:
        name = signal.Signals(-exitcode).name
        why = {"SIGKILL": " (the out-of-memory killer, or kill -9)",
               "SIGTERM": " (kill, a preemption or a time limit)"}.get(name, "")
        return f"killed by {name}{why}"
    if exitcode > 128 and exitcode - 128 in {s.value for s in signal.Signals}:
        return f"stopped by {signal.Signals(exitcode - 128).name}"
    return f"exit status {exitcode}"
