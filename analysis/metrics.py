"""How a run is summarised by one number: its best or final test accuracy, or a loss, each signed so that
larger is better.

A short run's best test accuracy is not always the summary that ranks architectures best: at a few
epochs the training loss (how fast a network fits; the training-speed estimate of Ru et al., NeurIPS
2021) can rank them better. Which summary to read is chosen by measuring (docs/ladder.md), per objective
if need be: `metric=best`, `metric=train_loss`, or `metric={rotation: train_loss, supervised: best}`.

Summaries (the value of one run; its seeds are merged afterwards):
- `best`: best test accuracy over epochs (the paper's);
- `final`: test accuracy after the last epoch;
- `test_loss`: minus the last epoch's test loss;
- `train_loss`: minus the last epoch's mean training loss;
- `tse`: minus the sum of every epoch's mean training loss (TSE);
- `tse-E`: minus the sum over the last E epochs (TSE-E), e.g. `tse-2`;
- `auto` (the default): the summary the runs' budget names (`summary:` in conf/budget/<name>.yaml, chosen
  by the ladder's measurement, docs/ladder.md), else `best`.
A training-free objective's value is its score, whatever the summary.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import pandas as pd

from study.errors import UserError
from study.training.run import SUMMARIES, is_summary

NAMES = SUMMARIES
AUTO = "auto"  # the summary the budget the runs were trained with names (its `summary`), else `best`
DEFAULT = "*"  # the key of a metric map that applies to objectives it does not name
_DESCRIPTIONS = {
    "best": "best test accuracy", "final": "final test accuracy", "test_loss": "minus the final test loss",
    "train_loss": "minus the final training loss", "tse": "minus the summed training loss (TSE)",
}


def check(name: Any) -> str:
    """`name` if it is a summary (`tse-E` with E >= 1 included); UserError naming the choices otherwise."""
    text = str(name).strip()
    if text == AUTO or is_summary(text):
        return text
    raise UserError(f"unknown metric {name!r}; choose one of: auto, {', '.join(NAMES)}, tse-E (the last E epochs, "
                    "e.g. tse-2), or a map per objective, e.g. metric={rotation: train_loss, supervised: best}")


def describe(name: str) -> str:
    """The summary in words, for tables and the report."""
    if name.startswith("tse-"):
        return f"minus the training loss summed over the last {name[4:]} epochs (TSE-{name[4:]})"
    return _DESCRIPTIONS[name]


def parse_map(value: Any) -> dict[str, str]:
    """`best` or `{rotation: train_loss, ...}` (optionally with `"*": final` for the others) as a checked map."""
    if isinstance(value, Mapping):
        chosen = {str(k): check(v) for k, v in value.items()}
        return {DEFAULT: chosen.pop(DEFAULT, "best"), **chosen}
    return {DEFAULT: check(value)}


def for_objective(metrics: Mapping[str, str], objective: str) -> str:
    """The summary a metric map chooses for `objective` (or `<label>/objective` of a compared study)."""
    return metrics.get(objective, metrics.get(objective.rsplit("/", 1)[-1], metrics[DEFAULT]))


def _last(values: Any) -> float:
    return float(values[-1]) if isinstance(values, (list, tuple)) and values else math.nan


def value(run: Mapping[str, Any], name: str) -> float:
    """One run's summary (`run` holds a record's fields as load_runs reads them)."""
    score = run.get("score")
    if score is not None and not _missing(score):
        return float(score)  # a training-free objective
    if name in ("best", "final"):
        got = run.get(f"test_acc_{name}")
        return math.nan if got is None or _missing(got) else float(got)
    if name == "test_loss":
        return -_last(run.get("test_losses"))
    losses = run.get("train_losses")
    if not isinstance(losses, (list, tuple)) or not losses:
        return math.nan
    if name == "train_loss":
        return -float(losses[-1])
    last = len(losses) if name == "tse" else int(name[4:])
    if last > len(losses):
        return math.nan  # fewer epochs than the estimate sums over: not this summary
    return -float(sum(losses[-last:]))


def _missing(v: Any) -> bool:
    try:
        return bool(pd.isna(v))
    except (TypeError, ValueError):
        return False


def values(runs: pd.DataFrame, metrics: Mapping[str, str]) -> pd.Series:
    """Each run's summary under the map (per row, by the row's objective), as floats."""
    if runs.empty:
        return pd.Series(dtype=float, index=runs.index)
    return pd.Series([value(row, for_objective(metrics, str(row["objective"])))
                      for row in runs.to_dict("records")], index=runs.index, dtype=float)
