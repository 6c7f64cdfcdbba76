"""The analysis layer on synthetic studies written as real record files: planted correlations are
recovered with intervals, ceilings and selection metrics match closed forms, studies are matched by cell
id, and partial studies report exactly what is missing."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from analysis.correlate import Request, analyse
from analysis.metrics import parse_map
from study.store.records import CELLS_FILE, STUDY_FILE, run_dir, write_atomic, write_json_atomic


def write_study(root: Path, cells: list[str], acc: dict[tuple[str, int], dict[str, float | None]],
                params: dict[str, float] | None = None, dataset: str = "digits") -> Path:
    """A study on disk: cells.jsonl in the given order and one record per (objective, seed) and cell.

    `acc[(objective, seed)][cell]` is the best test accuracy; None writes a failed record instead, and a
    cell absent from the dict has no record (missing).
    """
    params = params or {c: 1000.0 + i for i, c in enumerate(cells)}
    lines = [json.dumps({"id": c, "arch": f"arch-{c}", "params": params[c], "flops": 2 * params[c]}) for c in cells]
    write_atomic(root / CELLS_FILE, "\n".join(lines) + "\n")
    write_json_atomic(root / STUDY_FILE, {"sample": {"space": "nb201", "n": len(cells), "seed": 0}})
    for (objective, seed), values in acc.items():
        folder = run_dir(root, objective, dataset, "default", f"id-{objective}", seed)
        for cell, value in values.items():
            rec = {"cell_id": cell, "arch": f"arch-{cell}", "objective": objective, "seed": seed, "space": "nb201",
                   "dataset": dataset, "budget": "default", "identity": f"id-{objective}",
                   "status": "complete" if value is not None else "failed", "reason": None if value else "diverged",
                   "test_acc_best": value, "test_acc_final": None if value is None else value - 0.01,
                   "config": {"budget": {"epochs": 2, "width": 8}}}
            write_json_atomic(folder / f"{cell}.json", rec)
    return root


def request(study: Path, **kw) -> Request:
    """A Request with the defaults of conf/correlate.yaml and small resample counts."""
    base = dict(bootstrap=400, permutations=400, trials=400)
    return Request(study, kw.pop("reference", "supervised"), parse_map(kw.pop("metric", "best")), kw.pop("merge", "mean"),
                   None, None, **{**base, **kw})


def planted(rng: np.random.Generator, n: int, rho: float, noise: float) -> tuple[np.ndarray, dict]:
    """Latent cell quality z and two seeds of supervised (z + noise) and rotation (rho-correlated + noise)."""
    z = rng.standard_normal(n)
    pretext = rho * z + math.sqrt(1 - rho**2) * rng.standard_normal(n)
    cells = [f"c{i:03d}" for i in range(n)]
    acc = {}
    for seed in (0, 1):
        for name, signal in (("supervised", z), ("rotation", pretext)):
            values = 0.7 + 0.05 * (signal + noise * rng.standard_normal(n))
            acc[(name, seed)] = dict(zip(cells, values))
    return z, acc


def test_planted_correlation_is_recovered_with_interval_and_pvalue(tmp_path):
    rng = np.random.default_rng(1)
    z, acc = planted(rng, n=150, rho=0.7, noise=0.0)
    cells = sorted(acc[("supervised", 0)])
    write_study(tmp_path, cells, acc, params={c: float(v) for c, v in zip(cells, rng.standard_normal(150))})
    res, _, table = analyse(request(tmp_path))
    row = res.correlations.set_index("objective").loc["rotation"]
    truth = 6 / math.pi * math.asin(0.7 / 2)  # Spearman of a bivariate normal with Pearson 0.7
    assert row["spearman_low"] < truth < row["spearman_high"]
    assert row["spearman_low"] < row["spearman"] < row["spearman_high"]
    assert row["kendall_low"] < 2 / math.pi * math.asin(0.7) < row["kendall_high"]
    assert row["spearman_high"] - row["spearman_low"] < 0.3  # 150 cells pin rho down
    assert row["p_value"] == pytest.approx(1 / 401)  # no permutation of 150 cells reaches rho ~0.68
    assert res.correlations.set_index("objective").loc["params", "p_value"] > 0.01  # unrelated by construction
    merged = table[table["in_analysis"]]
    assert row["spearman"] == pytest.approx(stats.spearmanr(merged["rotation"], merged["supervised"])[0])
    # Without seed noise both objectives are perfectly reliable, so every ceiling is 1.
    assert row["ceiling"] == pytest.approx(1.0) and row["ref_ceiling"] == pytest.approx(1.0)


def test_intervals_are_seeded_and_resample_count_is_configurable(tmp_path):
    _, acc = planted(np.random.default_rng(2), n=40, rho=0.5, noise=0.3)
    write_study(tmp_path, sorted(acc[("supervised", 0)]), acc)
    first = analyse(request(tmp_path))[0].correlations
    again = analyse(request(tmp_path))[0].correlations
    other = analyse(request(tmp_path, seed=7, bootstrap=300))[0].correlations
    pd.testing.assert_frame_equal(first, again)
    assert (first["spearman"] == other["spearman"]).all()
    assert not np.allclose(first["spearman_low"], other["spearman_low"])


def test_noise_ceiling_equals_its_closed_form(tmp_path):
    cells = ["a", "b", "c", "d", "e"]
    sup0 = [0.1, 0.2, 0.3, 0.4, 0.5]
    sup1 = [0.2, 0.1, 0.3, 0.4, 0.5]   # one adjacent swap: Spearman 1 - 6*2/(5*24) = 0.9
    rot0 = [0.5, 0.6, 0.7, 0.8, 0.9]
    rot1 = [0.6, 0.5, 0.8, 0.7, 0.9]   # two swaps: Spearman 1 - 6*4/120 = 0.8
    acc = {("supervised", 0): dict(zip(cells, sup0)), ("supervised", 1): dict(zip(cells, sup1)),
           ("rotation", 0): dict(zip(cells, rot0)), ("rotation", 1): dict(zip(cells, rot1))}
    res, _, _ = analyse(request(write_study(tmp_path, cells, acc)))
    noise = res.noise.set_index("objective")
    rel_sup, rel_rot = 2 * 0.9 / 1.9, 2 * 0.8 / 1.8  # Spearman-Brown for the mean of two seeds
    assert noise.loc["supervised", "seed_rho"] == pytest.approx(0.9)
    assert noise.loc["rotation", "seed_rho"] == pytest.approx(0.8)
    assert noise.loc["supervised", "reliability"] == pytest.approx(rel_sup)
    assert noise.loc["supervised", "ceiling"] == pytest.approx(math.sqrt(rel_sup))
    corr = res.correlations.set_index("objective")
    assert corr.loc["rotation", "ceiling"] == pytest.approx(math.sqrt(rel_sup * rel_rot))
    assert corr.loc["params", "ceiling"] == pytest.approx(math.sqrt(rel_sup))  # exact baseline
    assert corr["ref_ceiling"].tolist() == pytest.approx([math.sqrt(rel_sup)] * 3)
    assert any("rotation" in n and f"{math.sqrt(rel_sup):.2f}" in n for n in res.notes)


def test_single_seed_has_no_ceiling(tmp_path):
    cells = ["a", "b", "c", "d"]
    acc = {("supervised", 0): dict(zip(cells, [0.1, 0.3, 0.2, 0.4])),
           ("rotation", 0): dict(zip(cells, [0.5, 0.6, 0.8, 0.7]))}
    res, _, _ = analyse(request(write_study(tmp_path, cells, acc)))
    assert res.noise["reliability"].isna().all()
    assert res.correlations["ceiling"].isna().all() and res.correlations["ref_ceiling"].isna().all()


def _expected_pick(proxy: np.ndarray, target: np.ndarray, m: int) -> float:
    """Exact mean target of the best-by-proxy among m of n cells: P(best is proxy rank i) = C(n-1-i, m-1)/C(n, m)."""
    ranked = target[np.argsort(-proxy, kind="stable")]
    n = len(ranked)
    weights = [math.comb(n - 1 - i, m - 1) / math.comb(n, m) for i in range(n)]
    return float(np.dot(weights, ranked))


def test_selection_metrics_match_a_hand_computed_table(tmp_path):
    cells = ["c0", "c1", "c2", "c3", "c4", "c5"]
    target = np.array([0.70, 0.80, 0.90, 0.60, 0.50, 0.85])
    proxy = np.array([0.30, 0.90, 0.80, 0.50, 0.10, 0.70])
    params = dict(zip(cells, [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]))
    acc = {("supervised", 0): dict(zip(cells, target)), ("rotation", 0): dict(zip(cells, proxy))}
    res, _, _ = analyse(request(write_study(tmp_path, cells, acc, params=params), trials=20000))
    sel = res.selection.set_index("objective")
    # rotation ranks c1 first (supervised 0.80): regret 0.10, it beats or ties 4 of 6 cells.
    assert sel.loc["rotation", "top1_cell"] == "c1"
    assert sel.loc["rotation", ["top1_acc", "regret"]].tolist() == pytest.approx([0.80, 0.10])
    assert sel.loc["rotation", "percentile"] == pytest.approx(400 / 6)
    # top-k: k = 1 for 5% and 10% of 6 cells ({c1} vs {c2}), k = 2 for 25% ({c1, c2} vs {c2, c5}).
    assert sel.loc["rotation", ["top5_overlap", "top10_overlap", "top25_overlap"]].tolist() == [0.0, 0.0, 0.5]
    # params ranks c5 first (0.85): regret 0.05; its top 2 {c5, c4} shares c5 with {c2, c5}.
    assert sel.loc["params", ["top1_acc", "regret", "top25_overlap"]].tolist() == pytest.approx([0.85, 0.05, 0.5])
    assert sel.loc["supervised", "regret"] == 0.0 and sel.loc["supervised", "kind"] == "reference"
    curves = res.curves.set_index(["objective", "size"])
    assert sorted(res.curves["size"].unique()) == [1, 2, 4]
    for m in (1, 2, 4):
        assert curves.loc[("rotation", m), "mean"] == pytest.approx(_expected_pick(proxy, target, m), abs=0.004)
        assert curves.loc[("supervised", m), "mean"] == pytest.approx(_expected_pick(target, target, m), abs=0.004)


def test_studies_are_matched_by_cell_id_in_any_order(tmp_path):
    rng = np.random.default_rng(3)
    ids = [f"k{i:02d}" for i in range(30)]
    big = dict(zip(ids, rng.uniform(0.5, 0.9, 30)))                    # "ImageNet" supervised
    small = {c: v + rng.normal(0, 0.05) for c, v in big.items()}       # "CIFAR-10" rotation, related
    other_order = list(reversed(ids))[:-3]                              # three cells never sampled there
    a = write_study(tmp_path / "imagenet", ids, {("supervised", 0): big})
    b = write_study(tmp_path / "cifar10", other_order, {("rotation", 0): {c: small[c] for c in other_order},
                                                        ("supervised", 0): {c: big[c] for c in other_order}},
                    dataset="cifar10")
    res, runs, _ = analyse(request(a, compare=[str(b)]))
    corr = res.correlations.set_index("objective")
    shared = [c for c in ids if c in other_order]
    expected = stats.spearmanr([small[c] for c in shared], [big[c] for c in shared])[0]
    assert corr.loc["cifar10/rotation", "spearman"] == pytest.approx(expected)
    assert corr.loc["cifar10/supervised", "spearman"] == pytest.approx(1.0)
    assert corr.loc["cifar10/rotation", "n_cells"] == 27
    assert sorted(res.dropped["cell_id"]) == sorted(ids[:3]) and set(runs["study"]) == {"imagenet", "cifar10"}
    # Any objective of one study against any of another: the compared study's objective as reference.
    flipped, _, _ = analyse(request(a, compare=[{"dir": str(b), "label": "c10"}], reference="c10/rotation"))
    back = flipped.correlations.set_index("objective")
    assert back.loc["supervised", "spearman"] == pytest.approx(expected)
    assert back.loc["supervised", "reference"] == "c10/rotation"


def test_partial_study_reports_exactly_what_is_missing(tmp_path):
    cells = [f"c{i}" for i in range(10)]
    value = {c: 0.5 + 0.03 * i for i, c in enumerate(cells)}
    sup0 = {**value, "c4": None}                                  # c4 seed 0 failed
    sup1 = {c: v for c, v in value.items() if c != "c3"}          # c3 seed 1 never ran
    rot0 = {**{c: v for c, v in value.items() if c != "c5"}, "c6": None}
    acc = {("supervised", 0): sup0, ("supervised", 1): sup1, ("rotation", 0): rot0,
           ("jigsaw", 0): {"c0": None}}                           # an objective with nothing complete
    study = write_study(tmp_path, cells, acc)
    res, _, table = analyse(request(study))
    done = res.completeness.set_index("objective")
    assert done.loc["supervised", ["seeds", "complete", "failed", "missing"]].tolist() == ["0,1", 8, 1, 1]
    assert done.loc["rotation", ["complete", "failed", "missing"]].tolist() == [8, 1, 1]
    assert done.loc["jigsaw", ["complete", "failed", "missing"]].tolist() == [0, 1, 9]
    assert dict(zip(res.dropped["cell_id"], res.dropped["reason"])) == {
        "c3": "supervised missing", "c4": "supervised failed", "c5": "rotation missing", "c6": "rotation failed"}
    assert (res.correlations["n_cells"] == 6).all() and int(table["in_analysis"].sum()) == 6
    assert any("jigsaw" in n for n in res.notes)
    # One complete seed is enough when asked: c3 (seed 0) and c4 (seed 1) come back.
    loose, _, _ = analyse(request(study, require_all_seeds=False))
    assert sorted(loose.dropped["cell_id"]) == ["c5", "c6"]


def test_metric_and_merge_choose_the_accuracy(tmp_path):
    cells = ["a", "b", "c", "d"]
    acc = {("supervised", s): dict(zip(cells, np.array([0.1, 0.3, 0.2, 0.4]) + 0.1 * s)) for s in (0, 1, 2)}
    acc[("supervised", 2)]["a"] = 0.9                              # an outlier seed for cell a
    study = write_study(tmp_path, cells, acc)
    _, _, mean = analyse(request(study))
    _, _, median = analyse(request(study, merge="median"))
    _, _, final = analyse(request(study, metric="final"))
    assert mean.loc["a", "supervised"] == pytest.approx((0.1 + 0.2 + 0.9) / 3)
    assert median.loc["a", "supervised"] == pytest.approx(0.2)
    assert final.loc["b", "supervised"] == pytest.approx(0.4 - 0.01)  # test_acc_final = best - 0.01 here
