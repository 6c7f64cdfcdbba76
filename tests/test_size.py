"""Beyond size (analysis/size.py): partial rank correlation given the parameter count, and the mean rank
with it, on data whose answer is known."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from analysis import size


@pytest.fixture
def planted():
    """Size z, a truth that is size plus quality, and a few proxies with known relations to both."""
    rng = np.random.default_rng(0)
    n = 300
    z = rng.standard_normal(n)
    quality = rng.standard_normal(n)
    truth = z + quality
    return {"z": z, "truth": truth, "quality": quality, "rng": rng, "n": n}


def _formula(x, y, z):
    rxy, rxz, ryz = (stats.spearmanr(a, b)[0] for a, b in ((x, y), (x, z), (y, z)))
    return (rxy - rxz * ryz) / math.sqrt((1 - rxz**2) * (1 - ryz**2))


def test_the_count_itself_and_any_monotone_function_of_it_carry_nothing_beyond_size(planted):
    z, truth = planted["z"], planted["truth"]
    for proxy in (z, np.exp(z), 3 * z + 1):
        assert size.partial_spearman(proxy, truth, z) == 0.0
        assert size.partial_pvalue(proxy, truth, z, 200) == 1.0
        assert size.combined_spearman(proxy, truth, z) == pytest.approx(stats.spearmanr(z, truth)[0])


def test_the_truth_keeps_a_high_partial_and_a_proxy_of_size_alone_a_null_one(planted):
    z, truth, rng = planted["z"], planted["truth"], planted["rng"]
    assert size.partial_spearman(truth, truth, z) == pytest.approx(1.0)
    size_only = z + 0.3 * rng.standard_normal(planted["n"])  # correlates with the truth through size alone
    assert stats.spearmanr(size_only, truth)[0] > 0.6
    low, high = size.bootstrap_ci(size_only, truth, z, "partial", 500, seed=1)
    assert low < 0 < high and size.partial_pvalue(size_only, truth, z, 500, seed=1) > 0.05


def test_partial_rho_is_the_textbook_formula_on_ranks_with_an_interval_and_a_small_p(planted):
    z, truth, rng = planted["z"], planted["truth"], planted["rng"]
    informed = planted["quality"] + 0.7 * rng.standard_normal(planted["n"])  # knows quality, not size
    partial = size.partial_spearman(informed, truth, z)
    assert partial == pytest.approx(_formula(informed, truth, z), abs=1e-9)
    low, high = size.bootstrap_ci(informed, truth, z, "partial", 500, seed=2)
    assert 0 < low < partial < high
    assert size.partial_pvalue(informed, truth, z, 500, seed=2) == pytest.approx(1 / 501)
    # Used together with size it ranks better than either alone.
    combined = size.combined_spearman(informed, truth, z)
    assert combined > max(stats.spearmanr(informed, truth)[0], stats.spearmanr(z, truth)[0])
    c_low, c_high = size.bootstrap_ci(informed, truth, z, "combined", 500, seed=2)
    assert c_low < combined < c_high


def test_cells_with_a_missing_value_are_left_out_and_degenerate_inputs_give_nan(planted):
    z, truth = planted["z"].copy(), planted["truth"]
    x = planted["quality"].copy()
    expected = size.partial_spearman(x[5:], truth[5:], z[5:])
    x[:3], z[3:5] = np.nan, np.nan
    assert size.partial_spearman(x, truth, z) == pytest.approx(expected)
    assert math.isnan(size.partial_spearman([1, 2], [1, 2], [1, 2]))
    assert math.isnan(size.combined_spearman(np.ones(10), truth[:10], z[:10]))
    assert all(math.isnan(v) for v in size.bootstrap_ci([1, 2, 3], [3, 2, 1], [1, 3, 2]))
