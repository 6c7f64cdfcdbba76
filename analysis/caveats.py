"""Warnings about what an analysis cannot claim: too few cells, ties, objectives at chance level, and
intervals that disagree with their p-value.

A rank correlation on a handful of cells, or on accuracies mostly tied at chance, can look decisive
(rho = -0.82) while meaning nothing (p = 0.51). These checks put that in words, for report.md and the
console. Pure functions of the analysed cell table, the correlations table and the records' configs.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from study.objectives.base import OBJECTIVES

MIN_CELLS = 10          # below this many cells a rank correlation is a rough indication at best
TIED_SHARE = 0.5        # ties dominate when at least this share of cells shares its value with another
CHANCE_SHARE = 0.25     # an objective "sits at chance" when at least this share of cells is at chance
ALPHA = 0.05            # the level at which the interval and the p-value are compared


def objective_entry(name: str) -> Any:
    """The registered objective class of a column name (`rotation`, or `<label>/rotation` of a compared
    study), or None for anything else (a baseline, a truth column, an objective no longer registered)."""

    base = name.rsplit("/", 1)[-1]
    return OBJECTIVES.get(base) if base in OBJECTIVES else None


def chance_level(objective: str, config: dict[str, Any] | None) -> float | None:
    """Accuracy of guessing for an objective trained with `config` (a record's config), as the objective
    itself states it (`Objective.chance`); None where it has none or the name is not an objective."""
    entry = objective_entry(objective)
    if entry is None:
        return None
    config = config or {}
    return entry.chance(config.get("objective") or {}, config.get("dataset") or {})


def _at_chance(values: np.ndarray, chance: float) -> np.ndarray:
    """Which values are at (or below) chance, allowing a point or a tenth of chance for test-set noise."""
    return values <= chance + max(0.01, 0.1 * chance)


def tied_share(values: pd.Series) -> float:
    """Share of the values that equal another value of the series (NaN dropped)."""
    values = values.dropna()
    if values.empty:
        return 0.0
    return float(values.duplicated(keep=False).mean())


def small_sample(n_cells: int) -> list[str]:
    """A warning when too few cells are analysed for a rank correlation to say much."""
    if n_cells >= MIN_CELLS:
        return []
    return [f"only {n_cells} cell(s) analysed: a rank correlation of fewer than {MIN_CELLS} cells is a rough "
            "indication at best (one cell moved changes rho a lot); sample and train more cells "
            "(python -m study.sample n=...)"]


def ties_and_chance(cells: pd.DataFrame, objectives: list[str], chance: dict[str, float | None]) -> list[str]:
    """Warnings for objectives whose accuracies are mostly tied or at chance level."""
    out = []
    for name in objectives:
        values = cells[name].dropna()
        if values.empty:
            continue
        level = chance.get(name)
        if level is not None:
            low = int(_at_chance(values.to_numpy(float), level).sum())
            if low >= 2 and low >= CHANCE_SHARE * len(values):
                out.append(f"{name}: {low} of {len(values)} cells are at chance level ({100 * level:.1f}%, "
                           f"1/{round(1 / level)}): they did not learn the task, so their ranking is arbitrary; "
                           "train longer (budget=...) before reading its correlation")
                continue
        share = tied_share(values)
        if share >= TIED_SHARE:
            out.append(f"{name}: {round(100 * share)}% of its cells share their accuracy with another cell; "
                       "ties dominate its ranking, so its rho rests on few distinct values")
    return out


def interval_vs_p(corr: pd.DataFrame) -> list[str]:
    """Rows whose 95% interval and permutation p-value disagree about whether rho differs from 0."""
    out = []
    for r in corr.itertuples():
        if any(math.isnan(v) for v in (r.spearman_low, r.spearman_high, r.p_value)):
            continue
        excludes = r.spearman_low > 0 or r.spearman_high < 0
        if excludes != (r.p_value < ALPHA):
            out.append(f"{r.objective}: its 95% interval [{r.spearman_low:.2f}, {r.spearman_high:.2f}] "
                       f"{'excludes' if excludes else 'includes'} 0 while the permutation test gives p = "
                       f"{r.p_value:.3f}; the bootstrap interval is unreliable on few or tied cells, trust the p-value")
    return out


def no_interval(corr: pd.DataFrame) -> list[str]:
    """A note for the rows that have a correlation but no interval (degenerate bootstrap)."""
    rows = corr[corr["spearman"].notna() & corr["spearman_low"].isna()]
    if rows.empty:
        return []
    return [f"no interval (—) for {', '.join(rows['objective'])}: too few distinct values, or too many "
            "bootstrap resamples without a defined rho, for a percentile interval to mean anything"]


def caveats(cells: pd.DataFrame, objectives: list[str], corr: pd.DataFrame,
            chance: dict[str, float | None]) -> list[str]:
    """Every warning for one analysis, most important first."""
    return [*small_sample(len(cells)), *ties_and_chance(cells, objectives, chance), *interval_vs_p(corr),
            *no_interval(corr)]
