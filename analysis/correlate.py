"""`python -m analysis.correlate`: rank correlations with uncertainty, noise ceilings, selection quality.

Reads every record of the study (and of the studies in `compare=[...]`), keeps the runs of one dataset
and budget per study, merges seeds per cell, keeps the cells complete for every objective, and compares
every objective and baseline (parameters, FLOPs, a random ranking) with the reference objective, and
with the ground truth where it is known (NAS-Bench-201's 200-epoch accuracies, or `truth=PATH`).
Writes tables, figures and report.md to `<study_dir>/analysis/` (`<study_dir>/analysis/compare-<labels>/`
when comparing studies, or `out=PATH`).
"""

from __future__ import annotations

if __name__ == "__main__":  # before the imports below: Ctrl-C while they load is one line too
    # start() runs the importable copy of this module: jobs sent through submitit pickle the task by
    # reference, and functions of `__main__` cannot be found in the job's process.
    from study.commands.entry import start

    start("analysis.correlate")

import logging
import math
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from omegaconf import DictConfig, OmegaConf

from analysis import caveats, combine, metrics, report, sources, summaries, tables, truth as truths
from analysis.baselines import trained_baselines
from analysis.completeness import (cell_status, dropped_cells, refusal_reasons, seed_notes, seed_reasons,
                                   summarize)
from analysis.load import cell_table, load_runs
from analysis.selection import random_ranking
from analysis.studies import (StudyData, StudySpec, budget_settings, chance_of, load_study, parse_compare, seed_table,
                              read_info, select_runs, shared_cells, summarise_runs)
from analysis.tables import BASELINES, RANDOM, correlations  # noqa: F401  (public API of this module)
from study.commands import settings
from study.commands.cli import hydra_entry
from study.errors import UserError
from study.store.cells import read_cells, space_words
from study.objectives.base import list_objectives
from study.store.records import read_record, room_to_write, write_error
from study.shell import command, hydra_value

log = logging.getLogger("analysis.correlate")

__all__ = ["Request", "parse", "check", "analyse", "task", "select_runs", "correlations", "BASELINES"]


@dataclass(frozen=True)
class Request:
    """A typed correlate command."""

    study_dir: Path
    reference: str
    metrics: dict[str, str]  # objective -> run summary (analysis/metrics.py); "*" for the others
    merge: str
    dataset: str | None
    budget: str | None
    space: str | None = None
    label: str | None = None
    compare: list[Any] = field(default_factory=list)
    bootstrap: int = 1000
    permutations: int = 1000
    trials: int = 1000
    seed: int = 0
    require_all_seeds: bool = True
    truth: str | None = None
    device: str | None = None
    precision: str | None = None
    out: Path | None = None  # the output folder; None = output_dir()'s default

    def __post_init__(self) -> None:
        if not isinstance(self.metrics, dict) or metrics.DEFAULT not in self.metrics:  # `best`, or a partial map
            object.__setattr__(self, "metrics", metrics.parse_map(self.metrics))


def parse(cfg: DictConfig) -> Request:
    """Typed values from the config."""
    metric, merge = OmegaConf.select(cfg, "metric"), OmegaConf.select(cfg, "merge")
    metric = OmegaConf.to_container(metric) if OmegaConf.is_config(metric) else metric
    if merge not in ("mean", "median"):
        raise UserError(f"merge must be mean or median, got {merge!r}")
    compare = OmegaConf.select(cfg, "compare", default=None)
    compare = OmegaConf.to_container(compare) if OmegaConf.is_config(compare) else compare
    return Request(settings.study_dir(cfg), str(cfg.reference), metrics.parse_map(metric), merge,
                   *(OmegaConf.select(cfg, f"{key}.name") for key in ("dataset", "budget")),
                   space=OmegaConf.select(cfg, "space.name"),
                   label=OmegaConf.select(cfg, "label"), compare=compare or [],
                   bootstrap=settings.positive_int(cfg, "bootstrap", "bootstrap"),
                   permutations=settings.positive_int(cfg, "permutations", "permutations"),
                   trials=settings.positive_int(cfg, "trials", "trials"),
                   seed=settings.integer(cfg, "seed", "seed"),
                   require_all_seeds=settings.boolean(cfg, "require_all_seeds"),
                   truth=_optional_str(OmegaConf.select(cfg, "truth", default=None)),
                   device=OmegaConf.select(cfg, "device"), precision=OmegaConf.select(cfg, "precision"),
                   out=_out(cfg))


