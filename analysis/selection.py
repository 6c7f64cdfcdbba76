"""What a proxy ranking buys when it is used to pick architectures: top-1 regret, top-k overlap, and
the random-subset experiment (best-by-proxy among m random cells, as in the UnNAS paper).

Inputs are 1-D arrays with one value per cell, higher is better for both proxy and target. Pairs that
hold a NaN are dropped. Ties in the proxy are broken in favour of the lower cell index, so results are
deterministic.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

QUANTILES = {"q05": 0.05, "q25": 0.25, "q50": 0.50, "q75": 0.75, "q95": 0.95}
# Bound on elements of a (trials, n) block so that large spaces never allocate gigabytes at once.
_BLOCK_ELEMENTS = 1 << 22


def _paired(proxy: ArrayLike, target: ArrayLike) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return proxy, target (NaN pairs dropped) and the original indices of the kept cells."""
    proxy = np.asarray(proxy, dtype=float)
    target = np.asarray(target, dtype=float)
    if proxy.ndim != 1 or proxy.shape != target.shape:
        raise ValueError(f"proxy and target must be 1-D of equal length, got {proxy.shape}, {target.shape}")
    keep = np.flatnonzero(~(np.isnan(proxy) | np.isnan(target)))
    if keep.size == 0:
        raise ValueError("no cell has both a proxy and a target value")
    return proxy[keep], target[keep], keep


def _order(values: np.ndarray) -> np.ndarray:
    """Indices from best to worst: higher value first, equal values by lower index."""
    return np.argsort(-values, kind="stable")


def top1_choice(proxy: ArrayLike, target: ArrayLike) -> dict[str, float]:
    """Target value, regret vs the best target, and target percentile of the proxy's top cell.

    The percentile is the share of cells (in %) whose target the choice matches or beats, so picking
    the best cell gives 100 and the worst of n gives 100 / n. `index` is into the inputs as given.
    """
    proxy, target, kept = _paired(proxy, target)
    best = int(np.argmax(proxy))  # argmax returns the first maximum, i.e. the lower index on ties
    value = float(target[best])
    return {
        "index": int(kept[best]),
        "target": value,
        "regret": float(target.max() - value),
        "percentile": float(100.0 * np.mean(target <= value)),
    }


def topk_size(n: int, fraction: float) -> int:
    """Number of cells in a top fraction of n: max(1, round(fraction * n)), halves rounded up."""
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must lie in (0, 1], got {fraction}")
    # floor(x + 0.5) rather than round(): Python's round sends 2.5 to 2, an arbitrary-looking k.
    return max(1, min(n, math.floor(fraction * n + 0.5)))


def topk_overlap(proxy: ArrayLike, target: ArrayLike, fraction: float) -> float:
    """Share of the top-k cells by target that are also in the top-k by proxy, k = topk_size(n, fraction)."""
    proxy, target, _ = _paired(proxy, target)
    k = topk_size(proxy.size, fraction)
    shared = np.intersect1d(_order(proxy)[:k], _order(target)[:k])
    return shared.size / k


def default_sizes(n: int) -> tuple[int, ...]:
    """Powers of two from 1 up to n."""
    return tuple(1 << i for i in range(max(n, 0).bit_length()))


def random_experiment(
    proxy: ArrayLike,
    target: ArrayLike,
    sizes: tuple[int, ...] | None = None,
    n_trials: int = 1000,
    seed: int | np.random.Generator = 0,
) -> pd.DataFrame:
    """Target of the best-by-proxy cell among m cells drawn without replacement, summarised per size m.

    Returns one row per size with columns size, mean, std (over trials, ddof=0) and the quantiles
    q05, q25, q50, q75, q95. Each trial shuffles all cells once and every size takes a prefix of that
    shuffle, so the subsets are nested: each size is still a uniform m-subset, and comparisons between
    sizes share their randomness (with a perfect proxy the choice can only improve as m grows).
    """
    proxy, target, _ = _paired(proxy, target)
    n = proxy.size
    sizes = default_sizes(n) if sizes is None else tuple(int(m) for m in sizes)
    if any(m < 1 or m > n for m in sizes):
        raise ValueError(f"every size must lie in [1, {n}], got {sizes}")
    if n_trials < 1:
        raise ValueError(f"n_trials must be positive, got {n_trials}")
    rng = np.random.default_rng(seed)
    # Work in proxy-rank space: position 0 is the proxy's favourite, so the best-by-proxy cell of a
    # subset is the one at its smallest position, and ties were already settled by the stable order.
    ranked_target = target[_order(proxy)]
    cols = np.asarray(sizes) - 1
    step = max(1, _BLOCK_ELEMENTS // n)
    parts = []
    for start in range(0, n_trials, step):
        block = min(step, n_trials - start)
        shuffles = rng.permuted(np.tile(np.arange(n), (block, 1)), axis=1)  # (T, n) positions
        best_pos = np.minimum.accumulate(shuffles, axis=1)[:, cols]  # (T, sizes) best among first m
        parts.append(ranked_target[best_pos])
    chosen = np.concatenate(parts)  # (n_trials, len(sizes)) target of each choice
    table = {"size": np.asarray(sizes, dtype=int), "mean": chosen.mean(axis=0), "std": chosen.std(axis=0)}
    for name, q in QUANTILES.items():
        table[name] = np.quantile(chosen, q, axis=0)
    return pd.DataFrame(table)


def random_ranking(n: int, seed: int | np.random.Generator = 0) -> np.ndarray:
    """A proxy that carries no information: a uniformly random permutation of 0..n-1 as floats."""
    return np.random.default_rng(seed).permutation(n).astype(float)


def unnas_random_experiment(proxy: pd.Series, target: pd.Series, n: int = 500, seed: int = 2) -> pd.DataFrame:
    """UnNAS fig. 5 as its figs/fig5.py draws it: target of the best-by-proxy cell among m random cells.

    The cells are those with both values, in the order of their index (the caller sorts it by unnas' own
    keys); the legacy NumPy generator is seeded with `seed` afresh for every proxy; sizes m = 1, 2, 4, ...
    below `n` (the paper's 500; capped at the number of cells, where fig5.py would stop with an error), each
    with ceil(n / m) trials of `choice(cells, m, replace=False)`; the first strictly best proxy value wins.
    Rows as `random_experiment`'s (std with ddof 0, as np.std), with the number of trials of each size.
    """
    both = pd.concat([proxy.rename("proxy"), target.rename("target")], axis=1).dropna()
    keys = np.asarray(both.index)
    values, truth = both["proxy"].to_numpy(float), both["target"].to_numpy(float)
    rng = np.random.RandomState(seed)
    rows = []
    m = 1
    while m < n and m <= len(keys):
        picks = []
        for _ in range(math.ceil(n / m)):
            drawn = rng.choice(len(keys), m, replace=False)  # positions: the same stream as choosing the keys
            picks.append(truth[drawn[int(np.argmax(values[drawn]))]])  # argmax: the first of equal maxima
        picks = np.asarray(picks)
        rows.append({"size": m, "trials": len(picks), "mean": picks.mean(), "std": picks.std(),
                     **{name: np.quantile(picks, q) for name, q in QUANTILES.items()}})
        m *= 2
    return pd.DataFrame(rows, columns=["size", "trials", "mean", "std", *QUANTILES])
