"""Architecture search on a CPU: what a supernet epoch costs, and what the searches find.

    OMP_NUM_THREADS=1 python benchmarks/search.py cost --data-root /tmp/cifar10-jpeg
    OMP_NUM_THREADS=1 python benchmarks/search.py run --data-root /tmp/cifar10-jpeg --study /tmp/search-bench \
        --grid gdas:supervised:0:20 gdas:rotation:0:20 darts:supervised:0:10 ...
    python benchmarks/search.py report --study /tmp/search-bench

`cost`: at the `cpu` search budget (CIFAR-10 at 16 px, 10,000 training images split 5,000 / 5,000, C=8,
N=1, batch 64), single-threaded CPU seconds of one full supernet epoch per method and objective (one
architecture step and one weight step per batch of the 5,000 weight images, so both parts are seen once,
as a training epoch sees the 10,000 images once), against one full training epoch of the space's
median-size cell (of 25 sampled, as a search's record estimates it) over the 10,000 images at the same
batch; the supernet's per-epoch scoring on the architecture part is timed apart. Goals: at most 6x, and
2x for gdas.

`run`: searches through the real command (`python -m study.search`), one at a time, single-threaded, each
`method:objective:seed:epochs`; a finished search is skipped, an interrupted one resumes.

`report`: benchmarks/results/search.{md,json} from the cost rows and the study's search records.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script from anywhere
RESULTS = ROOT / "benchmarks" / "results"
CIFAR = {"mean": [125.3, 123.0, 113.9], "std": [63.0, 62.1, 66.7]}


def dataset_overrides(data_root: str, cache: str, images: int, size: int) -> list[str]:
    """The `cpu` budget's data as command-line overrides: the CIFAR-10 JPEG folder at `size` px."""
    return ["dataset=imagefolder", f"data_root={data_root}", f"dataset.cache_dir={cache}",
            f"dataset.image_size={size}", "dataset.crop_padding=2", f"dataset.train_subset={images}",
            "dataset.test_subset=1000", f"dataset.mean={CIFAR['mean']}".replace(" ", ""),
            f"dataset.std={CIFAR['std']}".replace(" ", "")]


def cost(args: argparse.Namespace) -> None:
    """One supernet epoch per (objective, method) against one training epoch of the median cell."""
    import torch

    from study.data import build_dataset
    from study.objectives import create_objective
    from study.spaces import NetShape, get_space
    from study.training.methods import create_method
    from study.training.search import search
    from study.training.searches import SearchBudget
    from study.training.trainer import make_optimizer, train_epoch
    from study.training.run import Budget

    torch.set_num_threads(1)
    data = build_dataset("imagefolder", data_root=args.data_root, cache_dir=args.cache, image_size=args.size,
                         train_subset=args.images, test_subset=1000, **CIFAR)
    space = get_space(args.space)
    shape = NetShape(3, args.size, 10, args.width, args.depth)
    cells = sorted(space.sample(25, 0), key=lambda c: space.complexity(c, shape)[0])
    median = cells[len(cells) // 2]
    rows = []
    for name in args.objectives:
        obj = create_objective(name, data, crop_padding=2)
        sub = {"objective": name, "median_cell": median.to_str(),
               "median_params": space.complexity(median, shape)[0]}
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            net = obj.build(space.build(median, shape))
        opt = make_optimizer(net, Budget("b", 1, batch_size=args.batch, lr=0.05))
        c0 = time.process_time()
        train_epoch(net, obj, data, opt, args.batch, [torch.Generator().manual_seed(0)])
        sub["cell_epoch_cpu_s"] = time.process_time() - c0
        for method in args.methods:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(0)
                supernet = space.supernet(shape)
                model = obj.build(supernet)
            budget = SearchBudget("cpu", epochs=1, batch_size=args.batch)
            entry = search(supernet, model, obj, data, budget, create_method(method), 0,
                           lambda a: {"cell": space.derive(a).to_str()}).history[0]
            sub[f"{method}_epoch_cpu_s"] = entry["train_cpu_s"]
            sub[f"{method}_score_cpu_s"] = entry["cpu_s"] - entry["train_cpu_s"]
            sub[f"{method}_ratio"] = entry["train_cpu_s"] / sub["cell_epoch_cpu_s"]
            print(json.dumps({k: sub[k] for k in sub if k.startswith(method) or k == "objective"}), flush=True)
        rows.append(sub)
        print(json.dumps(sub), flush=True)
    out = {"space": args.space, "images": args.images, "image_size": args.size, "width": args.width,
           "depth": args.depth, "batch": args.batch, "threads": 1, "rows": rows}
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(out, indent=1) + "\n")


