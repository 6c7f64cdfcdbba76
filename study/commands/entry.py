"""How every command starts and stops: Ctrl-C and stop signals at any moment end it with one line.

`python -m study.train` (and every other command) runs `start(module)` before its own imports (torch,
Hydra, pandas take a second or more), so Ctrl-C while they load is handled like Ctrl-C later on. SIGTERM
(what `kill PID`, `timeout` and a scheduler's time limit send), SIGUSR2 (a preemption's warning) and SIGHUP
(the terminal went away) are handled like Ctrl-C in a plain run: a `Stopped` exception unwinds the command,
which stops its worker processes, keeps what is finished, and one line says what happened and how to go on.
Jobs run by submitit never pass through here: there submitit's own handlers decide (SIGUSR2 checkpoints
and requeues the job). This module imports nothing heavy, so that it is in place within milliseconds.
"""

from __future__ import annotations

import importlib
import os
import shlex
import signal
import sys
import time
from typing import Any, NoReturn

from study.errors import Stopped

STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR2, signal.SIGHUP)


def quiet() -> None:
    """Ignore Ctrl-C and further stop signals: the cleanup under way must not be interrupted half-way."""
    for signum in (signal.SIGINT, *STOP_SIGNALS):
        signal.signal(signum, signal.SIG_IGN)


_STATE: dict[str, Any] = {"importing": None}  # (module, argv, kept) while the command's modules load


def _stop(signum: int, frame: Any) -> None:
    quiet()
    if _STATE["importing"] is not None:
        # Nothing is written or started while modules load, and an exception raised now could be caught and
        # turned into an ImportError by the module being imported (numpy does): say it and leave at once.
        module, argv, kept = _STATE["importing"]
        try:
            print(stopped_line(module, argv, Stopped(signum), kept), file=sys.stderr, flush=True)
        finally:
            os._exit(128 + signum)
    raise Stopped(signum)


def install() -> None:
    """Make SIGTERM, SIGUSR2 and SIGHUP (and Ctrl-C, unless it is ignored) raise `Stopped` in the main thread."""
    for signum in STOP_SIGNALS:
        signal.signal(signum, _stop)
    # A background job of a non-interactive shell starts with SIGINT ignored: it stays ignored, as the shell meant.
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, _stop)


def stopped_line(module: str, argv: list[str], e: BaseException, kept: str) -> str:
    """The one line printed when a command was stopped: which signal, what is kept, the command to go on."""
    signum = getattr(e, "signum", signal.SIGINT)
    what = "interrupted" if signum == signal.SIGINT else f"stopped by {signal.Signals(signum).name}"
    progress = getattr(e, "progress", None)
    done = f"{progress.done} {getattr(progress.kind, 'nouns', 'jobs')} finished, " if progress is not None else ""
    return f"{what}: {done}{kept}; {'resume' if progress is not None else 'rerun'} with: " + \
        shlex.join(["python", "-m", module, *argv])


def _processes() -> dict[int, tuple[int, bytes]]:
    """Every live process: pid -> (parent pid, command line), from /proc (empty where there is none)."""
    found = {}
    try:
        entries = [e for e in os.listdir("/proc") if e.isdigit()]
    except OSError:
        return {}
    for entry in entries:
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read()
        except (OSError, IndexError):
            continue
        if fields[0] != "Z":
            found[int(entry)] = (int(fields[1]), cmdline)
    return found


def _descendants() -> dict[int, bytes]:
    """This process's live descendants and their command lines, but multiprocessing's resource tracker
    (it ignores signals and ends with this process)."""
    table, found, todo = _processes(), {}, [os.getpid()]
    while todo:
        parent = todo.pop()
        for pid, (ppid, cmdline) in table.items():
            if ppid == parent and pid not in found:
                found[pid] = cmdline
                todo.append(pid)
    return {pid: cmd for pid, cmd in found.items() if b"resource_tracker" not in cmd}


