"""Real signals sent to real commands at chosen moments, timed: the harness of tests/test_interrupt.py and of
benchmarks/interrupt_matrix.py (which writes the whole matrix to benchmarks/results/interrupt_matrix.md).

A case starts a command as a user's shell would (its own session, Ctrl-C at its default action even when
the suite itself runs in the background with SIGINT ignored), waits for a moment (the first instant its
signal handlers are in place while it still imports; its worker processes starting; a run mid-training),
sends one signal to the command alone or to its whole process group, and measures how long the command
and every process it started take to be gone. Then it reruns the same command and counts the records.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from tests.conftest import ROOT

# A real but small training: 2 cells, 2 workers, digits at 8 px with 180 training images, 10 short epochs.
TRAIN = ["budget=tiny", "budget.epochs=10", "workers=2", "threads=1", "dataset.image_size=8",
         "dataset.test_fraction=0.9"]
NOISE = ("Traceback", "Exception ignored", "Error executing job", "resource_tracker", "Exception in initializer")


@dataclass
class Outcome:
    """What one interruption did."""

    command: str
    moment: str
    signal: str
    target: str  # "command" (the process alone) or "group" (it and every process it started)
    rc: int | None
    stop_s: float  # signal to the last process of the command gone
    stderr: str
    output: str  # stdout and stderr
    leftovers: list[int]  # processes of the command still alive 10 s after the signal
    records_before: int = 0
    records_after: int | None = None
    rerun_rc: int | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def traceback(self) -> bool:
        """Whether anything printed looks like a traceback or a leaked helper's complaint."""
        return any(word in self.output for word in NOISE)

    @property
    def lines(self) -> list[str]:
        """The non-empty lines on stderr."""
        return [ln for ln in self.stderr.splitlines() if ln.strip()]


def _default_signals() -> None:
    # Ctrl-C's default action, also when the suite runs in the background (`pytest ... &`), where the shell
    # has SIGINT and SIGQUIT ignored and Python would never raise KeyboardInterrupt.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGQUIT, signal.SIG_DFL)


def start(module: str, args: list[str], logs: Path) -> subprocess.Popen:
    """Start `python -m module args...` in a session of its own, its output into files under `logs`."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HYDRA_FULL_ERROR": "0", "OMP_NUM_THREADS": "1"}
    logs.mkdir(parents=True, exist_ok=True)
    out, err = open(logs / "stdout", "w"), open(logs / "stderr", "w")
    try:
        return subprocess.Popen([sys.executable, "-m", module, *args], cwd=ROOT, env=env, stdout=out, stderr=err,
                                preexec_fn=_default_signals, start_new_session=True)
    finally:
        out.close()
        err.close()


def descendants(pid: int) -> set[int]:
    """Every live process below `pid` (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if fields[0] != "Z":
                children.setdefault(int(fields[1]), []).append(int(entry))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def handlers_ready(pid: int) -> bool:
    """Whether the command has its stop handlers in place (SIGTERM caught): the earliest moment it can answer."""
    try:
        caught = next(ln for ln in Path(f"/proc/{pid}/status").read_text().splitlines() if ln.startswith("SigCgt:"))
    except (OSError, StopIteration):
        return False
    return bool(int(caught.split()[1], 16) & (1 << (signal.SIGTERM - 1)))


def workers_initialising(pid: int) -> bool:
    """Whether a worker runs its initialiser (its SIGTERM handler set, the dataset loading): the moment a
    terminated worker used to print concurrent.futures' "Exception in initializer" traceback."""
    return any(handlers_ready(w) for w in workers(pid))


def workers_starting(pid: int, study: Path) -> bool:
    """Whether the command's worker processes exist and none has claimed a run yet."""
    spawned = any(b"spawn_main" in cmdline(p) for p in descendants(pid))
    return spawned and not any((study / "runs").rglob("*.claim")) if (study / "runs").exists() else spawned


def mid_run(study: Path) -> bool:
    """Whether a run has saved an epoch's checkpoint (and so is in training)."""
    return (study / "runs").exists() and any((study / "runs").rglob("*.ckpt"))


def workers(pid: int) -> list[int]:
    """The worker processes of a pool below `pid`."""
    return sorted(p for p in descendants(pid) if b"spawn_main" in cmdline(p))


def job_task(pid: int) -> list[int]:
    """The task process of a local launcher's job below `pid`, and its workers (what a preemption reaches)."""
    tasks = [p for p in descendants(pid) if b"submitit.core._submit" in cmdline(p)]
    return tasks + [w for t in tasks for w in workers(t)]


def job_logs(study: Path) -> str:
    """Everything the jobs of a local launcher wrote to their logs."""
    return "".join(p.read_text(errors="replace") for p in sorted((study / "logs").rglob("*_log.*")))


def cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def poll(predicate: Callable[[], bool], timeout: float, every: float = 0.02) -> bool:
    """Wait until `predicate()` holds; False after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(every)
    return True


def interrupt(module: str, args: list[str], logs: Path, moment: str, ready: Callable[[int], bool], signum: int,
              target: str = "command", victim: Callable[[int], list[int]] | None = None,
              timeout: float = 300) -> Outcome:
    """Start the command, wait until `ready(pid)`, send `signum` to the command (or its group, or to the pids
    `victim(pid)` picks, named `target`), and measure until it and everything it started are gone."""
    proc = start(module, args, logs)
    seen: set[int] = set()
    try:
        def arrived() -> bool:
            seen.update(descendants(proc.pid))
            return proc.poll() is not None or ready(proc.pid)

        if not poll(arrived, timeout) or proc.poll() is not None:
            raise AssertionError(f"{module} never reached {moment!r} (rc {proc.poll()}): "
                                 f"{(logs / 'stderr').read_text()[-2000:]}")
        seen.update(descendants(proc.pid))
        t0 = time.monotonic()
        if victim is not None:
            for pid in victim(proc.pid):
                os.kill(pid, signum)
        elif target == "group":
            os.killpg(proc.pid, signum)
        else:
            os.kill(proc.pid, signum)
        try:
            proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            pass
        poll(lambda: not any(_alive(p) for p in seen | {proc.pid}), 10)
        stop_s = time.monotonic() - t0
        left = sorted(p for p in seen | {proc.pid} if _alive(p))
    finally:
        for pid in descendants(proc.pid) | seen | {proc.pid}:  # whatever is left is this test's to end
            if _alive(pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
        if proc.poll() is None:
            proc.wait(timeout=30)
    stderr = (logs / "stderr").read_text()
    name = signal.Signals(signum).name
    return Outcome(module, moment, name, target, proc.returncode, stop_s, stderr,
                   (logs / "stdout").read_text() + stderr, left)


def records(study: Path) -> int:
    """Complete or failed records in the study."""
    return len(list((study / "runs").rglob("*.json"))) if (study / "runs").exists() else 0


def rerun(module: str, args: list[str], logs: Path, outcome: Outcome, study: Path) -> Outcome:
    """Run the same command again to the end; count the records before and after."""
    outcome.records_before = records(study)
    proc = start(module, args, logs)
    outcome.rerun_rc = proc.wait(timeout=600)
    outcome.records_after = records(study)
    if outcome.rerun_rc != 0:
        outcome.notes.append((logs / "stderr").read_text()[-1000:])
    return outcome
