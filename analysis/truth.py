"""Ground truth: accuracies of fully trained architectures, joined to a study's cells by architecture.

A study ranks cells by what it trained cheaply; the truth says how good the cells really are. A space
with a benchmark ships it (`Space.benchmark`; NAS-Bench-201: the 200-epoch test accuracies of all 15,625
cells on CIFAR-10, CIFAR-100 and ImageNet16-120, study/spaces/nb201/data/, see NOTICE.md there).
For any space, `truth=PATH` names a CSV of `arch,<column>,...` written by the user.

Both are joined on the `arch` string of the cell that was trained (cells.jsonl), exactly: members of one
canonical class were trained separately by the benchmark and their accuracies differ, so the truth of a
cell is that of the very architecture the study trained.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from pathlib import Path

import math

import pandas as pd

from analysis.tables import BASELINES, correlations
from study.errors import UserError
from study.spaces import SPACES, benchmark_of
from study.spaces.benchmark import Benchmark

log = logging.getLogger(__name__)


class TruthError(UserError):
    """A truth file that cannot be read or joined."""


@dataclass(frozen=True)
class Truth:
    """Truth columns for architectures: `table` is indexed by arch string, one float column per measure."""

    source: str             # what it is, for the report ("NAS-Bench-201 (200 epochs)" or the file's path)
    table: pd.DataFrame
    key: str = "arch"       # the cells.jsonl column the table's index matches (arch, canonical, paper_id, ...)
    common: bool = False    # compare only cells that have every column (the UnNAS paper's rule, fig234.py)

    @property
    def columns(self) -> list[str]:
        """The truth measures, in file order."""
        return list(self.table.columns)


def _builtin_table(bench: Benchmark) -> pd.DataFrame:
    # Cached by the file and its columns: a Benchmark holds dicts, so it cannot be a cache key itself.
    return _read_table(bench.file, tuple(bench.columns.items())).copy()


@functools.lru_cache(maxsize=4)
def _read_table(file: Path, columns: tuple[tuple[str, str], ...]) -> pd.DataFrame:
    table = pd.read_csv(file, compression="gzip")
    return table.set_index("arch")[[c for c, _ in columns]].rename(columns=dict(columns))


def builtin(space: str | None) -> Truth | None:
    """The space's own benchmark (NAS-Bench-201's 200-epoch test accuracies of all 15,625 cells), as fractions
    like a study's accuracies; None for a space without one."""
    bench = benchmark_of(space) if space else None
    return None if bench is None else Truth(bench.name, _builtin_table(bench) / 100.0)


def what_ranks(column: str) -> str:
    """What a benchmark says about ranking its cells cheaply, for the benchmark that has `column` ('' if none)."""
    for name in SPACES.names():
        bench = benchmark_of(name)
        if bench is not None and column in bench.columns.values():
            return bench.notes.get("what_ranks", "")
    return ""


# Columns a user's truth file may be keyed by: any column cells.jsonl holds that names a cell.
KEY_COLUMNS = ("arch", "paper_id", "name", "canonical", "nb201_key", "nb101_hash", "darts_genotype")


