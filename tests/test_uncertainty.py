"""Tests for analysis.uncertainty on synthetic data whose population values are known in closed form."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps

from analysis import uncertainty
from analysis.uncertainty import (
    bootstrap_ci,
    bootstrap_distribution,
    noise_ceiling,
    permutation_pvalue,
    rank_correlations,
    seed_agreement,
    spearman_brown,
)

# A small table with ties in both columns, so tau-b and average ranks matter.
X = np.array([1.0, 2.0, 2.0, 3.0, 5.0, 4.0, 6.0, 6.0])
Y = np.array([2.0, 1.0, 3.0, 3.0, 4.0, 6.0, 5.0, 7.0])


def gaussian_pairs(rng: np.random.Generator, n: int, rho: float) -> tuple[np.ndarray, np.ndarray]:
    """n draws from a standard bivariate normal with correlation rho."""
    z = rng.standard_normal((2, n))
    return z[0], rho * z[0] + math.sqrt(1 - rho**2) * z[1]


def population(stat: str, rho: float) -> float:
    """Population Spearman or Kendall of a bivariate normal with Pearson correlation rho."""
    if stat == "spearman":
        return 6 / math.pi * math.asin(rho / 2)
    return 2 / math.pi * math.asin(rho)


def test_rank_correlations_match_scipy_on_known_table() -> None:
    out = rank_correlations(X, Y)
    assert out["n"] == 8
    assert out["spearman"] == pytest.approx(sps.spearmanr(X, Y).statistic, abs=1e-12)
    assert out["kendall"] == pytest.approx(sps.kendalltau(X, Y, variant="b").statistic, abs=1e-12)
    # Hand check on a tie-free table: one swapped neighbour pair out of 4 cells.
    simple = rank_correlations([1, 2, 3, 4], [1, 3, 2, 4])
    assert simple["spearman"] == pytest.approx(1 - 6 * 2 / (4 * 15))
    assert simple["kendall"] == pytest.approx((5 - 1) / 6)


def test_nan_pairs_are_dropped() -> None:
    x = np.append(X, [np.nan, 1.0])
    y = np.append(Y, [0.0, np.nan])
    assert rank_correlations(x, y) == rank_correlations(X, Y)


@pytest.mark.parametrize(
    "x, y",
    [([1, 2], [2, 1]), ([1, 1, 1, 1], [1, 2, 3, 4]), ([1, 2, np.nan, 4], [np.nan, 1, 2, np.nan])],
)
def test_degenerate_inputs_give_nan_silently(x: list[float], y: list[float]) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = rank_correlations(x, y)
        assert math.isnan(out["spearman"]) and math.isnan(out["kendall"])
        for stat in uncertainty.STATS:
            assert all(math.isnan(v) for v in bootstrap_ci(x, y, stat, n_resamples=50))
            assert math.isnan(permutation_pvalue(x, y, stat, n_permutations=20))


def test_bad_arguments_raise() -> None:
    with pytest.raises(ValueError):
        rank_correlations([1, 2, 3], [1, 2])
    with pytest.raises(ValueError):
        bootstrap_ci(X, Y, stat="pearson")
    with pytest.raises(ValueError):
        bootstrap_ci(X, Y, level=1.0)


@pytest.mark.parametrize("rho", [-0.7, 0.0, 0.4, 0.9])
def test_planted_correlation_is_recovered(rho: float) -> None:
    x, y = gaussian_pairs(np.random.default_rng(7), 4000, rho)
    out = rank_correlations(x, y)
    assert out["spearman"] == pytest.approx(population("spearman", rho), abs=0.03)
    assert out["kendall"] == pytest.approx(population("kendall", rho), abs=0.03)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(-5, 5), st.integers(-5, 5)), min_size=3, max_size=30))
def test_rank_correlations_are_symmetric_and_rank_invariant(pairs: list[tuple[int, int]]) -> None:
    x, y = np.array(pairs, dtype=float).T
    base = rank_correlations(x, y)
    swapped = rank_correlations(y, x)
    monotone = rank_correlations(np.exp(x), y**3)  # strictly increasing maps keep every rank
    for key in ("spearman", "kendall"):
        for other in (swapped, monotone):
            assert (math.isnan(base[key]) and math.isnan(other[key])) or (
                other[key] == pytest.approx(base[key], abs=1e-9))


def test_matrix_kendall_bootstrap_equals_scipy_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(3)
    x = np.round(rng.standard_normal(40), 1)  # rounding plants ties, the hard case for tau-b
    y = np.round(x + rng.standard_normal(40), 1)
    fast = bootstrap_distribution(x, y, "kendall", n_resamples=200, seed=5)
    monkeypatch.setattr(uncertainty, "_KENDALL_MATRIX_MAX_N", 0)  # force the scipy loop
    slow = bootstrap_distribution(x, y, "kendall", n_resamples=200, seed=5)
    np.testing.assert_allclose(fast, slow, atol=1e-12)


def test_bootstrap_ci_is_reproducible_and_brackets_estimate() -> None:
    x, y = gaussian_pairs(np.random.default_rng(11), 200, 0.5)
    for stat in uncertainty.STATS:
        low, high = bootstrap_ci(x, y, stat, n_resamples=500, seed=1)
        assert low < rank_correlations(x, y)[stat] < high
        assert (low, high) == bootstrap_ci(x, y, stat, n_resamples=500, seed=1)
        assert (low, high) != bootstrap_ci(x, y, stat, n_resamples=500, seed=2)
        narrow = bootstrap_ci(x, y, stat, n_resamples=500, level=0.5, seed=1)
        assert low < narrow[0] < narrow[1] < high


@pytest.mark.parametrize("stat, draws", [("spearman", 200), ("kendall", 150)])
def test_bootstrap_ci_has_nominal_coverage(stat: str, draws: int) -> None:
    rho, n = 0.5, 60
    truth = population(stat, rho)
    rng = np.random.default_rng(2020)
    covered = 0
    for _ in range(draws):
        x, y = gaussian_pairs(rng, n, rho)
        low, high = bootstrap_ci(x, y, stat, n_resamples=400, level=0.95, seed=rng)
        covered += low <= truth <= high
    # Binomial sd of the coverage is ~0.016 at 200 draws; a broken interval misses by far more.
    assert 0.88 <= covered / draws <= 0.99


@pytest.mark.parametrize("stat", uncertainty.STATS)
def test_permutation_pvalue_is_uniform_under_independence(stat: str) -> None:
    draws, n_perm = 300, 199
    rng = np.random.default_rng(99)
    pvalues = np.array([
        permutation_pvalue(rng.standard_normal(30), rng.standard_normal(30), stat, n_perm, seed=rng)
        for _ in range(draws)
    ])
    assert np.all((pvalues >= 1 / (n_perm + 1)) & (pvalues <= 1))
    # Loose KS level: the permutation null is discrete (Kendall especially), so exact uniformity is
    # only approximate; an invalid p-value (wrong statistic, no shuffling) fails by orders of magnitude.
    assert sps.kstest(pvalues, "uniform").pvalue > 0.001
    # Fraction rejected at 5%: at most 0.05 in expectation, binomial sd sqrt(0.05 * 0.95 / draws).
    assert np.mean(pvalues <= 0.05) <= 0.05 + 3 * math.sqrt(0.05 * 0.95 / draws)


def test_kendall_permutation_block_path_equals_scipy_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(12)
    x = np.round(rng.standard_normal(30), 1)  # ties must leave the tau-b denominator intact
    y = np.round(0.3 * x + rng.standard_normal(30), 1)
    fast = permutation_pvalue(x, y, "kendall", n_permutations=199, seed=4)
    monkeypatch.setattr(uncertainty, "_KENDALL_BLOCK_MAX_N", 0)  # force the scipy loop
    assert permutation_pvalue(x, y, "kendall", n_permutations=199, seed=4) == fast


@pytest.mark.parametrize("stat", uncertainty.STATS)
def test_permutation_pvalue_detects_planted_correlation(stat: str) -> None:
    x, y = gaussian_pairs(np.random.default_rng(4), 100, -0.6)  # two-sided: a negative rho counts
    assert permutation_pvalue(x, y, stat, n_permutations=499) == pytest.approx(1 / 500)
    assert permutation_pvalue(x, y, stat, n_permutations=99, seed=3) == permutation_pvalue(
        x, y, stat, n_permutations=99, seed=3)


def noisy_seeds(rng: np.random.Generator, true: np.ndarray, noise_sd: float, seeds: int) -> np.ndarray:
    """(cells, seeds) table of accuracy = true + independent Gaussian noise per seed."""
    return true[:, None] + noise_sd * rng.standard_normal((true.size, seeds))


def test_seed_agreement_matches_closed_form() -> None:
    rng = np.random.default_rng(17)
    true = rng.standard_normal(3000)  # var 1
    table = noisy_seeds(rng, true, noise_sd=1.0, seeds=8)
    # Two seeds share only the true part: Pearson = var_true / (var_true + var_noise) = 0.5.
    out = seed_agreement(table[:, :4])
    assert out["n_seeds"] == 4 and out["n_pairs"] == 6
    r = out["mean_pairwise_spearman"]
    assert r == pytest.approx(population("spearman", 0.5), abs=0.02)
    assert out["reliability_of_mean"] == pytest.approx(4 * r / (1 + 3 * r), abs=1e-12)
    # The prediction for a 4-seed mean must match two independent 4-seed means on the same cells.
    halves = rank_correlations(table[:, :4].mean(axis=1), table[:, 4:].mean(axis=1))["spearman"]
    assert out["reliability_of_mean"] == pytest.approx(halves, abs=0.03)


def test_seed_agreement_needs_two_seeds_and_skips_nan() -> None:
    one = seed_agreement(np.arange(10.0)[:, None])
    assert one["n_seeds"] == 1 and math.isnan(one["mean_pairwise_spearman"])
    assert math.isnan(one["reliability_of_mean"])
    table = np.column_stack([np.arange(10.0), np.arange(10.0), np.full(10, np.nan)])
    two_valid = seed_agreement(table)
    assert two_valid["n_pairs"] == 1 and two_valid["mean_pairwise_spearman"] == pytest.approx(1.0)
    with pytest.raises(ValueError):
        seed_agreement(np.arange(10.0))


def test_spearman_brown_formula() -> None:
    assert spearman_brown(0.5, 4) == pytest.approx(0.8)
    assert spearman_brown(0.3, 1) == pytest.approx(0.3)
    assert spearman_brown(1.0, 7) == pytest.approx(1.0)
    assert spearman_brown(0.0, 5) == 0.0
    assert math.isnan(spearman_brown(math.nan, 3))


def test_noise_ceiling_bounds_correlation_of_noisy_measures() -> None:
    assert noise_ceiling(0.81, 0.64) == pytest.approx(0.72)
    assert math.isnan(noise_ceiling(-0.1, 0.5)) and math.isnan(noise_ceiling(math.nan, 0.5))
    rng = np.random.default_rng(23)
    true = rng.standard_normal(4000)
    # Two measures of the same true ranking with different noise: their correlation is attenuated
    # to sqrt(rel_x rel_y), with each reliability estimated from its own seeds.
    px, py = noisy_seeds(rng, true, 0.7, 3), noisy_seeds(rng, true, 1.5, 5)
    rel_x = seed_agreement(px)["reliability_of_mean"]
    rel_y = seed_agreement(py)["reliability_of_mean"]
    observed = rank_correlations(px.mean(axis=1), py.mean(axis=1))["spearman"]
    assert observed == pytest.approx(noise_ceiling(rel_x, rel_y), abs=0.03)
