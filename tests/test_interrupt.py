"""Ctrl-C on `study.train`: it stops at once, starts nothing new, prints one line saying how to resume, and
the rerun says which runs resumed from which epoch (issue 16, item 5). A real subprocess, a real SIGINT
sent to its process group as a terminal does."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from study.store.cells import read_cells
from tests.conftest import ROOT, run_cli
from tests.test_claims import _poll
from tests.test_faults import TRAIN, sample


def cells_touched(study) -> set[str]:
    """Cells with a record, a claim or a checkpoint: every run started so far."""
    return {p.name.split(".")[0] for p in (study / "runs").rglob("*") if p.is_file() and not p.name.startswith(".")}


@pytest.mark.parametrize("workers", [1, 2])
def test_ctrl_c_stops_starts_nothing_new_and_the_rerun_resumes(tmp_path, workers):
    study = sample(tmp_path, n=3)
    args = [*[a for a in TRAIN if not a.startswith("workers=")], f"workers={workers}", "budget.epochs=20",
            f"study_dir={study}"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HYDRA_FULL_ERROR": "0"}
    # Ctrl-C's default action in the command, also when this suite runs in the background (`... &`), where the
    # shell has the inherited SIGINT ignored and Python would then never raise KeyboardInterrupt.
    proc = subprocess.Popen([sys.executable, "-m", "study.train", *args], cwd=ROOT, env=env, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        assert _poll(lambda: any((study / "runs").rglob("*.ckpt")) if (study / "runs").exists() else False,
                     timeout=300), "no checkpoint appeared"
        started = cells_touched(study)
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does: the whole foreground group
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith("interrupted:") and "resume with: python -m study.train" in lines[0], lines[0]
    assert cells_touched(study) <= started  # nothing queued was started after the interrupt
    assert len(list((study / "runs").rglob("*.ckpt"))) >= 1  # the interrupted run keeps its last epoch

    rerun = run_cli("study.train", *args)
    assert rerun.returncode == 0, rerun.stderr
    assert "resumed from epoch" in rerun.stdout + rerun.stderr
    assert len(list((study / "runs").rglob("*.json"))) == len(read_cells(study))
