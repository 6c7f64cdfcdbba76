"""analysis.search and launch.status on search records with odd field types: the record is named, not a traceback."""

from __future__ import annotations

import logging

import pytest

from analysis import search as analysis_search
from launch import status
from study.spaces import cell_id, get_space
from study.store.records import seal, write_json_atomic

ARCH = "|nor_conv_3x3~0|+|nor_conv_3x3~0|skip_connect~1|+|skip_connect~0|nor_conv_1x1~1|avg_pool_3x3~2|"
EDGES, OPS = ["1<-0", "2<-0", "2<-1", "3<-0", "3<-1", "3<-2"], ["none", "skip_connect", "nor_conv_1x1",
                                                                   "nor_conv_3x3", "avg_pool_3x3"]


def good_record(seed: int) -> dict:
    """A complete NAS-Bench-201 search record as study.search writes one (the fields the readers use)."""
    space = get_space("nb201")
    cell = space.parse(ARCH)
    truth = space.truth(cell)
    alpha = {"cell": [[0.2] * 5 for _ in EDGES]}
    history = [{"epoch": e, "cell": ARCH, "truth": truth, "supernet_acc": 0.3 + 0.1 * e, "weight_loss": 1.5,
                "arch_loss": 1.6, "alpha": alpha, "cpu_s": 1.0, "wall_s": 1.0, "train_cpu_s": 0.9} for e in (1, 2)]
    return {"kind": "search", "cell_id": cell_id(cell.canonical()), "arch": ARCH, "method": "darts",
            "method_options": {}, "objective": "rotation", "seed": seed, "space": "nb201", "dataset": "digits",
            "budget": "tiny", "identity": "abcd1234", "status": "complete", "device_type": "cpu",
            "precision": "fp32", "net": {"c_in": 3, "image_size": 8, "n_classes": 10, "width": 4,
                                          "cells_per_stage": 1},
            "command": ["search_budget=tiny", f"seed={seed}"], "config": {"search_budget": {"warmup_epochs": 0}},
            "truth": truth, "alpha": alpha, "alpha_layout": {"cell": [EDGES, OPS]}, "supernet_acc": 0.5,
            "epochs": 2, "history": history, "cpu_s": 40.0, "wall_s": 42.0, "cell_epoch_cpu_s": 2.0,
            "cell_params": 1234}


def _drop(key):
    def change(rec):
        del rec[key]
    return change


def _set(key, value):
    def change(rec):
        rec[key] = value
    return change


def _entry(key, value):
    def change(rec):
        rec["history"][-1][key] = value
    return change


VARIANTS = {
    "truth a string": _set("truth", "abc"), "truth value a string": _set("truth", {"nb201-cifar10": "high"}),
    "seed missing": _drop("seed"), "seed x": _set("seed", "x"), "no history": _drop("history"),
    "history a string": _set("history", "none"), "cpu_s fast": _set("cpu_s", "fast"),
    "cell_epoch_cpu_s 0": _set("cell_epoch_cpu_s", 0), "epochs text": _set("epochs", "2"),
    "arch a list": _set("arch", [ARCH]), "supernet_acc text": _set("supernet_acc", "0.5"),
    "entry truth a list": _entry("truth", [1]), "entry epoch text": _entry("epoch", "two"),
    "alpha a string": _set("alpha", "x"), "net missing": _drop("net"), "command a string": _set("command", "x"),
    "method a number": _set("method", 3), "cell_params text": _set("cell_params", "many"),
}


@pytest.fixture
def study(tmp_path):
    """A study whose searches hold seed 0 (good) and seed 1 (to be made odd)."""
    folder = tmp_path / "searches" / "darts" / "rotation" / "digits-tiny-abcd1234"
    for seed in (0, 1):
        write_json_atomic(folder / f"seed{seed}.json", seal(good_record(seed)))
    return tmp_path


def _spoil(study, change) -> None:
    rec = good_record(1)
    change(rec)
    write_json_atomic(study / "searches" / "darts" / "rotation" / "digits-tiny-abcd1234" / "seed1.json", seal(rec))


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_analysis_search_leaves_an_odd_record_out_and_names_it(study, name, caplog):
    _spoil(study, VARIANTS[name])
    with caplog.at_level(logging.WARNING):
        out = analysis_search.analyse(study, study / "out", trials=50)
    assert "seed1.json" in caplog.text, caplog.text
    report = (out / "report.md").read_text()
    assert "1 search record(s) left out" in report
    searches = (out / "searches.csv").read_text().splitlines()
    assert len(searches) == 2  # the header and the good search


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_launch_status_reports_an_odd_record_in_its_line(study, name):
    _spoil(study, VARIANTS[name])
    text = status.report(study)
    assert "darts/rotation" in text and "seed 0: " + ARCH in text
    assert "seed1.json" in text  # the odd one is named, with what is wrong with it


def test_the_good_records_read_as_before(study):
    out = analysis_search.analyse(study, study / "out", trials=50)
    assert len((out / "searches.csv").read_text().splitlines()) == 3
    assert "left out" not in (out / "report.md").read_text()
    assert "2 done, 0 failed" in status.report(study)
