"""`python -m analysis.correlate`: rank correlations of every objective with the reference, tables, plots.

Reads every record of the study, keeps complete runs of one dataset and budget, averages seeds per cell,
keeps the cells present for every objective, and correlates each objective (and the parameter-count and
FLOPs baselines) with the reference objective's accuracy.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from omegaconf import DictConfig, OmegaConf

from analysis.load import cell_table, load_cells, load_runs
from analysis.plots import save, scatter_panels
from analysis.uncertainty import rank_correlations
from study import settings
from study.cli import hydra_entry
from study.errors import UserError
from study.records import read_cells

log = logging.getLogger("analysis.correlate")

BASELINES = ("params", "flops")


@dataclass(frozen=True)
class Request:
    """A typed correlate command."""

    study_dir: Path
    reference: str
    metric: str
    merge: str
    dataset: str | None
    budget: str | None
    space: str | None = None


def parse(cfg: DictConfig) -> Request:
    """Typed values from the config."""
    metric, merge = OmegaConf.select(cfg, "metric"), OmegaConf.select(cfg, "merge")
    if metric not in ("best", "final"):
        raise UserError(f"metric must be best or final, got {metric!r}")
    if merge not in ("mean", "median"):
        raise UserError(f"merge must be mean or median, got {merge!r}")
    return Request(settings.study_dir(cfg), str(cfg.reference), metric, merge,
                   *(OmegaConf.select(cfg, f"{key}.name") for key in ("dataset", "budget", "space")))


def check(cfg: DictConfig) -> None:
    """Refuse before writing anything: no sample, bad options, nothing to correlate."""
    req = parse(cfg)
    read_cells(req.study_dir)
    logging.disable(logging.WARNING)  # corrupted records are reported once, by the task
    try:
        select_runs(load_runs(req.study_dir), req)
    finally:
        logging.disable(logging.NOTSET)


def select_runs(runs: pd.DataFrame, req: Request) -> pd.DataFrame:
    """Complete runs of a single space, dataset and budget, with the reference; refuses to mix them silently."""
    done = runs[runs["status"] == "complete"]
    if done.empty:
        raise UserError(f"no complete run records in {req.study_dir}; train first: python -m study.train "
                        f"study_dir={req.study_dir} -m objective=rotation,supervised")
    for key in ("space", "dataset", "budget"):
        if key not in done.columns:
            continue
        wanted = getattr(req, key)
        if wanted is not None:
            done = done[done[key] == wanted]
            if done.empty:
                raise UserError(f"no complete runs with {key}={wanted}; drop the {key}= option to see what exists")
        values = sorted(done[key].unique())
        if len(values) > 1:
            raise UserError(f"the study mixes runs of several {key}s ({', '.join(values)}); "
                            f"pick one with {key}=<name>")
    if "dataset_fingerprint" in done.columns and done["dataset_fingerprint"].dropna().nunique() > 1:
        raise UserError(f"runs of dataset {done['dataset'].iloc[0]} were trained on different data (fingerprints "
                        f"{', '.join(sorted(done['dataset_fingerprint'].dropna().unique()))}); "
                        "move the old runs out of runs/ or use a new study_dir")
    variants = done.groupby("objective")["identity"].nunique()
    if (variants > 1).any():
        mixed = ", ".join(variants[variants > 1].index)
        raise UserError(f"objective(s) {mixed} have runs under different settings of the same budget name; "
                        "move the old ones out of runs/ or use a new study_dir")
    if req.reference not in set(done["objective"]):
        raise UserError(f"no complete {req.reference!r} runs to compare against; train them "
                        f"(python -m study.train objective={req.reference}) or set reference=<objective>")
    return done


def correlations(cells: pd.DataFrame, reference: str, proxies: list[str]) -> pd.DataFrame:
    """Spearman and Kendall of every proxy column against the reference column."""
    rows = []
    for name in proxies:
        pair = cells[[name, reference]].dropna()
        r = rank_correlations(pair[name].to_numpy(float), pair[reference].to_numpy(float))
        kind = "baseline" if name in BASELINES else "objective"
        rows.append({"objective": name, "kind": kind, "reference": reference, "n_cells": len(pair),
                     "spearman": r["spearman"], "kendall": r["kendall"]})
    return pd.DataFrame(rows)


def task(cfg: DictConfig) -> None:
    """Compute and write correlations.csv, cells.csv, runs.csv and the scatter figure."""
    req = parse(cfg)
    runs = load_runs(req.study_dir)
    failed = runs[runs["status"] == "failed"]
    if len(failed):
        log.warning("leaving out %d failed run(s): %s", len(failed), "; ".join(
            f"{n} x {reason}" for reason, n in failed["reason"].fillna("?").value_counts().items()))
    done = select_runs(runs, req)
    objectives = sorted(done["objective"].unique())
    table = cell_table(done, req.metric, req.merge)
    missing = table.isna()
    for name in objectives:
        if missing[name].any():
            log.info("dropping %d cell(s) without a complete %s run", int(missing[name].sum()), name)
    common = table.dropna()
    log.info("%d cells complete for every objective (%s)", len(common), ", ".join(objectives))
    sample = load_cells(req.study_dir)
    common = common.join(sample[list(BASELINES)], how="left")
    others = [o for o in objectives if o != req.reference]
    result = correlations(common, req.reference, others + list(BASELINES))

    out = req.study_dir / "analysis"
    out.mkdir(parents=True, exist_ok=True)
    result.to_csv(out / "correlations.csv", index=False, float_format="%.4f")
    common.rename_axis("cell_id").to_csv(out / "cells.csv", float_format="%.5f")
    runs.to_csv(out / "runs.csv", index=False)
    if others:
        rho = dict(zip(result["objective"], result["spearman"]))
        save(scatter_panels(common, req.reference, others, rho), out / "correlations")
    log.info("rank correlation with %s accuracy (%s, seeds merged by %s):\n%s", req.reference, req.metric,
             req.merge, result.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    log.info("wrote %s", ", ".join(str(out / f) for f in ("correlations.csv", "correlations.png", "cells.csv")))


main = hydra_entry("correlate", task, check)

if __name__ == "__main__":
    main()