def _optional_str(value: Any) -> str | None:
    """None for an unset option (null or empty), else its string."""
    return None if value is None or str(value).strip() == "" else str(value)


def _out(cfg: DictConfig) -> Path | None:
    """The `out=PATH` setting, or None."""
    value = OmegaConf.select(cfg, "out", default=None)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise UserError(f"out must be a folder path, got {value!r}; e.g. out=/tmp/analysis")
    return Path(settings.literal_folder(value, "out")).expanduser()


def output_dir(req: Request) -> Path:
    """Where the analysis goes: out=PATH, else <study_dir>/analysis, or its compare-<labels> subfolder
    when studies are compared (a comparison never overwrites the study's own analysis)."""
    if req.out is not None:
        return req.out
    if not req.compare:
        return req.study_dir / "analysis"
    labels = [primary_spec(req).label, *(s.label for s in parse_compare(req.compare, primary_spec(req)))]
    return req.study_dir / "analysis" / ("compare-" + "-".join(re.sub(r"[^\w.-]+", "_", x) for x in labels))


def _log_root(out: str | None, study_dir: str) -> str:
    """Root of this command's Hydra log folder: the out=PATH folder when given, else the study."""
    return study_dir if out is None else out


def primary_spec(req: Request) -> StudySpec:
    """The study whose folder receives the outputs."""
    label = req.label or req.study_dir.resolve().name
    return StudySpec(req.study_dir, label, req.dataset, req.budget, primary=True, device=req.device,
                     precision=req.precision)


def check(req: Request) -> None:
    """Refuse before writing anything: no sample, bad options, a compared study without a sample."""
    sample = read_cells(req.study_dir)
    for spec in parse_compare(req.compare, primary_spec(req)):
        read_cells(spec.study_dir)
    out = output_dir(req)
    if out.exists() and not out.is_dir():
        raise UserError(f"out={out} is a file; point out= at a folder (created when missing), e.g. out=$HOME/analysis")
    for folder, what in ([(out, "out=")] if req.out is not None else [(req.study_dir, "study_dir"), (out, "folder")]):
        room_to_write(folder, what, "write the analysis (and this command's logs) to a folder of your own with "
                      "out=PATH, e.g. out=$HOME/analysis")
    logging.disable(logging.WARNING)  # corrupted records are reported once, by the task
    try:
        done = select_runs(load_runs(req.study_dir), req)
    finally:
        logging.disable(logging.NOTSET)
    truth = study_truth(req)
    if req.truth is not None:  # a user's file that matches no cell is the wrong file: say so before any work
        truths.join(pd.DataFrame(sample), truth, required=True)
    if "/" not in req.reference and req.reference not in set(done["objective"]) and (
            truth is None or req.reference not in truth.columns):
        known = f" or a truth column ({', '.join(truth.columns)})" if truth is not None else ""
        if req.reference not in list_objectives():  # a typo: training an objective of that name cannot help
            have = sorted(set(done["objective"])) + (list(truth.columns) if truth is not None else [])
            raise UserError(f"reference={req.reference} is no objective; set reference= to one this study has: "
                            f"{', '.join(have) or 'none yet'}")
        raise UserError(f"no complete {req.reference!r} runs to compare against; train them "
                        f"({train_hint(req.study_dir, req.reference, done)}) or set reference=<objective>{known}")


def study_truth(req: Request) -> truths.Truth | None:
    """The truth this study is joined with: `truth=...` (analysis/sources.py), else the space's built-in one."""
    space = req.space or read_info(req.study_dir).get("sample", {}).get("space")
    return sources.for_study(space, req.truth)


