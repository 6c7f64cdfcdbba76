"""Write an analysis to `<study_dir>/analysis/`: CSV tables, the LaTeX table, figures and report.md."""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from study.store.records import write_atomic
from analysis import plots  # matplotlib is slow to import; a refused command never needs it

log = logging.getLogger(__name__)

FIGURES = {"correlations": "Accuracy of each objective against the reference, robust (Theil-Sen) line, "
                           "Spearman's rho with its 95% bootstrap interval.",
           "rank_heatmap": "Spearman's rho between every pair of objectives and baselines.",
           "random_experiment": "Reference accuracy of the best-by-proxy cell among m cells drawn at random "
                                "(mean and 25-75% band over draws).",
           "accuracy_ecdf": "Distribution of the cells' accuracy under each objective.",
           "paper": "The paper's layout (UnNAS figs. 2-4): each objective's accuracy against the reference's (shared "
                    "axis), robust (Theil-Sen) line, Spearman's rho in the legend.",
           "random_experiment_paper": "The paper's random experiment (UnNAS fig. 5): reference accuracy of each "
                                      "objective's pick among m random cells, mean and two-SD band over draws.",
           "truth": "Each objective and the parameter count against the ground truth, robust (Theil-Sen) line, "
                    "Spearman's rho with its 95% bootstrap interval.",
           "beyond_size": "What each ranking knows beyond network size: Spearman's rho with the target, partial rho "
                          "given the parameter count, and rho of its mean rank with the parameter count (95% "
                          "bootstrap intervals); the grey line is the parameter count alone."}
_MAX_DROPPED_LISTED = 25


@dataclass
class Results:
    """Everything one analysis computed, ready to write."""

    setup: dict[str, str]           # label -> value, in the order shown
    reference: str
    cells: pd.DataFrame             # analysed cells: objectives, baselines, random ranking
    objectives: list[str]           # objective columns other than the reference (scatter panels)
    correlations: pd.DataFrame
    noise: pd.DataFrame
    selection: pd.DataFrame
    curves: pd.DataFrame
    matrix: pd.DataFrame
    ecdf: pd.DataFrame
    completeness: pd.DataFrame
    dropped: pd.DataFrame
    notes: list[str] = field(default_factory=list)
    truth: pd.DataFrame = field(default_factory=pd.DataFrame)  # correlations against each truth column
    truth_column: str | None = None  # the truth the figure and the verdict use
    verdict: list[str] = field(default_factory=list)  # does anything beat counting parameters?
    caveats: list[str] = field(default_factory=list)  # what the numbers cannot claim (analysis/caveats.py)
    summaries: pd.DataFrame = field(default_factory=pd.DataFrame)  # every run summary's rho (analysis/summaries.py)
    beyond: list[str] = field(default_factory=list)  # one sentence per objective: anything beyond size?
    combined: pd.DataFrame = field(default_factory=pd.DataFrame)  # label-free combinations (analysis/combine.py)


NO_INTERVAL = "—"


def _num(value: float, digits: int = 2) -> str:
    """A number for a table cell; a dash for NaN."""
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def _interval(row: pd.Series, stat: str) -> str:
    """`0.62 [0.41, 0.78]` from a correlations row."""
    low, high = row[f"{stat}_low"], row[f"{stat}_high"]
    if math.isnan(low):
        return _num(row[stat]) if math.isnan(row[stat]) else f"{_num(row[stat])} [{NO_INTERVAL}]"
    return f"{_num(row[stat])} [{_num(low)}, {_num(high)}]"


def _pvalue(p: float) -> str:
    """A permutation p-value: three decimals, `<0.001` below that."""
    return "–" if math.isnan(p) else ("<0.001" if p < 0.001 else f"{p:.3f}")


def correlation_rows(corr: pd.DataFrame) -> pd.DataFrame:
    """The correlations table as formatted strings (for Markdown and LaTeX)."""
    return pd.DataFrame({
        "objective": corr["objective"], "kind": corr["kind"], "n": corr["n_cells"].astype(str),
        "Spearman ρ [95% CI]": [_interval(r, "spearman") for _, r in corr.iterrows()],
        "Kendall τ [95% CI]": [_interval(r, "kendall") for _, r in corr.iterrows()],
        "p (perm.)": corr["p_value"].map(_pvalue), "ceiling": corr["ceiling"].map(_num),
        "partial ρ given params [95% CI]": [_interval(r, "partial") for _, r in corr.iterrows()],
        "ρ of mean rank with params [95% CI]": [_interval(r, "combined") for _, r in corr.iterrows()]})


