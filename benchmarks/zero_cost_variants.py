"""Do known variants of naswot and synflow rank NAS-Bench-201 cells better than their definitions here?

    OMP_NUM_THREADS=1 python benchmarks/zero_cost_variants.py --cells 200 --data-root /tmp/cifar10-jpeg
    python benchmarks/zero_cost_variants.py --report

On the first --cells cells of the default sample, the paper network (C=16, N=5) at initialisation from
seed 0 (as benchmarks/zero_cost.py builds it), one CPU thread:
- naswot on batches of 32, 64, 128 (the objective's) and 256 CIFAR-10 training images; averaged over 3
  batches of 64 and of 128 (seeds 0, 1, 2); and with the network in eval mode (BN at its initial statistics);
- synflow as defined here (BN removed), with BN kept in eval mode, with BN kept in train mode, and at C=8, N=1;
- the mean of the naswot (batch 128) and synflow ranks: an ensemble, not an objective.
Rows are appended to --out (JSONL, resumable by cell index); --report prints Spearman rho against the
NAS-Bench-201 CIFAR-10 200-epoch accuracy with 95% bootstrap intervals (1,000 resamples of cells) beside the
parameter count's, and writes the table next to --out as Markdown.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.cifar_images import require_folder  # noqa: E402

OUT = Path(__file__).resolve().parent / "results" / "zero_cost_variants.jsonl"
SHAPE = (3, 32, 32)


def _timed(f):
    t = time.process_time()
    value = f()
    return value, time.process_time() - t


def measure(cells: int, data_root: Path, out: Path) -> None:
    """Score every variant on the cells not yet in `out`."""
    import torch

    from benchmarks.zero_cost import load_batch, network
    from study.objectives import zero_cost as zc
    from study.spaces import draw

    torch.set_num_threads(1)
    done = {json.loads(line)["index"] for line in out.read_text().splitlines()} if out.exists() else set()
    x0, _ = load_batch(data_root, 256, seed=0)  # its first 32, 64 and 128 images are the smaller batches
    extra = [load_batch(data_root, 128, seed=s)[0] for s in (1, 2)]

    def naswot_eval(model, x):
        model.eval()
        return torch.linalg.slogdet(zc.relu_kernel(model, x)).logabsdet.item()

    def synflow_bn(model, train: bool):
        net = copy.deepcopy(model).double()
        net.train(train)
        with torch.no_grad():
            for p in net.parameters():
                p.abs_()
        net.zero_grad()
        net(torch.ones(1, *SHAPE, dtype=torch.float64)).sum().backward()
        with torch.no_grad():
            return float(sum((m.weight * m.weight.grad).abs().sum() for m in zc.weighted_layers(net)
                             if m.weight.grad is not None))

    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("a") as sink:
        for i, arch in enumerate(c.to_str() for c in draw("nb201", cells, seed=0)):
            if i in done:
                continue
            row: dict = {"index": i, "arch": arch}
            plain = network(arch, fused=False)  # naswot hooks ReLU modules
            row["nw_eval128"], row["nw_eval128_s"] = _timed(lambda: naswot_eval(plain, x0[:128]))
            plain = network(arch, fused=False)  # train mode, initial statistics, as the objective scores it
            for b in (32, 64, 128, 256):
                row[f"nw{b}"], row[f"nw{b}_s"] = _timed(lambda: zc.naswot(plain, x0[:b]))
            for k, x in enumerate(extra, start=1):
                row[f"nw64_s{k}"], row[f"nw64_s{k}_s"] = _timed(lambda: zc.naswot(plain, x[:64]))
                row[f"nw128_s{k}"], row[f"nw128_s{k}_s"] = _timed(lambda: zc.naswot(plain, x))
            fused = network(arch, fused=True)
            row["sf"], row["sf_s"] = _timed(lambda: zc.synflow(fused, SHAPE))
            row["sf_bneval"], row["sf_bneval_s"] = _timed(lambda: synflow_bn(fused, False))
            row["sf_bntrain"], row["sf_bntrain_s"] = _timed(lambda: synflow_bn(fused, True))
            small = network(arch, fused=True, width=8, depth=1)
            row["sf_c8n1"], row["sf_c8n1_s"] = _timed(lambda: zc.synflow(small, SHAPE))
            sink.write(json.dumps(row) + "\n")
            sink.flush()
            print(i, flush=True)


VARIANTS = [("naswot, batch 128 (as defined here)", ["nw128"]), ("naswot, batch 32", ["nw32"]),
            ("naswot, batch 64", ["nw64"]), ("naswot, batch 256", ["nw256"]),
            ("naswot, mean of 3 batches of 128", ["nw128", "nw128_s1", "nw128_s2"]),
            ("naswot, mean of 3 batches of 64", ["nw64", "nw64_s1", "nw64_s2"]),
            ("naswot, batch 128, eval mode", ["nw_eval128"]),
            ("synflow (as defined here: BN removed)", ["sf"]), ("synflow, BN kept in eval mode", ["sf_bneval"]),
            ("synflow, BN kept in train mode", ["sf_bntrain"]), ("synflow at C=8, N=1", ["sf_c8n1"])]


def report(out: Path) -> str:
    """The table of every variant measured on the cells in `out`."""
    from scipy.stats import rankdata

    from analysis.truth import builtin
    from analysis.uncertainty import bootstrap_ci, rank_correlations
    from study.spaces import NetShape, get_space
    from study.spaces.nb201 import complexity

    rows: dict[int, dict] = {}
    for line in out.read_text().splitlines():
        r = json.loads(line)
        rows.setdefault(r["index"], {}).update(r)
    idx = sorted(i for i in rows if all(k in rows[i] for _, keys in VARIANTS for k in keys))
    truth = builtin("nb201").table["nb201-cifar10"]
    acc = np.array([truth[rows[i]["arch"]] for i in idx], float)
    space = get_space("nb201")

    def line(name: str, values: np.ndarray, cpu: str) -> str:
        ok = np.isfinite(values)
        rho = rank_correlations(values[ok], acc[ok])["spearman"]
        lo, hi = bootstrap_ci(values[ok], acc[ok], "spearman", n_resamples=1000, seed=0)
        return f"| {name} | {ok.sum()} | {rho:.3f} | [{lo:.3f}, {hi:.3f}] | {cpu} |"

    lines = ["| variant | cells | Spearman ρ with the truth | 95% CI | CPU s/cell |", "|---|---|---|---|---|"]
    for name, keys in VARIANTS:
        values = np.array([np.mean([rows[i][k] for k in keys]) for i in idx], float)
        cpu = np.mean([sum(rows[i][k + "_s"] for k in keys) for i in idx])
        lines.append(line(name, values, f"{cpu:.2f}"))
    params = np.array([complexity(space.parse(rows[i]["arch"]), NetShape(3, 32, 10, 16, 5))[0] for i in idx], float)
    lines.append(line("params (C=16, N=5)", params, "-"))
    nw = np.array([rows[i]["nw128"] for i in idx], float)
    sf = np.array([rows[i]["sf"] for i in idx], float)
    cpu = np.mean([rows[i]["nw128_s"] + rows[i]["sf_s"] for i in idx])
    lines.append(line("ensemble: mean of the naswot and synflow ranks", (rankdata(nw) + rankdata(sf)) / 2, f"{cpu:.2f}"))
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cells", type=int, default=200)
    p.add_argument("--data-root", type=Path, default=Path("/tmp/cifar10-jpeg"))
    p.add_argument("--out", type=Path, default=OUT)
    p.add_argument("--report", action="store_true", help="only summarise the rows already in --out")
    args = p.parse_args()
    if not args.report:
        require_folder(args.data_root)
        measure(args.cells, args.data_root, args.out)
    table = report(args.out)
    print(table)
    args.out.with_suffix(".md").write_text(table)


if __name__ == "__main__":
    main()
