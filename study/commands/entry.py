"""How every command starts and stops: Ctrl-C and stop signals at any moment end it with one line.

`python -m study.train` (and every other command) runs `start(module, kept)` before its own imports (torch,
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


def _stop(signum: int, frame: Any) -> None:
    quiet()
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
    done = f"{progress.done} run(s) finished, " if progress is not None else ""
    return f"{what}: {done}{kept}; {'resume' if progress is not None else 'rerun'} with: " + \
        shlex.join(["python", "-m", module, *argv])


def _children() -> list[int]:
    """Live child processes of this one (from /proc; empty where there is none)."""
    me, found = os.getpid(), []
    try:
        entries = os.listdir("/proc")
    except OSError:
        return []
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read()
        except (OSError, IndexError):
            continue
        # multiprocessing's resource tracker ignores signals and ends with this process.
        if int(fields[1]) == me and fields[0] != "Z" and b"resource_tracker" not in cmdline:
            found.append(int(entry))
    return found


def stop_children(signum: int, grace_s: float = 10.0) -> None:
    """Pass a stop on to child processes still running (the jobs of a local launcher) and wait for them.

    Ctrl-C from a terminal reaches them itself (the whole process group); a signal sent to this process
    alone does not, and they would go on without it.
    """
    if signum == signal.SIGINT:
        return
    children = _children()
    for pid in children:
        try:
            os.kill(pid, signal.SIGINT)  # what Ctrl-C would have sent them; submitit's local jobs then stop
        except OSError:
            pass
    deadline = time.monotonic() + grace_s
    while children and time.monotonic() < deadline:
        children = [pid for pid in children if pid in _children()]
        time.sleep(0.1)


def start(module: str, kept: str) -> NoReturn:
    """Run `module`'s main() with the stop signals handled; exit 128 + the signal's number when stopped."""
    install()
    argv = sys.argv[1:]
    try:
        importlib.import_module(module).main()
    except KeyboardInterrupt as e:  # Ctrl-C, or a Stopped raised by a stop signal
        quiet()
        signum = getattr(e, "signum", signal.SIGINT)
        stop_children(signum)
        try:
            print(f"{stopped_line(module, argv, e, kept)}", file=sys.stderr, flush=True)
        except OSError:  # the terminal is gone (SIGHUP): nobody to tell
            pass
        sys.exit(128 + signum)
    sys.exit(0)
