"""One lifecycle for trainings and searches: the same identity rule, the same completeness rule, the same pool."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import fields

import pytest
from hydra import compose, initialize_config_dir

from study.commands import request, search_request
from study.commands.cli import CONF_DIR
from study.store.records import complete_at, is_complete, read_record, write_record
from study.training.run import Budget, JobSetup, Setup, _NOT_IDENTITY
from study.training.searches import SearchBudget, SearchSetup, iter_searches
from tests.conftest import ROOT, run_cli

# Identity hashes computed by the code before runs and searches shared their setup (main at bc4824d):
# existing studies must keep their run and search folders.
HASHES_BEFORE = {
    ("train", "study_dir=/tmp/x"): "464f2457",
    ("train", "objective=rotation budget=short study_dir=/tmp/x"): "f293c000",
    ("train", "space=darts budget=tiny study_dir=/tmp/x"): "726050b6",
    ("train", "space=nb101 objective=jigsaw budget=tiny study_dir=/tmp/x"): "f86a6d4f",
    ("train", "dataset=imagefolder data_root=/tmp/cifar10-jpeg dataset.image_size=16 study_dir=/tmp/x"): "590ce39c",
    ("train", "experiment=imagenet/darts data_root=/tmp/cifar10-jpeg study_dir=/tmp/x"): "d1b6961b",
    ("search", "study_dir=/tmp/x"): "ef5c24d8",
    ("search", "search_budget=cpu objective=rotation method=gdas study_dir=/tmp/x"): "70cf4762",
    ("search", "space=darts search_budget=tiny study_dir=/tmp/x"): "0524c3bc",
    ("search", "experiment=search/cpu objective=jigsaw study_dir=/tmp/x"): "a6253e37",
    ("search", "dataset=imagefolder data_root=/tmp/cifar10-jpeg dataset.image_size=16 search_budget=cpu "
               "study_dir=/tmp/x"): "74b70c07",
}


def _setup(command: str, overrides: list[str]) -> JobSetup:
    parse = request.parse if command == "train" else search_request.parse
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return parse(compose(command, overrides=overrides)).setup


@pytest.mark.parametrize("command,overrides", list(HASHES_BEFORE))
def test_runs_and_searches_keep_the_identity_hashes_they_had(command, overrides):
    assert _setup(command, overrides.split()).identity_hash() == HASHES_BEFORE[(command, overrides)]


def test_runs_and_searches_share_one_identity_rule():
    assert issubclass(Setup, JobSetup) and issubclass(SearchSetup, JobSetup)
    assert Setup.identity is SearchSetup.identity is JobSetup.identity
    base = {f.name for f in fields(Budget)} & {f.name for f in fields(SearchBudget)}
    assert {"name", "epochs", "batch_size", "lr", "weight_decay", "momentum", "nesterov"} <= base


@pytest.mark.parametrize("key", _NOT_IDENTITY)
def test_a_run_and_a_search_ignore_the_same_dataset_options(key):
    """Changing how data is cached or loaded resumes the same job, whichever command it is."""
    for command in ("train", "search"):
        setup = _setup(command, ["study_dir=/tmp/x"])
        other = type(setup)(**{**{f.name: getattr(setup, f.name) for f in fields(setup)},
                               "dataset_options": {**setup.dataset_options, key: "changed"}})
        assert other.identity_hash() == setup.identity_hash(), (command, key)
    changed = _setup("search", ["study_dir=/tmp/x", "dataset.image_size=6"])
    assert changed.identity_hash() != _setup("search", ["study_dir=/tmp/x"]).identity_hash()


def test_completeness_is_one_rule(tmp_path):
    path = tmp_path / "r.json"
    assert not complete_at(path) and not is_complete(None)
    write_record(path, {"status": "failed", "cell_id": "a", "identity": "abc"})
    assert not complete_at(path, "abc")
    write_record(path, {"status": "complete", "cell_id": "a", "identity": "abc"})
    assert complete_at(path, "abc") and complete_at(path) and not complete_at(path, "other")
    assert is_complete(read_record(path), "abc")


@pytest.mark.slow
def test_a_multi_seed_search_with_two_workers_runs_every_seed_once_and_resumes_after_a_kill(tmp_path):
    """The README's search sweep (`-m ... seed=0,1,2`) with two worker processes; killed mid-way and rerun,
    it finishes every seed once, and a finished rerun searches nothing."""
    study = tmp_path / "s"
    args = ["study.search", "-m", "search_budget=tiny", "search_budget.epochs=4", "objective=rotation,supervised",
            "seed=0,1,2", "workers=2", f"study_dir={study}"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HYDRA_FULL_ERROR": "0"}
    proc = subprocess.Popen([sys.executable, "-m", *args], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.monotonic() + 300
    while not list(study.glob("searches/*/*/*/seed*.ckpt")) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert proc.poll() is None, proc.stderr.read()
    os.killpg(proc.pid, signal.SIGKILL)  # the whole group: the command and its workers, no cleanup
    proc.wait()
    done = run_cli(*args)
    assert done.returncode == 0, done.stderr
    assert "Exception in initializer" not in done.stderr and "Traceback" not in done.stderr
    records = [rec for _, rec in iter_searches(study)]
    assert sorted((r["objective"], r["seed"]) for r in records) == \
        [(o, s) for o in ("rotation", "supervised") for s in (0, 1, 2)]
    assert all(is_complete(r) and r["epochs"] == 4 for r in records)
    assert not list(study.glob("searches/**/*.ckpt")) and not list(study.glob("searches/**/*.claim"))
    written = {p: p.read_bytes() for p in study.glob("searches/*/*/*/seed*.json")}
    again = run_cli(*args)
    assert again.returncode == 0 and "all 3 searches are complete" in again.stdout + again.stderr, again.stderr
    assert {p: p.read_bytes() for p in study.glob("searches/*/*/*/seed*.json")} == written  # never redone


def test_a_finished_search_stays_complete_when_its_found_list_cannot_be_rebuilt(tmp_path, monkeypatch, caplog):
    """The found-cells list is derived data: a failure rebuilding it after the record is written (a lock file
    another user owns, a record that no longer parses) is a warning, never a failed record."""
    from study.training import search_run
    from study.training.jobs import load_data, run_claimed
    from study.training.searches import plan

    def broken(study_dir):
        raise PermissionError("[Errno 13] Permission denied: '.found.lock'")

    monkeypatch.setattr(search_run, "write_found", broken)
    setup = _setup("search", [f"study_dir={tmp_path}", "search_budget=tiny", "search_budget.epochs=1"])
    todo, _ = plan(tmp_path, setup, [0])
    rec = run_claimed(todo, setup, load_data(setup), search_run.Searches)[0]
    assert rec["status"] == "complete" and is_complete(read_record(todo[0].path))
    assert "list of found cells was not rebuilt" in caplog.text and "PermissionError" in caplog.text


def test_a_process_that_lost_its_claim_writes_no_checkpoint(tmp_path):
    """A search (or run) owner whose claim was taken over must not leave a checkpoint beside the record the new
    owner writes: the one checkpoint writer asks the claim first."""
    import torch

    from study.store.records import NotOwner, write_guard
    from study.training.checkpoint import Checkpointer

    ckpt = Checkpointer(tmp_path / "seed0.ckpt", {"seed": 0, "identity": "x"})
    weights = {"w": torch.zeros(2)}
    with write_guard(lambda path: False, {}):
        with pytest.raises(NotOwner):
            ckpt.keep(weights, 1, history=[])
    assert not ckpt.path.exists()
    with write_guard(lambda path: True, {}):
        ckpt.keep(weights, 1, history=[])
    assert ckpt.path.exists()
