"""The analysis's numbers as DataFrames: correlations with intervals and ceilings, seed noise, selection
quality, random-experiment curves, the rank-correlation matrix and accuracy distributions.

Inputs are cell tables: one row per cell, one column per objective (seed-merged accuracy) or baseline.
Every function here is pure: randomness comes in as a seed, nothing is read or written.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from analysis import size
from analysis.caveats import objective_entry
from analysis.selection import QUANTILES, default_sizes, random_experiment, top1_choice, topk_overlap
from analysis.uncertainty import (bootstrap_ci, noise_ceiling, permutation_pvalue, rank_correlations,
                                  seed_agreement)

BASELINES = ("params", "flops")
RANDOM = "random"
FRACTIONS = (0.05, 0.10, 0.25)
CONTROL = "params"  # what "beyond size" holds fixed: the parameter count of the network trained
CORRELATION_COLUMNS = ["objective", "kind", "reference", "n_cells", "spearman", "spearman_low", "spearman_high",
                       "kendall", "kendall_low", "kendall_high", "p_value", "ceiling", "ref_ceiling",
                       "partial", "partial_low", "partial_high", "partial_p", "combined", "combined_low",
                       "combined_high"]


def kind_of(name: str, reference: str) -> str:
    """`reference`, `baseline` (params, FLOPs, random ranking), `training-free[, labels]` or `objective`."""
    if name == reference:
        return "reference"
    if name in BASELINES or name == RANDOM:
        return "baseline"
    entry = objective_entry(name)
    return entry.kind() if entry is not None else "objective"


def _both(cells: pd.DataFrame, name: str, reference: str) -> pd.DataFrame:
    """The cells that have both values, as columns proxy and reference (the two may be one column)."""
    return pd.DataFrame({"proxy": cells[name], "reference": cells[reference]}).dropna()


def _pair(cells: pd.DataFrame, name: str, reference: str) -> tuple[np.ndarray, np.ndarray]:
    """Proxy and reference values of the cells that have both."""
    pair = _both(cells, name, reference)
    return pair["proxy"].to_numpy(float), pair["reference"].to_numpy(float)


def correlations(cells: pd.DataFrame, reference: str, proxies: list[str], *, bootstrap: int = 1000,
                 permutations: int = 1000, level: float = 0.95, seed: int = 0,
                 reliability: dict[str, float] | None = None) -> pd.DataFrame:
    """Spearman and Kendall of every proxy against the reference, with intervals, p-value and ceilings.

    Intervals are percentile bootstraps over cells; every proxy uses the same seed, hence the same
    resampled cells, so their intervals are comparable. `p_value` is the two-sided permutation p-value of
    Spearman's rho. `reliability` maps a column to the reliability of its seed mean (baselines are exact,
    1.0); `ceiling` is the most the proxy can correlate with the reference given both their seed noise,
    `ref_ceiling` the most a noise-free proxy can (both NaN when a measure has a single seed).

    Beyond size (analysis/size.py), when the cells have a `params` column: `partial` is the proxy's
    Spearman rho with the reference given the parameter count (0 for the count itself), with its bootstrap
    interval and permutation p-value; `combined` the rho of the mean of the proxy's and the count's ranks.
    """
    rel = {**{b: 1.0 for b in (*BASELINES, RANDOM)}, **(reliability or {})}
    ref_rel = rel.get(reference, math.nan)
    rows = []
    for name in proxies:
        x, y = _pair(cells, name, reference)
        r = rank_correlations(x, y)
        row = {"objective": name, "kind": kind_of(name, reference), "reference": reference, "n_cells": len(x),
               "spearman": r["spearman"], "kendall": r["kendall"]}
        for stat in ("spearman", "kendall"):
            low, high = bootstrap_ci(x, y, stat, n_resamples=bootstrap, level=level, seed=seed)
            row[f"{stat}_low"], row[f"{stat}_high"] = low, high
        row["p_value"] = permutation_pvalue(x, y, "spearman", n_permutations=permutations, seed=seed)
        row["ceiling"] = noise_ceiling(rel.get(name, math.nan), ref_rel)
        row["ref_ceiling"] = noise_ceiling(1.0, ref_rel)
        row.update(beyond_size(cells, name, reference, bootstrap, permutations, level, seed))
        rows.append(row)
    return pd.DataFrame(rows, columns=CORRELATION_COLUMNS)


def beyond_size(cells: pd.DataFrame, name: str, reference: str, bootstrap: int = 1000, permutations: int = 1000,
                level: float = 0.95, seed: int = 0) -> dict[str, float]:
    """Partial rho given the parameter count (interval, p) and the rho of the mean rank with it."""
    out = dict.fromkeys(("partial", "partial_low", "partial_high", "partial_p", "combined", "combined_low",
                         "combined_high"), math.nan)
    if CONTROL not in cells.columns or name == reference:
        return out
    x, y, z = (cells[c].to_numpy(float) for c in (name, reference, CONTROL))
    out["partial"] = size.partial_spearman(x, y, z)
    out["partial_low"], out["partial_high"] = size.bootstrap_ci(x, y, z, "partial", bootstrap, level, seed)
    out["partial_p"] = size.partial_pvalue(x, y, z, permutations, seed)
    out["combined"] = size.combined_spearman(x, y, z)
    out["combined_low"], out["combined_high"] = size.bootstrap_ci(x, y, z, "combined", bootstrap, level, seed)
    return out


def seed_noise(per_seed: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Per objective: seed-to-seed Spearman (single-seed reliability) and its Spearman-Brown seed-mean value.

    `per_seed` maps an objective to a (cells, seeds) table. `ceiling` = sqrt(reliability): the most any
    noise-free proxy can correlate with this objective's seed-averaged accuracy.
    """
    rows = []
    for name, table in per_seed.items():
        agree = seed_agreement(table.to_numpy(float))
        rel = agree["reliability_of_mean"]
        rows.append({"objective": name, "n_seeds": agree["n_seeds"], "n_cells": len(table),
                     "seed_rho": agree["mean_pairwise_spearman"], "reliability": rel,
                     "ceiling": noise_ceiling(1.0, rel)})
    return pd.DataFrame(rows, columns=["objective", "n_seeds", "n_cells", "seed_rho", "reliability", "ceiling"])


