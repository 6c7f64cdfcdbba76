"""Read a study's records into one tidy DataFrame (one row per run) and average seeds per cell."""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import pandas as pd

from study.store.cells import read_cells
from study.store.records import iter_records

log = logging.getLogger(__name__)

RUN_COLUMNS = ["cell_id", "arch", "objective", "seed", "space", "dataset", "budget", "identity", "status",
               "dataset_fingerprint", "device", "precision",
               "reason", "test_acc_best", "test_acc_final", "score", "best_epoch", "epochs", "params", "wall_s",
               "cpu_s", "fused", "train_losses", "test_losses", "refused", "path"]
ACCURACIES = ("test_acc_best", "test_acc_final")


def load_runs(study_dir: Path) -> pd.DataFrame:
    """Every readable record as a row; unreadable ones are skipped with a warning naming the file.

    A complete record whose accuracy or score is not a number in range is a failed run here, with the
    problem in `refused` and a warning naming the file: its checksum only says the file is as written.
    """
    rows = []
    for path, rec in iter_records(study_dir):
        row = {**{k: rec.get(k) for k in RUN_COLUMNS}, **trained_on(rec), **curves(rec), "path": str(path)}
        problem = value_problem(rec) if rec.get("status") == "complete" else None
        if problem:
            log.warning("%s: %s; left out of the analysis (train the run again to replace it)", path, problem)
            row.update(status="failed", reason=problem, refused=problem, **{k: None for k in (*ACCURACIES, "score")})
        rows.append(row)
    runs = pd.DataFrame(rows, columns=RUN_COLUMNS)
    for column in ACCURACIES:  # a training-free objective's value is its score
        runs[column] = runs[column].astype(float).fillna(runs["score"].astype(float))
    return runs.astype({"seed": "Int64"}) if len(runs) else runs


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def value_problem(rec: dict) -> str | None:
    """Why a complete record's accuracies or score cannot be analysed (wrong type, out of range), or None."""
    for key in ACCURACIES:
        value = rec.get(key)
        if value is not None and not (_number(value) and 0 <= value <= 1):
            return f"{key} {str(value)[:40] if _number(value) else repr(value)[:40]} is not an accuracy from 0 to 1"
    score = rec.get("score")
    if score is not None and not _number(score):
        return f"score {repr(score)[:40]} is not a finite number"
    return None


def curves(rec: dict) -> dict[str, list | None]:
    """The per-epoch training and test losses of a run (None where a record has none: older records have
    no test loss, training-free ones neither; None too for a list that is not all numbers)."""
    history = rec.get("history") if isinstance(rec.get("history"), dict) else {}
    out = {}
    for key, column in (("train_loss", "train_losses"), ("test_loss", "test_losses")):
        values = history.get(key)
        numbers = isinstance(values, list) and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                                   for v in values)
        out[column] = values if numbers and values else None
    return out


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
