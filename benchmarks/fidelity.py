"""Which trained ranking knows more than size: every objective and run summary of the ladder's studies
against NAS-Bench-201's three truths, beside the parameter count, and the rankings that combine them.

For each study (one per rung, trained by benchmarks/ladder.py or by hand with the same recipes) and each
truth column (nb201-cifar10, nb201-cifar100, nb201-imagenet16-120), it runs the analysis with that truth as
the reference and reads, per trained objective and summary of a run (analysis/metrics.py): Spearman's rho
with the truth and its 95% bootstrap interval, the partial rho given the parameter count (interval), the rho
of the mean rank with the count, the seed-to-seed rho and the CPU seconds per run. Training-free scores in
the study (naswot, synflow, ...) are rows too. Then it ranks cells by the mean rank of several rankings
(the count, the best summary of each label-free objective, training-free scores) and reports those.

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
FREE_SCORES = ("naswot", "synflow", "jacob_cov")


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


def study_rows(study: Path, bootstrap: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Every (objective, summary, truth) row of one study, and its combined rankings."""
    rows, combos = [], []
    for truth in TRUTHS:
        results, runs, _ = analyse(study, truth, bootstrap)
        cells = results.cells
        summary = results.summaries
        for r in summary.itertuples():
            rows.append({"study": study.name, "truth": truth, "objective": r.objective, "summary": r.metric,
                         "n_cells": r.n_cells, "rho": r.spearman, "low": r.spearman_low, "high": r.spearman_high,
                         "partial": r.partial, "partial_low": r.partial_low, "partial_high": r.partial_high,
                         "combined": r.combined, "seed_rho": r.seed_rho, "cpu_s": r.cpu_s})
        corr = results.correlations.set_index("objective")
        for name in [n for n in corr.index if n in FREE_SCORES or n == "params"]:
            r = corr.loc[name]
            rows.append({"study": study.name, "truth": truth, "objective": name, "summary": "score", "n_cells":
                         int(r["n_cells"]), "rho": r["spearman"], "low": r["spearman_low"], "high": r["spearman_high"],
                         "partial": r["partial"], "partial_low": r["partial_low"], "partial_high": r["partial_high"],
                         "combined": r["combined"], "seed_rho": math.nan, "cpu_s": math.nan})
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
    return rows, combos


def _ci(r: dict[str, Any], key: str = "rho", low: str = "low", high: str = "high") -> str:
    if r[key] is None or math.isnan(r[key]):
        return "–"
    return f"{r[key]:.2f}" if math.isnan(r[low]) else f"{r[key]:.2f} [{r[low]:.2f}, {r[high]:.2f}]"


def markdown(rows: list[dict[str, Any]], combos: list[dict[str, Any]], truth: str) -> str:
    """The CIFAR-10 truth's table: every objective's summaries, then the combined rankings, best first."""
    head = ("| study | objective | summary | n | ρ with truth | partial ρ given params | ρ of mean rank with params "
            "| seed-to-seed ρ | CPU s/run |\n" + "|---" * 9 + "|\n")
    body = "".join(
        f"| {r['study']} | {r['objective']} | {r['summary']} | {r['n_cells']} | {_ci(r)} | "
        f"{_ci(r, 'partial', 'partial_low', 'partial_high')} | {r['combined']:.2f} | "
        f"{'–' if math.isnan(r['seed_rho']) else format(r['seed_rho'], '.2f')} | "
        f"{'–' if math.isnan(r['cpu_s']) else format(r['cpu_s'], '.1f')} |\n"
        for r in rows if r["truth"] == truth)
    ranked = sorted((c for c in combos if c["truth"] == truth), key=lambda c: -np.nan_to_num(c["rho"], nan=-2))
    combo = ("\n| study | ranking (mean of ranks) | n | ρ with truth |\n|---|---|---|---|\n"
             + "".join(f"| {c['study']} | {c['ranking']} | {c['n_cells']} | {_ci(c)} |\n" for c in ranked))
    return f"### Against {truth}\n\n" + head + body + combo


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
    rows, combos = [], []
    for study in args.studies:
        r, c = study_rows(study, args.bootstrap)
        rows, combos = rows + r, combos + c
    text = "\n".join(markdown(rows, combos, t) for t in TRUTHS)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"rows": rows, "combined": combos}, indent=1, default=float) + "\n")
    args.out.with_suffix(".md").write_text(text)


if __name__ == "__main__":
    main()
