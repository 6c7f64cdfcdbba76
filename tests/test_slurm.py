"""A study through `hydra/launcher=slurm` on a real SLURM cluster (started by .ci/slurm-up), and through
submitit's local executor. The SLURM tests are skipped where `sinfo` does not answer."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT, run_cli

# One single-node cluster: its tests run one after another on one pytest-xdist worker.
pytestmark = pytest.mark.xdist_group("slurm")


def _slurm_answers() -> bool:
    if shutil.which("sinfo") is None:
        return False
    try:
        out = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return False
    return out.returncode == 0 and any(s.strip("*~#") in ("idle", "mixed", "allocated") for s in out.stdout.split())


slurm = pytest.mark.skipif(not _slurm_answers(), reason="no SLURM cluster answers (sinfo); .ci/run starts one")

# Small enough for the test machine; every value the site file could set is given, so a developer's
# conf/local/slurm.yaml does not change what the test runs.
SLURM = ["hydra/launcher=slurm", "hydra.launcher.partition=null", "hydra.launcher.gpus_per_node=null",
         "hydra.launcher.mem_gb=1", "hydra.launcher.cpus_per_task=1", "hydra.launcher.timeout_min=60",
         "hydra.launcher.array_parallelism=4", "hydra.launcher.setup=[]"]
FAST = ["budget=tiny", "workers=1", "threads=1", "dataset.image_size=8", "dataset.test_fraction=0.5"]


def _records(study: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((study / "runs").rglob("*.json"))]


def _job_ids(study: Path) -> list[str]:
    """The submitted jobs' ids: array tasks (`<array>_<k>`), or plain jobs when there is no array."""
    names = sorted(p.name for p in study.glob("logs/*/*/.submitit/*") if p.is_dir() and p.name[0].isdigit())
    return [n for n in names if "_" in n] or names


