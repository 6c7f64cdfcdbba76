"""Rankings that combine several label-free signals: equal-weight mean ranks, and a cross-validated weighting.

Two kinds, kept apart in every table:
- `mean rank` (chosen without the truth): the mean of the columns' ranks, every column weighted alike. The
  sets are fixed by rule, the same for every study: all label-free training-free scores; the same with the
  size baselines (params, FLOPs); every label-free column (trained pretext objectives too); and each
  label-free column's pair with the parameter count is `combined` in the correlation tables already.
- `cross-validated weights (upper bound)`: a least-squares fit of the target's ranks on the columns' ranks,
  fitted on the other folds' cells and applied to each held-out fold (5 folds, repeated over 5 shuffles,
  rho averaged). It uses the *truth of other cells* to choose weights: an upper bound on what a weighting
  chosen without the truth could reach, never a label-free result.
Each ranking is reported with its Spearman rho with the target (95% bootstrap interval) and its partial rho
given the parameter count. Pure functions of a cell table (one row per cell, larger is better in every
column); randomness comes in as a seed.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats as sps

from analysis import size
from analysis.caveats import objective_entry
from analysis.uncertainty import bootstrap_ci, rank_correlations

SIZE = ("params", "flops")
MEAN_RANK = "mean rank"
CV_WEIGHTS = "cross-validated weights (upper bound: uses the truth of other cells)"
FOLDS, REPEATS = 5, 5
COLUMNS = ["ranking", "kind", "members", "target", "n_cells", "spearman", "spearman_low", "spearman_high",
           "partial", "partial_low", "partial_high"]


def label_free(columns: list[str]) -> list[str]:
    """The columns that read no label: size baselines and objectives whose class says `uses_labels = False`."""
    return [c for c in columns if c in SIZE or (objective_entry(c) is not None and not objective_entry(c).uses_labels)]


def rule_sets(columns: list[str]) -> dict[str, list[str]]:
    """The equal-weight sets, fixed by rule (never by the truth): name -> member columns, sets of 2+ only."""
    free = label_free(columns)
    scores = [c for c in free if c not in SIZE and not objective_entry(c).trains]
    trained = [c for c in free if c not in SIZE and objective_entry(c).trains]
    sets = {"label-free training-free scores": scores,
            "label-free training-free scores + size": [*scores, *(c for c in SIZE if c in free)],
            "label-free trained objectives + params": [*trained, "params"] if "params" in free else trained,
            "every label-free column": free}
    unique: dict[str, list[str]] = {}
    for name, members in sets.items():
        if len(members) >= 2 and members not in unique.values():
            unique[name] = members
    return unique


def mean_rank(cells: pd.DataFrame, columns: list[str]) -> pd.Series:
    """The mean of the columns' ranks per cell (NaN where a column lacks the cell)."""
    return cells[columns].rank().mean(axis=1, skipna=False)


def _fit_predict(x_fit: np.ndarray, y_fit: np.ndarray, x_new: np.ndarray) -> np.ndarray:
    """Least squares of y on [1, x], applied to x_new."""
    design = np.column_stack([np.ones(len(x_fit)), x_fit])
    coef, *_ = np.linalg.lstsq(design, y_fit, rcond=None)
    return np.column_stack([np.ones(len(x_new)), x_new]) @ coef


def cv_weighted(cells: pd.DataFrame, columns: list[str], target: str, folds: int = FOLDS, repeats: int = REPEATS,
                seed: int = 0) -> tuple[float, pd.Series]:
    """Mean held-out rho of a rank regression fitted on the other folds, and the first shuffle's held-out scores."""
    frame = cells[[*columns, target]].dropna()
    if len(frame) < 2 * folds:  # too few cells to hold any out
        return math.nan, pd.Series(math.nan, index=frame.index)
    x = frame[columns].rank(pct=True).to_numpy(float)  # (n, k): label-free, so ranked over every cell
    truth = frame[target].to_numpy(float)
    rng = np.random.default_rng(seed)
    rhos, first = [], None
    for r in range(repeats):
        order = rng.permutation(len(frame))
        pred = np.empty(len(frame))
        for part in np.array_split(order, folds):
            fit = np.setdiff1d(order, part)  # the truth is ranked within the fitted cells only
            pred[part] = _fit_predict(x[fit], sps.rankdata(truth[fit]) / len(fit), x[part])
        rhos.append(sps.spearmanr(pred, frame[target]).statistic)
        first = pd.Series(pred, index=frame.index) if first is None else first
    return float(np.mean(rhos)), first if first is not None else pd.Series(dtype=float)


def _row(name: str, kind: str, members: list[str], target: str, score: pd.Series, truth: pd.Series,
         params: pd.Series | None, bootstrap: int, seed: int, rho: float | None = None) -> dict:
    both = pd.concat([score, truth], axis=1).dropna()
    x, y = both.iloc[:, 0].to_numpy(float), both.iloc[:, 1].to_numpy(float)
    low, high = bootstrap_ci(x, y, "spearman", n_resamples=bootstrap, seed=seed)
    row = {"ranking": name, "kind": kind, "members": " + ".join(members), "target": target, "n_cells": len(both),
           "spearman": rank_correlations(x, y)["spearman"] if rho is None else rho, "spearman_low": low,
           "spearman_high": high, "partial": math.nan, "partial_low": math.nan, "partial_high": math.nan}
    if params is not None:
        z = params.reindex(both.index).to_numpy(float)
        row["partial"] = size.partial_spearman(x, y, z)
        row["partial_low"], row["partial_high"] = size.bootstrap_ci(x, y, z, "partial", n_resamples=bootstrap,
                                                                    seed=seed)
    return row


def combinations(cells: pd.DataFrame, target: str, columns: list[str], *, bootstrap: int = 1000, seed: int = 0,
                 extra: dict[str, list[str]] | None = None) -> pd.DataFrame:
    """Every rule set (and `extra` sets) as an equal-weight mean rank, then each as cross-validated weights."""
    sets = {**rule_sets([c for c in columns if c != target]), **(extra or {})}
    params = cells["params"] if "params" in cells.columns else None
    rows = [_row(name, MEAN_RANK, members, target, mean_rank(cells, members), cells[target], params, bootstrap, seed)
            for name, members in sets.items()]
    for name, members in sets.items():
        rho, held_out = cv_weighted(cells, members, target, seed=seed)
        # The interval is the first shuffle's held-out scores resampled; rho is the mean over shuffles.
        rows.append(_row(name, CV_WEIGHTS, members, target, held_out, cells[target], params, bootstrap, seed, rho))
    return pd.DataFrame(rows, columns=COLUMNS)
