"""Rank correlations with their uncertainty: bootstrap intervals, permutation tests, seed noise ceilings.

Everything here is pure computation on 1-D arrays (one value per cell). Pairs in which either value is
NaN are dropped, and degenerate inputs (fewer than three pairs, a constant column) give NaN rather than
an exception or a warning, because a sweep with a few failed cells should still be analysable.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterator

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats as sps

STATS = ("spearman", "kendall")
MIN_PAIRS = 3
# Above this many pairs the (n, n) sign matrices of the matrix Kendall bootstrap cost more memory
# (3 * n^2 * 8 bytes, ~100 MB at 2000) than looping scipy's O(n log n) Kendall saves in time.
_KENDALL_MATRIX_MAX_N = 2000
# Up to this many pairs a block of permuted (n, n) sign matrices beats looping scipy's Kendall, whose
# per-call overhead (~0.5 ms) dominates for small n; above it the O(n^2) work per permutation loses.
_KENDALL_BLOCK_MAX_N = 250
# Bound on elements of a (resamples, n) block so that large sweeps never allocate gigabytes at once.
_BLOCK_ELEMENTS = 1 << 22
# A percentile interval needs a bootstrap distribution with many distinct values. With fewer distinct
# values than this in either column (4 cells, or 3 of 4 tied at chance) the resamples take a handful of
# values and the "interval" is an artefact of ties (e.g. [-1.00, -0.82] beside a permutation p of 0.51).
MIN_CI_DISTINCT = 5
# When more than this share of resamples is undefined (a constant column drawn), the defined ones are a
# biased subset (they are the resamples that happened to avoid the ties): no interval either.
_MAX_UNDEFINED_SHARE = 0.1


def _paired(x: ArrayLike, y: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Return float copies of x and y with every pair that holds a NaN dropped."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    if x.ndim != 1 or y.ndim != 1 or x.shape != y.shape:
        raise ValueError(f"x and y must be 1-D of equal length, got shapes {x.shape} and {y.shape}")
    keep = ~(np.isnan(x) | np.isnan(y))
    return x[keep], y[keep]


def _degenerate(x: np.ndarray, y: np.ndarray) -> bool:
    """True when a rank correlation is undefined: too few pairs or a constant column."""
    return x.size < MIN_PAIRS or np.ptp(x) == 0 or np.ptp(y) == 0


def _check_stat(stat: str) -> None:
    """Raise ValueError for an unknown statistic name."""
    if stat not in STATS:
        raise ValueError(f"stat must be one of {STATS}, got {stat!r}")


def rowwise_pearson(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson correlation of each row of a with the same row of b; NaN for a constant row."""
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    den = np.sqrt((a * a).sum(axis=1) * (b * b).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (a * b).sum(axis=1) / den
    return np.where(den > 0, r, np.nan)


def blocks(total: int, n: int) -> Iterator[int]:
    """Yield block sizes summing to total, each with at most ~_BLOCK_ELEMENTS elements of width n."""
    step = max(1, _BLOCK_ELEMENTS // max(n, 1))
    for start in range(0, total, step):
        yield min(step, total - start)


def _kendall(x: np.ndarray, y: np.ndarray) -> float:
    """Kendall tau-b of two non-degenerate arrays."""
    return float(sps.kendalltau(x, y, variant="b").statistic)


def rank_correlations(x: ArrayLike, y: ArrayLike) -> dict[str, float]:
    """Spearman rho and Kendall tau-b of paired values, NaN-safe; keys spearman, kendall, n."""
    x, y = _paired(x, y)
    out = {"spearman": math.nan, "kendall": math.nan, "n": int(x.size)}
    if _degenerate(x, y):
        return out
    out["spearman"] = float(sps.spearmanr(x, y).statistic)
    out["kendall"] = _kendall(x, y)
    return out


def _bootstrap_spearman(x: np.ndarray, y: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Spearman rho of every resample; idx is (resamples, n) indices into the pairs."""
    rx = sps.rankdata(x[idx], axis=1)  # (B, n), average ranks handle the duplicates resampling makes
    ry = sps.rankdata(y[idx], axis=1)
    return rowwise_pearson(rx, ry)


def _bootstrap_kendall(x: np.ndarray, y: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Kendall tau-b of every resample; idx is (resamples, n) indices into the pairs."""
    n_res, n = idx.shape
    if n > _KENDALL_MATRIX_MAX_N:
        return np.array([_kendall(x[row], y[row]) if not _degenerate(x[row], y[row]) else np.nan
                         for row in idx])
    # A resample is a vector of counts w over the original pairs. Copies of one pair are tied in both
    # x and y, so they add nothing; pairs (i, j) add w_i w_j times their sign product. Hence
    # tau_b = w'Sw / sqrt(w'Ax w * w'Ay w), exact and one matrix product for all resamples at once.
    offsets = (np.arange(n_res) * n)[:, None]
    w = np.bincount((idx + offsets).ravel(), minlength=n_res * n).reshape(n_res, n).astype(float)
    sx = np.sign(x[:, None] - x[None, :])  # (n, n)
    sy = np.sign(y[:, None] - y[None, :])
    num = ((w @ (sx * sy)) * w).sum(axis=1)
    untied_x = ((w @ np.abs(sx)) * w).sum(axis=1)  # ordered pairs not tied in x
    untied_y = ((w @ np.abs(sy)) * w).sum(axis=1)
    den = np.sqrt(untied_x * untied_y)
    with np.errstate(invalid="ignore", divide="ignore"):
        tau = num / den
    return np.where(den > 0, tau, np.nan)


_BOOTSTRAP: dict[str, Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]] = {
    "spearman": _bootstrap_spearman,
    "kendall": _bootstrap_kendall,
}


def bootstrap_distribution(
    x: ArrayLike,
    y: ArrayLike,
    stat: str = "spearman",
    n_resamples: int = 1000,
    seed: int | np.random.Generator = 0,
) -> np.ndarray:
    """Statistic on each bootstrap resample of the pairs (cells); NaN for degenerate resamples."""
    _check_stat(stat)
    x, y = _paired(x, y)
    if _degenerate(x, y):
        return np.full(n_resamples, np.nan)
    rng = np.random.default_rng(seed)
    parts = []
    for size in blocks(n_resamples, x.size):
        idx = rng.integers(0, x.size, size=(size, x.size))  # (B, n) resampled cell indices
        parts.append(_BOOTSTRAP[stat](x, y, idx))
    return np.concatenate(parts)


def bootstrap_ci(
    x: ArrayLike,
    y: ArrayLike,
    stat: str = "spearman",
    n_resamples: int = 1000,
    level: float = 0.95,
    seed: int | np.random.Generator = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval of a rank correlation, resampling cells with replacement.

    NaN (no interval) when the resamples are degenerate: fewer than `MIN_CI_DISTINCT` distinct values
    in either column, or more than `_MAX_UNDEFINED_SHARE` of the resamples undefined.
    """
    if not 0 < level < 1:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    px, py = _paired(x, y)
    if min(np.unique(px).size, np.unique(py).size) < MIN_CI_DISTINCT:
        return math.nan, math.nan
    dist = bootstrap_distribution(px, py, stat, n_resamples, seed)
    undefined = np.isnan(dist)  # resamples that drew a constant column carry no rank information
    dist = dist[~undefined]
    if dist.size == 0 or undefined.mean() > _MAX_UNDEFINED_SHARE:
        return math.nan, math.nan
    alpha = (1 - level) / 2
    low, high = np.quantile(dist, [alpha, 1 - alpha])
    return float(low), float(high)


def _permutation_blocks(rng: np.random.Generator, n: int, total: int, width: int) -> Iterator[np.ndarray]:
    """Yield (block, n) arrays of random permutations of 0..n-1, total rows in all."""
    for size in blocks(total, width):
        yield rng.permuted(np.tile(np.arange(n), (size, 1)), axis=1)


def _permutation_null(x: np.ndarray, y: np.ndarray, stat: str, n_permutations: int,
                      rng: np.random.Generator) -> tuple[float, np.ndarray]:
    """Observed statistic and its values with y permuted, n_permutations times."""
    n = x.size
    if stat == "spearman":
        # Ranks are permutation-equivariant, so ranking once and shuffling the ranks is exact.
        rx, ry = sps.rankdata(x), sps.rankdata(y)
        observed = float(rowwise_pearson(rx[None], ry[None])[0])
        null = [rowwise_pearson(np.broadcast_to(rx, perm.shape), ry[perm])
                for perm in _permutation_blocks(rng, n, n_permutations, n)]
    elif n <= _KENDALL_BLOCK_MAX_N:
        # Permuting y leaves the tie counts, hence the tau-b denominator, unchanged; only the sum
        # of sign products moves, and one (B, n, n) block of sign differences computes it for B.
        sx = np.sign(x[:, None] - x[None, :])  # (n, n)
        sy = np.sign(y[:, None] - y[None, :])
        den = math.sqrt(np.abs(sx).sum() * np.abs(sy).sum())
        observed = float((sx * sy).sum() / den)
        null = []
        for perm in _permutation_blocks(rng, n, n_permutations, n * n):
            yp = y[perm]  # (B, n)
            signs = np.sign(yp[:, :, None] - yp[:, None, :])  # (B, n, n)
            null.append(np.einsum("bij,ij->b", signs, sx) / den)
    else:
        observed = _kendall(x, y)
        null = [np.array([_kendall(x, y[row]) for row in perm])
                for perm in _permutation_blocks(rng, n, n_permutations, n * n)]
    return observed, np.concatenate(null)


def permutation_pvalue(
    x: ArrayLike,
    y: ArrayLike,
    stat: str = "spearman",
    n_permutations: int = 1000,
    seed: int | np.random.Generator = 0,
) -> float:
    """Two-sided Monte Carlo permutation p-value for no association, (count + 1) / (n + 1)."""
    _check_stat(stat)
    x, y = _paired(x, y)
    if _degenerate(x, y):
        return math.nan
    observed, null = _permutation_null(x, y, stat, n_permutations, np.random.default_rng(seed))
    # The tolerance counts permutations that tie the observed value up to float rounding as extreme.
    count = int(np.sum(np.abs(null) >= abs(observed) - 1e-12))
    return (count + 1) / (n_permutations + 1)


def spearman_brown(r: float, k: float) -> float:
    """Spearman-Brown reliability of the mean of k measurements whose single reliability is r."""
    den = 1 + (k - 1) * r
    if math.isnan(r) or k < 1 or den == 0:
        return math.nan
    return k * r / den


def seed_agreement(acc_by_seed: ArrayLike) -> dict[str, float]:
    """Seed-to-seed Spearman of a (cells, seeds) table and the reliability of its seed mean.

    `mean_pairwise_spearman` (r) is the mean Spearman over all pairs of seed columns: the rank agreement
    to expect between two single-seed runs of the same measure, i.e. its single-seed reliability.
    `reliability_of_mean` is the Spearman-Brown prediction r_k = k r / (1 + (k - 1) r) for the mean of
    the k seeds. By attenuation, two seed-averaged measures X and Y with reliabilities r_k^X and r_k^Y
    cannot correlate above sqrt(r_k^X * r_k^Y) (see `noise_ceiling`), however related their noise-free
    values are; a single-seed ranking cannot correlate with a noise-free one above sqrt(r).
    Spearman-Brown is exact for Pearson correlations of additive noise; for Spearman it is a close
    approximation. All values are NaN with fewer than two seeds.
    """
    table = np.asarray(acc_by_seed, dtype=float)
    if table.ndim != 2:
        raise ValueError(f"acc_by_seed must be 2-D (cells, seeds), got shape {table.shape}")
    k = table.shape[1]
    out = {"n_seeds": k, "n_pairs": 0, "mean_pairwise_spearman": math.nan,
           "reliability_of_mean": math.nan}
    if k < 2:
        return out
    rhos = np.array([rank_correlations(table[:, i], table[:, j])["spearman"]
                     for i, j in itertools.combinations(range(k), 2)])
    rhos = rhos[~np.isnan(rhos)]
    out["n_pairs"] = int(rhos.size)
    if rhos.size == 0:
        return out
    r = float(rhos.mean())
    out["mean_pairwise_spearman"] = r
    out["reliability_of_mean"] = spearman_brown(r, k)
    return out


def noise_ceiling(rel_x: float, rel_y: float) -> float:
    """Largest expected correlation between two measures with reliabilities rel_x, rel_y: sqrt(product)."""
    if math.isnan(rel_x) or math.isnan(rel_y) or rel_x <= 0 or rel_y <= 0:
        # A reliability of 0 or below means the measure is pure noise at this sample size: no ceiling is
        # defined (a "ceiling" of 0 would read as a measured bound beside the note that says there is none).
        return math.nan
    return math.sqrt(rel_x * rel_y)