def train_hint(study_dir: Path, objective: str, done: pd.DataFrame) -> str:
    """The train command for `objective` in this study, with the space, dataset and budget its other runs used."""
    words = [f"study_dir={hydra_value(study_dir)}", *space_words(study_dir), f"objective={objective}"]
    for key in ("dataset", "budget"):
        values = done[key].dropna().unique() if key in done.columns else []
        if len(values) == 1 and values[0] != "default" and not (key == "dataset" and values[0] == "digits"):
            words.append(f"{key}={values[0]}")
    return command("study.train", *words)


def _setup(req: Request, studies: list[StudyData], seeds: dict[str, list[int]], n_cells: int,
           chosen: dict[str, str]) -> dict[str, str]:
    """The rows of report.md's setup table."""
    primary = studies[0]
    sample = primary.info.get("sample", {})
    rows = {"study": str(req.study_dir)}
    for s in studies[1:]:
        rows[f"compared: {s.spec.label}"] = str(s.spec.study_dir)
    rows["space"] = str(sample.get("space", "?"))
    rows["cells sampled"] = f"{len(primary.cells)} (sample seed {sample.get('seed', '?')})"
    for s in studies:
        where = "" if s.spec.primary else f" ({s.spec.label})"
        rows[f"dataset{where}"] = str(s.scoped["dataset"].iloc[0])
        rows[f"budget{where}"] = budget_settings(s)
    rows["objectives (seeds)"] = ", ".join(f"{k} ({','.join(map(str, v))})" for k, v in seeds.items())
    rows["reference"] = req.reference
    shown = {o: m for o, m in chosen.items() if o in seeds}
    rows["metric"] = ("; ".join(f"{o}: {metrics.describe(m)}" for o, m in shown.items())
                      or metrics.describe(chosen[metrics.DEFAULT])) + f"; seeds merged by {req.merge}"
    if req.metrics.get(metrics.DEFAULT) == metrics.AUTO:
        rows["metric"] += " (metric=auto: each budget's measured summary, docs/ladder.md)"
    rows["cells analysed"] = f"{n_cells} (complete for every objective)"
    rows["statistics"] = (f"{req.bootstrap} bootstrap resamples, {req.permutations} permutations, "
                          f"{req.trials} random-experiment draws, seed {req.seed}")
    return rows


def _resolve_reference(req: Request, columns: list[str], label: str, done: pd.DataFrame,
                       truth: list[str]) -> str:
    """The reference column: a plain objective of the primary study or `<label>/<objective>`."""
    name = req.reference.removeprefix(f"{label}/")
    if name not in columns:
        raise UserError(f"no complete {req.reference!r} runs to compare against; train them "
                        f"({train_hint(req.study_dir, name, done)}) or set reference=<objective> "
                        f"(one of: {', '.join([*columns, *truth])})")
    return name


