"""`python -m analysis.paper truth=unnas:PATH space=darts`: the paper's figures from a truth source alone.

No study and no training: the columns of one truth source (the UnNAS paper's released results, above
all) are correlated with one of them, the reference, on the cells that have every chosen column, and
drawn as the paper draws them. The defaults reproduce UnNAS fig. 4 (ImageNet supervised accuracy against
the CIFAR-10 accuracy of each task) and fig. 5 (the random experiment against ImageNet accuracy);
`reference=unnas-cifar10-cls columns=[unnas-cifar10-rot,unnas-cifar10-col,unnas-cifar10-jig]` gives
fig. 2. Writes correlations.csv, random_experiment.csv, cells.csv, the figures and report.md to `out`.
"""

from __future__ import annotations

if __name__ == "__main__":  # before the imports below: Ctrl-C while they load is one line too
    from study.commands.entry import start

    start("analysis.paper")

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from omegaconf import DictConfig, OmegaConf

from analysis import sources, tables
from analysis.report import correlation_rows, markdown
from analysis.selection import QUANTILES, random_ranking, unnas_random_experiment
from analysis.tables import RANDOM
from analysis.unnas import column, paper_ids, unnas_keys
from study.commands import settings
from study.commands.cli import hydra_entry
from study.errors import UserError
from study.store.records import write_atomic, writable
from analysis import plots

log = logging.getLogger("analysis.paper")

FIG4 = [column("cifar10", t) for t in ("rot", "col", "jig", "cls")]  # the paper's panel order
# Spearman rho the paper prints in fig. 4 (ImageNet supervised vs each CIFAR-10 task), for comparison.
PUBLISHED = {("darts", "unnas-imagenet-cls"): dict(zip(FIG4, (0.82, 0.77, 0.87, 0.90))),
             ("nb101", "unnas-imagenet-cls"): dict(zip(FIG4, (0.74, 0.69, 0.79, 0.80)))}
SPACE_TITLES = {"darts": "DARTS search space", "nb101": "NAS-Bench-101 search space"}


@dataclass(frozen=True)
class Request:
    """A typed paper command."""

    space: str
    truth: str
    reference: str
    columns: list[str] | None
    out: Path
    bootstrap: int = 1000
    permutations: int = 1000
    trials: int | None = None  # None: fig5.py's own draws (ceil(500/m) per size, each column's cells, seed 2)
    seed: int = 0


def parse(cfg: DictConfig) -> Request:
    """Typed values from the config."""
    truth = OmegaConf.select(cfg, "truth", default=None)
    if not isinstance(truth, str) or not truth.strip():
        raise UserError("truth is required: truth=unnas:/path/to/unnas_summaries.zip (or any truth=... that "
                        "analysis.correlate takes)")
    columns = OmegaConf.select(cfg, "columns", default=None)
    if columns is not None:
        columns = [str(c) for c in (OmegaConf.to_container(columns) if OmegaConf.is_list(columns) else [columns])]
    out = OmegaConf.select(cfg, "out", default=None)
    if not isinstance(out, str) or not out.strip():
        raise UserError(f"out must be a folder path, got {out!r}; e.g. out=studies/unnas-darts")
    settings.literal_folder(out, "out")
    return Request(settings.space_name(cfg), truth, str(cfg.reference), columns, Path(out).expanduser(),
                   bootstrap=settings.positive_int(cfg, "bootstrap", "bootstrap"),
                   permutations=settings.positive_int(cfg, "permutations", "permutations"),
                   trials=None if cfg.get("trials") == "unnas" else settings.positive_int(cfg, "trials", "trials"),
                   seed=settings.integer(cfg, "seed", "seed"))


def check(req: Request) -> None:
    """Refuse a missing truth source or an unwritable output folder before reading anything."""
    sources.check_exists(req.truth)
    if not writable(req.out):
        raise UserError(f"out={req.out} is not writable; choose a folder of your own, e.g. out=$HOME/unnas")


def chosen_columns(req: Request, available: list[str]) -> list[str]:
    """The columns to correlate with the reference: as given, else fig. 4's, else every other column."""
    if req.reference not in available:
        raise UserError(f"reference={req.reference} is not a column of {req.truth} (columns: {', '.join(available)})")
    if req.columns is not None:
        missing = [c for c in req.columns if c not in available]
        if missing or not req.columns:
            raise UserError(f"columns {', '.join(missing) or '[]'} not in {req.truth}; choose among "
                            f"{', '.join(available)}")
        return [c for c in req.columns if c != req.reference]
    fig4 = [c for c in FIG4 if c in available and c != req.reference]
    if req.reference.startswith("unnas-imagenet") and fig4:
        return fig4
    return [c for c in available if c != req.reference]


