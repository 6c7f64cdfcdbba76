"""Ground truth: the shipped NAS-Bench-201 table against facts anyone can check, the join by architecture,
and what the analysis makes of it (truth columns, correlations with the truth, the params verdict, a truth
column as reference, the baselines of the network that was trained)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from study.spaces import get_space
from scipy import stats

from analysis import truth as truths
from analysis.correlate import Request, analyse
from analysis.report import write
from study.spaces import NetShape, cell_id
from study.spaces.nb201 import NB201Cell, complexity, nb201_cells, nb201_classes
from study.store.records import CELLS_FILE, STUDY_FILE, run_dir, write_atomic, write_json_atomic

SHARED_CSV = Path(__file__).resolve().parents[2] / "shared" / "data" / "nb201-accuracy.csv"
BEST = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"


def test_the_shipped_table_holds_every_cell_once_with_the_published_optimum():
    table = truths.builtin("nb201").table
    assert len(table) == 15_625 and table.index.is_unique
    assert set(table.index) == {c.to_str() for c in nb201_cells()}
    assert list(table.columns) == ["nb201-cifar10", "nb201-cifar100", "nb201-imagenet16-120"]
    c10 = table["nb201-cifar10"]
    assert round(100 * c10.max(), 2) == 94.37  # the CIFAR-10 optimum the NAS-Bench-201 paper reports
    assert table.min().min() > 0 and table.max().max() < 1  # fractions, like a study's accuracies
    assert get_space("nb201").benchmark.file.stat().st_size < 1_000_000


@pytest.mark.skipif(not SHARED_CSV.exists(), reason="the team's shared data folder is not beside this checkout")
def test_the_shipped_table_is_the_source_byte_for_byte():
    assert gzip.decompress(get_space("nb201").benchmark.file.read_bytes()) == SHARED_CSV.read_bytes()


def test_join_is_by_the_exact_architecture_string():
    a, b = BEST, "|none~0|+|skip_connect~0|none~1|+|skip_connect~0|none~1|none~2|"
    cells = pd.DataFrame({"arch": [a, b, "not-a-cell"]}, index=["x", "y", "z"])
    truth = truths.Truth("t", pd.DataFrame({"acc": [0.9, 0.1]}, index=[a, b]))
    joined = truths.join(cells, truth, required=True)
    assert joined.loc["x", "acc"] == 0.9 and joined.loc["y", "acc"] == 0.1 and np.isnan(joined.loc["z", "acc"])
    with pytest.raises(truths.TruthError, match="matches no cell"):
        truths.join(cells.loc[["z"]], truth, required=True)
    assert truths.join(cells.loc[["z"]], truth, required=False)["acc"].isna().all()  # built-in: absent is fine


def test_a_user_truth_file_reads_its_measures(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text(f"arch,top1,loss\n{BEST},0.9,1.5\n")
    truth = truths.read_truth_csv(path)
    assert truth.columns == ["top1", "loss"] and truth.table.loc[BEST, "loss"] == 1.5


def write_study(root: Path, archs: list[str], acc: dict[tuple[str, int], list[float]], width: int = 8) -> Path:
    """A study of real NAS-Bench-201 cells on disk, sampled at C=8 and trained at `width`."""
    cells = [NB201Cell.from_str(a) for a in archs]
    rows = []
    for c in cells:
        params, flops = complexity(c, NetShape(1, 8, 10, 8, 1))
        rows.append({"id": cell_id(c.canonical()), "arch": c.to_str(), "canonical": c.canonical(),
                     "params": params, "flops": flops})
    write_atomic(root / CELLS_FILE, "".join(json.dumps(r) + "\n" for r in rows))
    write_json_atomic(root / STUDY_FILE, {"sample": {"space": "nb201", "n": len(rows), "seed": 0}})
    config = {"dataset": {"name": "digits", "channels": 1, "image_size": 8, "n_classes": 10},
              "budget": {"name": "default", "width": width, "cells_per_stage": 1, "epochs": 4}}
    for (objective, seed), values in acc.items():
        folder = run_dir(root, objective, "digits", "default", f"id-{objective}", seed)
        for row, value in zip(rows, values):
            rec = {"cell_id": row["id"], "arch": row["arch"], "objective": objective, "seed": seed, "space": "nb201",
                   "dataset": "digits", "budget": "default", "identity": f"id-{objective}", "status": "complete",
                   "test_acc_best": value, "test_acc_final": value, "config": config}
            write_json_atomic(folder / f"{row['id']}.json", rec)
    return root


def request(study: Path, **kw) -> Request:
    base = dict(bootstrap=200, permutations=200, trials=50)
    return Request(study, kw.pop("reference", "supervised"), {"*": "best"}, "mean", None, None, **{**base, **kw})


@pytest.fixture(scope="module")
def archs() -> list[str]:
    """30 cells of distinct classes (as a sample draws them) spread over the truth's range."""
    reps = [c.to_str() for c in nb201_classes().values() if not c.is_degenerate()]
    table = truths.builtin("nb201").table.loc[reps].sort_values("nb201-cifar10")
    return list(table.index[np.linspace(0, len(table) - 1, 30).astype(int)])


