"""Which cells each objective has finished: complete, failed or missing, and why a cell left the analysis.

A cell is complete for an objective when it has a complete run for every seed trained under that
objective (the paper keeps the cells present in every (objective, seed)); with `require_all_seeds=false`
one complete seed suffices. Otherwise it is failed when one of its runs failed, else missing.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

STATUSES = ("complete", "failed", "missing")


def cell_status(scoped: pd.DataFrame, cell_ids: list[str], require_all_seeds: bool = True) -> pd.DataFrame:
    """Status of every cell (rows, in the given order) under every objective (columns)."""
    unknown = sorted(set(scoped["cell_id"]) - set(cell_ids))
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


def dropped_cells(status: pd.DataFrame, extra: dict[str, str] | None = None) -> pd.DataFrame:
    """Cells left out of the analysis and why: every objective for which they are not complete."""
    rows = [{"cell_id": cid, "reason": why} for cid, why in (extra or {}).items()]
    for cid, row in status.iterrows():
        bad = [f"{name} {value}" for name, value in row.items() if value != "complete"]
        if bad:
            rows.append({"cell_id": cid, "reason": "; ".join(bad)})
    return pd.DataFrame(rows, columns=["cell_id", "reason"])