def analyse(req: Request) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, list[str], str]:
    """Cells, correlations, random-experiment curves, the columns and the truth's description."""
    truth = sources.for_study(req.space, req.truth)
    if truth is None:
        raise UserError(f"truth={req.truth} names no truth for space {req.space}")
    columns = chosen_columns(req, truth.columns)
    # The paper's rule: the cells that have every column (its figures use the architectures common to all).
    cells = truth.table[[req.reference, *columns]].dropna()
    if len(cells) < 3:
        raise UserError(f"only {len(cells)} cell(s) have {req.reference} and every one of {', '.join(columns)}; "
                        "choose other columns")
    cells[RANDOM] = random_ranking(len(cells), req.seed)
    stats = dict(bootstrap=req.bootstrap, permutations=req.permutations, seed=req.seed)
    corr = tables.correlations(cells, req.reference, [*columns, RANDOM], **stats)
    published = PUBLISHED.get((req.space, req.reference), {})
    corr["paper"] = corr["objective"].map(published).astype(float)
    proxies = [req.reference, *columns, RANDOM]
    if req.trials is None:
        curves = fig5_curves(truth.table.assign(**{RANDOM: cells[RANDOM]}), req.reference, proxies, req.space)
    else:
        curves = tables.random_curves(cells, req.reference, proxies, req.trials, req.seed)
    if truth.key == "canonical" and req.space in ("darts", "nb101"):
        cells.insert(0, "paper_id", cells.index.map(paper_ids(req.space)))
    return cells, corr, curves, columns, truth.source


def fig5_curves(table: pd.DataFrame, reference: str, proxies: list[str], space: str) -> pd.DataFrame:
    """The random experiment as unnas' figs/fig5.py draws it: each column on its own cells (those it shares
    with the reference), in the order of unnas' keys, seed 2, ceil(500/m) draws per size m."""
    keys = unnas_keys(space) if space in ("darts", "nb101") else {}
    order = sorted(table.index, key=lambda k: keys.get(k, k))
    table = table.loc[order]
    parts = [unnas_random_experiment(table[name], table[reference]).assign(objective=name,
                                                                           kind=tables.kind_of(name, reference))
             for name in proxies]
    return pd.concat(parts, ignore_index=True)[["objective", "kind", "size", "trials", "mean", "std", *QUANTILES]]


def render(req: Request, cells: pd.DataFrame, corr: pd.DataFrame, columns: list[str], source: str) -> str:
    """report.md: what was read, the correlations beside the paper's, the figures."""
    rows = correlation_rows(corr).drop(columns=["kind", "ceiling"])
    rows["paper"] = corr["paper"].map(lambda v: "–" if math.isnan(v) else f"{v:.2f}")
    return "\n".join([
        f"# {SPACE_TITLES.get(req.space, req.space)}: {req.reference} against {', '.join(columns)}", "",
        f"Truth: {source}. {len(cells)} cells have every column. Regenerated by `python -m analysis.paper`.", "",
        markdown(rows), "",
        "Intervals: 95% percentile bootstrap over cells. p: two-sided permutation test. paper: the ρ the UnNAS "
        "paper prints for the same pair (fig. 4), where it prints one.", "",
        "![paper](paper.png)", "", "*The paper's layout: each column against the reference, Theil-Sen line.*", "",
        "![random experiment](random_experiment_paper.png)", "",
        "*The random experiment: reference accuracy of each column's pick among m random cells (mean, two-SD band; "
        + (("ceil(500/m) draws per m on each column's own cells, seed 2, as unnas' figs/fig5.py).*")
           if req.trials is None else f"{req.trials} nested draws per m on the cells every column has).*"), ""])


def task(req: Request) -> None:
    """Compute and write the tables, the two figures and report.md."""

    cells, corr, curves, columns, source = analyse(req)
    out = req.out
    out.mkdir(parents=True, exist_ok=True)
    write_atomic(out / "correlations.csv", corr.to_csv(index=False, float_format="%.4f"))
    write_atomic(out / "random_experiment.csv", curves.to_csv(index=False, float_format="%.5f"))
    write_atomic(out / "cells.csv", cells.to_csv(float_format="%.5f"))
    title = SPACE_TITLES.get(req.space, req.space)
    plots.save(plots.paper_panels(cells, req.reference, columns, corr, title), out / "paper")
    plots.save(plots.paper_random(curves, req.reference, title), out / "random_experiment_paper")
    write_atomic(out / "report.md", render(req, cells, corr, columns, source))
    shown = corr[["objective", "n_cells", "spearman", "spearman_low", "spearman_high", "paper"]]
    log.info("Spearman rho with %s on %d cells:\n%s", req.reference, len(cells),
             shown.to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    log.info("wrote %s (see report.md)", out)


main = hydra_entry("paper", parse, check, task)
