"""`python -m analysis.search [study_dir=PATH]`: what a study's searches found, and how good it is.

Reads the search records (`<study_dir>/searches`, study.search) into tidy tables, computes, then draws;
writes, atomically, to `<study_dir>/analysis/search/`:
  searches.csv   one row per finished search: method, objective, seed, the cell found, its truth
                 (NAS-Bench-201: CIFAR-10, CIFAR-100, ImageNet16-120 after 200 epochs), its accuracy when
                 trained by `study.train` in `<study_dir>/found/<space>` (any space), CPU seconds
  epochs.csv     one row per search epoch: the cell derived then, its truth, the supernet's accuracy
  summary.csv    per (space, dataset, setting, method, objective): seeds, distinct cells, truth mean and sd,
                 and the best of as many random cells as the searches cost (`random_cells`), picked by
                 parameter count and by the truth itself
  report.md      the summary beside the published NAS-Bench-201 rows, and whether the label-free searches
                 found cells as good as the supervised one
  truth_by_epoch.{png,pdf}, alpha.{png,pdf}   the derived cell's truth against epoch (one line per
                 objective, a panel per method); the final softmax(alpha) of each method and objective
Options: `out=PATH` (default <study_dir>/analysis/search), `random_cells=auto|N` (auto: the searches'
CPU seconds over the CPU seconds of training one cell for as many epochs, from each record), `trials=20000`,
`seed=0`.
"""

from __future__ import annotations

if __name__ == "__main__":  # before the imports below: Ctrl-C while they load is one line too
    from study.commands.entry import start

    start("analysis.search")

import logging
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from study.errors import UserError
from study.store.records import iter_records, write_atomic
from study.training import search_fields
from study.training.searches import iter_searches
from study.spaces import SPACES, NetShape, benchmark_of, get_space
from study.spaces.benchmark import Benchmark
from analysis import plots, search_plots
from study.commands.cli import CONF_DIR, fail

log = logging.getLogger("analysis.search")

# Each space's benchmark, asked of the space: its truth columns are the searches' truth columns.
BENCHMARKS: dict[str, Benchmark] = {n: b for n in SPACES.names() if (b := benchmark_of(n)) is not None}
TRUTH = list(dict.fromkeys(c for b in BENCHMARKS.values() for c in b.columns.values()))
# A search's setting: its budget, epochs and warm-up; searches are grouped by their identity (every setting).
KEYS = ["space", "dataset", "setting", "method", "objective", "identity"]


def setting(rec: dict[str, Any]) -> str:
    """`cpu, 80 ep` (and `, warm-up 20`): how long and how a search ran, for tables and figure panels."""
    budget = (rec.get("config") or {}).get("search_budget")
    warmup = budget.get("warmup_epochs") if isinstance(budget, dict) else 0
    return f"{rec['budget']}, {rec['epochs']} ep" + (f", warm-up {warmup}" if warmup else "")

def read_searches(study_dir: Path) -> tuple[list[dict[str, Any]], int, int]:
    """(the complete search records whose fields are as study.search writes them, how many searches failed,
    how many records were left out with a warning naming the file and the field)."""
    complete, failed, odd = [], 0, 0
    for path, rec in iter_searches(study_dir):
        wrong = search_fields.problem(rec)
        if wrong:
            log.warning("%s: %s; left out of the analysis", path, wrong)
            odd += 1
        elif rec["status"] == "complete":
            complete.append(rec)
        else:
            failed += 1
    return complete, failed, odd


def searches_table(study_dir: Path, records: list[dict[str, Any]]) -> tuple[pd.DataFrame, pd.DataFrame,
                                                                            dict[tuple, Any]]:
    """(one row per complete search, one row per search epoch, final alpha per search) of a study."""
    rows, epochs, alphas = [], [], {}
    trained = trained_accuracy(study_dir)
    for rec in records:
        key = {**{k: rec[k] for k in KEYS if k != "setting"}, "setting": setting(rec)}
        truth = rec.get("truth") or {}
        row = {**key, "seed": rec["seed"], "epochs": rec["epochs"],
               "arch": rec["arch"], "cell_id": rec["cell_id"], **{c: truth.get(c, math.nan) for c in TRUTH},
               "supernet_acc": rec["supernet_acc"], "cell_params": rec.get("cell_params"), "cpu_s": rec["cpu_s"],
               "wall_s": rec["wall_s"], "cell_epoch_cpu_s": rec.get("cell_epoch_cpu_s"),
               "trained_supervised": trained.get((rec["space"], rec["cell_id"]), math.nan)}
        rows.append(row)
        for entry in rec["history"]:
            t = entry.get("truth") or {}
            epochs.append({**key, "seed": rec["seed"], "epoch": entry["epoch"], "cell": entry["cell"],
                           **{c: t.get(c, math.nan) for c in TRUTH}, "supernet_acc": entry["supernet_acc"],
                           "weight_loss": entry["weight_loss"], "arch_loss": entry["arch_loss"]})
        alphas[(key["setting"], rec["method"], rec["objective"], rec["seed"])] = (rec["alpha"], rec["alpha_layout"])
    return pd.DataFrame(rows), pd.DataFrame(epochs), alphas


