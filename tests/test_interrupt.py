"""Interrupted at any moment, every command stops within seconds, prints one line and no traceback, leaves no
process behind and loses nothing; the rerun completes (issue 16 item 5; the robustness issue, items 1 and 4).

Real commands in real processes, real signals: Ctrl-C (SIGINT to the whole process group, as a terminal
sends it), SIGTERM (what `kill PID`, `timeout` and a scheduler's time limit send) to the command alone or to
its group, SIGUSR2 (a preemption's warning) and SIGHUP (the terminal gone), at three moments: while the
command still imports (the first instant its handlers are in place), while its worker processes start, and
mid-run. The harness is tests/interruption.py; benchmarks/interrupt_matrix.py times the same cases.
"""

from __future__ import annotations

import json
import signal

import pytest

from study.store.cells import read_cells
from tests.interruption import (NOISE, TRAIN, Outcome, handlers_ready, interrupt, job_logs, job_task, mid_run,
                                rerun, workers, workers_initialising, workers_starting)
from tests.test_faults import sample

pytestmark = pytest.mark.slow

MOMENTS = {
    "imports": lambda study: handlers_ready,
    "worker start-up": lambda study: lambda pid: workers_starting(pid, study),
    "worker initialiser": lambda study: workers_initialising,
    "mid-run": lambda study: lambda pid: mid_run(study),
}
CASES = [  # (moment, signal, sent to, workers)
    ("imports", signal.SIGINT, "group", 2),
    ("imports", signal.SIGTERM, "command", 2),
    ("worker start-up", signal.SIGINT, "group", 2),
    ("worker start-up", signal.SIGTERM, "command", 2),
    ("worker start-up", signal.SIGUSR2, "command", 2),
    ("worker initialiser", signal.SIGINT, "group", 2),
    ("worker initialiser", signal.SIGTERM, "command", 2),
    ("mid-run", signal.SIGINT, "group", 1),
    ("mid-run", signal.SIGINT, "group", 2),
    ("mid-run", signal.SIGTERM, "command", 1),
    ("mid-run", signal.SIGTERM, "command", 2),
    ("mid-run", signal.SIGTERM, "group", 2),
    ("mid-run", signal.SIGUSR2, "group", 2),  # SLURM's --signal reaches every process of the step
    ("mid-run", signal.SIGHUP, "group", 2),  # a terminal's hang-up reaches the whole group
]


def cells_touched(study) -> set[str]:
    """Cells with a record, a claim or a checkpoint: every run started so far."""
    runs = study / "runs"
    return {p.name.split(".")[0] for p in runs.rglob("*") if p.is_file() and not p.name.startswith(".")} \
        if runs.exists() else set()


def leftovers(study) -> list[str]:
    """Claims and temporary files in the runs folder (checkpoints and records are meant to stay)."""
    runs = study / "runs"
    return sorted(p.name for p in runs.rglob("*") if p.is_file() and not p.name.endswith((".json", ".ckpt"))) \
        if runs.exists() else []


def train_args(study, workers: int) -> list[str]:
    return [*[a for a in TRAIN if not a.startswith("workers=")], f"workers={workers}", f"study_dir={study}"]


def assert_stopped_cleanly(out: Outcome, module: str, signum: int) -> None:
    """Exit 128 + the signal, one line naming the signal and the command to go on, no traceback, no process left."""
    assert out.rc == 128 + signum, (out.rc, out.output)
    assert len(out.lines) == 1 and not out.traceback, out.output
    what = "interrupted:" if signum == signal.SIGINT else f"stopped by {signal.Signals(signum).name}:"
    assert out.lines[0].startswith(what) and f"with: python -m {module}" in out.lines[0], out.lines[0]
    assert out.leftovers == [], f"processes left running: {out.leftovers}"
    assert out.stop_s < 60, out.stop_s  # not a speed figure (benchmarks/interrupt_matrix.py times it): a hang


@pytest.mark.parametrize("moment,signum,target,workers", CASES,
                         ids=[f"{m}-{signal.Signals(s).name}-{t}-w{w}" for m, s, t, w in CASES])