def analyse(req: Request) -> tuple[report.Results, pd.DataFrame, pd.DataFrame]:
    """All tables of one analysis, plus the tidy runs and the per-cell table to write."""
    primary = primary_spec(req)
    studies = [load_study(s) for s in [primary, *parse_compare(req.compare, primary)]]
    ids = shared_cells(studies[0], studies[1:])
    # A cell of this study that another study never sampled: say which study lacks it.
    absent = {c: "not sampled in " + ", ".join(o.spec.label for o in studies[1:] if c not in o.cells.index)
              + " (compared studies are joined on the cells they share)"
              for c in studies[0].cells.index if c not in set(ids)}
    status, values, per_seed, seeds = [], [], {}, {}
    why, seed_gaps = {}, []
    chosen: dict[str, str] = {}
    for s in studies:
        resolved = summarise_runs(s, req.metrics)
        chosen.update({s.spec.column(o): m for o, m in resolved.items() if o != metrics.DEFAULT})
        chosen.setdefault(metrics.DEFAULT, resolved[metrics.DEFAULT])
        st = cell_status(s.scoped, ids, req.require_all_seeds, known=list(s.cells.index))
        why.update(refusal_reasons(s.scoped, s.spec.column))  # a refused value: say which and where
        if req.require_all_seeds:  # name the seed a dropped cell lacks, not a bare "missing"
            why.update({(c, s.spec.column(o)): r for (c, o), r in seed_reasons(s.scoped, ids).items()})
            seed_gaps += seed_notes(s.scoped, ids, "" if s.spec.primary else f"{s.spec.label}/")
        val = cell_table(s.scoped, req.merge).reindex(index=ids, columns=st.columns)
        for objective in st.columns:
            per_seed[s.spec.column(objective)] = seed_table(s, objective, ids)
            seeds[s.spec.column(objective)] = sorted(int(v) for v in
                                                     s.scoped.loc[s.scoped["objective"] == objective, "seed"].unique())
        status.append(st.rename(columns=s.spec.column))
        values.append(val.where(st == "complete").rename(columns=s.spec.column))
    status, values = pd.concat(status, axis=1), pd.concat(values, axis=1)
    complete = status == "complete"
    empty = [c for c in status.columns if not complete[c].any()]
    objectives = [c for c in status.columns if c not in empty]
    truth = study_truth(req)
    truth_table = truths.columns_for(studies[0].cells, ids, truth, required=req.truth is not None,
                                     taken=[*status.columns, *BASELINES, RANDOM])
    truth_cols = list(truth_table.columns)
    reference = req.reference if req.reference in truth_cols else _resolve_reference(
        req, objectives, primary.label, studies[0].scoped, truth_cols)
    keep = complete[objectives].all(axis=1)
    if reference in truth_cols:
        keep &= truth_table[reference].reindex(keep.index).notna()
    if truth is not None and truth.common and truth_cols:  # the paper's cells common to every file, not pairwise
        keep &= truth_table[truth_cols].reindex(keep.index).notna().all(axis=1)
    baselines, baseline_shape = trained_baselines(studies[0].cells, studies[0].scoped, [reference, "supervised"],
                                                  read_record)
    cells = values[objectives][keep].join(baselines, how="left").join(truth_table, how="left")
    cells[RANDOM] = random_ranking(len(cells), req.seed)

    others = [o for o in objectives if o != reference]
    proxies = [*others, *BASELINES]
    noise = tables.seed_noise({c: per_seed[c].loc[cells.index] for c in objectives})
    # The truth is a benchmark's seed mean over full trainings: treated as exact, like the baselines.
    reliability = {**dict(zip(noise["objective"], noise["reliability"])), **{t: 1.0 for t in truth_cols}}
    stats = dict(bootstrap=req.bootstrap, permutations=req.permutations, seed=req.seed, reliability=reliability)
    corr = correlations(cells, reference, proxies, **stats)
    against_truth = truths.correlate(cells, [t for t in truth_cols if t != reference], objectives, reference,
                                     **stats)
    notes = [f"**{r.objective}**: ρ = {r.spearman:.2f} against a {reference} ceiling of {r.ref_ceiling:.2f}"
             + ("" if math.isnan(r.ceiling) else f" (its own ceiling given both seed noises: {r.ceiling:.2f})")
             for r in corr.itertuples() if r.kind == "objective" and not math.isnan(r.ref_ceiling)]
    notes += [f"**{r.objective}**: seeds disagree (seed-to-seed ρ = {r.seed_rho:.2f} ≤ 0), so its ranking is "
              "noise at this budget and no ceiling is defined; train longer or add seeds"
              for r in noise.itertuples() if r.seed_rho <= 0]
    notes += [f"{c}: no complete cell yet, left out of the analysis" for c in empty]
    notes = seed_gaps + notes
    columns = [*objectives, *BASELINES, *truth_cols, RANDOM]
    # Chance is an accuracy: it says nothing about an objective read by a loss.
    chance = {s.spec.column(o): chance_of(s, o) for s in studies for o in s.scoped["objective"].unique()
              if metrics.for_objective(chosen, s.spec.column(o)) in ("best", "final")}
    warnings = caveats.caveats(cells, objectives, corr, chance)
    setup = _setup(req, studies, seeds, len(cells), chosen)
    if baseline_shape:
        setup["params, FLOPs"] = f"of {baseline_shape}"
    if truth_cols:
        setup["ground truth"] = f"{truth.source}: {', '.join(truth_cols)}"
    main_truth = reference if reference in truth_cols else (truth_cols[0] if truth_cols else None)
    target = truths.target_table(corr, against_truth, reference, main_truth)
    judged = [o for o in objectives if o != target["reference"].iloc[0]] if len(target) else []
    own = [o for o in objectives if "/" not in o]  # the primary study's objectives: its runs are at hand
    summary = summaries.table(studies[0].scoped, own, cells, main_truth or reference, req.merge, req.bootstrap,
                              req.seed)
    results = report.Results(
        setup=setup, reference=reference, cells=cells, objectives=others,
        correlations=corr, noise=noise, selection=tables.selection(cells, reference, [reference, *proxies, RANDOM]),
        curves=tables.random_curves(cells, reference, [reference, *proxies, RANDOM], req.trials, req.seed),
        matrix=tables.rank_matrix(cells, columns), ecdf=tables.ecdf(cells, objectives),
        completeness=summarize(status, seeds), dropped=dropped_cells(status[objectives][~keep], absent, why),
        notes=notes, caveats=warnings, truth=against_truth, truth_column=main_truth,
        verdict=truths.verdict(corr, against_truth, reference, main_truth, objectives),
        summaries=summary, beyond=truths.beyond_size(target, judged),
        combined=combine.combinations(cells, main_truth or reference, [c for c in [*objectives, *BASELINES]
                                                                         if c != reference],
                                      bootstrap=req.bootstrap, seed=req.seed))
    runs = pd.concat([s.runs.assign(study=s.spec.label) for s in studies], ignore_index=True)
    names = [c for c in ("paper_id", "name") if c in studies[0].cells.columns]  # a listed cell's own ID
    table = studies[0].cells[["arch", *names]].join(baselines).join(values, how="left").join(truth_table, how="left")
    table[RANDOM] = cells[RANDOM]
    table["in_analysis"] = table.index.isin(cells.index)
    return results, runs[["study", *[c for c in runs.columns if c != "study"]]], table.rename_axis("cell_id")