def trained_accuracy(study_dir: Path) -> dict[tuple[str, str], float]:
    """(space, cell id) -> mean best test accuracy of the found cell trained with labels by study.train."""
    out: dict[tuple[str, str], list[float]] = {}
    for folder in sorted((Path(study_dir) / "found").glob("*")):
        for _, rec in iter_records(folder):
            if (rec.get("status") == "complete" and rec.get("objective") == "supervised"
                    and isinstance(rec["cell_id"], str) and search_fields.fraction(rec.get("test_acc_best"))):
                out.setdefault((folder.name, rec["cell_id"]), []).append(rec["test_acc_best"])
    return {k: float(np.mean(v)) for k, v in out.items()}


def random_baseline(space: str, net: dict[str, int], m: int, trials: int, seed: int) -> dict[str, float]:
    """Expected truth (the benchmark's main column) of the best of m uniformly drawn cells of a space with a
    benchmark, by parameter count and by truth."""
    bench = BENCHMARKS[space]
    table = bench.all_truths()
    archs = sorted(table)
    acc = np.array([table[a][bench.main] for a in archs])
    sp = get_space(space)
    params = np.array([sp.complexity(sp.parse(a), NetShape(**net))[0] for a in archs], dtype=float)
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(archs), size=(trials, m))
    by_truth = acc[picks].max(axis=1)
    # Largest network of the draw; equal counts share the pick, so their truths are averaged.
    p = params[picks]
    top = p == p.max(axis=1, keepdims=True)
    by_params = (acc[picks] * top).sum(axis=1) / top.sum(axis=1)
    return {"random_m": m, "random_best_by_params": float(by_params.mean()),
            "random_best_by_params_sd": float(by_params.std()), "random_best_by_truth": float(by_truth.mean())}


def summary(searches: pd.DataFrame, random_cells: str | int, trials: int, seed: int,
            nets: dict[tuple, dict]) -> pd.DataFrame:
    """Per (space, dataset, setting, method, objective): seeds, distinct cells, truth mean and sd, the random
    baseline of equal cost (NAS-Bench-201) and the trained accuracy of the cells found (any space)."""
    out = []
    for key, part in searches.groupby(KEYS, sort=True):
        row = dict(zip(KEYS, key))
        row.update(seeds=len(part), cells=part["cell_id"].nunique(), epochs=int(part["epochs"].max()),
                   cpu_s=float(part["cpu_s"].mean()), cell_params=float(part["cell_params"].mean()))
        for column in [*TRUTH, "supernet_acc", "trained_supervised"]:
            values = part[column].dropna()
            row[column] = float(values.mean()) if len(values) else math.nan
            row[f"{column}_sd"] = float(values.std(ddof=1)) if len(values) > 1 else math.nan
        per_cell = part["cell_epoch_cpu_s"] * part["epochs"]
        m = int(random_cells) if random_cells != "auto" else max(1, int(round(float((part["cpu_s"] / per_cell).mean()))))
        row["random_m"] = m
        if row["space"] in BENCHMARKS:
            row.update(random_baseline(row["space"], nets[row["identity"]], m, trials, seed))
        out.append(row)
    return pd.DataFrame(out)


