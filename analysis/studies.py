"""The studies an analysis reads: the primary one (where outputs go) and any it is compared with.

Each study is loaded on its own (its records, its sample, its run scope of one dataset and budget), and
the studies are then joined cell by cell on the canonical cell id, so their samples may be in any order
and need only overlap. Objectives of the primary study keep their plain names (`rotation`); those of a
compared study are named `<label>/<objective>` (`cifar10/rotation`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd

from analysis import caveats, metrics
from analysis.load import load_cells, load_runs
from study.errors import UserError
from study.store import cells as cells_store
from study.store.records import read_record
from study.commands.cli import CONF_DIR

log = logging.getLogger(__name__)

_SPEC_KEYS = {"dir", "label", "dataset", "budget", "device", "precision"}


class Scope(Protocol):
    """Where runs come from and which dataset and budget to keep (None: the only one there is).

    A scope may also name a `device` (cpu, cuda) and a `precision` (fp32, bf16) to keep.
    """

    study_dir: Path
    dataset: str | None
    budget: str | None


@dataclass(frozen=True)
class StudySpec:
    """One study to read: its folder, its name in column labels, and its dataset/budget choice."""

    study_dir: Path
    label: str
    dataset: str | None = None
    budget: str | None = None
    primary: bool = False
    device: str | None = None
    precision: str | None = None

    def column(self, objective: str) -> str:
        """Column name of one of this study's objectives in the joined cell table."""
        return objective if self.primary else f"{self.label}/{objective}"


@dataclass
class StudyData:
    """A loaded study: every run, the runs in scope, the sample and how it was drawn."""

    spec: StudySpec
    runs: pd.DataFrame     # every readable record, one row per run
    scoped: pd.DataFrame   # complete and failed runs of the chosen dataset, budget and settings
    cells: pd.DataFrame    # the sample, indexed by cell id
    info: dict[str, Any]   # study.json


def parse_compare(entries: Any, primary: StudySpec) -> list[StudySpec]:
    """Compared studies from `compare=[dir, ...]` or `compare=[{dir: ..., label: ..., dataset: ...}]`."""
    if entries is None:
        return []
    if isinstance(entries, (str, dict)):
        entries = [entries]
    specs: list[StudySpec] = []
    for entry in entries:
        if isinstance(entry, str):
            entry = {"dir": entry}
        if not isinstance(entry, dict) or "dir" not in entry or not set(entry) <= _SPEC_KEYS:
            raise UserError(f"compare entries are folders or {{dir: ..., label: ..., dataset: ..., budget: ...}}, "
                            f"got {entry!r}; e.g. compare=[/path/to/other_study]")
        path = Path(str(entry["dir"])).expanduser()
        label = str(entry.get("label") or path.name)
        specs.append(StudySpec(path, label, entry.get("dataset"), entry.get("budget"),
                               device=entry.get("device"), precision=entry.get("precision")))
    labels = [primary.label] + [s.label for s in specs]
    if len(set(labels)) != len(labels):
        raise UserError(f"studies need distinct labels, got {', '.join(labels)}; "
                        "name them, e.g. compare=[{dir: /a/b, label: cifar10}] label=imagenet")
    return specs


