"""Which summary of a run ranks architectures best: every summary of analysis/metrics.py, per objective.

The same runs, read as best or final test accuracy, final test or training loss, or a training-speed
estimate, can rank cells very differently at a short budget. This table measures each against the
analysis's main target (the ground truth where one is known, else the reference), beside its seed noise,
what it knows beyond the parameter count, and what the runs cost, so the summary is chosen by measured
fidelity per CPU-second rather than by habit.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from analysis import metrics, size
from analysis.uncertainty import bootstrap_ci, rank_correlations, seed_agreement

COLUMNS = ["objective", "metric", "target", "n_cells", "spearman", "spearman_low", "spearman_high", "partial",
           "partial_low", "partial_high", "combined", "seed_rho", "cpu_s"]


def candidates(epochs: int) -> list[str]:
    """The summaries worth comparing for runs of `epochs` epochs (TSE-E only for E below the run's length)."""
    return [*metrics.NAMES, *(f"tse-{e}" for e in (2, 3) if e < epochs)]


def table(scoped: pd.DataFrame, objectives: list[str], cells: pd.DataFrame, target: str, merge: str = "mean",
          bootstrap: int = 1000, seed: int = 0) -> pd.DataFrame:
    """One row per (trained objective, summary): rho with `target` (a column of `cells`) over the analysed
    cells, its interval, partial rho given `params`, the rank-mean rho with params, seed-to-seed rho, and
    the median CPU seconds of one run."""
    rows = []
    done = scoped[(scoped["status"] == "complete") & scoped["cell_id"].isin(cells.index)]
    for objective in objectives:
        runs = done[done["objective"] == objective]
        if runs.empty or runs["train_losses"].isna().all():
            continue  # a training-free objective has one summary, its score
        epochs = int(runs["epochs"].max()) if runs["epochs"].notna().any() else 1
        cpu = float(runs["cpu_s"].median()) if "cpu_s" in runs and runs["cpu_s"].notna().any() else math.nan
        for name in candidates(epochs):
            values = runs.assign(value=metrics.values(runs, {metrics.DEFAULT: name}))
            per_seed = values.pivot_table(index="cell_id", columns="seed", values="value", aggfunc="first")
            per_seed = per_seed.reindex(cells.index)
            merged = per_seed.agg(merge, axis=1).where(per_seed.notna().all(axis=1))
            x, y = merged.to_numpy(float), cells[target].to_numpy(float)
            r = rank_correlations(x, y)
            low, high = bootstrap_ci(x, y, "spearman", n_resamples=bootstrap, seed=seed)
            row = {"objective": objective, "metric": name, "target": target, "n_cells": r["n"],
                   "spearman": r["spearman"], "spearman_low": low, "spearman_high": high,
                   "seed_rho": seed_agreement(per_seed.to_numpy(float))["mean_pairwise_spearman"], "cpu_s": cpu}
            if "params" in cells.columns:
                z = cells["params"].to_numpy(float)
                row["partial"] = size.partial_spearman(x, y, z)
                row["partial_low"], row["partial_high"] = size.bootstrap_ci(x, y, z, "partial", bootstrap, seed=seed)
                row["combined"] = size.combined_spearman(x, y, z)
            rows.append(row)
    return pd.DataFrame(rows, columns=COLUMNS)


def best(summary: pd.DataFrame) -> pd.DataFrame:
    """Per objective, the summary with the highest rho with the target (ties: the first listed)."""
    if summary.empty:
        return summary
    ranked = summary.assign(_rho=summary["spearman"].fillna(-np.inf))
    return ranked.loc[ranked.groupby("objective", sort=False)["_rho"].idxmax()].drop(columns="_rho")