def verdict(table: pd.DataFrame) -> list[str]:
    """Per method: did the label-free searches find cells as good as the supervised one (by the main truth)?

    "As good" means a mean within the larger of the two seed standard deviations (or 0.1 points with one
    seed) of the supervised search's mean, or above it."""
    lines = []
    for (space, dataset, where, method), part in table.groupby(["space", "dataset", "setting", "method"]):
        part = part.set_index("objective")
        bench = BENCHMARKS.get(space)
        if bench is None or "supervised" not in part.index or part[bench.main].isna().all():
            continue
        main = bench.main
        sup = part.loc["supervised"]
        others = [o for o in part.index if o != "supervised"]
        if not others:
            continue
        said = []
        for o in others:
            row = part.loc[o]
            slack = max(np.nan_to_num(sup[f"{main}_sd"]), np.nan_to_num(row[f"{main}_sd"]), 0.001)
            gap = 100 * (row[main] - sup[main])
            good = row[main] >= sup[main] - slack
            said.append(f"{o} {_pm(row, main)} ({'as good' if good else 'worse'}, {gap:+.2f} points)")
        lines.append(f"{method} on {space} ({dataset}, {where}): the supervised search found "
                     f"{_pm(sup, main)} {bench.label(main)} accuracy ({bench.name}, mean ± sd over "
                     f"{int(sup['seeds'])} seed(s)); the label-free searches: " + "; ".join(said) + ".")
    return lines


def _pm(row: pd.Series, column: str) -> str:
    sd = row[f"{column}_sd"]
    return f"{100 * row[column]:.2f}" + ("" if math.isnan(sd) else f" ± {100 * sd:.2f}") + "%"


def report(table: pd.DataFrame, failed: int, odd: int = 0) -> str:
    """report.md: the summary table, the published rows, the random baselines, and the verdict."""
    names = "; ".join(b.name for b in BENCHMARKS.values())
    labels = [next(b.label(c) for b in BENCHMARKS.values() if c in b.columns.values()) for c in TRUTH]
    lines = ["# Searches", "", f"The truth of the cell each search derived at its last epoch, where its space has a "
             f"benchmark ({names}); mean ± sd over seeds. `random, by params` / `by truth`: the best of "
             "as many uniformly drawn cells as the search cost (m, in trainings of one cell for the search's "
             "epochs), picked by parameter count or by the truth itself.", "",
             "| space | data | setting | method | objective | seeds | CPU s | cells | " + " | ".join(labels)
             + " | supernet acc | m | random, by params | random, by truth |",
             "|" + "---|" * (12 + len(TRUTH))]
    for _, r in table.iterrows():
        cols = [_pm(r, c) if not math.isnan(r[c]) else "—" for c in TRUTH]
        rand = ([f"{100 * r['random_best_by_params']:.2f}%", f"{100 * r['random_best_by_truth']:.2f}%"]
                if "random_best_by_truth" in r and not math.isnan(r.get("random_best_by_truth", math.nan)) else ["—", "—"])
        lines.append(f"| {r['space']} | {r['dataset']} | {r['setting']} | {r['method']} | {r['objective']} | "
                     f"{int(r['seeds'])} | {r['cpu_s']:.0f} | {int(r['cells'])} | "
                     + " | ".join(cols) + f" | {_pm(r, 'supernet_acc')} | {int(r['random_m'])} | " + " | ".join(rand) + " |")
    has_truth = False
    for space, bench in BENCHMARKS.items():  # a benchmark's published rows, beside its own space's searches only
        if not table[(table["space"] == space)][bench.main].notna().any():
            continue
        has_truth = True
        if bench.published:
            lines += ["", f"Published ({bench.published_setting}; {bench.label(bench.main)} truth of the cell found):",
                      "", f"| search | {bench.label(bench.main)} |", "|---|---|"]
            lines += [f"| {p.search} | {p.accuracy:.2f}%{'' if p.sd is None else f' ± {p.sd:.2f}'} |"
                      for p in bench.published]
    said = verdict(table)
    missing = ("No method has both a supervised and a label-free search with a truth yet." if has_truth else
               "These searches' space has no built-in truth: the found cells trained with labels (below, once "
               "`study.train` has trained `found/<space>`) are the comparison.")
    lines += ["", "## Label-free against supervised", ""] + (said or [missing])
    if table["trained_supervised"].notna().any():
        lines += ["", "Cells trained with labels by `study.train` in `found/<space>` (mean best test accuracy): "
                  + "; ".join(f"{r['method']}/{r['objective']} {100 * r['trained_supervised']:.2f}%"
                              for _, r in table.iterrows() if not math.isnan(r["trained_supervised"])) + "."]
    if failed:
        lines += ["", f"{failed} search(es) failed; see `python -m launch.status`."]
    if odd:
        lines += ["", f"{odd} search record(s) left out: fields not as study.search writes them (named by "
                  "`python -m launch.status`); run those searches again."]
    lines += ["", "![truth by epoch](truth_by_epoch.png)", "", "![alpha](alpha.png)", ""]
    return "\n".join(lines)


