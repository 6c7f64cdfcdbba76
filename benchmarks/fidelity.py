"""Which trained ranking knows more than size: every objective and run summary of the ladder's studies
against NAS-Bench-201's three truths, beside the parameter count, and the rankings that combine them.

For each study (one per rung, trained by benchmarks/ladder.py or by hand with the same recipes) and each
truth column (nb201-cifar10, nb201-cifar100, nb201-imagenet16-120), it runs the analysis with that truth as
the reference and reads, per trained objective and summary of a run (analysis/metrics.py): Spearman's rho
with the truth and its 95% bootstrap interval, the partial rho given the parameter count (interval), the rho
of the mean rank with the count, the seed-to-seed rho and the CPU seconds per run. Training-free scores in
the study (naswot, synflow, ...) are rows too, with a column saying which read labels. Then the label-free
combinations of analysis/combine.py (equal-weight mean ranks over rule-fixed sets, and a cross-validated
weighting that uses the truth of other cells: an upper bound), each with its partial rho given params; and,
as exploration only, pairs and triples with the count where each objective's summary was picked by its rho
with the same truth (not held out).

    python benchmarks/fidelity.py --studies studies/ladder/c16-c8-e3-n10k studies/ladder/c16-c8-e3-n5k ...

Results: benchmarks/results/fidelity.{md,json}.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from analysis import metrics  # noqa: E402
from analysis.uncertainty import bootstrap_ci, rank_correlations  # noqa: E402

TRUTHS = ("nb201-cifar10", "nb201-cifar100", "nb201-imagenet16-120")
LABEL_FREE = ("rotation", "jigsaw", "colorization", "contrastive")


def _scores() -> tuple[list[str], list[str]]:
    """The registry's training-free objectives: all of them, and those that read no label."""
    from study.objectives import list_objectives
    from study.objectives.base import objective_class

    every = [n for n in list_objectives() if not objective_class(n).trains]
    return every, [n for n in every if not objective_class(n).uses_labels]


SCORES, FREE_SCORES = _scores()


def _uses_labels(column: str) -> bool:
    """Whether an objective column reads labels, as its class says (baselines read none)."""
    from analysis.caveats import objective_entry

    entry = objective_entry(column)
    return bool(entry is not None and entry.uses_labels)


def analyse(study: Path, truth: str, bootstrap: int) -> Any:
    """The analysis of one study with one truth column as its reference (analysis.correlate's own code)."""
    from analysis.correlate import Request, analyse as run

    request = Request(study, truth, {metrics.DEFAULT: "best"}, "mean", None, None, bootstrap=bootstrap,
                      permutations=bootstrap, trials=20)
    return run(request)


def per_cell(runs: pd.DataFrame, objective: str, summary: str, ids: pd.Index) -> pd.Series:
    """One objective's runs read by one summary, seeds averaged, on the analysed cells (a cell lacking a seed: NaN)."""
    done = runs[(runs["objective"] == objective) & (runs["status"] == "complete")]
    done = done.assign(value=metrics.values(done, {metrics.DEFAULT: summary}))
    table = done.pivot_table(index="cell_id", columns="seed", values="value", aggfunc="first").reindex(ids)
    return table.mean(axis=1).where(table.notna().all(axis=1))


def mean_rank(columns: list[pd.Series]) -> pd.Series:
    """The mean of the columns' ranks (larger is better in every column)."""
    return pd.concat([c.rank() for c in columns], axis=1).mean(axis=1, skipna=False)


def rho(x: pd.Series, y: pd.Series, bootstrap: int) -> dict[str, float]:
    """Spearman rho with a 95% bootstrap interval over cells."""
    low, high = bootstrap_ci(x.to_numpy(float), y.to_numpy(float), "spearman", n_resamples=bootstrap, seed=0)
    return {"rho": rank_correlations(x.to_numpy(float), y.to_numpy(float))["spearman"], "low": low, "high": high}


Rows = list[dict[str, Any]]


