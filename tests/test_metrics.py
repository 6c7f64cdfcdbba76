"""Run summaries (analysis/metrics.py): each one's value on a known history, the per-objective map, and
what correlate does with them."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from analysis import metrics
from analysis.correlate import analyse
from study.errors import UserError
from study.store.records import run_dir, write_json_atomic
from tests.test_analysis_correlate import request, write_study

RUN = {"objective": "rotation", "test_acc_best": 0.6, "test_acc_final": 0.55, "score": None,
       "train_losses": [3.0, 2.0, 1.5], "test_losses": [2.5, 2.2, 2.4]}


@pytest.mark.parametrize("name,expected", [("best", 0.6), ("final", 0.55), ("test_loss", -2.4),
                                           ("train_loss", -1.5), ("tse", -6.5), ("tse-2", -3.5), ("tse-3", -6.5)])
def test_each_summary_of_a_known_history_larger_is_better(name, expected):
    assert metrics.value(RUN, name) == pytest.approx(expected)


def test_a_summary_a_record_cannot_give_is_nan_and_a_score_is_always_the_value():
    assert math.isnan(metrics.value(RUN, "tse-4"))  # three epochs cannot sum four
    assert math.isnan(metrics.value({**RUN, "test_losses": None}, "test_loss"))  # records from before test loss
    assert metrics.value({"score": 12.5, "test_acc_best": None}, "train_loss") == 12.5


def test_a_metric_map_chooses_per_objective_and_unknown_names_are_refused():
    chosen = metrics.parse_map({"rotation": "train_loss", "*": "final"})
    assert metrics.for_objective(chosen, "rotation") == "train_loss"
    assert metrics.for_objective(chosen, "other/rotation") == "train_loss"  # a compared study's column
    assert metrics.for_objective(chosen, "supervised") == "final"
    assert metrics.parse_map("tse-2") == {"*": "tse-2"}
    for bad in ("worst", "tse-0", "tse-x", {"rotation": "bogus"}):
        with pytest.raises(UserError, match="unknown metric"):
            metrics.parse_map(bad)


def _with_histories(study, rng):
    """Give every record of a synthetic study a training and test loss history (3 epochs)."""
    for path in (study / "runs").rglob("*.json"):
        rec = json.loads(path.read_text())
        losses = sorted(rng.uniform(0.5, 3.0, 3), reverse=True)
        rec["history"] = {"train_loss": losses, "test_loss": [v + 0.2 for v in losses], "test_acc": [0.5] * 3}
        rec["epochs"], rec["cpu_s"] = 3, 2.0
        write_json_atomic(path, rec)


def test_correlate_reads_each_objective_by_its_summary_and_tabulates_every_summary(tmp_path):
    rng = np.random.default_rng(0)
    cells = [f"c{i:02d}" for i in range(30)]
    acc = {(o, s): {c: float(rng.uniform(0.3, 0.9)) for c in cells} for o in ("rotation", "supervised") for s in (0, 1)}
    study = write_study(tmp_path / "s", cells, acc)
    _with_histories(study, rng)
    res, runs, table = analyse(request(study, metric={"rotation": "train_loss"}))
    rotation = runs[runs["objective"] == "rotation"]
    expected = rotation.groupby("cell_id")["train_losses"].agg(lambda h: -np.mean([v[-1] for v in h]))
    assert table["rotation"].to_dict() == pytest.approx(expected.to_dict())
    assert table["supervised"].to_dict() == pytest.approx(
        runs[runs["objective"] == "supervised"].groupby("cell_id")["test_acc_best"].mean().to_dict())
    assert "rotation: minus the final training loss" in res.setup["metric"]
    summary = res.summaries
    assert set(summary["objective"]) == {"rotation", "supervised"}
    assert {"best", "final", "test_loss", "train_loss", "tse", "tse-2"} <= set(summary["metric"])
    assert (summary["cpu_s"] == 2.0).all() and (summary["n_cells"] == 30).all()


def test_a_complete_record_without_a_finite_value_is_counted_failed_and_named(tmp_path):
    cells = [f"c{i:02d}" for i in range(12)]
    rng = np.random.default_rng(1)
    acc = {(o, 0): {c: float(rng.uniform(0.3, 0.9)) for c in cells} for o in ("rotation", "supervised")}
    study = write_study(tmp_path / "s", cells, acc)
    path = run_dir(study, "rotation", "digits", "default", "id-rotation", 0) / "c03.json"
    write_json_atomic(path, {**json.loads(path.read_text()), "test_acc_best": float("nan")})
    res, _, table = analyse(request(study))
    assert "c03" not in res.cells.index and len(res.cells) == 11
    assert res.completeness.set_index("objective").loc["rotation", "failed"] == 1
    assert res.dropped.set_index("cell_id").loc["c03", "reason"].startswith("rotation failed")
    assert (res.correlations["n_cells"] == 11).all()
    assert pd.isna(table.loc["c03", "rotation"])


def test_metric_auto_reads_each_runs_budget_summary_from_the_records_or_the_budget_file(tmp_path):
    rng = np.random.default_rng(2)
    cells = [f"c{i:02d}" for i in range(20)]
    acc = {(o, 0): {c: float(rng.uniform(0.3, 0.9)) for c in cells} for o in ("rotation", "supervised")}
    study = write_study(tmp_path / "s", cells, acc)
    _with_histories(study, rng)
    for path in (study / "runs" / "rotation").rglob("*.json"):  # rotation's budget named its summary
        rec = json.loads(path.read_text())
        rec["config"]["budget"]["summary"] = "train_loss"
        write_json_atomic(path, rec)
    res, runs, table = analyse(request(study, metric="auto"))
    rotation = runs[runs["objective"] == "rotation"].set_index("cell_id")["train_losses"]
    assert table["rotation"].to_dict() == pytest.approx({c: -h[-1] for c, h in rotation.items()})
    # supervised's records name none: the study's budget ("default") names none either, so best accuracy.
    assert "supervised: best test accuracy" in res.setup["metric"] and "metric=auto" in res.setup["metric"]
    assert "rotation: minus the final training loss" in res.setup["metric"]


def test_the_short_budget_names_its_measured_summary_and_a_bad_one_is_refused():
    from hydra import compose, initialize_config_dir

    from study.commands.cli import CONF_DIR
    from study.commands.settings import budget_for

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        assert compose("train", ["budget=short"]).budget.summary == "train_loss"
        with pytest.raises(UserError, match="budget.summary 'worst'"):
            budget_for(compose("train", ["budget.summary=worst"]), "rotation")