def markdown(table: pd.DataFrame) -> str:
    """A DataFrame of strings (or numbers) as a GitHub Markdown table."""
    head = "| " + " | ".join(map(str, table.columns)) + " |"
    rule = "| " + " | ".join("---" for _ in table.columns) + " |"
    body = ["| " + " | ".join(str(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join([head, rule, *body])


def _tex(text: str) -> str:
    """Escape LaTeX's special characters in a plain string."""
    for char, escaped in (("\\", r"\textbackslash{}"), ("_", r"\_"), ("%", r"\%"), ("&", r"\&"), ("#", r"\#"),
                          ("$", r"\$"), ("–", "--"), ("—", "---")):
        text = text.replace(char, escaped)
    return text


def latex(corr: pd.DataFrame, reference: str) -> str:
    """The correlations table as a booktabs LaTeX tabular, ready for `\\input`."""
    head = (r"Objective & Kind & $n$ & Spearman $\rho$ [95\% CI] & Kendall $\tau$ [95\% CI] & $p$ & Ceiling & "
            r"Partial $\rho$ | params & $\rho$ with params \\")
    return _tabular(correlation_rows(corr), "llrllrrll", head, "rank correlation with " + _tex(reference))


def truth_rows(against: pd.DataFrame) -> pd.DataFrame:
    """The ground-truth table, wide: one row per objective or baseline, one ρ [CI] column per truth column."""
    rows = against.assign(rho=[_interval(r, "spearman") for _, r in against.iterrows()])
    wide = rows.pivot(index="objective", columns="reference", values="rho")
    order = list(dict.fromkeys(against["objective"]))
    kinds = dict(zip(against["objective"], against["kind"]))
    wide = wide.reindex(order)[list(dict.fromkeys(against["reference"]))]
    n = against.groupby("objective")["n_cells"].max().reindex(order).astype(str)
    return pd.concat([pd.DataFrame({"objective": order, "kind": [kinds[o] for o in order], "n": n.to_numpy()}),
                      wide.reset_index(drop=True).rename(columns=lambda c: f"ρ with {c} [95% CI]")], axis=1)


def truth_latex(against: pd.DataFrame) -> str:
    """The ground-truth table as a booktabs LaTeX tabular."""
    rows = truth_rows(against)
    truths = list(dict.fromkeys(against["reference"]))
    head = "Objective & Kind & $n$ & " + " & ".join(rf"$\rho$ with {_tex(t)}" for t in truths) + r" \\"
    return _tabular(rows, "llr" + "l" * len(truths), head, "Spearman rho [95\\% CI] with the ground truth")


def _tabular(rows: pd.DataFrame, align: str, head: str, comment: str) -> str:
    """A DataFrame of strings as a booktabs tabular with a header line and a comment line."""
    lines = [f"% {comment}; needs \\usepackage{{booktabs}}", rf"\begin{{tabular}}{{{align}}}", r"\toprule", head,
             r"\midrule"]
    for row in rows.itertuples(index=False):
        cells = (re.sub(r"(?<![\w.])-(?=\d)", "$-$", _tex(str(v))).replace("<", "$<$") for v in row)
        lines.append(" & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", ""]
    return "\n".join(lines)


def render(res: Results, figures: list[str]) -> str:
    """report.md: setup, completeness, correlations, noise ceiling, selection, figures."""
    ref = res.reference
    parts = [f"# Correlation study: {res.setup.get('study', '')}", "",
             "Regenerated by every run of `python -m analysis.correlate`; tables as CSV beside this file.", "",
             "## Setup", "", markdown(pd.DataFrame(list(res.setup.items()), columns=["", "value"])), "",
             "## Completeness", "", markdown(res.completeness), "",
             f"{len(res.cells)} cell(s) are complete for every objective and analysed; "
             f"{len(res.dropped)} dropped."]
    if len(res.dropped):
        shown = res.dropped.head(_MAX_DROPPED_LISTED)
        parts += ["", *[f"- `{r.cell_id}`: {r.reason}" for r in shown.itertuples()]]
        if len(res.dropped) > len(shown):
            parts.append(f"- ... {len(res.dropped) - len(shown)} more in dropped.csv")
    parts += ["", f"## Rank correlation with {ref} accuracy", "", markdown(correlation_rows(res.correlations)), "",
              "Intervals: 95% percentile bootstrap over cells (— where the resamples are degenerate: too few "
              "distinct values). p: two-sided permutation test of Spearman's rho. The two answer different "
              "questions (how much rho varies over resampled cells; how often shuffled accuracies match it), "
              "so on few or tied cells an interval can exclude 0 while p is large: the permutation p is the "
              "safer of the two there. Ceiling: the most this measure can correlate with the reference given the "
              "seed noise of both (sqrt of the product of their seed-mean reliabilities; parameters and FLOPs are exact).", "",
              *[f"**{line}**\n" for line in res.verdict],
              *(["## Caveats", "", *[f"- ⚠ {c}" for c in res.caveats], ""] if res.caveats else []),
              *_truth_section(res), *_beyond_section(res), *_combined_section(res), *_summaries_section(res),
              "## Noise ceiling", ""]
    if res.noise.empty or (res.noise["n_seeds"] <= 1).all():
        parts.append("Every objective has a single seed: train more (`seed=0,1` with `-m`) to measure the noise.")
    elif res.noise["reliability"].isna().all():
        parts.append("No objective has two seeds complete on enough analysed cells (at least 3) to measure "
                     "the noise; see the notes below for the seeds that cover fewer cells.")
    else:
        noise = res.noise.assign(**{c: res.noise[c].map(_num) for c in ("seed_rho", "reliability", "ceiling")})
        parts += [markdown(noise.rename(columns={"seed_rho": "seed-to-seed ρ", "reliability": "reliability of mean",
                                                 "ceiling": "ceiling √rel"})), "",
                  "Seed-to-seed ρ: mean Spearman between seeds, i.e. how well one run ranks like another. "
                  "Reliability of mean: its Spearman-Brown value for the seed average. No proxy can be "
                  "expected to correlate with the seed-averaged accuracy above √rel."]
    parts += ["", *res.notes]
    sel = res.selection.copy()
    for col in sel.columns:
        if col in ("top1_acc", "best_acc", "regret"):
            sel[col] = sel[col].map(lambda v: _num(100 * v, 1))
        elif col == "percentile":
            sel[col] = sel[col].map(lambda v: _num(v, 0))
        elif col.endswith("_overlap"):
            sel[col] = sel[col].map(_num)
    parts += ["", "## Selection quality", "",
              f"The cell each measure ranks first: its {ref} accuracy (%), regret against the best cell "
              "(points), percentile among cells, and the share of the top-k% by "
              f"{ref} that the measure also puts in its top-k%.", "", markdown(sel), "", "## Figures", ""]
    for stem in figures:
        parts += [f"![{stem}]({stem}.png)", "", f"*{FIGURES[stem]}* ([PDF]({stem}.pdf))", ""]
    return "\n".join(parts)


def _truth_section(res: Results) -> list[str]:
    """report.md's ground-truth section (empty when the study's cells have no known truth)."""
    if res.truth.empty:
        return []
    source = res.setup.get("ground truth", "")
    return ["## Against the ground truth", "",
            f"Spearman's ρ [95% bootstrap interval] of every objective and baseline with the ground truth ({source}), "
            "on the analysed cells that have it (truth.csv has Kendall's τ, p and ceilings too). A ranking is worth "
            "what it agrees with the truth: the parameter count is the bar any objective has to clear.", "",
            markdown(truth_rows(res.truth)), ""]


def _beyond_section(res: Results) -> list[str]:
    """What each objective knows beyond the parameter count, in sentences (report.md)."""
    if not res.beyond:
        return []
    return ["## Beyond size", "",
            "The parameter count alone ranks NAS-Bench-201-like spaces well, so much of any ρ can be size. Partial ρ: "
            "Spearman's ρ with the parameter count's rank partialled out (the correlation of the rank residuals); "
            "its 95% interval above 0 means the objective knows something the count does not. The mean rank of the "
            "objective and the count is the selector that uses both. All of it per column in correlations.csv and "
            "truth.csv.", "", *[f"- {line}" for line in res.beyond], ""]


def combined_rows(combined: pd.DataFrame) -> pd.DataFrame:
    """The combinations table as formatted strings."""
    return pd.DataFrame({
        "ranking": combined["ranking"], "how": combined["kind"], "members": combined["members"],
        "n": combined["n_cells"].astype(str),
        f"ρ with {combined['target'].iloc[0]} [95% CI]": [_interval(r, "spearman") for _, r in combined.iterrows()],
        "partial ρ given params [95% CI]": [_interval(r, "partial") for _, r in combined.iterrows()]})


def _combined_section(res: Results) -> list[str]:
    """Label-free rankings combined: equal-weight mean ranks, then the cross-validated upper bound."""
    if res.combined.empty:
        return []
    return ["## Label-free rankings combined", "",
            "Mean rank: the mean of the members' ranks, every member weighted alike; the sets are fixed by rule "
            "(analysis/combine.py), the same for every study, and chosen without the truth. Cross-validated weights: "
            "a rank regression fitted on 4/5 of the cells *with the target's values* and scored on the held-out fifth "
            "(5 folds x 5 shuffles): it uses the truth of other cells, so it is an upper bound, not a label-free "
            "result. combinations.csv has every number.", "", markdown(combined_rows(res.combined)), ""]


def summary_rows(summary: pd.DataFrame) -> pd.DataFrame:
    """The run-summary table as formatted strings."""
    return pd.DataFrame({
        "objective": summary["objective"], "summary": summary["metric"], "n": summary["n_cells"].astype(str),
        f"ρ with {summary['target'].iloc[0]} [95% CI]": [_interval(r, "spearman") for _, r in summary.iterrows()],
        "partial ρ given params [95% CI]": [_interval(r, "partial") for _, r in summary.iterrows()],
        "ρ of mean rank with params": summary["combined"].map(_num),
        "seed-to-seed ρ": summary["seed_rho"].map(_num), "CPU s per run": summary["cpu_s"].map(lambda v: _num(v, 1))})


def _summaries_section(res: Results) -> list[str]:
    """Which summary of a run (best or final accuracy, a loss, TSE) ranks best, per objective."""
    if res.summaries.empty:
        return []
    return ["## Which summary of a run ranks best", "",
            "The same runs read by every summary `metric=` offers (best, final: test accuracy; test_loss, "
            "train_loss: minus the last epoch's loss; tse, tse-E: minus the training loss summed over all or the "
            "last E epochs), against the same target on the analysed cells. Choose the summary per objective with "
            "`metric={rotation: train_loss, supervised: best}`; summaries.csv has every number.", "",
            markdown(summary_rows(res.summaries)), ""]


def draw(res: Results) -> dict[str, object]:
    """Every figure the results support, by file stem."""

    figs: dict[str, object] = {}
    if res.objectives and len(res.cells):
        figs["correlations"] = plots.scatter_panels(res.cells, res.reference, res.objectives, res.correlations)
    if res.objectives and len(res.cells):
        figs["paper"] = plots.paper_panels(res.cells, res.reference, res.objectives, res.correlations)
    if len(res.matrix.columns) >= 2:
        figs["rank_heatmap"] = plots.rank_heatmap(res.matrix)
    if len(res.curves):
        figs["random_experiment"] = plots.random_experiment(res.curves, res.reference)
        shown = [*res.objectives, res.reference, "random"]  # the paper's fig. 5 shows the objectives only
        figs["random_experiment_paper"] = plots.paper_random(res.curves[res.curves["objective"].isin(shown)],
                                                             res.reference)
    if len(res.ecdf):
        figs["accuracy_ecdf"] = plots.accuracy_ecdf(res.ecdf)
    if res.truth_column and len(res.cells):
        against = res.correlations if res.truth_column == res.reference else \
            res.truth[res.truth["reference"] == res.truth_column]
        shown = [o for o in against["objective"] if o != "flops"]
        figs["truth"] = plots.scatter_panels(res.cells, res.truth_column, shown, against)
    target = res.correlations if not res.truth_column or res.truth_column == res.reference else \
        res.truth[res.truth["reference"] == res.truth_column]
    if res.beyond and "partial" in target.columns:
        figs["beyond_size"] = plots.beyond_size(target)
    return figs


def write(out: Path, res: Results, runs: pd.DataFrame, cells: pd.DataFrame) -> list[Path]:
    """Write every table, figure and report.md into `out`; returns the files written."""
    out.mkdir(parents=True, exist_ok=True)
    tables = {"correlations.csv": res.correlations, "noise.csv": res.noise, "selection.csv": res.selection,
              "random_experiment.csv": res.curves, "completeness.csv": res.completeness,
              "dropped.csv": res.dropped, "summaries.csv": res.summaries, "combinations.csv": res.combined}
    written = []
    for name, table in tables.items():
        write_atomic(out / name, table.to_csv(index=False, float_format="%.4f"))
        written.append(out / name)
    write_atomic(out / "rank_matrix.csv", res.matrix.to_csv(float_format="%.4f"))
    write_atomic(out / "cells.csv", cells.to_csv(float_format="%.5f"))
    write_atomic(out / "runs.csv", runs.to_csv(index=False))
    write_atomic(out / "correlations.tex", latex(res.correlations, res.reference))
    written += [out / n for n in ("rank_matrix.csv", "cells.csv", "runs.csv", "correlations.tex")]
    for stale in ("truth.csv", "truth.tex"):  # every output is regenerated: no truth now means no truth table
        (out / stale).unlink(missing_ok=True)
    if not res.truth.empty:
        write_atomic(out / "truth.csv", res.truth.to_csv(index=False, float_format="%.4f"))
        write_atomic(out / "truth.tex", truth_latex(res.truth))
        written += [out / "truth.csv", out / "truth.tex"]

    figures = []
    for stem, fig in draw(res).items():
        written += [Path(p) for p in plots.save(fig, out / stem)]
        figures.append(stem)
    write_atomic(out / "report.md", render(res, figures))
    written.append(out / "report.md")
    return written