def study_rows(study: Path, bootstrap: int) -> tuple[Rows, Rows, Rows]:
    """Every (objective, summary, truth) row of one study, its label-free combinations and exploratory combos."""
    rows, combos, combined = [], [], []
    for truth in TRUTHS:
        results, runs, _ = analyse(study, truth, bootstrap)
        cells = results.cells
        summary = results.summaries
        for r in summary.itertuples():
            rows.append({"study": study.name, "truth": truth, "objective": r.objective, "summary": r.metric,
                         "n_cells": r.n_cells, "rho": r.spearman, "low": r.spearman_low, "high": r.spearman_high,
                         "partial": r.partial, "partial_low": r.partial_low, "partial_high": r.partial_high,
                         "combined": r.combined, "seed_rho": r.seed_rho, "cpu_s": r.cpu_s,
                         "labels": _uses_labels(r.objective)})
        combined += [{"study": study.name, "truth": truth, **r} for r in results.combined.to_dict("records")]
        corr = results.correlations.set_index("objective")
        for name in [n for n in corr.index if n in SCORES or n == "params"]:
            r = corr.loc[name]
            rows.append({"study": study.name, "truth": truth, "objective": name, "summary": "score", "n_cells":
                         int(r["n_cells"]), "rho": r["spearman"], "low": r["spearman_low"], "high": r["spearman_high"],
                         "partial": r["partial"], "partial_low": r["partial_low"], "partial_high": r["partial_high"],
                         "combined": r["combined"], "seed_rho": math.nan, "cpu_s": math.nan,
                         "labels": _uses_labels(name)})
        # Combinations: the count with the best-ranking summary of each label-free objective, and the scores.
        best = summary[summary["objective"].isin(LABEL_FREE)].sort_values("spearman", ascending=False)
        best = best.drop_duplicates("objective")
        parts = {"params": cells["params"]}
        for r in best.itertuples():
            parts[f"{r.objective}:{r.metric}"] = per_cell(runs, r.objective, r.metric, cells.index)
        for name in FREE_SCORES:
            if name in cells.columns:
                parts[name] = cells[name]
        for k in (2, 3):
            for combo in itertools.combinations(parts, k):
                if "params" not in combo and not all(c in FREE_SCORES for c in combo):
                    continue
                score = mean_rank([parts[c] for c in combo])
                combos.append({"study": study.name, "truth": truth, "ranking": " + ".join(combo),
                               "n_cells": int(score.notna().sum()), **rho(score, cells[truth], bootstrap)})
    return rows, combos, combined


def _ci(r: dict[str, Any], key: str = "rho", low: str = "low", high: str = "high") -> str:
    if r[key] is None or math.isnan(r[key]):
        return "–"
    return f"{r[key]:.2f}" if math.isnan(r[low]) else f"{r[key]:.2f} [{r[low]:.2f}, {r[high]:.2f}]"


def markdown(rows: list[dict[str, Any]], combos: list[dict[str, Any]], truth: str,
             combined: list[dict[str, Any]] | None = None) -> str:
    """One truth's tables: every objective's summaries (label-free first), the label-free combinations, then the
    exploratory combos, best first."""
    head = ("| study | objective | labels | summary | n | ρ with truth | partial ρ given params | ρ of mean rank "
            "with "
            "params | seed-to-seed ρ | CPU s/run |\n" + "|---" * 10 + "|\n")
    ordered = sorted((r for r in rows if r["truth"] == truth), key=lambda r: bool(r.get("labels")))
    body = "".join(
        f"| {r['study']} | {r['objective']} | {'yes' if r.get('labels') else 'no'} | {r['summary']} | "
        f"{r['n_cells']} | {_ci(r)} | "
        f"{_ci(r, 'partial', 'partial_low', 'partial_high')} | {r['combined']:.2f} | "
        f"{'–' if math.isnan(r['seed_rho']) else format(r['seed_rho'], '.2f')} | "
        f"{'–' if math.isnan(r['cpu_s']) else format(r['cpu_s'], '.1f')} |\n"
        for r in ordered)
    mixed = [c for c in (combined or []) if c["truth"] == truth]
    free = ("\n| study | label-free ranking | how | members | n | ρ with truth | partial ρ given params |\n"
            + "|---" * 7 + "|\n" + "".join(
                f"| {c['study']} | {c['ranking']} | {c['kind']} | {c['members']} | {c['n_cells']} | "
                f"{_ci(c, 'spearman', 'spearman_low', 'spearman_high')} | "
                f"{_ci(c, 'partial', 'partial_low', 'partial_high')} |\n" for c in mixed)) if mixed else ""
    ranked = sorted((c for c in combos if c["truth"] == truth), key=lambda c: -np.nan_to_num(c["rho"], nan=-2))
    combo = ("\nExploratory (each objective's summary picked by its ρ with this truth, so not held out):\n"
             "\n| study | ranking (mean of ranks) | n | ρ with truth |\n|---|---|---|---|\n"
             + "".join(f"| {c['study']} | {c['ranking']} | {c['n_cells']} | {_ci(c)} |\n" for c in ranked))
    return f"### Against {truth}\n\n" + head + body + free + combo


def main() -> None:
    """Measure every given study against every truth and write the tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", nargs="+", type=Path, required=True)
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--out", type=Path, default=None,
                        help="the table's .json (beside it .md); default: fidelity.json beside the first study. The "
                             "tracked results are replaced only when named: --out benchmarks/results/fidelity.json")
    args = parser.parse_args()
    args.out = args.out or args.studies[0].parent / "fidelity.json"
    rows, combos, combined = [], [], []
    for study in args.studies:
        r, c, m = study_rows(study, args.bootstrap)
        rows, combos, combined = rows + r, combos + c, combined + m
    text = "\n".join(markdown(rows, combos, t, combined) for t in TRUTHS)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    table = {"rows": rows, "label_free_combinations": combined, "combined": combos}
    args.out.write_text(json.dumps(table, indent=1, default=float) + "\n")
    args.out.with_suffix(".md").write_text(text)


if __name__ == "__main__":
    main()
