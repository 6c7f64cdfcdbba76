"""The fidelity ladder through the real commands: each rung is a named recipe (`experiment=ladder/<rung>`,
`laptop`, `short`) trained with `study.train` into a study and analysed with `analysis.correlate
reference=nb201-cifar10`; the table and figure are read from those studies' analyses.

For every rung it reports the CPU seconds per run (the records' `cpu_s`, median), the seed-to-seed rho of each
objective, each objective's rho with NAS-Bench-201's 200-epoch CIFAR-10 truth (best test accuracy, the
paper's summary) with its interval, what it knows beyond size (partial rho given the parameter count, and the
rho of its mean rank with the count), the parameter count's own rho, and the summary of a run that ranks best
for each objective (analysis/summaries.py).

    python benchmarks/ladder.py --root studies/ladder --train                   # every rung, 40 cells
    python benchmarks/ladder.py --root studies/ladder --train --only short --cells 100 \\
        --objectives supervised rotation jigsaw colorization contrastive
    python benchmarks/ladder.py --root studies/ladder                           # table and figure only

CIFAR-10 rungs read torchvision's CIFAR-10 (`dataset=cifar10`, downloading into each study's cache) unless
`--cifar-folder PATH` names CIFAR-10 as train/ and test/ image folders (read with dataset=imagefolder and the
paper's statistics). Results: benchmarks/results/ladder.{md,json,png}; docs/ladder.md shows them.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "benchmarks" / "results"
TRUTH = "nb201-cifar10"
NAMED = {"d8-c8-e4": "laptop", "c16-c8-e3-n10k": "short"}  # rungs that are the named recipes users run
PAPER_STATS = ["dataset.mean=[125.3,123.0,113.9]", "dataset.std=[63.0,62.1,66.7]"]


def rungs() -> dict[str, str]:
    """Every rung of the ladder and the experiment that trains it, in the order of conf/experiment/ladder."""
    found = {p.stem: f"ladder/{p.stem}" for p in sorted((ROOT / "conf" / "experiment" / "ladder").glob("*.yaml"))}
    return {**{rung: name for rung, name in NAMED.items()}, **found}


def is_cifar(experiment: str) -> bool:
    """Whether a recipe trains on CIFAR-10 (its file overrides the dataset with cifar10)."""
    from omegaconf import OmegaConf

    text = (ROOT / "conf" / "experiment" / f"{experiment}.yaml").read_text()
    defaults = OmegaConf.create(text).get("defaults") or []
    return any("cifar10" in str(d) for d in defaults)


def run(module: str, *args: str) -> None:
    """One of the project's commands, as a user runs it; stops the ladder if it fails."""
    command = [sys.executable, "-m", module, *args]
    print("$", " ".join(command[1:]), flush=True)
    done = subprocess.run(command, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    if done.returncode != 0:
        sys.exit(f"error: {module} failed (exit {done.returncode}); rerun the ladder to resume")


def data_overrides(experiment: str, folder: str | None) -> list[str]:
    """How a CIFAR-10 rung reads its data here: an image folder with the paper's statistics, or torchvision's."""
    if not is_cifar(experiment) or folder is None:
        return []
    return ["dataset=imagefolder", f"data_root={folder}", *PAPER_STATS]


def train(study: Path, experiment: str, args: argparse.Namespace) -> None:
    """Sample the rung's cells and train them under every objective and seed (a rerun trains nothing twice)."""
    data = data_overrides(experiment, args.cifar_folder)
    run("study.sample", f"experiment={experiment}", f"n={args.cells}", f"study_dir={study}")
    run("study.train", "-m", f"experiment={experiment}", "objective=" + ",".join(args.objectives),
        "seed=" + ",".join(map(str, args.seeds)), f"workers={args.workers}", "threads=1", f"study_dir={study}",
        *data, *args.override)
    analyse(study)


def analyse(study: Path) -> None:
    """analysis.correlate against the truth, into the study's analysis/ folder."""
    # Best test accuracy, as the table's header says (not the budget's own summary); summaries.csv has the others.
    run("analysis.correlate", f"study_dir={study}", f"reference={TRUTH}", "metric=best", "bootstrap=1000",
        "permutations=1000", "trials=200")


def _float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def row(rung: str, experiment: str, study: Path) -> dict[str, Any] | None:
    """The rung's line of the table, read from its study's analysis (None when it has none yet)."""
    import pandas as pd

    out = study / "analysis"
    if not (out / "correlations.csv").exists():
        return None
    corr = pd.read_csv(out / "correlations.csv").set_index("objective")
    noise = pd.read_csv(out / "noise.csv").set_index("objective")
    summary = pd.read_csv(out / "summaries.csv") if (out / "summaries.csv").exists() else pd.DataFrame()
    runs = pd.read_csv(out / "runs.csv")
    done = runs[runs["status"] == "complete"]
    objectives = {}
    for name in sorted(set(corr.index) - {"params", "flops", "random"}):
        r = corr.loc[name]
        best = summary[summary["objective"] == name].sort_values("spearman", ascending=False).head(1)
        objectives[name] = {
            "cpu_s": _float(done.loc[done["objective"] == name, "cpu_s"].median()),
            "seed_rho": _float(noise["seed_rho"].get(name)),
            "rho": _float(r["spearman"]), "low": _float(r["spearman_low"]), "high": _float(r["spearman_high"]),
            "partial": _float(r["partial"]), "partial_low": _float(r["partial_low"]),
            "partial_high": _float(r["partial_high"]), "combined": _float(r["combined"]),
            "best_summary": None if best.empty else best["metric"].iloc[0],
            "best_summary_rho": math.nan if best.empty else _float(best["spearman"].iloc[0]),
            "best_summary_partial": math.nan if best.empty else _float(best["partial"].iloc[0]),
        }
    params = corr.loc["params"]
    return {"rung": rung, "experiment": experiment, "n_cells": int(params["n_cells"]),
            "params": {"rho": _float(params["spearman"]), "low": _float(params["spearman_low"]),
                       "high": _float(params["spearman_high"])},
            "cell_cpu_s": sum(o["cpu_s"] for o in objectives.values() if not math.isnan(o["cpu_s"])),
            "objectives": objectives}


def _ci(est: float, low: float, high: float) -> str:
    if math.isnan(est):
        return "–"
    return f"{est:.2f}" if math.isnan(low) else f"{est:.2f} [{low:.2f}, {high:.2f}]"


def markdown(table: list[dict[str, Any]], objectives: list[str]) -> str:
    """One line per rung and objective: cost, noise, rho with the truth, beyond size, the best summary."""
    head = ("| rung | cells | objective | CPU s/run | seed-to-seed ρ | ρ with truth (best acc.) | partial ρ | params | "
            "ρ of mean rank with params | best summary: ρ (partial) |\n" + "|---" * 10 + "|\n")
    lines = []
    for t in table:
        for name in [o for o in objectives if o in t["objectives"]]:
            o = t["objectives"][name]
            best = "–" if o["best_summary"] is None else (
                f"{o['best_summary']}: {o['best_summary_rho']:.2f} ({o['best_summary_partial']:.2f})")
            lines.append(f"| {t['rung']} | {t['n_cells']} | {name} | {o['cpu_s']:.1f} | {o['seed_rho']:.2f} | "
                         f"{_ci(o['rho'], o['low'], o['high'])} | {_ci(o['partial'], o['partial_low'], o['partial_high'])} | "
                         f"{_ci(t['params']['rho'], t['params']['low'], t['params']['high'])} | "
                         f"{o['combined']:.2f} | {best} |")
    return head + "\n".join(lines) + "\n"


def figure(table: list[dict[str, Any]], path: Path) -> None:
    """rho with the truth against CPU seconds per run, one panel per objective, the parameter count in grey."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from analysis.plots import save

    objectives = [o for o in ("supervised", "rotation", "jigsaw", "colorization", "contrastive")
                  if any(o in t["objectives"] for t in table)]
    fig, axes = plt.subplots(1, len(objectives), figsize=(4.2 * len(objectives), 3.8), sharey=True, squeeze=False)
    for ax, name in zip(axes[0], objectives):
        rows = sorted((t for t in table if name in t["objectives"]), key=lambda t: t["objectives"][name]["cpu_s"])
        x = [t["objectives"][name]["cpu_s"] for t in rows]
        for key, colour, label in (("rho", "tab:blue", "best test accuracy"),
                                   ("best_summary_rho", "tab:orange", "best summary"),
                                   ("partial", "tab:green", "partial ρ given params")):
            ax.plot(x, [t["objectives"][name][key] for t in rows], "o", color=colour, label=label, ms=4)
        ax.plot(x, [t["params"]["rho"] for t in rows], "_", color="grey", ms=12, label="parameter count")
        for t, xv in zip(rows, x):
            ax.annotate(t["rung"], (xv, t["objectives"][name]["rho"]), fontsize=5.5, alpha=0.7,
                        xytext=(3, 3), textcoords="offset points")
        ax.axhline(0, color="black", lw=0.5)
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())  # labelled decades only
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("CPU s per run (1 thread)", fontsize=8)
        ax.grid(alpha=0.3, lw=0.5)
    axes[0][0].set_ylabel(f"Spearman ρ with {TRUTH}")
    axes[0][0].legend(fontsize=6.5, frameon=False)
    fig.tight_layout()
    save(fig, path.with_suffix(""))


def main() -> None:
    """Train (with --train) and analyse the chosen rungs, then write the table and figure of every rung found."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=ROOT / "studies" / "ladder", help="one study per rung here")
    parser.add_argument("--only", nargs="*", default=None, help="rungs to train (default: all)")
    parser.add_argument("--train", action="store_true", help="train what is missing before reporting")
    parser.add_argument("--cells", type=int, default=40)
    parser.add_argument("--objectives", nargs="+", default=["supervised", "rotation"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--cifar-folder", default=None, help="CIFAR-10 as train/ and test/ image folders")
    parser.add_argument("--override", nargs="*", default=[], help="extra key=value for study.train")
    parser.add_argument("--out", type=Path, default=None,
                        help="the table's .json (beside it .md and .png); default ROOT/ladder.json. The tracked "
                             f"results are replaced only when named: --out {RESULTS.relative_to(ROOT)}/ladder.json")
    args = parser.parse_args()
    args.out = args.out or args.root / "ladder.json"
    known = rungs()
    aliases = {recipe: rung for rung, recipe in NAMED.items()}  # `short` is the rung c16-c8-e3-n10k
    chosen = [aliases.get(r, r) for r in (args.only or list(known))]
    unknown = [r for r in chosen if r not in known]
    if unknown:
        sys.exit(f"error: unknown rung(s) {', '.join(unknown)}; choose from: {', '.join(known)} "
                 f"(or a recipe's name: {', '.join(aliases)})")
    for rung in chosen:
        if args.train:
            train(args.root / rung, known[rung], args)
        elif (args.root / rung / "runs").is_dir():
            analyse(args.root / rung)
    table = [r for r in (row(rung, known[rung], args.root / rung) for rung in known) if r is not None]
    objectives = list(dict.fromkeys(o for t in table for o in t["objectives"]))
    text = markdown(table, objectives)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(table, indent=1) + "\n")
    args.out.with_suffix(".md").write_text(text)
    if table:
        figure(table, args.out.with_suffix(".png"))


if __name__ == "__main__":
    main()
