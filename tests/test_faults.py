"""Faults injected for real: SIGKILL mid-training, two train commands at once, corrupted records,
divergence, a full disk, a read-only folder and a file-size limit. Nothing finished is lost, nothing
is trained twice, nothing half-written is ever visible."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys

import pytest

from study.store.cells import read_cells
from study.store.records import content_checksum, identity_hash, run_dir, write_record
from tests.conftest import ROOT, run_cli
from tests.test_claims import SMALL_DATA, _poll, small_runs

# A real but small training: digits at 8x8 with 180 training images, one worker.
TRAIN = ["budget=tiny", "workers=1", "threads=1", *(f"dataset.{k}={v}" for k, v in SMALL_DATA.items())]
TRAINED = re.compile(r"\[\d+/\d+\] supervised seed 0 cell (\w+): best")


def popen_cli(module: str, *args: str) -> subprocess.Popen:
    """Start `python -m module args...` as a user would, without waiting for it."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HYDRA_FULL_ERROR": "0"}
    return subprocess.Popen([sys.executable, "-m", module, *args], cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def sample(tmp_path, n: int):
    """A study with `n` sampled cells (written directly: the sample command has its own tests)."""
    from study.spaces import cell_id, draw

    study = tmp_path / "study"
    study.mkdir()
    rows = [{"id": cell_id(c.canonical()), "arch": c.to_str()} for c in draw("nb201", n, 0, False)]
    (study / "cells.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return study


def visible_records(study) -> dict[str, dict]:
    """Every record file a reader can see, each checked to be whole: complete JSON with a valid checksum."""
    out = {}
    for path in (study / "runs").rglob("*.json"):
        try:
            rec = json.loads(path.read_text())
        except FileNotFoundError:
            continue
        assert rec["status"] == "complete" and rec["checksum"] == content_checksum(rec), path
        out[rec["cell_id"]] = rec
    return out


def leftovers(study) -> list[str]:
    """Claims and temporary files left in the runs folder."""
    return sorted(p.name for p in (study / "runs").rglob("*") if p.is_file() and not p.name.endswith(".json"))


def training(study) -> list:
    """Claims of runs without a record yet: runs in training right now."""
    return [p for p in (study / "runs").rglob("*.claim") if not p.with_suffix("").exists()]


def test_sigkill_mid_training_leaves_no_partial_record_and_a_rerun_completes(tmp_path):
    study = sample(tmp_path, n=4)
    ids = {c["id"] for c in read_cells(study)}
    args = [*TRAIN, "budget.epochs=4", f"study_dir={study}"]
    proc = popen_cli("study.train", *args)
    try:
        # Kill once a run is finished and the next one is in training; check every record seen meanwhile.
        in_flight = _poll(lambda: len(visible_records(study)) >= 1 and bool(training(study)), timeout=300)
    finally:
        proc.send_signal(signal.SIGKILL)
        out = proc.communicate()[0]
    assert in_flight, out
    survivors = visible_records(study)
    assert 1 <= len(survivors) < len(ids) and set(survivors) <= ids
    kept = {p: p.read_bytes() for p in (study / "runs").rglob("*.json")}
    assert training(study), "the killed run's claim should remain"

    rerun = run_cli("study.train", *args)
    assert rerun.returncode == 0, rerun.stderr
    log = rerun.stdout + rerun.stderr
    assert "taking over stale claim" in log, log  # its owner's pid is gone: no 10-minute wait
    assert f"skipping {len(survivors)} of 4" in log
    final = visible_records(study)
    assert set(final) == ids and len(list((study / "runs").rglob("*.json"))) == len(ids)
    assert all(p.read_bytes() == b for p, b in kept.items())  # finished records untouched
    assert leftovers(study) == []


def test_two_train_commands_at_once_train_every_run_once(tmp_path):
    study = sample(tmp_path, n=6)
    ids = {c["id"] for c in read_cells(study)}
    args = [*TRAIN, "budget.epochs=3", f"study_dir={study}"]
    procs = [popen_cli("study.train", *args) for _ in range(2)]
    outs = [p.communicate(timeout=600)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    trained = [set(TRAINED.findall(out)) for out in outs]
    assert not trained[0] & trained[1], "a run was trained by both commands"
    assert trained[0] | trained[1] == ids
    records = visible_records(study)
    assert set(records) == ids and len(list((study / "runs").rglob("*.json"))) == len(ids)
    for k, proc in enumerate(procs):  # each record names the worker that trained it
        assert {c for c, r in records.items() if r["claim"]["pid"] == proc.pid} == trained[k]
    assert leftovers(study) == []


def test_corrupted_records_are_moved_aside_redone_and_analysis_survives(tmp_path, caplog):
    from analysis.load import load_runs
    from study.training.runner import plan
    from study.training.runner import run_all

    specs, setup, _ = small_runs(tmp_path)
    assert run_all(specs, setup, 1, "first").failed == 0
    truncated, edited = specs[0].path, specs[1].path
    truncated.write_bytes(truncated.read_bytes()[:100])  # a copy cut short
    edited.write_text(re.sub(r'"test_acc_best": [0-9.]+', '"test_acc_best": 0.99', edited.read_text()))
    runs = load_runs(tmp_path)  # analysis skips both, naming them, and does not crash
    assert runs.empty and truncated.name in caplog.text and edited.name in caplog.text

    cells = [{"id": s.cell_id, "arch": s.arch} for s in specs]
    todo, done = plan(tmp_path, cells, setup, 0)
    assert done == 0 and len(todo) == 2
    caplog.clear()
    assert run_all(todo, setup, 1, "again").failed == 0
    for path in (truncated, edited):
        assert f"moved corrupted {path}" in caplog.text
        assert len(list(path.parent.glob(path.name + ".corrupt-*"))) == 1
    assert load_runs(tmp_path)["status"].tolist() == ["complete", "complete"]


def test_a_diverging_run_is_recorded_failed_and_the_study_goes_on(tmp_path, caplog):
    from hydra import compose, initialize_config_dir

    from analysis import correlate
    from study.commands.cli import CONF_DIR
    from study.training.runner import run_all

    specs, setup, _ = small_runs(tmp_path)
    cells = [{"id": s.cell_id, "arch": s.arch, "params": 1, "flops": 1} for s in specs]
    (tmp_path / "cells.jsonl").write_text("".join(json.dumps(c) + "\n" for c in cells))
    assert run_all(specs, setup, 1, "supervised").failed == 0
    hot, hot_setup, _ = small_runs(tmp_path, lr=1e9)  # the loss overflows to inf/NaN in the first epoch
    progress = run_all(hot, hot_setup, 1, "hot")
    assert progress.failed == 2 and progress.done == 2  # the second run went on after the first diverged
    for spec in hot:
        rec = json.loads(spec.path.read_text())
        assert rec["status"] == "failed" and rec["reason"] == "diverged at epoch 0"

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("correlate", overrides=[f"study_dir={tmp_path}"])
    correlate.task(correlate.parse(cfg))  # analysis reports the failures and goes on with the complete runs
    assert "leaving out 2 failed run(s): 2 x diverged at epoch 0" in caplog.text
    runs = __import__("pandas").read_csv(tmp_path / "analysis" / "runs.csv")
    assert sorted(runs["status"]) == ["complete", "complete", "failed", "failed"]


# ---- writes that fail -------------------------------------------------------------------------------


def test_a_file_size_limit_fails_the_write_cleanly(tmp_path):
    """RLIMIT_FSIZE makes the kernel refuse to grow a file (EFBIG), like a full disk; works without root."""
    path = tmp_path / "r.json"
    write_record(path, {"status": "complete", "cell_id": "x", "test_acc_best": 0.5})
    before = path.read_bytes()
    code = (
        "import resource, signal, sys\n"
        "from pathlib import Path\n"
        "from study.store.records import WriteError, write_record\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # get EFBIG instead of being killed\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (1000, 1000))\n"
        "try:\n"
        f"    write_record(Path({str(path)!r}), {{'status': 'complete', 'cell_id': 'x', 'history': 'h' * 5000}})\n"
        "except WriteError as e:\n"
        "    sys.exit(str(e))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 1 and "File too large" in done.stderr and "Traceback" not in done.stderr
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["r.json"]


@pytest.fixture
def small_disk(tmp_path):
    """The study's runs/ folder on a real 1 MiB tmpfs (room for a checkpoint and records) (needs root and mount; skipped elsewhere)."""
    study = sample(tmp_path, n=2)
    runs = study / "runs"
    runs.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small tmpfs needs root")
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(runs)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        yield study
    finally:
        subprocess.run(["umount", "-l", str(runs)], check=False)


def _free_bytes(path) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def test_a_full_disk_and_a_read_only_folder_are_clear_errors_that_lose_nothing(small_disk):
    from hydra import compose, initialize_config_dir

    from study.commands.cli import CONF_DIR
    from study.commands.request import parse

    study = small_disk
    args = [*TRAIN, f"study_dir={study}"]
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        setup = parse(compose("train", overrides=args)).setup
    folder = run_dir(study, "supervised", "digits", "tiny", identity_hash(setup.identity()), 0)
    first, second = read_cells(study)
    previous = folder / f"{first['id']}.json"
    write_record(previous, {"status": "complete", "cell_id": first["id"], "identity": identity_hash(setup.identity()),
                            "test_acc_best": 0.5})
    kept = previous.read_bytes()
    # Fill the disk but one page: enough for the claim, not for the record written after training.
    filler = study / "runs" / "filler"
    filler.write_bytes(b"\0" * (_free_bytes(filler.parent) - 4096))

    full = run_cli("study.train", *args)
    assert full.returncode == 2, full.stderr
    lines = full.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in full.stderr
    # the first write after training is the epoch's checkpoint, else the record: both name the run
    assert re.match(rf"error: cannot write {re.escape(str(folder / second['id']))}\.(ckpt|json): No space left on device",
                    lines[0]), lines[0]
    assert "free disk space" in lines[0]
    assert previous.read_bytes() == kept and sorted(os.listdir(folder)) == [previous.name]  # no tmp, no claim

    subprocess.run(["mount", "-o", "remount,ro", str(study / "runs")], check=True)
    readonly = run_cli("study.train", *args)
    assert readonly.returncode == 2 and "Traceback" not in readonly.stderr
    assert readonly.stderr.strip().startswith("error: cannot create claim") and "Read-only file system" in readonly.stderr
    assert previous.read_bytes() == kept and sorted(os.listdir(folder)) == [previous.name]

    # Once the disk is fixed, the same command finishes the study.
    subprocess.run(["mount", "-o", "remount,rw", str(study / "runs")], check=True)
    filler.unlink()
    fixed = run_cli("study.train", *args)
    assert fixed.returncode == 0, fixed.stderr
    assert previous.read_bytes() == kept and json.loads((folder / f"{second['id']}.json").read_text())["status"] == "complete"


@pytest.fixture
def tmpfs(tmp_path):
    """A real 2 MiB tmpfs at tmp_path/disk (needs root and mount; skipped elsewhere)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small tmpfs needs root")
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(disk)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def fill(disk, leave: int) -> None:
    """Fill `disk` until `leave` bytes are free (0: completely)."""
    with open(disk / "filler", "wb") as f:
        try:
            f.write(b"\0" * max(0, _free_bytes(disk) - leave))
            f.flush()
        except OSError:
            pass


def test_a_full_disk_before_sample_or_train_starts_is_one_line_and_writes_nothing(tmpfs):
    """An empty probe file still fits on a full disk; Hydra's config files do not (they used to be a traceback)."""
    study = sample(tmpfs, n=2)
    fill(tmpfs, leave=0)
    before = sorted(p.name for p in study.rglob("*"))
    for module, args in (("study.train", TRAIN), ("study.sample", ["n=2", "force=true"])):
        done = run_cli(module, *args, f"study_dir={study}")
        assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
        assert done.stderr.startswith(f"error: no space left on the disk of study_dir {study}")
        assert "free disk space" in done.stderr and "Traceback" not in done.stdout + done.stderr
    fresh = run_cli("study.sample", "n=2", f"study_dir={tmpfs}/new")
    assert fresh.returncode == 2 and "no space left" in fresh.stderr and "Traceback" not in fresh.stderr
    assert sorted(p.name for p in study.rglob("*")) == before and not (tmpfs / "new").exists()


def test_a_full_disk_during_the_analysis_is_one_line_and_a_rerun_writes_it(tmpfs, tmp_path):
    """Room to start (Hydra's files), not for the tables and figures: the write that fails names its file."""
    import numpy as np

    from tests.test_analysis_correlate import write_study

    rng = np.random.default_rng(0)
    cells = [f"c{i:02d}" for i in range(40)]
    acc = {(o, s): {c: float(v) for c, v in zip(cells, rng.uniform(0.2, 0.9, 40))}
           for o in ("supervised", "rotation") for s in (0, 1)}
    study = write_study(tmp_path / "s", cells, acc)
    out = tmpfs / "analysis"
    fill(tmpfs, leave=300 << 10)  # above the 256 kB a command needs to start, below the ~440 kB it writes
    args = [f"study_dir={study}", f"out={out}", "bootstrap=100", "permutations=100", "trials=100"]
    full = run_cli("analysis.correlate", *args)
    assert full.returncode == 2 and full.stderr.count("\n") == 1, full.stdout[-2000:] + full.stderr
    assert full.stderr.startswith(f"error: cannot write {out}") and "No space left on device" in full.stderr
    assert "Traceback" not in full.stdout + full.stderr
    assert not [p.name for p in out.rglob(".*.tmp")]  # no half-written file left behind
    (tmpfs / "filler").unlink()
    again = run_cli("analysis.correlate", *args)
    assert again.returncode == 0, again.stderr
    assert (out / "report.md").exists()