def task(req: Request) -> None:
    """Compute the analysis and write tables, figures and report.md to <study_dir>/analysis/."""
    results, runs, cells = analyse(req)
    failed = runs[runs["status"] == "failed"]
    if len(failed):
        log.warning("leaving out %d failed run(s): %s", len(failed), "; ".join(
            f"{n} x {reason}" for reason, n in failed["reason"].fillna("?").value_counts().items()))
    results.setup["command"] = "`python -m analysis.correlate " + " ".join(sys.argv[1:]) + "`"
    out = output_dir(req)
    try:
        report.write(out, results, runs, cells)
    except OSError as e:  # a full disk or a folder gone read-only: each file is whole, old or new
        raise write_error(Path(getattr(e, "filename", None) or out), e) from None
    shown = results.correlations[["objective", "n_cells", "spearman", "spearman_low", "spearman_high",
                                  "p_value", "partial", "combined", "ceiling"]]
    log.info("completeness:\n%s", results.completeness.to_string(index=False))
    log.info("rank correlation with %s (%s):\n%s", results.reference, results.setup["metric"],
             shown.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    if len(results.truth):
        against = results.truth[["objective", "reference", "n_cells", "spearman", "spearman_low", "spearman_high",
                                 "partial", "partial_low", "partial_high", "combined"]]
        log.info("rank correlation with the ground truth:\n%s",
                 against.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    for note in [*results.verdict, *results.notes]:
        log.info("%s", note.replace("**", ""))
    for warning in results.caveats:
        log.warning("caution: %s", warning)
    log.info("wrote %s (see report.md)", out)


if not OmegaConf.has_resolver("log_root"):
    OmegaConf.register_new_resolver("log_root", _log_root)
main = hydra_entry("correlate", parse, check, task)