def run(args: argparse.Namespace) -> None:
    """Run each `method:objective:seed:epochs` of the grid through `python -m study.search`, one at a time."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    base = ["search_budget=cpu", f"space={args.space}", "workers=1", "threads=1", f"study_dir={args.study}",
            *dataset_overrides(args.data_root, args.cache, args.images, args.size), *args.extra]
    for item in args.grid:
        method, objective, seed, epochs = item.split(":")
        cmd = [sys.executable, "-m", "study.search", f"method={method}", f"objective={objective}", f"seed={seed}",
               f"search_budget.epochs={epochs}", *base]
        print("$ " + " ".join(cmd[1:]), flush=True)
        done = subprocess.run(cmd, cwd=ROOT, env=env)
        if done.returncode != 0:
            raise SystemExit(f"{item} exited {done.returncode}")


def cost_table(cost: dict) -> list[str]:
    """The markdown table of the cost rows."""
    lines = [f"Single-threaded CPU seconds on this machine (shared, loaded), {cost['space']} at C={cost['width']}, "
             f"N={cost['depth']}, {cost['image_size']} px, {cost['images']} training images, batch {cost['batch']}: one "
             "full training epoch of the median cell (10,000 images) against one full supernet epoch (5,000 weight "
             "steps' images and 5,000 architecture steps' images), the supernet's scoring on the 5,000 images of "
             "the architecture part apart.", "",
             "| objective | median cell epoch | darts epoch | darts / cell | gdas epoch | gdas / cell | scoring (darts, gdas) |",
             "|---|---|---|---|---|---|---|"]
    for r in cost["rows"]:
        lines.append(f"| {r['objective']} | {r['cell_epoch_cpu_s']:.1f} | {r['darts_epoch_cpu_s']:.1f} | "
                     f"{r['darts_ratio']:.2f}x | {r['gdas_epoch_cpu_s']:.1f} | {r['gdas_ratio']:.2f}x | "
                     f"{r['darts_score_cpu_s']:.1f}, {r['gdas_score_cpu_s']:.1f} |")
    return lines


def report(args: argparse.Namespace) -> None:
    """benchmarks/results/search.{md,json}: the cost table and every search's found cell with its truth."""
    import pandas as pd

    from analysis import plots, search_plots
    from analysis.search import alpha_panels, panelled, read_searches, searches_table, summary
    from analysis.search import report as search_report
    from study.training.searches import iter_searches

    cost = json.loads(Path(args.cost).read_text())
    frames, epoch_frames, alphas, nets = [], [], {}, {}
    for study in args.study:
        searches, epochs, found = searches_table(Path(study), read_searches(Path(study))[0])
        frames.append(searches)
        epoch_frames.append(epochs)
        alphas.update(found)
        nets.update({rec["identity"]: rec["net"] for _, rec in iter_searches(Path(study))})
    searches, epochs = pd.concat(frames, ignore_index=True), pd.concat(epoch_frames, ignore_index=True)
    table = summary(searches, "auto", 20000, 0, nets)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    found = search_report(table, 0).split("\n", 2)[2]
    found = found.replace("(truth_by_epoch.png)", f"({out.name}.png)").replace("(alpha.png)", f"({out.name}_alpha.png)")
    text = ["# Architecture search on a CPU (benchmarks/search.py)", "", "## Cost of a supernet epoch", "",
            *cost_table(cost), "", "## What the searches found", "", found]
    Path(f"{out}.md").write_text("\n".join(text))
    Path(f"{out}.json").write_text(json.dumps({"cost": cost, "summary": table.to_dict(orient="records"),
                                               "searches": searches.to_dict(orient="records")}, indent=1,
                                              default=str) + "\n")
    nb201 = epochs[epochs["space"] == "nb201"]
    if not nb201.empty:
        plots.save(search_plots.truth_by_epoch(panelled(nb201), "nb201-cifar10", "CIFAR-10 truth of the derived cell"), out)
    panels = alpha_panels({k: v for k, v in alphas.items() if "cell" in v[0]})
    if panels:
        plots.save(search_plots.alpha_heatmaps(panels), f"{out}_alpha")
    print(f"wrote {out}.md, {out}.json, {out}.png, {out}_alpha.png")


def main() -> None:
    """Parse the subcommand and its options."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="what", required=True)
    for name in ("cost", "run"):
        s = sub.add_parser(name)
        s.add_argument("--data-root", default="/tmp/cifar10-jpeg")
        s.add_argument("--cache", default=os.path.join(os.environ.get("TMPDIR", "/tmp"), "unnas-search-cache"))
        s.add_argument("--images", type=int, default=10000)
        s.add_argument("--size", type=int, default=16)
        s.add_argument("--space", default="nb201")
    c = sub.choices["cost"]
    c.add_argument("--objectives", nargs="+", default=["supervised", "rotation", "jigsaw"])
    c.add_argument("--methods", nargs="+", default=["darts", "gdas"])
    c.add_argument("--width", type=int, default=8)
    c.add_argument("--depth", type=int, default=1)
    c.add_argument("--batch", type=int, default=64)
    c.add_argument("--json", default=str(RESULTS / "search_cost.json"))
    r = sub.choices["run"]
    r.add_argument("--study", required=True)
    r.add_argument("--grid", nargs="+", required=True, help="method:objective:seed:epochs")
    r.add_argument("--extra", nargs="*", default=[], help="more overrides for every search")
    rep = sub.add_parser("report")
    rep.add_argument("--study", nargs="+", required=True)
    rep.add_argument("--cost", default=str(RESULTS / "search_cost.json"))
    rep.add_argument("--out", default=str(RESULTS / "search"))
    args = p.parse_args()
    {"cost": cost, "run": run, "report": report}[args.what](args)


if __name__ == "__main__":
    main()