def selection(cells: pd.DataFrame, reference: str, proxies: list[str],
              fractions: tuple[float, ...] = FRACTIONS) -> pd.DataFrame:
    """What each proxy picks: reference accuracy of its top cell, regret, percentile, top-k% overlaps."""
    overlap = [f"top{round(100 * f)}_overlap" for f in fractions]
    rows = []
    for name in proxies:
        x, y = _pair(cells, name, reference)
        row = {"objective": name, "kind": kind_of(name, reference), "n_cells": len(x)}
        if len(x):
            ids = _both(cells, name, reference).index
            top = top1_choice(x, y)
            row.update(top1_cell=ids[top["index"]], top1_acc=top["target"], best_acc=float(y.max()),
                       regret=top["regret"], percentile=top["percentile"])
            row.update({col: topk_overlap(x, y, f) for col, f in zip(overlap, fractions)})
        rows.append(row)
    return pd.DataFrame(rows, columns=["objective", "kind", "n_cells", "top1_cell", "top1_acc", "best_acc",
                                       "regret", "percentile", *overlap])


def random_curves(cells: pd.DataFrame, reference: str, proxies: list[str], trials: int = 1000,
                  seed: int = 0) -> pd.DataFrame:
    """The random experiment per proxy: reference accuracy of the best-by-proxy of m random cells.

    The cells that every proxy and the reference share are used for all of them, with the same seed,
    so the curves differ only by the proxy's ranking.
    """
    table = cells[[reference, *[p for p in proxies if p != reference]]].dropna()
    columns = ["objective", "kind", "size", "mean", "std", *QUANTILES]
    if table.empty:
        return pd.DataFrame(columns=columns)
    sizes = default_sizes(len(table))
    parts = []
    for name in proxies:
        curve = random_experiment(table[name], table[reference], sizes, n_trials=trials, seed=seed)
        parts.append(curve.assign(objective=name, kind=kind_of(name, reference)))
    return pd.concat(parts, ignore_index=True)[columns]


def rank_matrix(cells: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """Spearman rho between every pair of columns (pairwise-complete cells)."""
    return cells[columns].corr(method="spearman")


def ecdf(cells: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """Empirical CDF of each column's values, long form: objective, accuracy, fraction."""
    parts = []
    for name in columns:
        values = np.sort(cells[name].dropna().to_numpy(float))
        fraction = np.arange(1, values.size + 1) / max(values.size, 1)
        parts.append(pd.DataFrame({"objective": name, "accuracy": values, "fraction": fraction}))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["objective", "accuracy",
                                                                                    "fraction"])
