"""Checkpoint and resume: a run finished in pieces equals one trained straight through, bit for bit on CPU."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace

import pytest
import torch

from study.training.checkpoint import Checkpointer, path_for
from study.data import build_dataset
from study.spaces.nb201.network import Trunk
from study.objectives import create_objective
from study.training.runner import execute
from study.training.run import RunSpec, Setup
from study.spaces import NetShape, draw
from study.training.trainer import train
from study.training.run import Budget
from tests.conftest import ROOT

BUDGET = Budget(name="t", epochs=4, batch_size=128, lr=0.1)
SMALL = {"image_size": 8, "test_fraction": 0.5}  # small images and training set: fast on a busy CPU
SHAPE = NetShape(c_in=1, image_size=8, n_classes=10, width=4, cells_per_stage=1)


class Stop(Exception):
    """Raised from the checkpoint callback to interrupt a training right after an epoch was saved."""


@pytest.fixture(scope="module")
def data():
    return build_dataset("digits", **SMALL)


def _model(objective, cell, seed=0):
    torch.manual_seed(seed)
    return objective.build(Trunk(cell, objective.c_in, SHAPE.width, SHAPE.cells_per_stage))


@pytest.mark.parametrize("name", ["supervised", "rotation"])
def test_training_resumed_from_a_checkpoint_file_is_bit_identical(data, tmp_path, name):
    torch.set_num_threads(1)
    cell = draw("nb201", 1, seed=3)[0]
    objective = create_objective(name, data, crop_padding=2)
    straight_model = _model(objective, cell)
    straight = train(straight_model, objective, data, BUDGET, seed=5)

    ident = {"cell_id": "c", "seed": 5, "identity": "x"}
    first = Checkpointer(tmp_path / "c.ckpt", ident)

    def save_then_stop(model, state):
        first.save(model, state)
        if state.epoch == 2:
            raise Stop

    with pytest.raises(Stop):
        train(_model(objective, cell), objective, data, BUDGET, seed=5, on_state=save_then_stop)
    # A new process would build the model afresh from the seed: weights come from the checkpoint.
    second = Checkpointer(tmp_path / "c.ckpt", ident)
    resumed_model = _model(objective, cell, seed=99)
    start = second.load(resumed_model, "cpu")
    assert start is not None and start.epoch == 2 and second.resumes == [2]
    resumed = train(resumed_model, objective, data, BUDGET, seed=5, start=start, on_state=second.save)

    assert resumed.train_loss == straight.train_loss  # exact float equality, every epoch
    assert resumed.test_acc == straight.test_acc
    for a, b in zip(straight_model.state_dict().values(), resumed_model.state_dict().values()):
        assert torch.equal(a, b)


def test_test_loss_is_the_objectives_mean_loss_over_the_whole_test_set(data):
    # 899 test images in evaluation batches of 512 and 387: a plain mean of batch means would be off.
    cell = draw("nb201", 1, seed=3)[0]
    objective = create_objective("supervised", data, crop_padding=2)
    model = _model(objective, cell)
    history = train(model, objective, data, replace(BUDGET, epochs=1), seed=0)
    model.eval()
    with torch.no_grad():
        x, y = objective.test_batch(data.test_x, data.test_y, torch.Generator())
        expected = torch.nn.functional.cross_entropy(model(x), y).item()
    assert data.test_x.shape[0] % BUDGET.eval_batch_size != 0
    assert history.test_loss == [pytest.approx(expected, rel=1e-5)]


def test_checkpoint_of_another_run_or_a_corrupt_file_is_ignored(data, tmp_path):
    cell = draw("nb201", 1, seed=3)[0]
    objective = create_objective("supervised", data, crop_padding=2)
    saver = Checkpointer(tmp_path / "c.ckpt", {"cell_id": "c", "seed": 0, "identity": "x"})
    train(_model(objective, cell), objective, data, replace(BUDGET, epochs=1), seed=0, on_state=saver.save)
    other = Checkpointer(tmp_path / "c.ckpt", {"cell_id": "c", "seed": 1, "identity": "x"})
    assert other.load(_model(objective, cell), "cpu") is None
    (tmp_path / "c.ckpt").write_bytes(b"not a checkpoint")
    assert saver.load(_model(objective, cell), "cpu") is None
    assert not list(tmp_path.glob(".*.tmp"))  # atomic writes leave no temporary files behind


def test_checkpoint_of_a_different_network_leaves_the_fresh_model_untouched(data, tmp_path):
    # A checkpoint written by the per-edge cell (an older release) shares the stem, reduction and head keys
    # with today's fused cell but not the cells'. It must be refused whole: a partial load would start
    # "from scratch" with half-trained weights and record a run that trained neither way.
    cell = draw("nb201", 1, seed=3)[0]
    objective = create_objective("supervised", data, crop_padding=2)
    ident = {"cell_id": "c", "seed": 0, "identity": "x"}
    torch.manual_seed(0)
    old = objective.build(Trunk(cell, objective.c_in, SHAPE.width, SHAPE.cells_per_stage, fused=False))
    train(old, objective, data, replace(BUDGET, epochs=1), seed=0, on_state=Checkpointer(tmp_path / "c.ckpt", ident).save)
    fresh = _model(objective, cell)
    before = {k: v.clone() for k, v in fresh.state_dict().items()}
    assert any(k in before and not torch.equal(before[k], v) for k, v in old.state_dict().items())
    assert Checkpointer(tmp_path / "c.ckpt", ident).load(fresh, "cpu") is None
    for k, v in fresh.state_dict().items():
        assert torch.equal(v, before[k]), k


def _setup(budget: Budget) -> Setup:
    return Setup(space="nb201", objective="supervised", objective_options={"crop_padding": 2}, dataset="digits",
                 dataset_options=SMALL, budget=budget, shape=SHAPE, device="cpu", threads=1)


def test_execute_resumes_and_records_it_then_deletes_the_checkpoint(data, tmp_path):
    cell = draw("nb201", 1, seed=3)[0]
    spec = RunSpec("c", cell.to_str(), "supervised", 0, tmp_path / "straight" / "c.json")
    straight = execute(spec, _setup(BUDGET), data)
    assert straight["resumed_from_epoch"] is None and not path_for(spec.path).exists()

    # Leave a checkpoint after epoch 3 of 4, as a killed job would, then execute the same run again.
    spec2 = replace(spec, path=tmp_path / "pieces" / "c.json")
    ident = {"cell_id": "c", "seed": 0, "identity": straight["identity"]}
    saver = Checkpointer(path_for(spec2.path), ident)
    objective = create_objective("supervised", data, crop_padding=2)
    with pytest.raises(Stop):
        def stop_at_3(model, state):
            saver.save(model, state)
            if state.epoch == 3:
                raise Stop
        torch.manual_seed(0)
        model = objective.build(Trunk(cell, 1, SHAPE.width, SHAPE.cells_per_stage))
        train(model, objective, data, BUDGET, seed=0, on_state=stop_at_3)
    pieces = execute(spec2, _setup(BUDGET), data)
    assert pieces["resumed_from_epoch"] == 3 and pieces["resumes"] == [3]
    assert pieces["history"] == straight["history"] and pieces["epochs"] == straight["epochs"] == 4
    assert pieces["test_acc_best"] == straight["test_acc_best"]
    assert len(straight["history"]["test_loss"]) == 4  # resumed above with the rest of the history
    # CPU seconds add up over attempts: the resumed run was charged only its last epoch here, plus the
    # three epochs its checkpoint carried over from the attempt that was stopped.
    assert 0 < straight["cpu_s"] and 0 < pieces["cpu_s"]
    assert not path_for(spec2.path).exists()  # deleted once the record is written
    assert json.loads(spec2.path.read_text())["status"] == "complete"


@pytest.mark.slow
def test_train_command_killed_mid_run_resumes_with_the_same_history(cli, tmp_path):
    """SIGKILL the real command once a checkpoint exists; the same command again finishes the run."""
    args = ["budget=tiny", "budget.epochs=6", "workers=1", "threads=1", "dataset.image_size=8",
            "dataset.test_fraction=0.5"]
    for name in ("a", "b"):
        assert cli("study.sample", "n=1", f"study_dir={tmp_path / name}").returncode == 0
    assert cli("study.train", f"study_dir={tmp_path / 'a'}", *args).returncode == 0
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "study.train", f"study_dir={tmp_path / 'b'}", *args],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        while not list((tmp_path / "b" / "runs").rglob("*.ckpt")) and proc.poll() is None:
            assert time.monotonic() < deadline, "no checkpoint appeared"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    again = cli("study.train", f"study_dir={tmp_path / 'b'}", *args)
    assert again.returncode == 0, again.stderr
    (a,), (b,) = ([json.loads(p.read_text()) for p in (tmp_path / n / "runs").rglob("*.json")] for n in "ab")
    assert b["status"] == "complete" and b["history"] == a["history"] and b["epochs"] == 6
    assert b["resumed_from_epoch"] is not None and 1 <= b["resumed_from_epoch"] < 6
    assert not list((tmp_path / "b" / "runs").rglob("*.ckpt"))
