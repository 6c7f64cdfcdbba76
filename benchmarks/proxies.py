"""Every training-free score of the registry on NAS-Bench-201 cells at the `short` network, against three truths.

    nice -n 10 python benchmarks/proxies.py --cells 1000 --data-root /tmp/cifar10-jpeg --out /tmp/proxies
    python benchmarks/proxies.py --report --out /tmp/proxies --results benchmarks/results

Measure: for the first --cells cells of the default sample (`draw("nb201", n, seed=0)`), the network a
`experiment=short` run of seed 0 starts from (C=8, N=1, 10 classes, 16 px) and one batch of --batch CIFAR-10
training images (chosen by seed 0, downsampled to 16 px as the cifar10 dataset does), every registered
training-free objective scores the cell exactly as `study.train` would (its own `build`, `fused` and `score`),
one torch thread, CPU seconds of this process per score. Rows go to --out/proxies.jsonl as cells finish
(rerunning resumes). Report: per score and truth (CIFAR-10, CIFAR-100, ImageNet16-120 200-epoch test
accuracy), Spearman rho with a 95% bootstrap interval and the partial rho given log params; then the
label-free combinations of analysis/combine.py (equal-weight mean ranks chosen without the truth, and the
cross-validated weighting, an upper bound that uses the truth of other cells). Writes --results/proxies.{md,json}.
The committed per-cell values, benchmarks/results/proxies.csv, are proxies.jsonl without `arch` (cell `index` i
is `draw("nb201", 1000, seed=0)[i]`), scores to 6 significant digits.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script from anywhere

from benchmarks.cifar_images import CIFAR_MEAN, CIFAR_STD, require_folder, training_images  # noqa: E402

TRUTHS = {"cifar10": "cifar10_test", "cifar100": "cifar100_test", "imagenet16-120": "imagenet16_120_test"}
WIDTH, DEPTH, SIZE = 8, 1, 16  # the `short` network (conf/budget/short.yaml, conf/experiment/short.yaml)


def load_data(root: Path, n: int, seed: int, size: int):
    """An in-memory dataset whose training set is n CIFAR-10 training images (uint8, resized to size) and labels."""
    import torch

    from study.data.base import ImageData

    x, y = training_images(root, n, seed)  # (n, 3, 32, 32) uint8
    if size != x.shape[-1]:  # as study/data/cifar.py downsamples: bilinear, antialiased, rounded
        x = torch.nn.functional.interpolate(x.float(), size=(size, size), mode="bilinear", antialias=True,
                                            align_corners=False).round().clamp_(0, 255).to(torch.uint8)
    return ImageData("cifar10", x, y, x[:2], y[:2], 10, torch.tensor(CIFAR_MEAN), torch.tensor(CIFAR_STD))


def scores() -> list[str]:
    """The registry's training-free objectives."""
    from study.objectives import list_objectives
    from study.objectives.base import objective_class

    return [n for n in list_objectives() if not objective_class(n).trains]


def score_cell(index: int, arch: str, data, batch: int) -> dict:
    """Every training-free score of one cell, each on a fresh network from seed 0, with its CPU seconds."""
    import torch

    from study.objectives import create_objective
    from study.spaces import NetShape, get_space

    space = get_space("nb201")
    cell = space.parse(arch)
    shape = NetShape(3, data.image_size, 10, WIDTH, DEPTH)
    params, flops = space.complexity(cell, shape)
    row: dict = {"index": index, "arch": arch, "params": params, "flops": flops}
    for name in scores():
        objective = create_objective(name, data, batch_size=batch)
        with torch.random.fork_rng(devices=[]):  # as study/training/scoring.py builds a run's network
            torch.manual_seed(0)
            model = objective.build(space.build(cell, shape, plain=not objective.fused))
        gen = torch.Generator().manual_seed(0)
        t0 = time.process_time()
        row[name] = objective.score(model, gen, batch)
        row[f"{name}_cpu_s"] = time.process_time() - t0
    return row


def measure(args: argparse.Namespace) -> None:
    """Score the cells not yet in the JSONL."""
    import torch

    from study.spaces import draw

    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    jsonl = args.out / "proxies.jsonl"
    done = {json.loads(line)["index"] for line in jsonl.read_text().splitlines() if line.strip()} \
        if jsonl.exists() else set()
    data = load_data(args.data_root, args.batch, 0, args.image_size)
    cells = [c.to_str() for c in draw("nb201", args.cells, seed=0)]
    with open(jsonl, "a") as f:
        for i, arch in enumerate(cells):
            if i in done:
                continue
            row = score_cell(i, arch, data, args.batch)
            f.write(json.dumps(row) + "\n")
            f.flush()
            cpu = sum(row[f"{s}_cpu_s"] for s in scores())
            print(f"[{i + 1}/{len(cells)}] {cpu:.2f} CPU s", flush=True)