def select_runs(runs: pd.DataFrame, scope: Scope) -> pd.DataFrame:
    """Complete runs of a single space, dataset and budget, trained on the same data; refuses to mix them."""
    done = runs[runs["status"] == "complete"]
    if done.empty:
        raise UserError(f"no complete run records in {scope.study_dir}; train first: python -m study.train "
                        f"study_dir={scope.study_dir} -m objective=rotation,supervised")
    # Runs on another device type or in another precision are other runs (study.training.runner.Setup.identity):
    # mixing them would correlate numerics as much as architectures, so they are kept apart like budgets.
    keys = [k for k in ("space", "dataset", "budget", "device", "precision") if k in done.columns]
    for key in keys:  # every selection first: precision=bf16 alone may pick the GPU runs of a mixed study
        wanted = getattr(scope, key, None)
        if wanted is not None:
            done = done[done[key] == wanted]
            if done.empty:
                raise UserError(f"no complete runs with {key}={wanted} in {scope.study_dir}; "
                                f"drop the {key}= option to see what exists")
    for key in keys:
        values = sorted(done[key].unique())
        if len(values) > 1:
            raise UserError(f"{scope.study_dir} mixes runs of several {key}s ({', '.join(values)}); "
                            f"pick one with {key}=<name>")
    if "dataset_fingerprint" in done.columns and done["dataset_fingerprint"].dropna().nunique() > 1:
        raise UserError(f"runs of dataset {done['dataset'].iloc[0]} in {scope.study_dir} were trained on different "
                        f"data (fingerprints {', '.join(sorted(done['dataset_fingerprint'].dropna().unique()))}); "
                        "move the old runs out of runs/ or use a new study_dir")
    return newest_settings(done, scope.study_dir)


def newest_settings(done: pd.DataFrame, study_dir: Path) -> pd.DataFrame:
    """Per objective, the runs of the settings trained last when a budget's settings changed between runs
    (`budget.epochs=5` after the default): those are the runs asked for; one line names what is left out."""
    keep = []
    for objective, runs in done.groupby("objective", sort=False):
        if runs["identity"].nunique() == 1:
            keep.append(runs)
            continue
        when = runs["finished_at"].fillna("") if "finished_at" in runs else pd.Series("", index=runs.index)
        latest = when.groupby(runs["identity"]).max().sort_values(kind="stable").index[-1]
        left = runs[runs["identity"] != latest]
        log.warning("%s: %s has runs under %d settings of budget %s; analysing the newest (identity %s, %d runs) "
                    "and leaving out %d run(s) of identity %s (their folders under %s/runs/%s)", study_dir, objective,
                    runs["identity"].nunique(), runs["budget"].iloc[0], latest, int((runs["identity"] == latest).sum()),
                    len(left), ", ".join(sorted(left["identity"].unique())), study_dir, objective)
        keep.append(runs[runs["identity"] == latest])
    return pd.concat(keep) if keep else done


def scope_runs(runs: pd.DataFrame, scope: Scope) -> pd.DataFrame:
    """Complete runs (as `select_runs`) plus the failed runs of the same dataset, budget and settings."""
    done = select_runs(runs, scope)
    dataset, budget = done["dataset"].iloc[0], done["budget"].iloc[0]
    identity = done.groupby("objective")["identity"].first()
    failed = runs[(runs["status"] == "failed") & (runs["dataset"] == dataset) & (runs["budget"] == budget)]
    # A failed run counts when its objective has no complete run yet, or was trained with the same settings.
    same = failed["objective"].map(identity)
    failed = failed[same.isna() | (same == failed["identity"])]
    return pd.concat([done, failed], ignore_index=True)


def read_info(study_dir: Path) -> dict[str, Any]:
    """study.json, or {} when it is missing (older or hand-made studies); StudyError naming the fix when damaged."""
    return cells_store.read_info(study_dir)


def load_study(spec: StudySpec) -> StudyData:
    """Read one study's records and sample and keep the runs of its dataset and budget."""
    runs = load_runs(spec.study_dir)
    scoped = scope_runs(runs, spec)
    return StudyData(spec, runs, scoped, load_cells(spec.study_dir), read_info(spec.study_dir))


def shared_cells(primary: StudyData, others: list[StudyData]) -> list[str]:
    """Ids of the primary sample that every compared sample holds too; refuses disjoint samples."""
    ids = list(primary.cells.index)
    for other in others:
        held = set(other.cells.index)
        kept = [i for i in ids if i in held]
        if not kept:
            raise UserError(f"{other.spec.study_dir} shares no cell with {primary.spec.study_dir}; compare studies "
                            "sampled from the same space with the same seed (python -m study.sample seed=...)")
        if len(kept) < len(ids):
            log.info("%d cell(s) of %s are not in %s", len(ids) - len(kept), primary.spec.label, other.spec.label)
        ids = kept
    return ids


