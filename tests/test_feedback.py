"""Feedback during long studies (issue 16, item 10): a heartbeat line per slow epoch, and a summary per
(objective, seed) after a sweep sent to a submitit launcher."""

from __future__ import annotations

import logging

from study.training import runner
from tests.test_claims import small_runs


def test_slow_epochs_log_a_heartbeat(tmp_path, caplog, monkeypatch):
    from study.training.runner import run_all

    specs, setup, _ = small_runs(tmp_path)
    caplog.set_level(logging.INFO)
    run_all(specs[:1], setup, 1, "quick")
    assert "epoch 1/" not in caplog.text  # fast epochs stay quiet
    monkeypatch.setattr(runner, "HEARTBEAT_S", 0.0)  # every epoch counts as slow
    caplog.clear()
    run_all(specs[1:2], setup, 1, "slow")
    epochs = setup.budget.epochs
    for k in range(1, epochs + 1):
        assert f"cell {specs[1].cell_id}: epoch {k}/{epochs}, loss" in caplog.text


def test_a_sweep_through_a_submitit_launcher_ends_with_a_summary(tmp_path):
    from tests.conftest import run_cli
    from tests.test_faults import TRAIN, sample

    study = sample(tmp_path, n=2)
    done = run_cli("study.train", "-m", "hydra/launcher=local", "objective=rotation,supervised", *TRAIN,
                   f"study_dir={study}", "+budget.objectives.rotation.lr=1e30")
    assert done.returncode == 0, done.stderr
    assert "sweep finished (local launcher)" in done.stdout
    assert "rotation seed 0" in done.stdout and ": 0 done, 2 failed, 0 not done" in done.stdout
    assert ": 2 done, 0 failed, 0 not done" in done.stdout
