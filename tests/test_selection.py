"""Tests for analysis.selection on a literal six-cell table and on synthetic rankings."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analysis.selection import (
    default_sizes,
    random_experiment,
    random_ranking,
    top1_choice,
    topk_overlap,
    topk_size,
)

# Cells 1 and 3 tie for the proxy's first place; the lower index (1) must win.
PROXY = np.array([0.3, 0.9, 0.5, 0.9, 0.1, 0.7])
TARGET = np.array([70.0, 80.0, 90.0, 60.0, 50.0, 85.0])
COLUMNS = ["size", "mean", "std", "q05", "q25", "q50", "q75", "q95"]


def test_top1_choice_by_hand() -> None:
    out = top1_choice(PROXY, TARGET)
    assert out == {"index": 1, "target": 80.0, "regret": 10.0, "percentile": pytest.approx(400 / 6)}
    perfect = top1_choice(TARGET, TARGET)
    assert perfect["index"] == 2 and perfect["regret"] == 0.0 and perfect["percentile"] == 100.0
    worst = top1_choice(-TARGET, TARGET)
    assert worst["target"] == 50.0 and worst["regret"] == 40.0
    assert worst["percentile"] == pytest.approx(100 / 6)


def test_top1_choice_drops_nan_cells_but_keeps_indices() -> None:
    proxy = PROXY.copy()
    proxy[2] = np.nan  # the best-target cell drops out, so the regret is measured against 85
    out = top1_choice(proxy, TARGET)
    assert out["index"] == 1 and out["regret"] == 5.0 and out["percentile"] == pytest.approx(80.0)
    target = TARGET.copy()
    target[1] = np.nan  # the tied favourite has no target: its twin at index 3 is chosen
    assert top1_choice(PROXY, target)["index"] == 3


@pytest.mark.parametrize(
    "fraction, expected",
    [(1 / 6, 0.0), (0.25, 0.0), (0.5, 2 / 3), (2 / 3, 3 / 4), (1.0, 1.0)],
)
def test_topk_overlap_by_hand(fraction: float, expected: float) -> None:
    # Proxy order: 1, 3, 5, 2, 0, 4.  Target order: 2, 5, 1, 0, 3, 4.
    assert topk_overlap(PROXY, TARGET, fraction) == pytest.approx(expected)


def test_topk_size_rounds_half_up_and_is_at_least_one() -> None:
    assert topk_size(6, 0.25) == 2  # 1.5 -> 2
    assert topk_size(10, 0.25) == 3  # 2.5 -> 3, where round() would give 2
    assert topk_size(6, 0.01) == 1
    assert topk_size(6, 1.0) == 6
    with pytest.raises(ValueError):
        topk_size(6, 0.0)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=40), st.floats(0.01, 1.0))
def test_topk_overlap_is_a_share_and_perfect_for_the_target_itself(
    values: list[float], fraction: float
) -> None:
    target = np.array(values)
    assert topk_overlap(target, target, fraction) == 1.0
    assert 0.0 <= topk_overlap(-target, target, fraction) <= 1.0


def test_default_sizes_are_powers_of_two_up_to_n() -> None:
    assert default_sizes(1) == (1,)
    assert default_sizes(6) == (1, 2, 4)
    assert default_sizes(64) == (1, 2, 4, 8, 16, 32, 64)
    table = random_experiment(PROXY, TARGET, n_trials=10)
    assert list(table.columns) == COLUMNS and table["size"].tolist() == [1, 2, 4]


def test_random_experiment_single_cell_is_the_target_mean() -> None:
    rng = np.random.default_rng(5)
    target = rng.uniform(50, 90, size=50)
    trials = 20000
    table = random_experiment(rng.standard_normal(50), target, sizes=(1,), n_trials=trials, seed=1)
    tolerance = 4 * target.std() / math.sqrt(trials)
    assert table["mean"].iloc[0] == pytest.approx(target.mean(), abs=tolerance)
    assert table["std"].iloc[0] == pytest.approx(target.std(), rel=0.05)


def test_random_experiment_all_cells_always_picks_proxy_favourite() -> None:
    table = random_experiment(PROXY, TARGET, sizes=(6,), n_trials=500, seed=2)
    row = table.iloc[0]
    assert row["std"] == 0.0
    # The tie between cells 1 and 3 goes to cell 1 in every trial, whatever the draw order.
    assert all(row[c] == 80.0 for c in ["mean", "q05", "q25", "q50", "q75", "q95"])


def test_random_experiment_perfect_proxy_matches_order_statistics() -> None:
    n = 100
    target = np.arange(1.0, n + 1)
    table = random_experiment(target, target, n_trials=4000, seed=3)
    assert table["size"].tolist() == [1, 2, 4, 8, 16, 32, 64]
    assert np.all(np.diff(table["mean"]) >= 0)
    # The maximum of m ranks drawn without replacement from 1..n has mean m (n + 1) / (m + 1).
    expected = table["size"] * (n + 1) / (table["size"] + 1)
    np.testing.assert_allclose(table["mean"], expected, rtol=0.02)
    assert np.all(table[["q05", "q25", "q50", "q75", "q95"]].diff(axis=1).iloc[:, 1:] >= 0)


def test_random_experiment_with_random_proxy_gains_nothing() -> None:
    rng = np.random.default_rng(8)
    target = rng.uniform(0, 1, size=64)
    # Averaged over uninformative proxies, the chosen cell is uniformly random whatever m is
    # (a single fixed random proxy is not: with m = n it always returns that proxy's favourite).
    means = np.mean([
        random_experiment(random_ranking(64, seed=s), target, n_trials=50, seed=s)["mean"]
        for s in range(400)
    ], axis=0)
    # The m = n row averages 400 single cells: sd ~ 0.29 / 20, so 0.06 is four sd.
    np.testing.assert_allclose(means, target.mean(), atol=0.06)


def test_random_experiment_is_seeded_and_validates() -> None:
    first = random_experiment(PROXY, TARGET, n_trials=200, seed=9)
    assert first.equals(random_experiment(PROXY, TARGET, n_trials=200, seed=9))
    assert not first.equals(random_experiment(PROXY, TARGET, n_trials=200, seed=10))
    with pytest.raises(ValueError):
        random_experiment(PROXY, TARGET, sizes=(7,))
    with pytest.raises(ValueError):
        random_experiment(PROXY, TARGET[:5])


def test_random_ranking_is_a_seeded_permutation() -> None:
    proxy = random_ranking(30, seed=1)
    assert sorted(proxy.tolist()) == list(range(30))
    np.testing.assert_array_equal(proxy, random_ranking(30, seed=1))
    assert not np.array_equal(proxy, random_ranking(30, seed=2))