def test_train_stops_cleanly_at_every_moment_and_the_rerun_completes(tmp_path, moment, signum, target, workers):
    study = sample(tmp_path, n=2)
    args = train_args(study, workers)
    before: set[str] = set()

    def ready(pid: int) -> bool:
        if MOMENTS[moment](study)(pid):
            before.update(cells_touched(study))
            return True
        return False

    out = interrupt("study.train", args, tmp_path / "logs", moment, ready, signum, target)
    assert_stopped_cleanly(out, "study.train", signum)
    assert cells_touched(study) <= before  # nothing queued was started after the signal
    assert leftovers(study) == []  # no claim, no half-written file
    if moment != "mid-run":
        assert not (study / "runs").exists() or not list((study / "runs").rglob("*.json"))
        return
    assert len(list((study / "runs").rglob("*.ckpt"))) >= 1  # the interrupted run keeps its last epoch
    rerun("study.train", args, tmp_path / "rerun", out, study)
    assert out.rerun_rc == 0, out.notes
    assert "resumed from epoch" in (tmp_path / "rerun" / "stdout").read_text()
    assert out.records_after == len(read_cells(study)) and leftovers(study) == []


def test_sigkill_of_the_command_takes_its_workers_with_it(tmp_path):
    """No handler runs on SIGKILL: the kernel's parent-death signal stops the workers, which release their claims."""
    study = sample(tmp_path, n=2)
    args = train_args(study, 2)
    out = interrupt("study.train", args, tmp_path / "logs", "mid-run", lambda pid: mid_run(study), signal.SIGKILL)
    assert out.rc == -signal.SIGKILL and out.leftovers == [], out.leftovers
    assert not any(w in out.output for w in ("Traceback", "Exception ignored")), out.output
    assert leftovers(study) == []  # each worker unwound: its claim released, no temporary file
    rerun("study.train", args, tmp_path / "rerun", out, study)
    assert out.rerun_rc == 0 and out.records_after == 2, out.notes


def test_a_killed_worker_stops_the_training_in_one_line_and_drops_its_claim(tmp_path):
    study = sample(tmp_path, n=2)
    args = train_args(study, 2)

    out = interrupt("study.train", args, tmp_path / "logs", "mid-run", lambda pid: mid_run(study), signal.SIGKILL,
                    "a worker", victim=lambda pid: workers(pid)[:1])
    assert out.rc == 1 and len(out.lines) == 1 and not out.traceback, out.output
    line = out.lines[0]
    assert line.startswith("error: a worker process was killed by SIGKILL") and "while training supervised" in line
    assert "rerun the same command to resume" in line and "fewer workers=" in line
    assert out.leftovers == [] and leftovers(study) == []  # the dead worker's claim is gone at once
    rerun("study.train", args, tmp_path / "rerun", out, study)
    assert out.rerun_rc == 0 and out.records_after == 2, out.notes
    assert "taking over stale claim" not in (tmp_path / "rerun" / "stdout").read_text()


# ---- a local launcher's jobs: the same, seen from the command and in the jobs' logs -----------------------

LOCAL = {  # what is signalled, how: (signal, target, the command's exit status)
    "Ctrl-C": (signal.SIGINT, "group", 130),
    "SIGTERM to the command": (signal.SIGTERM, "command", 143),
    "SIGTERM to the group": (signal.SIGTERM, "group", 143),
    "preemption (SIGTERM to the job)": (signal.SIGTERM, "job", 1),  # SLURM's preemption: the job's processes
    "SIGUSR2 to the job": (signal.SIGUSR2, "job", 0),  # a time limit's warning: checkpoint, requeue, resume
}


@pytest.mark.parametrize("case", list(LOCAL))
def test_a_local_launchers_job_stops_cleanly_or_requeues(tmp_path, case):
    signum, target, rc = LOCAL[case]
    study = sample(tmp_path, n=2)
    args = ["-m", "hydra/launcher=local", *train_args(study, 2)]
    victim = (lambda pid: job_task(pid)[:1] if signum == signal.SIGUSR2 else job_task(pid)) if target == "job" else None
    out = interrupt("study.train", args, tmp_path / "logs", "mid-run", lambda pid: mid_run(study), signum, target,
                    victim=victim)
    assert out.rc == rc and out.leftovers == [] and not out.traceback, out.output
    logs = job_logs(study)
    assert not any(word in logs for word in NOISE), logs  # the job's log: one line too, no traceback
    if rc == 0:  # requeued by submitit, resumed from the checkpoint, finished: nothing more to do
        assert "this job is preempted" in logs and "resumed from epoch" in logs
        assert len(list((study / "runs").rglob("*.json"))) == 2
        return
    assert len(out.lines) == 1, out.stderr
    if rc == 1:
        assert out.lines[0].startswith("error: a job of the sweep failed: a worker process was stopped by SIGTERM")
    else:
        assert out.lines[0].startswith("interrupted:" if signum == signal.SIGINT else "stopped by SIGTERM:")
    assert leftovers(study) == []
    rerun("study.train", args, tmp_path / "rerun", out, study)
    assert out.rerun_rc == 0 and out.records_after == 2, out.notes