def test_the_analysis_joins_the_truth_and_judges_the_reference_against_params(tmp_path, archs):
    true = truths.builtin("nb201").table.loc[archs, "nb201-cifar10"].to_numpy()
    # supervised ranks cells backwards, rotation exactly like the truth
    study = write_study(tmp_path, archs, {("supervised", 0): list(1 - true), ("rotation", 0): list(true)})
    results, _, table = analyse(request(study))
    assert {"nb201-cifar10", "nb201-cifar100", "nb201-imagenet16-120"} <= set(table.columns)
    assert np.allclose(table["nb201-cifar10"].to_numpy(), true)
    against = results.truth.set_index(["reference", "objective"])
    assert against.loc[("nb201-cifar10", "rotation"), "spearman"] == pytest.approx(1.0)
    assert against.loc[("nb201-cifar10", "supervised"), "spearman"] == pytest.approx(-1.0)
    assert against.loc[("nb201-cifar10", "supervised"), "kind"] == "reference"
    params = stats.spearmanr(table["params"], true).statistic
    assert against.loc[("nb201-cifar10", "params"), "spearman"] == pytest.approx(params)
    assert set(results.truth["reference"]) == {"nb201-cifar10", "nb201-cifar100", "nb201-imagenet16-120"}
    assert any("worse than counting parameters" in line for line in results.verdict)
    assert not any("better than chance" in line for line in results.verdict)  # rotation ranks perfectly
    out = tmp_path / "analysis"
    write(out, results, pd.DataFrame({"study": []}), table)
    report = (out / "report.md").read_text()
    assert "## Against the ground truth" in report and "worse than counting parameters" in report
    assert (out / "truth.png").exists() and "nb201-cifar100" in (out / "truth.tex").read_text()
    assert set(pd.read_csv(out / "truth.csv")["reference"]) == set(results.truth["reference"])


def test_a_study_whose_rankings_are_chance_says_so_and_points_to_what_ranks(tmp_path, archs):
    true = truths.builtin("nb201").table.loc[archs, "nb201-cifar10"].to_numpy()
    rank = stats.rankdata(true) - 1
    # Orders that scramble the truth's (rho 0.04 and 0.01 with it), as a study on unrelated data would.
    noise = {("supervised", 0): list((rank * 19) % 30 / 30), ("rotation", 0): list((rank * 19 + 5) % 30 / 30)}
    assert all(abs(stats.spearmanr(v, true).statistic) < 0.1 for v in noise.values())
    results, _, table = analyse(request(write_study(tmp_path, archs, noise), reference="nb201-cifar10"))
    [chance] = [line for line in results.verdict if "better than chance" in line]
    assert "docs/ladder.md" in chance
    write(tmp_path / "analysis", results, pd.DataFrame({"study": []}), table)
    assert chance in (tmp_path / "analysis" / "report.md").read_text()