def _wait_for_queue_to_drain(ids: list[str], timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while True:
        out = subprocess.run(["squeue", "-h", "-o", "%i"], capture_output=True, text=True).stdout.split()
        if not any(j == i or j.startswith(i.split("_")[0] + "_") for j in out for i in ids):
            return
        assert time.monotonic() < deadline, f"jobs {ids} still queued: {out}"
        time.sleep(0.5)


def _sample(study: Path, n: int) -> None:
    done = run_cli("study.sample", f"n={n}", f"study_dir={study}")
    assert done.returncode == 0, done.stderr


def _popen(*args: str, cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HYDRA_FULL_ERROR": "0"}
    return subprocess.Popen([sys.executable, "-m", "study.train", *args], cwd=cwd, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


@pytest.mark.slurm
@slurm
def test_study_on_slurm_completes_once_even_when_the_submitter_dies(tmp_path):
    study = tmp_path / "s"
    _sample(study, 3)
    args = ["-m", *SLURM, "objective=rotation,supervised", "shards=2", f"study_dir={study}", *FAST]
    # The submitting process dies once the first run is recorded; its array jobs carry on in SLURM.
    proc = _popen(*args, cwd=tmp_path)
    deadline = time.monotonic() + 300
    while not list((study / "runs").rglob("*.json")) and proc.poll() is None:
        assert time.monotonic() < deadline, "no record appeared"
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    ids = _job_ids(study)
    assert len(ids) == 4  # objective x shard
    _wait_for_queue_to_drain(ids)
    records = _records(study)
    assert len(records) == 6 and all(r["status"] == "complete" for r in records)
    stamps = {p: p.stat().st_mtime_ns for p in (study / "runs").rglob("*.json")}

    again = run_cli("study.train", *args, cwd=tmp_path)  # the same command, re-issued
    assert again.returncode == 0, again.stdout + again.stderr
    assert {p: p.stat().st_mtime_ns for p in (study / "runs").rglob("*.json")} == stamps  # nothing retrained
    records = _records(study)
    cells = [json.loads(line)["id"] for line in (study / "cells.jsonl").read_text().splitlines()]
    assert sorted((r["objective"], r["cell_id"]) for r in records) == sorted(
        (o, c) for o in ("rotation", "supervised") for c in cells)  # every run exactly once
    assert all(r["epochs"] == 1 and len(r["history"]["test_acc"]) == 1 for r in records)
    assert not list((study / "runs").rglob("*.ckpt"))
    status = run_cli("launch.status", f"study_dir={study}")
    assert "total: 6 of 6 runs done" in status.stdout and "everything is done" in status.stdout


@pytest.mark.slurm
@slurm
def test_preempted_job_is_requeued_and_resumes_from_its_checkpoint(tmp_path):
    study = tmp_path / "s"
    _sample(study, 1)
    proc = _popen("-m", *SLURM, "objective=supervised", f"study_dir={study}", *FAST, "budget.epochs=30",
                  cwd=tmp_path)
    try:
        deadline = time.monotonic() + 300
        while not list((study / "runs").rglob("*.ckpt")):
            assert proc.poll() is None and time.monotonic() < deadline, "no checkpoint appeared"
            time.sleep(0.1)
        (job,) = _job_ids(study)
        subprocess.run(["scancel", "--signal=USR2", job], check=True)  # what SLURM sends on preemption
        out, _ = proc.communicate(timeout=600)
    finally:
        proc.kill()
    assert proc.returncode == 0, out
    (rec,) = _records(study)
    assert rec["status"] == "complete" and rec["epochs"] == 30 and len(rec["history"]["train_loss"]) == 30
    assert rec["resumed_from_epoch"] is not None and 1 <= rec["resumed_from_epoch"] < 30
    assert not list((study / "runs").rglob("*.ckpt"))
    log = next(study.glob("logs/*/*/.submitit/*/*_log.err")).read_text()
    assert "this job is preempted" in log


@pytest.mark.slurm
@slurm
def test_a_failing_run_is_recorded_the_array_completes_and_status_shows_it(tmp_path):
    study = tmp_path / "s"
    _sample(study, 2)
    # A learning rate of 1e30 for rotation only: its runs diverge (a real failure inside training).
    done = run_cli("study.train", "-m", *SLURM, "objective=rotation,supervised", f"study_dir={study}", *FAST,
                   "+budget.objectives.rotation.lr=1e30", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    records = _records(study)
    assert len(records) == 4
    assert {r["status"] for r in records if r["objective"] == "supervised"} == {"complete"}
    failed = [r for r in records if r["objective"] == "rotation"]
    assert {r["status"] for r in failed} == {"failed"} and all("diverged" in r["reason"] for r in failed)
    status = run_cli("launch.status", f"study_dir={study}")
    assert status.returncode == 0, status.stderr
    assert "failed:" in status.stdout and status.stdout.count("diverged at epoch 0") == 2
    assert "python -m study.train -m objective=rotation" in status.stdout


def test_study_through_submitits_local_executor(tmp_path):
    study = tmp_path / "s"
    _sample(study, 3)
    done = run_cli("study.train", "-m", "hydra/launcher=local", "objective=supervised", "shards=2",
                   f"study_dir={study}", *FAST, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    records = _records(study)
    assert len(records) == 3 and {r["status"] for r in records} == {"complete"}
    assert len(_job_ids(study)) == 2  # one local job per shard


@pytest.mark.slurm
@slurm
def test_a_request_the_cluster_cannot_run_is_refused_in_one_line(tmp_path):
    study = tmp_path / "s"
    _sample(study, 2)
    base = ["-m", "hydra/launcher=slurm", "hydra.launcher.partition=null", "objective=supervised",
            f"study_dir={study}", *FAST]
    cases = [([], "device=cpu"),  # the preset's GPU on a cluster without any (.ci/slurm-up has none)
             (["device=cpu", "hydra.launcher.cpus_per_task=999"], "hydra.launcher.cpus_per_task="),
             (["device=cpu", "hydra.launcher.cpus_per_task=1", "hydra.launcher.mem_gb=99999"],
              "hydra.launcher.mem_gb="),
             (["device=cpu", "hydra.launcher.cpus_per_task=1", "hydra.launcher.mem_gb=1",
               "+hydra.launcher.constraint=nosuch"], "sbatch: error")]  # refused by sbatch itself
    for extra, words in cases:
        done = run_cli("study.train", *base, *extra)
        assert done.returncode == 2, (extra, done.stdout, done.stderr)
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and words in lines[0], (extra, done.stderr)
    assert not (study / "runs").exists()