def stop_children(grace_s: float = 10.0) -> None:
    """Stop what this command started and left running: the jobs of a local launcher.

    Each job's task gets Ctrl-C's SIGINT (its controller then ends by itself, quietly; a signal sent to
    this process alone, or a task started while Ctrl-C was pressed, would leave them running otherwise);
    what is still there after `grace_s` is killed.
    """
    running = _descendants()
    if not running:
        return
    tasks = [pid for pid, cmd in running.items() if b"submitit.core._submit" in cmd]
    direct = [pid for pid in running if _processes().get(pid, (0,))[0] == os.getpid()]
    for pid in tasks or direct:
        try:
            os.kill(pid, signal.SIGINT)
        except OSError:
            pass
    deadline = time.monotonic() + grace_s
    while running and time.monotonic() < deadline:
        time.sleep(0.1)
        running = _descendants()
    for pid in running:  # a task still importing ignores Ctrl-C; it has claimed nothing yet
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


def version_line(module: str) -> str:
    """What `--version` prints for every command: this tool's version (not Hydra's), and the command."""
    from study import __version__

    return f"unnas-study {__version__} ({module})"


def start(module: str) -> NoReturn:
    """Run `module`'s main() with the stop signals handled; exit 128 + the signal's number when stopped
    (one line: what happened, what is kept (KEPT), how to go on). `--version` prints this tool's version before
    anything loads (no study, no config needed)."""
    argv, kept = sys.argv[1:], KEPT[module]
    if "--version" in argv:
        print(version_line(module))
        sys.exit(0)
    _STATE["importing"] = (module, argv, kept)
    install()
    try:
        command = importlib.import_module(module)
        _STATE["importing"] = None
        code = command.main()  # a command may return its exit status
    except KeyboardInterrupt as e:  # Ctrl-C, or a Stopped raised by a stop signal
        quiet()
        signum = getattr(e, "signum", signal.SIGINT)
        stop_children()
        try:
            print(f"{stopped_line(module, argv, e, kept)}", file=sys.stderr, flush=True)
        except OSError:  # the terminal is gone (SIGHUP): nobody to tell
            pass
        sys.exit(128 + signum)
    sys.exit(code or 0)


# What a stop keeps, by command: the second half of the one line a stopped command prints.
KEPT = {
    "study.sample": "cells.jsonl and study.json are each whole (written atomically)",
    "study.train": "finished runs and each run's last epoch are kept",
    "study.search": "finished searches and each search's last epoch are kept",
    "analysis.correlate": "every file of the analysis is whole (written atomically), from this run or the last",
    "analysis.paper": "every figure and table is whole (written atomically)",
    "analysis.search": "every file of the analysis is whole (written atomically)",
    "analysis.nb101_truth": "the table is written whole (atomically) or not at all",
    "launch.status": "it only reads the study",
}
# The console scripts (pyproject's [project.scripts]): the same start as `python -m module`.
SCRIPTS = {"unnas-sample": "study.sample", "unnas-train": "study.train", "unnas-search": "study.search",
           "unnas-correlate": "analysis.correlate", "unnas-paper": "analysis.paper", "unnas-status": "launch.status"}


def sample() -> NoReturn:
    """`unnas-sample`: python -m study.sample."""
    start(SCRIPTS["unnas-sample"])


def train() -> NoReturn:
    """`unnas-train`: python -m study.train."""
    start(SCRIPTS["unnas-train"])


def search() -> NoReturn:
    """`unnas-search`: python -m study.search."""
    start(SCRIPTS["unnas-search"])


def correlate() -> NoReturn:
    """`unnas-correlate`: python -m analysis.correlate."""
    start(SCRIPTS["unnas-correlate"])


def paper() -> NoReturn:
    """`unnas-paper`: python -m analysis.paper."""
    start(SCRIPTS["unnas-paper"])


def status() -> NoReturn:
    """`unnas-status`: python -m launch.status."""
    start(SCRIPTS["unnas-status"])