def test_a_truth_column_as_reference_lets_a_study_train_pretext_tasks_only(tmp_path, archs):
    true = truths.builtin("nb201").table.loc[archs, "nb201-cifar10"].to_numpy()
    noisy = true + np.random.default_rng(0).normal(0, 0.02, len(true))
    study = write_study(tmp_path, archs, {("rotation", 0): list(noisy)})
    results, _, _ = analyse(request(study, reference="nb201-cifar10"))
    corr = results.correlations.set_index("objective")
    assert results.reference == "nb201-cifar10"
    assert corr.loc["rotation", "spearman"] == pytest.approx(stats.spearmanr(noisy, true).statistic)
    assert corr.loc["rotation", "ref_ceiling"] == 1.0  # the truth counts as exact
    assert "nb201-cifar10" not in set(results.truth["reference"])  # not listed twice


def test_a_user_truth_file_is_joined_for_any_study(tmp_path, archs):
    study = write_study(tmp_path / "s", archs, {("supervised", 0): list(np.arange(len(archs)) / 100)})
    path = tmp_path / "mine.csv"
    pd.DataFrame({"arch": archs[:20], "mine": np.arange(20)[::-1]}).to_csv(path, index=False)
    results, _, table = analyse(request(study, truth=str(path)))
    row = results.truth.set_index("objective").loc["supervised"]
    assert row["reference"] == "mine" and row["n_cells"] == 20 and row["spearman"] == pytest.approx(-1.0)
    assert "nb201-cifar10" not in table.columns  # the user's file replaces the built-in truth


def test_baselines_are_those_of_the_network_that_was_trained(tmp_path, archs):
    study = write_study(tmp_path, archs, {("supervised", 0): list(np.arange(len(archs)) / 100)}, width=16)
    results, _, table = analyse(request(study))
    sampled = pd.read_json(study / CELLS_FILE, lines=True).set_index("id")
    for cid, arch in table["arch"].items():
        assert tuple(table.loc[cid, ["params", "flops"]]) == complexity(NB201Cell.from_str(arch), NetShape(1, 8, 10, 16, 1))
        assert table.loc[cid, "params"] != sampled.loc[cid, "params"]  # the sample was drawn at C=8
    assert "C=16" in results.setup["params, FLOPs"]


def test_the_report_says_which_objective_ranks_beyond_size_and_which_only_counts_parameters(tmp_path, archs):
    from study.spaces.nb201.space import complexity as nb201_complexity

    true = truths.builtin("nb201").table.loc[archs, "nb201-cifar10"].to_numpy()
    size = np.array([nb201_complexity(NB201Cell.from_str(a), NetShape(1, 8, 10, 8, 1))[0] for a in archs], float)
    # rotation ranks like the truth (which knows more than size); supervised ranks exactly like the count.
    study = write_study(tmp_path, archs, {("rotation", 0): list(true), ("supervised", 0): list(np.log(size) / 100)})
    results, _, table = analyse(request(study, reference="nb201-cifar10"))
    corr = results.correlations.set_index("objective")
    assert corr.loc["supervised", "partial"] == 0.0 and corr.loc["params", "partial"] == 0.0
    assert corr.loc["rotation", "partial_low"] > 0.5
    assert corr.loc["supervised", "combined"] == pytest.approx(corr.loc["params", "spearman"])
    [rot] = [line for line in results.beyond if line.startswith("**rotation**")]
    [sup] = [line for line in results.beyond if line.startswith("**supervised**")]
    assert "more than their size" in rot and "nothing beyond size" in sup
    write(tmp_path / "analysis", results, pd.DataFrame({"study": []}), table)
    report = (tmp_path / "analysis" / "report.md").read_text()
    assert "## Beyond size" in report and rot in report
    assert (tmp_path / "analysis" / "beyond_size.png").stat().st_size > 1000
    assert {"partial", "partial_low", "partial_p", "combined"} <= set(pd.read_csv(tmp_path / "analysis" / "correlations.csv"))
