"""Which cells each objective has finished: complete, failed or missing, and why a cell left the analysis.

A cell is complete for an objective when it has a complete run for every seed trained under that
objective (the paper keeps the cells present in every (objective, seed)); with `require_all_seeds=false`
one complete seed suffices. Otherwise it is failed when one of its runs failed, else missing.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

STATUSES = ("complete", "failed", "missing")


def cell_status(scoped: pd.DataFrame, cell_ids: list[str], require_all_seeds: bool = True,
                known: list[str] | None = None) -> pd.DataFrame:
    """Status of every cell (rows, in the given order) under every objective (columns).

    `known` is the study's whole sample when `cell_ids` is a part of it (the cells shared with compared
    studies): only runs of cells outside the sample are warned about.
    """
    unknown = sorted(set(scoped["cell_id"]) - set(cell_ids if known is None else known))
    if unknown:
        log.warning("ignoring runs of %d cell(s) not in the sample (re-sampled study?): %s", len(unknown),
                    ", ".join(unknown[:5]) + (" ..." if len(unknown) > 5 else ""))
    table = {}
    for objective, runs in scoped.groupby("objective"):
        n_seeds = runs["seed"].nunique()
        complete = runs[runs["status"] == "complete"].groupby("cell_id")["seed"].nunique()
        complete = complete.reindex(cell_ids, fill_value=0).to_numpy()
        failed = np.isin(cell_ids, runs.loc[runs["status"] == "failed", "cell_id"].unique())
        need = n_seeds if require_all_seeds else 1
        table[objective] = np.where(complete >= need, "complete", np.where(failed, "failed", "missing"))
    return pd.DataFrame(table, index=pd.Index(cell_ids, name="cell_id"))


def summarize(status: pd.DataFrame, seeds: dict[str, list[int]]) -> pd.DataFrame:
    """Per objective: its seeds and how many cells are complete, failed and missing."""
    rows = []
    for name in status.columns:
        counts = status[name].value_counts()
        rows.append({"objective": name, "seeds": ",".join(str(s) for s in seeds.get(name, [])),
                     **{s: int(counts.get(s, 0)) for s in STATUSES}})
    return pd.DataFrame(rows, columns=["objective", "seeds", *STATUSES])


def dropped_cells(status: pd.DataFrame, extra: dict[str, str] | None = None,
                  why: dict[tuple[str, str], str] | None = None) -> pd.DataFrame:
    """Cells left out of the analysis and why: every objective for which they are not complete.

    `why` maps (cell id, objective) to a better reason than the bare status (e.g. a seed it lacks).
    """
    rows = [{"cell_id": cid, "reason": why} for cid, why in (extra or {}).items()]
    why = why or {}
    for cid, row in status.iterrows():
        bad = [why.get((cid, name), f"{name} {value}") for name, value in row.items() if value != "complete"]
        if bad:
            rows.append({"cell_id": cid, "reason": "; ".join(bad)})
    return pd.DataFrame(rows, columns=["cell_id", "reason"])


def refusal_reasons(scoped: pd.DataFrame, column: Callable[[str], str] = str) -> dict[tuple[str, str], str]:
    """(cell id, column(objective)) -> why a complete record of it was counted failed (its value was refused)."""
    refused = scoped[scoped["refused"].notna()] if "refused" in scoped.columns else scoped.iloc[:0]
    return {(r.cell_id, column(r.objective)): f"{r.objective} failed: {r.refused} ({Path(r.path).name})"
            for r in refused.itertuples()}


def _complete_seeds(scoped: pd.DataFrame, cell_ids: list[str]) -> dict[str, pd.Series]:
    """Per objective: the seeds each sampled cell has complete, as a Series of sets indexed by cell id."""
    done = scoped[(scoped["status"] == "complete") & scoped["cell_id"].isin(cell_ids)]
    return {objective: runs.groupby("cell_id")["seed"].agg(lambda s: set(int(v) for v in s))
            for objective, runs in done.groupby("objective")}


def _stray_seeds(seeds: pd.Series) -> pd.Series:
    """Seeds complete on at most half as many cells as the best-covered seed, with their cell counts."""
    counts = pd.Series([s for cell in seeds for s in cell]).value_counts()
    return counts[2 * counts <= counts.max()].sort_index()


def seed_shortfalls(scoped: pd.DataFrame, cell_ids: list[str]) -> dict[str, str]:
    """Per objective with a stray seed: `seed 5 has 1 of 6 cells` (the real reason require_all_seeds
    drops most cells, which a bare "missing" per cell hides)."""
    out = {}
    for objective, seeds in _complete_seeds(scoped, cell_ids).items():
        stray = _stray_seeds(seeds)
        if len(stray):
            out[objective] = "; ".join(f"seed {s} has {k} of {len(cell_ids)} cells" for s, k in stray.items())
    return out


def seed_reasons(scoped: pd.DataFrame, cell_ids: list[str]) -> dict[tuple[str, str], str]:
    """(cell id, objective) -> why a cell is dropped when it lacks only a stray seed."""
    out = {}
    for objective, seeds in _complete_seeds(scoped, cell_ids).items():
        stray = _stray_seeds(seeds)
        if not len(stray):
            continue
        shortfall = "; ".join(f"seed {s} has {k} of {len(cell_ids)} cells" for s, k in stray.items())
        every = set().union(*seeds)
        for cid, have in seeds.items():
            lacking = every - have
            if lacking and lacking <= set(stray.index):
                out[(cid, objective)] = (f"{objective} lacks seed {','.join(map(str, sorted(lacking)))} "
                                         f"({shortfall}); require_all_seeds drops cells without every seed")
    return out


def seed_notes(scoped: pd.DataFrame, cell_ids: list[str], label: str = "") -> list[str]:
    """One note per objective whose seeds cover different cells, saying what require_all_seeds did."""
    return [f"**{label}{objective}**: {why}; require_all_seeds=true keeps only cells complete in every seed "
            "(train the missing seeds for every cell, move the stray runs out of runs/, or set "
            "require_all_seeds=false)" for objective, why in seed_shortfalls(scoped, cell_ids).items()]