def main() -> None:
    """Measure, or report what was measured."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-root", type=Path, default=Path("/tmp/cifar10-jpeg"))
    p.add_argument("--cells", type=int, default=500)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--image-size", type=int, default=SIZE)
    p.add_argument("--bootstrap", type=int, default=1000)
    p.add_argument("--out", type=Path, default=Path("/tmp/proxies"), help="where the per-cell rows go")
    p.add_argument("--results", type=Path, default=None, help="where the report goes (default: --out)")
    p.add_argument("--report", action="store_true", help="summarise --out/proxies.jsonl instead of measuring")
    args = p.parse_args()
    if not args.report:
        require_folder(args.data_root)
    if args.report:
        report(args)
    else:
        measure(args)


PRIOR = {"params + naswot": ["params", "naswot"], "naswot + synflow": ["naswot", "synflow"]}  # chosen on cells 0-99
HELD_OUT = 100  # cells 0-99 were the ones earlier rankings (PRIOR, the fidelity study `short`) were chosen on
TRUTH_FILE = ROOT / "study" / "spaces" / "nb201" / "data" / "nb201-accuracy.csv.gz"


def load_rows(out: Path) -> Any:
    """The measured cells (index order) joined with the three truths."""
    import pandas as pd

    rows = [json.loads(line) for line in (out / "proxies.jsonl").read_text().splitlines() if line.strip()]
    frame = pd.DataFrame(rows).drop_duplicates("index").set_index("index").sort_index()
    truth = pd.read_csv(TRUTH_FILE).set_index("arch")
    for name, column in TRUTHS.items():
        frame[name] = frame["arch"].map(truth[column])
    return frame


def proxy_table(frame, names: list[str], bootstrap: int) -> list[dict]:
    """Per score: label and data use, CPU s per cell, and per truth rho [CI] and partial rho given params [CI]."""
    from analysis import size
    from analysis.caveats import objective_entry
    from analysis.uncertainty import bootstrap_ci, rank_correlations

    table = []
    for name in names:
        entry = objective_entry(name)
        row = {"score": name, "labels": bool(entry and entry.uses_labels),
               "data": "size" if entry is None else ("labelled batch" if entry.uses_labels else
                                                     ("batch" if entry.needs_data else "none")),
               "cpu_s": float(frame[f"{name}_cpu_s"].mean()) if f"{name}_cpu_s" in frame else None}
        for truth in TRUTHS:
            ok = frame[list(dict.fromkeys([name, truth, "params"]))].replace([np.inf, -np.inf], np.nan).dropna()
            x, y, z = (ok[c].to_numpy(float) for c in (name, truth, "params"))  # params against itself: partial 0
            low, high = bootstrap_ci(x, y, "spearman", n_resamples=bootstrap, seed=0)
            plow, phigh = size.bootstrap_ci(x, y, z, "partial", n_resamples=bootstrap, seed=0)
            row[truth] = {"n": len(ok), "rho": rank_correlations(x, y)["spearman"], "low": low, "high": high,
                          "partial": size.partial_spearman(x, y, z), "partial_low": plow, "partial_high": phigh}
        table.append(row)
    return sorted(table, key=lambda r: r["labels"])  # label-free first


def combined_table(frame, names: list[str], bootstrap: int) -> list[dict]:
    """The rule-fixed label-free combinations and PRIOR, on every cell and on the cells past HELD_OUT."""
    from analysis.combine import combinations

    cells = frame.replace([np.inf, -np.inf], np.nan)
    out = []
    for part, subset in (("all", cells), (f"{HELD_OUT}+", cells[cells.index >= HELD_OUT])):
        if len(subset) < 10:  # too few cells for a rank correlation worth a row
            continue
        for truth in TRUTHS:
            t = combinations(subset, truth, [*names, "params", "flops"], bootstrap=bootstrap, extra=PRIOR)
            out += [{"cells": part, **r} for r in t.to_dict("records")]
    return out


def trained_rows(results: Path) -> list[dict]:
    """The trained pretext summaries on the first 100 of these cells (benchmarks/results/fidelity.json, `short`)."""
    path = results / "fidelity.json"
    if not path.exists():
        return []
    rows = json.loads(path.read_text())["rows"]
    keep = {("rotation", "train_loss"), ("rotation", "best"), ("jigsaw", "best"), ("jigsaw", "test_loss"),
            ("supervised", "best"), ("supervised", "train_loss")}
    return [r for r in rows if r["study"] == "short" and (r["objective"], r["summary"]) in keep]


def _ci(d: dict, key: str = "rho", low: str = "low", high: str = "high") -> str:
    value = d.get(key)
    if value is None or not np.isfinite(value):
        return "–"
    if d.get(low) is None or not np.isfinite(d[low]):
        return f"{value:.2f}"
    return f"{value:.2f} [{d[low]:.2f}, {d[high]:.2f}]"


NAMES = {"cifar10": "CIFAR-10", "cifar100": "CIFAR-100", "imagenet16-120": "ImageNet16-120"}


def score_lines(table: list[dict]) -> list[str]:
    """One row per score: label-free first, then the labelled baselines."""
    head = "| score | labels | data | CPU s/cell | " + " | ".join(
        f"ρ {NAMES[t]} | partial {NAMES[t]}" for t in TRUTHS) + " |"
    lines = [head, "|---" * (4 + 2 * len(TRUTHS)) + "|"]
    for r in table:
        cpu = "–" if r["cpu_s"] is None else f"{r['cpu_s']:.3f}"
        cols = " | ".join(f"{_ci(r[t])} | {_ci(r[t], 'partial', 'partial_low', 'partial_high')}" for t in TRUTHS)
        lines.append(f"| {r['score']} | {'yes' if r['labels'] else 'no'} | {r['data']} | {cpu} | {cols} |")
    return lines


def markdown(meta: dict, table: list[dict], combined: list[dict], first: list[dict], trained: list[dict]) -> str:
    """The report: proxies (label-free, then labelled), combinations, the trained summaries beside them."""
    from analysis.caveats import objective_entry
    from analysis.combine import MEAN_RANK

    intro = (f"Training-free scores on the first {meta['n_cells']} cells of the default NAS-Bench-201 sample "
             f"(`draw(\"nb201\", n, seed=0)`), the `short` network (C={WIDTH}, N={DEPTH}, {meta['image_size']} px, "
             f"10 classes) at initialisation from seed 0, one batch of {meta['batch']} CIFAR-10 training images "
             "(seed 0), one CPU thread; against NAS-Bench-201's 200-epoch test accuracy on three datasets. "
             "Spearman ρ [95% bootstrap interval over cells] and partial ρ given the parameter count [interval].")
    labelled = ("Labelled scores (labels = yes) read the batch's labels: they are baselines, not label-free "
                "proxies. n per score: cells with a finite score (a NaN or infinite score leaves its cell out).")
    how = ("Mean rank: equal weights over sets fixed by rule (analysis/combine.py), or, for `params + naswot` and "
           "`naswot + synflow`, chosen on cells 0-99 by earlier measurements; never by this truth. CV weights "
           "(upper bound): a rank regression fitted on 4/5 of the cells *with the truth* and scored on the "
           f"held-out fifth (5 folds x 5 shuffles). `{HELD_OUT}+`: only the cells past the first {HELD_OUT}, "
           "which no earlier choice saw.")
    lines = [intro, "", "    " + meta["command"], "", *score_lines(table), "", labelled, "",
             "## Label-free combinations", "", how, "",
             "| cells | truth | ranking | how | members | n | ρ with truth | partial ρ given params |",
             "|---" * 8 + "|"]
    for c in combined:
        kind = "mean rank" if c["kind"] == MEAN_RANK else "CV weights (upper bound)"
        lines.append(f"| {c['cells']} | {NAMES[c['target']]} | {c['ranking']} | {kind} | {c['members']} | "
                     f"{c['n_cells']} | {_ci(c, 'spearman', 'spearman_low', 'spearman_high')} | "
                     f"{_ci(c, 'partial', 'partial_low', 'partial_high')} |")
    if trained:
        where = ("Trained at `short` (2 seeds) on the first 100 of these cells: benchmarks/results/fidelity.json, "
                 "study `short` (supervised reads labels):")
        lines += ["", "## Beside the trained pretext tasks (first 100 cells)", "", where, "",
                  "| objective | labels | summary | truth | n | ρ | partial ρ given params |", "|---" * 7 + "|"]
        for r in trained:
            entry = objective_entry(r["objective"])
            lines.append(f"| {r['objective']} | {'yes' if entry and entry.uses_labels else 'no'} | {r['summary']} "
                         f"| {r['truth']} | {r['n_cells']} | {_ci(r)} | "
                         f"{_ci(r, 'partial', 'partial_low', 'partial_high')} |")
        lines += ["", "The training-free scores on the same 100 cells:", "", *score_lines(first)]
    return "\n".join(lines) + "\n"


def report(args: argparse.Namespace) -> None:
    """Summarise the measured cells into --results/proxies.{md,json}."""
    frame = load_rows(args.out)
    names = scores()
    table = proxy_table(frame, [*names, "params", "flops"], args.bootstrap)
    first = proxy_table(frame[frame.index < HELD_OUT], [*names, "params"], args.bootstrap)
    combined = combined_table(frame, names, args.bootstrap)
    results = args.results or args.out
    trained = trained_rows(ROOT / "benchmarks" / "results")
    command = (f"nice -n 10 python benchmarks/proxies.py --cells {len(frame)} --batch {args.batch} --out {args.out}"
               f" && python benchmarks/proxies.py --report --out {args.out} --results {results}")
    meta = {"n_cells": len(frame), "batch": args.batch, "image_size": args.image_size, "command": command,
            "threads": 1}
    text = markdown(meta, table, combined, first, trained)
    results.mkdir(parents=True, exist_ok=True)
    (results / "proxies.json").write_text(json.dumps({**meta, "scores": table, "first_100": first,
                                                      "combined": combined}, indent=1, default=float) + "\n")
    (results / "proxies.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