def seed_table(study: StudyData, objective: str, ids: list[str], column: str = "value") -> pd.DataFrame:
    """(cells, seeds) summaries of one objective's complete runs."""
    done = study.scoped[(study.scoped["objective"] == objective) & (study.scoped["status"] == "complete")]
    return done.pivot_table(index="cell_id", columns="seed", values=column, aggfunc="first").reindex(ids)


def budget_summary(study: StudyData, objective: str) -> str:
    """The summary the budget of an objective's runs names (its `summary`, from a record's config, else from
    conf/budget/<name>.yaml as it stands), else `best`: what `metric=auto` reads."""
    done = study.scoped[(study.scoped["objective"] == objective) & (study.scoped["status"] == "complete")]
    if done.empty:
        return "best"
    budget = ((read_record(Path(done["path"].iloc[0])) or {}).get("config") or {}).get("budget") or {}
    named = budget.get("summary")
    if named is None:  # runs trained before budgets named their summary
        from omegaconf import OmegaConf

        path = CONF_DIR / "budget" / f"{done['budget'].iloc[0]}.yaml"
        named = OmegaConf.load(path).get("summary") if path.is_file() else None
    return str(named) if named is not None and metrics.check(named) != metrics.AUTO else "best"


def resolve(study: StudyData, chosen: dict[str, str]) -> dict[str, str]:
    """The metric map with `auto` replaced by each objective's budget summary (one entry per objective)."""
    resolved = dict(chosen)
    for objective in study.scoped["objective"].unique():
        if metrics.for_objective(chosen, objective) == metrics.AUTO:
            resolved[objective] = budget_summary(study, objective)
    if resolved[metrics.DEFAULT] == metrics.AUTO:
        resolved[metrics.DEFAULT] = "best"
    return resolved


def summarise_runs(study: StudyData, chosen: dict[str, str]) -> dict[str, str]:
    """Each run's summary in `value` (`auto` resolved per objective; the resolved map is returned); a complete
    record without a finite one counts as failed, saying why."""
    chosen = resolve(study, chosen)
    scoped = study.scoped.copy()
    scoped["value"] = metrics.values(scoped, chosen)
    bad = (scoped["status"] == "complete") & ~np.isfinite(scoped["value"].to_numpy(float))
    if bad.any():
        names = scoped.loc[bad, "objective"].map(lambda o: metrics.for_objective(chosen, o))
        scoped.loc[bad, "reason"] = [f"complete record without a finite {m} value ({p})"
                                     for m, p in zip(names, scoped.loc[bad, "path"])]
        scoped.loc[bad, "refused"] = [f"complete record without a finite {m} value" for m in names]
        scoped.loc[bad, "status"] = "failed"
        log.warning("%d complete record(s) of %s have no finite value for the chosen summary; counted as failed: "
                    "%s", int(bad.sum()), study.spec.label, "; ".join(scoped.loc[bad, "reason"].head(3)))
    study.scoped = scoped
    return chosen


def budget_settings(study: StudyData) -> str:
    """`default (epochs 2, width 8, ...)` from the config stored in one of the study's records."""
    done = study.scoped[study.scoped["status"] == "complete"]
    rec = read_record(Path(done["path"].iloc[0])) or {}
    budget = (rec.get("config") or {}).get("budget") or {}
    keys = ("epochs", "width", "cells_per_stage", "batch_size", "lr")
    shown = ", ".join(f"{k} {budget[k]}" for k in keys if k in budget)
    return f"{done['budget'].iloc[0]} ({shown})" if shown else str(done["budget"].iloc[0])


def chance_of(study: StudyData, objective: str) -> float | None:
    """Chance accuracy of one of a study's objectives, from the config stored in one of its records."""
    done = study.scoped[(study.scoped["objective"] == objective) & (study.scoped["status"] == "complete")]
    if done.empty:
        return None
    rec = read_record(Path(done["path"].iloc[0])) or {}
    return caveats.chance_level(objective, rec.get("config"))
