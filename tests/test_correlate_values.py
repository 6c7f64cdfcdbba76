"""analysis.correlate on checksum-valid records whose accuracy values are odd: each dropped, named and counted."""

from __future__ import annotations

import json
import logging

import pandas as pd
import pytest

from analysis.correlate import analyse, check, task
from study.store.records import write_json_atomic
from tests.test_analysis_correlate import request, write_study

ODD = {"c10": "abc", "c11": [0.5], "c12": 1e308, "c13": -3, "c14": "0.5", "c15": float("nan"),
       "c16": float("inf"), "c17": True, "c18": "missing"}


def odd_study(root):
    """12 good cells ranked alike by both objectives, and cells whose rotation accuracy is one of ODD."""
    cells = [f"c{i:02d}" for i in range(19)]
    good = {c: 0.5 + 0.01 * i for i, c in enumerate(cells)}
    study = write_study(root, cells, {("supervised", 0): good, ("rotation", 0): good})
    for cell, value in ODD.items():
        path = next(study.glob(f"runs/rotation/**/{cell}.json"))
        rec = json.loads(path.read_text())
        if value == "missing":
            del rec["test_acc_best"]
        else:
            rec["test_acc_best"] = value
        write_json_atomic(path, rec)  # a valid checksum: the values are what the file says
    return study


def test_odd_accuracies_are_dropped_named_and_counted(tmp_path, caplog):
    study = odd_study(tmp_path)
    req = request(study)
    check(req)  # no traceback in the check phase
    with caplog.at_level(logging.WARNING):
        task(req)
    out = study / "analysis"
    dropped = pd.read_csv(out / "dropped.csv").set_index("cell_id")["reason"]
    assert set(dropped.index) == set(ODD)
    for cell in ODD:
        assert dropped[cell].startswith("rotation failed") and f"{cell}.json" in dropped[cell], dropped[cell]
        assert ("test_acc_best" if cell != "c18" else "best value") in dropped[cell], dropped[cell]
    assert "'abc'" in dropped["c10"] and "-3" in dropped["c13"] and "'0.5'" in dropped["c14"]
    assert "1e+308" in dropped["c12"] and "True" in dropped["c17"]
    corr = pd.read_csv(out / "correlations.csv").set_index("objective")
    assert corr.loc["rotation", "spearman"] == pytest.approx(1.0) and corr.loc["rotation", "n_cells"] == 10
    assert sorted(p.name for p in out.glob("*.png")) and (out / "report.md").is_file()
    report = (out / "report.md").read_text()
    assert f"{len(ODD)} dropped" in report
    logged = caplog.text
    for cell in ("c10", "c12", "c13", "c14", "c15"):
        assert f"{cell}.json" in logged, cell  # a line names every record left out


def test_the_values_of_good_records_are_what_the_analysis_uses(tmp_path):
    study = odd_study(tmp_path)
    _, _, table = analyse(request(study))
    kept = table[table["in_analysis"]]
    assert list(kept.index) == [f"c{i:02d}" for i in range(10)]
    assert kept["rotation"].tolist() == pytest.approx([0.5 + 0.01 * i for i in range(10)])