# ---- the other commands ------------------------------------------------------------------------------


def _hydra_started(folder):
    """The moment a command's task runs: Hydra has made its log folder."""
    return lambda pid: (folder / "logs").exists() and any((folder / "logs").rglob(".hydra"))


@pytest.mark.parametrize("moment,signum,target", [("imports", signal.SIGINT, "group"),
                                                  ("imports", signal.SIGTERM, "command"),
                                                  ("sampling", signal.SIGINT, "group"),
                                                  ("sampling", signal.SIGTERM, "command")])
def test_sample_stops_cleanly_and_its_files_stay_whole(tmp_path, moment, signum, target):
    study = tmp_path / "s"
    args = ["space=darts", "n=200", f"study_dir={study}"]  # DARTS cells: seconds to draw and size
    ready = handlers_ready if moment == "imports" else _hydra_started(study)
    out = interrupt("study.sample", args, tmp_path / "logs", moment, ready, signum, target)
    assert_stopped_cleanly(out, "study.sample", signum)
    assert not (study / "cells.jsonl").exists() or len(read_cells(study)) == 200  # whole or absent
    rerun("study.sample", args, tmp_path / "rerun", out, study)
    assert out.rerun_rc == 0 and len(read_cells(study)) == 200, out.notes
    assert json.loads((study / "study.json").read_text())["sample"]["n"] == 200


@pytest.fixture
def analysed_study(tmp_path):
    """A study of 40 cells with records of two objectives and two seeds (written directly)."""
    import numpy as np

    from tests.test_analysis_correlate import write_study

    rng = np.random.default_rng(0)
    cells = [f"c{i:02d}" for i in range(40)]
    acc = {(o, s): {c: float(v) for c, v in zip(cells, rng.uniform(0.2, 0.9, len(cells)))}
           for o in ("supervised", "rotation") for s in (0, 1)}
    return write_study(tmp_path / "s", cells, acc)


@pytest.mark.parametrize("moment,signum,target", [("imports", signal.SIGINT, "group"),
                                                  ("analysis", signal.SIGINT, "group"),
                                                  ("analysis", signal.SIGTERM, "command")])
def test_correlate_stops_cleanly_and_the_rerun_writes_the_analysis(tmp_path, analysed_study, moment, signum, target):
    study = analysed_study
    args = [f"study_dir={study}", "bootstrap=20000", "permutations=20000"]  # seconds of statistics to interrupt
    ready = handlers_ready if moment == "imports" else _hydra_started(study)
    out = interrupt("analysis.correlate", args, tmp_path / "logs", moment, ready, signum, target)
    assert_stopped_cleanly(out, "analysis.correlate", signum)
    rerun("analysis.correlate", [f"study_dir={study}", "bootstrap=200", "permutations=200", "trials=200"],
          tmp_path / "rerun", out, study)
    assert out.rerun_rc == 0 and (study / "analysis" / "report.md").exists(), out.notes


def test_status_stops_cleanly_while_it_imports(tmp_path, analysed_study):
    out = interrupt("launch.status", [f"study_dir={analysed_study}"], tmp_path / "logs", "imports", handlers_ready,
                    signal.SIGINT, "group")
    assert_stopped_cleanly(out, "launch.status", signal.SIGINT)


@pytest.mark.parametrize("moment,signum,target", [("imports", signal.SIGINT, "group"),
                                                  ("epoch 1", signal.SIGTERM, "command")])
def test_search_stops_cleanly_and_the_rerun_resumes_to_one_record(tmp_path, moment, signum, target):
    from tests.test_search_cli import FAST

    study = tmp_path / "s"
    args = [*FAST, "method=gdas", "objective=supervised", "search_budget.epochs=4", f"study_dir={study}"]

    def checkpoint(pid: int) -> bool:
        return (study / "searches").exists() and any((study / "searches").rglob("*.ckpt"))

    out = interrupt("study.search", args, tmp_path / "logs", moment,
                    handlers_ready if moment == "imports" else checkpoint, signum, target)
    assert_stopped_cleanly(out, "study.search", signum)
    assert not list(study.rglob("seed*.json"))  # no record of an unfinished search
    rerun("study.search", args, tmp_path / "rerun", out, study)
    assert out.rerun_rc == 0, out.notes
    assert len(list((study / "searches").rglob("seed*.json"))) == 1
