"""The README's three commands, exactly as a user runs them, on a tiny budget in a fresh folder."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from tests.conftest import ROOT


@pytest.mark.slow
def test_readme_quick_start_end_to_end(cli, tmp_path):
    readme = (ROOT / "README.md").read_text()
    for command in ("python -m study.sample n=500", "python -m study.train -m objective=rotation,supervised",
                    "python -m analysis.correlate"):
        assert command in readme
    steps = [("study.sample", "n=5"), ("study.train", "-m", "objective=rotation,supervised", "budget=tiny"),
             ("analysis.correlate",)]
    for step in steps:
        done = cli(*step, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
    study = tmp_path / "studies" / "default"
    cells = [json.loads(line) for line in (study / "cells.jsonl").read_text().splitlines()]
    assert len(cells) == 5 and len({c["id"] for c in cells}) == 5
    records = [json.loads(p.read_text()) for p in sorted((study / "runs").rglob("*.json"))]
    assert len(records) == 10
    assert {(r["objective"], r["cell_id"]) for r in records} == {(o, c["id"]) for o in ("rotation", "supervised") for c in cells}
    for r in records:
        assert r["status"] == "complete" and r["budget"] == "tiny" and r["dataset"] == "digits" and r["seed"] == 0
        assert 0 <= r["test_acc_final"] <= r["test_acc_best"] <= 1 and len(r["history"]["test_acc"]) == r["epochs"]
        assert r["config"]["objective"]["name"] == r["objective"] and r["wall_s"] > 0 and r["params"] > 0
    corr = pd.read_csv(study / "analysis" / "correlations.csv")
    assert set(corr["objective"]) == {"rotation", "params", "flops"}

    # Rerunning trains nothing and says so; the records are untouched.
    stamps = {p: p.stat().st_mtime_ns for p in (study / "runs").rglob("*.json")}
    again = cli(*steps[1], cwd=tmp_path)
    assert again.returncode == 0 and "nothing to train" in again.stderr + again.stdout
    assert {p: p.stat().st_mtime_ns for p in (study / "runs").rglob("*.json")} == stamps
