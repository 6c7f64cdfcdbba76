"""Read a study's records into one tidy DataFrame (one row per run) and average seeds per cell."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from study.store.cells import read_cells
from study.store.records import iter_records

log = logging.getLogger(__name__)

RUN_COLUMNS = ["cell_id", "arch", "objective", "seed", "space", "dataset", "budget", "identity", "status",
               "dataset_fingerprint", "device", "precision",
               "reason", "test_acc_best", "test_acc_final", "score", "best_epoch", "epochs", "params", "wall_s",
               "cpu_s", "fused", "train_losses", "test_losses", "path"]


def load_runs(study_dir: Path) -> pd.DataFrame:
    """Every readable record as a row; unreadable ones are skipped with a warning naming the file."""
    rows = [{**{k: rec.get(k) for k in RUN_COLUMNS}, **trained_on(rec), **curves(rec), "path": str(path)}
            for path, rec in iter_records(study_dir)]
    runs = pd.DataFrame(rows, columns=RUN_COLUMNS)
    for column in ("test_acc_best", "test_acc_final"):  # a training-free objective's value is its score
        runs[column] = runs[column].astype(float).fillna(runs["score"].astype(float))
    return runs.astype({"seed": "Int64"}) if len(runs) else runs


def curves(rec: dict) -> dict[str, list | None]:
    """The per-epoch training and test losses of a run (None where a record has none: older records have
    no test loss, training-free ones neither)."""
    history = rec.get("history") if isinstance(rec.get("history"), dict) else {}
    return {"train_losses": history.get("train_loss") or None, "test_losses": history.get("test_loss") or None}


def trained_on(rec: dict) -> dict[str, str]:
    """Device type and precision of a run; records from before they were written are CPU fp32 runs."""
    device = rec.get("device_type") or str(rec.get("device") or "cpu").split(":")[0]
    return {"device": device, "precision": rec.get("precision") or "fp32"}


def load_cells(study_dir: Path) -> pd.DataFrame:
    """The sample as a DataFrame indexed by cell id (params, FLOPs, strings)."""
    return pd.DataFrame(read_cells(study_dir)).set_index("id")


def cell_table(runs: pd.DataFrame, merge: str = "mean", column: str = "value") -> pd.DataFrame:
    """Complete runs pivoted to one row per cell and one column per objective, seeds merged.

    `column` holds each run's summary (analysis/metrics.py puts it in `value`).
    """
    done = runs[runs["status"] == "complete"]
    per_cell = done.groupby(["cell_id", "objective"])[column].agg(merge).unstack("objective")
    per_cell.columns.name = None
    return per_cell
