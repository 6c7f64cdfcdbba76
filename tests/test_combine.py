"""Label-free combinations (analysis/combine.py): which columns may enter, equal-weight mean ranks, and a
cross-validated weighting that scores only cells it was not fitted on; then through analysis.correlate."""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.combine import CV_WEIGHTS, MEAN_RANK, combinations, cv_weighted, label_free, mean_rank, rule_sets
from analysis.correlate import analyse
from tests.test_analysis_correlate import request, write_study


def test_only_columns_that_read_no_label_enter_a_combination():
    columns = ["naswot", "snip", "fisher", "epe_nas", "rotation", "supervised", "params", "flops", "zen", "truth"]
    assert label_free(columns) == ["naswot", "rotation", "params", "flops", "zen"]
    sets = rule_sets(columns)
    assert sets["label-free training-free scores"] == ["naswot", "zen"]
    assert sets["label-free training-free scores + size"] == ["naswot", "zen", "params", "flops"]
    assert sets["label-free trained objectives + params"] == ["rotation", "params"]
    assert sets["every label-free column"] == ["naswot", "rotation", "params", "flops", "zen"]


def test_rule_sets_drop_single_members_and_duplicates():
    assert rule_sets(["naswot", "snip", "supervised"]) == {}  # one label-free column: nothing to combine
    assert list(rule_sets(["naswot", "synflow"])) == ["label-free training-free scores"]


def test_mean_rank_weights_every_column_alike():
    cells = pd.DataFrame({"a": [1.0, 2.0, 3.0], "b": [30.0, 10.0, 20.0], "c": [0.0, np.nan, 1.0]})
    assert mean_rank(cells, ["a", "b"]).tolist() == [2.0, 1.5, 2.5]  # ranks (1, 2, 3) and (3, 1, 2)
    assert mean_rank(cells, ["a", "c"]).isna().tolist() == [False, True, False]


def test_cross_validated_weights_find_a_planted_mix_and_nothing_in_noise():
    rng = np.random.default_rng(0)
    n = 400
    a, b, noise = rng.standard_normal(n), rng.standard_normal(n), rng.standard_normal((n, 6))
    cells = pd.DataFrame({"a": a, "b": b, "truth": 3 * a + b + 0.1 * rng.standard_normal(n),
                          **{f"n{i}": noise[:, i] for i in range(6)}})
    rho, held_out = cv_weighted(cells, ["a", "b"], "truth")
    assert rho > 0.95 and held_out.notna().all()
    # Six noise columns fitted in-sample would correlate with the truth by chance; held out they do not.
    rho_noise, _ = cv_weighted(cells, [f"n{i}" for i in range(6)], "truth")
    assert abs(rho_noise) < 0.15
    equal = mean_rank(cells, ["a", "b"]).corr(cells["truth"], method="spearman")
    assert rho > equal  # weights 3:1 beat 1:1 here, which is why the weighting is only an upper bound


def test_combinations_label_both_kinds_and_give_partial_rho_given_params():
    rng = np.random.default_rng(1)
    n = 60
    size = rng.standard_normal(n)
    cells = pd.DataFrame({"params": size, "naswot": size + rng.standard_normal(n), "zen": rng.standard_normal(n),
                          "snip": rng.standard_normal(n)})
    cells["truth"] = size + cells["naswot"]
    table = combinations(cells, "truth", ["params", "naswot", "zen", "snip"], bootstrap=50)
    assert set(table["kind"]) == {MEAN_RANK, CV_WEIGHTS} and "upper bound" in CV_WEIGHTS
    assert not table["members"].str.contains("snip").any()
    assert table["partial"].notna().all() and (table["n_cells"] == n).all()


def test_correlate_reports_label_free_combinations(tmp_path):
    rng = np.random.default_rng(2)
    cells = [f"c{i:02d}" for i in range(30)]
    z = rng.standard_normal(30)
    acc = {("supervised", 0): dict(zip(cells, 0.7 + 0.05 * z)),
           ("rotation", 0): dict(zip(cells, 0.5 + 0.05 * (z + rng.standard_normal(30))))}
    study = write_study(tmp_path / "s", cells, acc)
    for name, values in (("naswot", z + rng.standard_normal(30)), ("snip", rng.standard_normal(30))):
        write_study_scores(study, name, dict(zip(cells, values)))
    results, _, _ = analyse(request(study, bootstrap=50, permutations=50, trials=50))
    table = results.combined
    assert set(table["ranking"]) >= {"every label-free column"}
    members = set(" + ".join(table["members"]).split(" + "))
    assert members == {"rotation", "naswot", "params", "flops"}  # supervised (the reference) and snip use labels
    assert (table["target"] == "supervised").all() and (table["n_cells"] == 30).all()


def write_study_scores(study, objective: str, values: dict[str, float]) -> None:
    """Training-free records (a `score`, no accuracy) for `objective`, one per cell, seed 0."""
    from study.store.records import run_dir, write_json_atomic

    folder = run_dir(study, objective, "digits", "default", f"id-{objective}", 0)
    for cell, value in values.items():
        write_json_atomic(folder / f"{cell}.json", {
            "cell_id": cell, "arch": f"arch-{cell}", "objective": objective, "seed": 0, "space": "nb201",
            "dataset": "digits", "budget": "default", "identity": f"id-{objective}", "status": "complete",
            "reason": None, "score": float(value), "test_acc_best": None, "test_acc_final": None,
            "config": {"budget": {"epochs": 2, "width": 8}}})