def panelled(epochs: pd.DataFrame) -> pd.DataFrame:
    """`epochs` with `method` naming its setting too when the searches ran in more than one (a panel each)."""
    if epochs["setting"].nunique() <= 1:
        return epochs
    return epochs.assign(method=epochs["method"] + " (" + epochs["setting"] + ")")


def alpha_panels(alphas: dict[tuple, Any]) -> list[tuple[str, np.ndarray, list[str], list[str]]]:
    """One heatmap per (setting, method, objective) and kind of cell: the first seed's final softmax(alpha)."""
    panels = []
    several = len({k[0] for k in alphas}) > 1
    for (where, method, objective, s), (alpha, layout) in sorted(alphas.items()):
        if s == min(k[3] for k in alphas if k[:3] == (where, method, objective)):
            for kind, weights in alpha.items():
                edges, ops = layout[kind]
                title = f"{method}/{objective}" + (f" ({where})" if several else "") + f" seed {s}"
                panels.append((title + ("" if kind == "cell" else f" {kind}"), np.asarray(weights), edges, ops))
    return panels


def analyse(study_dir: Path, out: Path, random_cells: str | int = "auto", trials: int = 20000, seed: int = 0) -> Path:
    """Write every table and figure of the study's searches to `out`; returns it."""

    records, failed, odd = read_searches(study_dir)
    searches, epochs, alphas = searches_table(study_dir, records)
    if searches.empty:
        left = f" ({odd} record(s) left out, named above)" if odd else ""
        raise UserError(f"no finished search in {study_dir}/searches{left}; run one first, e.g. "
                        f"`python -m study.search study_dir={study_dir}`")
    nets = {}
    for rec in records:
        nets.setdefault(rec["identity"], rec["net"])
    table = summary(searches, random_cells, trials, seed, nets)
    out.mkdir(parents=True, exist_ok=True)
    for name, frame in (("searches", searches), ("epochs", epochs), ("summary", table)):
        write_atomic(out / f"{name}.csv", frame.to_csv(index=False))
    write_atomic(out / "report.md", report(table, failed, odd))
    judged = [b for s, b in BENCHMARKS.items() if epochs[epochs["space"] == s][b.main].notna().any()]
    column = judged[0].main if judged else "supernet_acc"
    label = f"{judged[0].label(column)} truth of the derived cell" if judged else "supernet accuracy (arch. part)"
    plots.save(search_plots.truth_by_epoch(panelled(epochs), column, label), out / "truth_by_epoch")
    panels = alpha_panels(alphas)
    plots.save(search_plots.alpha_heatmaps(panels), out / "alpha")
    return out


def main(argv: list[str] | None = None) -> None:
    """Parse `key=value` arguments and analyse."""
    from omegaconf import OmegaConf

    args = sys.argv[1:] if argv is None else argv
    opts: dict[str, str] = {"study_dir": str(OmegaConf.load(CONF_DIR / "common.yaml").study_dir)}
    if any(a in ("-h", "--help") for a in args):
        print(__doc__)
        return
    for arg in args:
        key, _, value = arg.partition("=")
        if key not in ("study_dir", "out", "random_cells", "trials", "seed") or not value:
            fail(f"unknown argument {arg!r}; usage: python -m analysis.search [study_dir=PATH] [out=PATH] "
                 "[random_cells=auto|N] [trials=N] [seed=N]")
        opts[key] = value
    try:
        study_dir = Path(opts["study_dir"]).expanduser()
        rc = opts.get("random_cells", "auto")
        if rc != "auto" and not (rc.isdigit() and int(rc) > 0):
            raise UserError(f"random_cells must be auto or a positive integer, got {rc!r}")
        for key in ("trials", "seed"):
            if not opts.get(key, "0").isdigit():
                raise UserError(f"{key} must be a non-negative integer, got {opts[key]!r}")
        out = analyse(study_dir, Path(opts.get("out") or study_dir / "analysis" / "search"),
                      rc if rc == "auto" else int(rc), int(opts.get("trials", 20000)), int(opts.get("seed", 0)))
    except UserError as e:
        fail(str(e))
    print(f"search analysis written to {out} (report.md, summary.csv, searches.csv, epochs.csv, figures)")