def read_truth_csv(path: str | Path) -> Truth:
    """A user's truth file: a CSV with a key column (`arch`, or another of KEY_COLUMNS) and numeric columns."""
    path = Path(path).expanduser()
    fix = "give a CSV with a header `arch,<measure>,...` and one row per architecture"
    try:
        table = pd.read_csv(path, dtype={k: str for k in KEY_COLUMNS})  # IDs like 00004 stay strings
    except FileNotFoundError:
        raise TruthError(f"truth file {str(path)!r} does not exist; {fix}") from None
    except (OSError, ValueError, pd.errors.ParserError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise TruthError(f"truth file {str(path)!r} does not parse as CSV ({first}); {fix}") from None
    key = next((k for k in KEY_COLUMNS if k in table.columns), None)
    if key is None:
        raise TruthError(f"truth file {str(path)!r} has no `arch` column (columns: {', '.join(map(str, table.columns))}); "
                         f"{fix}")
    measures = [c for c in table.columns if c not in KEY_COLUMNS]  # other keys are labels, not measures
    if not measures:
        raise TruthError(f"truth file {str(path)!r} has no measure column; {fix}")
    numeric_measures(table, measures, key, f"truth file {str(path)!r}", fix)
    table[key] = table[key].astype(str).str.strip()
    dup = table[key][table[key].duplicated()]
    if len(dup):
        raise TruthError(f"truth file {str(path)!r} lists architecture {dup.iloc[0]!r} more than once; "
                         "keep one row per architecture (average repeated runs first)")
    return Truth(str(path), table.set_index(key)[measures].astype(float), key=key)


def numeric_measures(table: pd.DataFrame, measures: list[str], key: str, source: str, fix: str) -> None:
    """TruthError naming the first row of `table` whose value in one of `measures` is not a finite number."""
    for column in measures:
        values = table[column]
        numbers = (pd.Series(float("nan"), index=values.index) if pd.api.types.is_bool_dtype(values)
                   else pd.to_numeric(values, errors="coerce").astype(float))
        wrong = values.notna() & ~numbers.abs().lt(float("inf"))  # text, true/false, inf; an empty cell is NaN
        if wrong.any():
            i = wrong.to_numpy().nonzero()[0][0]
            raise TruthError(f"{source} has non-numeric column(s) {column}: {str(values.iloc[i])[:40]!r} (not a "
                             f"finite number) in the row of {str(table[key].iloc[i])[:60]!r}; {fix}")


def for_study(space: str | None, path: str | None) -> Truth | None:
    """The truth an analysis joins: the user's file when given, else the built-in one of the space, if any."""
    if path:
        return read_truth_csv(path)
    return builtin(space)


def join(cells: pd.DataFrame, truth: Truth, required: bool) -> pd.DataFrame:
    """Truth columns for the study's cells (indexed like `cells`, which has an `arch` column).

    A user's file (`required`) that matches none of the cells is refused: it is the wrong file or the
    wrong string form. Partial matches are fine (the analysis uses the cells that have a value).
    """
    keys = cells[truth.key] if truth.key in cells.columns else pd.Series(pd.NA, index=cells.index)
    joined = truth.table.reindex(keys.astype(str).str.strip().to_numpy())
    joined.index = cells.index
    matched = int(joined.notna().any(axis=1).sum())
    if required and matched == 0:
        example = truth.table.index[0] if len(truth.table) else "?"
        first = cells[truth.key].iloc[0] if truth.key in cells.columns else f"a study without {truth.key}"
        raise TruthError(f"truth file {truth.source!r} matches no cell of the study by {truth.key} (the study's first "
                         f"is {first!r}, the file's first {example!r}); write the architectures as cells.jsonl does")
    if matched < len(cells):
        log.info("truth (%s) known for %d of %d cells", truth.source, matched, len(cells))
    return joined


def columns_for(cells: pd.DataFrame, ids: list[str], truth: Truth | None, required: bool,
                taken: list[str]) -> pd.DataFrame:
    """The truth columns that match at least one of the cells `ids` (of `cells`, indexed by cell id).

    Refuses a truth column named like an objective or baseline (`taken`): both would land in one table.
    """
    if truth is None:
        return pd.DataFrame(index=cells.index)
    joined = join(cells, truth, required=required)
    joined = joined[[c for c in joined.columns if joined.loc[ids, c].notna().any()]]
    clash = sorted(set(joined.columns) & set(taken))
    if clash:
        raise TruthError(f"truth column(s) {', '.join(clash)} of {truth.source} have the name of an objective or "
                         "baseline; rename them in the truth file")
    return joined


def correlate(cells: pd.DataFrame, columns: list[str], objectives: list[str], reference: str,
              **stats) -> pd.DataFrame:
    """Every objective (the reference included) and baseline against each truth column, one block per column."""
    parts = []
    for column in columns:
        part = correlations(cells, column, [*objectives, *BASELINES], **stats)
        part.loc[part["objective"] == reference, "kind"] = "reference"
        parts.append(part)
    return pd.concat(parts, ignore_index=True) if parts else correlations(cells, reference, [], **stats)


def verdict(main: pd.DataFrame, against: pd.DataFrame, reference: str, column: str | None,
            objectives: list[str]) -> list[str]:
    """Plain sentences: does the reference, or any objective, rank cells better than parameters do?"""
    if column is None:
        return []
    table = main if reference == column else against[against["reference"] == column]
    rho = dict(zip(table["objective"], table["spearman"]))
    params = rho.get("params", math.nan)
    if math.isnan(params):
        return []
    lines = []
    if reference != column and not math.isnan(rho.get(reference, math.nan)):
        better = rho[reference] > params
        lines.append(f"Against the ground truth ({column}), the reference {reference} ranks these cells at "
                     f"ρ = {rho[reference]:.2f} and the parameter count at ρ = {params:.2f}: the reference ranks "
                     + ("them better than counting parameters does." if better else
                        "them worse than counting parameters does, so agreeing with it says little about which "
                        "cells are good."))
    trained = {o: rho[o] for o in objectives if o in rho and not math.isnan(rho[o])}
    if trained and max(trained.values()) <= params:
        low = dict(zip(table["objective"], table["spearman_low"])) if "spearman_low" in table else {}
        chance = all(low.get(o, math.nan) <= 0 for o in trained)  # every interval reaches zero
        lines.append(
            f"No objective of this study ranks cells better than counting parameters (ρ = {params:.2f} with "
            f"{column}): at this budget the study does not rank architectures"
            + (f", and no objective ranks them better than chance (every 95% interval of ρ with {column} "
               "includes 0)" if chance else "")
            + (f". {what_ranks(column)}" if what_ranks(column) else
               "; use a larger budget or data closer to the truth's."))
    return lines


def target_table(main: pd.DataFrame, against: pd.DataFrame, reference: str, column: str | None) -> pd.DataFrame:
    """The correlations with the analysis's main target: the truth column when there is one, else the reference."""
    if column is None or column == reference:
        return main
    return against[against["reference"] == column]


def _interval(low: float, high: float) -> str:
    return "" if math.isnan(low) else f" [{low:.2f}, {high:.2f}]"


def beyond_size(table: pd.DataFrame, objectives: list[str]) -> list[str]:
    """One sentence per objective (training-free scores included): does it rank beyond network size?

    `table` is a correlations table against one target with the partial and combined columns. An objective
    carries information beyond size when its partial rho's 95% interval lies above 0.
    """
    rows = {r.objective: r for r in table.itertuples()}
    params = rows.get("params")
    if params is None or math.isnan(getattr(params, "spearman", math.nan)):
        return []
    target = params.reference
    lines = []
    for name in objectives:
        r = rows.get(name)
        if r is None or math.isnan(r.partial):
            continue
        p = "p < 0.001" if r.partial_p < 0.001 else f"p = {r.partial_p:.3f}"
        partial = f"partial ρ = {r.partial:.2f}{_interval(r.partial_low, r.partial_high)} given params ({p})"
        combined = (f"ranked by the mean of its and the parameter count's ranks, ρ = {r.combined:.2f}"
                    f"{_interval(r.combined_low, r.combined_high)}, where the parameter count alone gets "
                    f"{params.spearman:.2f} and {name} alone {r.spearman:.2f}")
        if r.partial_low > 0:
            lines.append(f"**{name}** ranks cells by more than their size: {partial} with {target}; {combined}.")
        else:
            lines.append(f"**{name}** shows nothing beyond size with {target} at this budget: {partial}; {combined}.")
    return lines
