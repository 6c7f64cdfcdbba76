"""What an analysis cannot claim is said: few cells, ties, objectives at chance, intervals that the
permutation test contradicts, and no interval at all where the bootstrap resamples are degenerate."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from analysis import caveats
from analysis.correlate import analyse
from analysis.report import render
from analysis.uncertainty import bootstrap_ci, rank_correlations
from test_analysis_correlate import request, write_study

# The 4-cell study of issue 16: three rotation accuracies tied at chance (25%).
ROTATION = [0.25, 0.25, 0.25, 0.31]
SUPERVISED = [0.62, 0.55, 0.48, 0.41]


def test_degenerate_bootstrap_gives_no_interval():
    assert rank_correlations(ROTATION, SUPERVISED)["spearman"] < -0.7
    for stat in ("spearman", "kendall"):
        low, high = bootstrap_ci(ROTATION, SUPERVISED, stat, n_resamples=500)
        assert math.isnan(low) and math.isnan(high)
    # Four distinct cells are still too few distinct values for a percentile interval.
    assert all(math.isnan(v) for v in bootstrap_ci([1, 2, 3, 4], [1, 3, 2, 4], n_resamples=200))
    # A healthy sample keeps its interval.
    rng = np.random.default_rng(0)
    x = rng.standard_normal(40)
    low, high = bootstrap_ci(x, x + rng.standard_normal(40), n_resamples=300)
    assert -1 < low < high < 1


def test_chance_level_comes_from_objective_and_dataset():
    assert caveats.chance_level("rotation", {}) == 0.25
    assert caveats.chance_level("supervised", {"dataset": {"n_classes": 10}}) == 0.1
    assert caveats.chance_level("supervised", {"dataset": {"n_classes": 100}}) == 0.01
    assert caveats.chance_level("jigsaw", {"dataset": {"image_size": 32}, "objective": {"grid": "auto"}}) == 1 / 24
    assert caveats.chance_level("jigsaw", {"objective": {"grid": 3, "permutations": 100}}) == 0.01
    assert caveats.chance_level("colorization", {}) is None


def test_small_tied_chance_study_is_flagged_in_report(tmp_path):
    cells = ["a", "b", "c", "d"]
    acc = {("rotation", 0): dict(zip(cells, ROTATION)), ("supervised", 0): dict(zip(cells, SUPERVISED))}
    study = write_study(tmp_path / "s", cells, acc)
    results, _, _ = analyse(request(study))
    text = " ".join(results.caveats)
    assert "only 4 cell(s)" in text
    assert "rotation: 3 of 4 cells are at chance level (25.0%, 1/4)" in text
    row = results.correlations.set_index("objective").loc["rotation"]
    assert math.isnan(row["spearman_low"]) and not math.isnan(row["spearman"])
    md = render(results, [])
    assert "## Caveats" in md and "at chance level" in md
    assert f"{row['spearman']:.2f} [—]" in md


def test_interval_that_excludes_zero_beside_a_large_p_is_called_out():
    corr = pd.DataFrame([{"objective": "rotation", "spearman": -0.82, "spearman_low": -1.0, "spearman_high": -0.82,
                          "p_value": 0.51},
                         {"objective": "params", "spearman": 0.7, "spearman_low": 0.4, "spearman_high": 0.9,
                          "p_value": 0.001}])
    notes = caveats.interval_vs_p(corr)
    assert len(notes) == 1 and notes[0].startswith("rotation:") and "p = 0.510" in notes[0]


def test_ties_dominate_without_a_chance_level():
    cells = pd.DataFrame({"colorization": [0.3, 0.3, 0.3, 0.3, 0.35, 0.36] * 2})
    notes = caveats.ties_and_chance(cells, ["colorization"], {"colorization": None})
    assert len(notes) == 1 and "ties dominate" in notes[0]
    assert caveats.small_sample(12) == [] and caveats.small_sample(9)
