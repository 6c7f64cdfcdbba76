"""Correlation analysis: equals scipy on a known table, refuses to mix runs, writes its outputs."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from analysis.correlate import Request, correlations, select_runs
from analysis.load import cell_table, load_runs
from study.errors import UserError


def test_correlations_equal_scipy_on_a_known_table():
    cells = pd.DataFrame({
        "supervised": [0.91, 0.85, 0.88, 0.70, 0.95, 0.60],
        "rotation": [0.80, 0.78, 0.79, 0.50, 0.81, 0.55],
        "params": [5, 3, 4, 2, 6, 1],
    })
    out = correlations(cells, "supervised", ["rotation", "params"]).set_index("objective")
    for name in ("rotation", "params"):
        assert out.loc[name, "spearman"] == pytest.approx(stats.spearmanr(cells[name], cells["supervised"])[0])
        assert out.loc[name, "kendall"] == pytest.approx(stats.kendalltau(cells[name], cells["supervised"])[0])
        assert out.loc[name, "n_cells"] == 6
    assert out.loc["params", "spearman"] == pytest.approx(1.0)
    assert out.loc["params", "kind"] == "baseline" and out.loc["rotation", "kind"] == "objective"


def _runs(rows):
    base = {"status": "complete", "dataset": "digits", "budget": "default", "identity": "a", "test_acc_final": 0.0}
    return pd.DataFrame([{**base, **r} for r in rows])


def test_seeds_are_averaged_and_failed_runs_ignored():
    runs = _runs([
        {"cell_id": "c1", "objective": "supervised", "seed": 0, "test_acc_best": 0.5},
        {"cell_id": "c1", "objective": "supervised", "seed": 1, "test_acc_best": 0.7},
        {"cell_id": "c1", "objective": "supervised", "seed": 2, "test_acc_best": 0.0, "status": "failed"},
        {"cell_id": "c2", "objective": "supervised", "seed": 0, "test_acc_best": 0.9},
        {"cell_id": "c2", "objective": "rotation", "seed": 0, "test_acc_best": 0.4},
    ])
    table = cell_table(runs, column="test_acc_best")
    assert table.loc["c1", "supervised"] == pytest.approx(0.6)
    assert np.isnan(table.loc["c1", "rotation"]) and table.loc["c2", "rotation"] == 0.4
    assert cell_table(runs, "median", column="test_acc_best").loc["c1", "supervised"] == pytest.approx(0.6)


def test_mixed_budgets_are_refused_unless_one_is_chosen(tmp_path):
    runs = _runs([
        {"cell_id": "c1", "objective": "supervised", "seed": 0, "test_acc_best": 0.5},
        {"cell_id": "c1", "objective": "supervised", "seed": 0, "test_acc_best": 0.6, "budget": "paper", "identity": "b"},
    ])
    req = Request(tmp_path, "supervised", {"*": "best"}, "mean", None, None)
    with pytest.raises(UserError, match="several budgets.*budget=<name>"):
        select_runs(runs, req)
    chosen = select_runs(runs, Request(tmp_path, "supervised", {"*": "best"}, "mean", None, "paper"))
    assert chosen["test_acc_best"].tolist() == [0.6]


def test_correlate_on_a_trained_study(cli, tiny_study):
    done = cli("analysis.correlate", f"study_dir={tiny_study}")
    assert done.returncode == 0, done.stderr
    out = pd.read_csv(tiny_study / "analysis" / "correlations.csv")
    assert set(out["objective"]) == {"rotation", "params", "flops"}
    assert {"objective", "reference", "n_cells", "spearman", "kendall"} <= set(out.columns)
    assert (out["reference"] == "supervised").all() and (out["n_cells"] == 4).all()
    runs = load_runs(tiny_study)
    table = cell_table(runs, column="test_acc_best")
    expected = stats.spearmanr(table["rotation"], table["supervised"])[0]
    assert out.set_index("objective").loc["rotation", "spearman"] == pytest.approx(expected, abs=1e-4)
    for ext in ("png", "pdf"):
        assert (tiny_study / "analysis" / f"correlations.{ext}").stat().st_size > 1000
    # The uncertainty columns and the report come with every run.
    rotation = out.set_index("objective").loc["rotation"]
    # Four cells are too few for a percentile interval: none is given, and the report and console say why.
    assert math.isnan(rotation["spearman_low"]) and math.isnan(rotation["spearman_high"])
    assert "caution: only 4 cell(s) analysed" in done.stdout + done.stderr
    assert 0 < rotation["p_value"] <= 1
    assert "## Rank correlation with supervised accuracy" in (tiny_study / "analysis" / "report.md").read_text()
