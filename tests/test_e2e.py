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


@pytest.mark.slow
@pytest.mark.parametrize("space", [s for s in __import__("study.spaces", fromlist=["SPACES"]).SPACES.names()
                                   if s != "nb201"])
def test_every_space_runs_the_three_commands(cli, tmp_path, space):
    study = tmp_path / space
    steps = [("study.sample", f"space={space}", "n=3", f"study_dir={study}"),
             ("study.train", "-m", "objective=rotation,supervised", f"space={space}", "budget=tiny",
              f"study_dir={study}"),
             ("analysis.correlate", f"study_dir={study}", "bootstrap=50", "permutations=50", "trials=20")]
    for step in steps:
        done = cli(*step)
        assert done.returncode == 0, done.stderr
    records = [json.loads(p.read_text()) for p in sorted((study / "runs").rglob("*.json"))]
    assert len(records) == 6 and {r["space"] for r in records} == {space}
    assert all(r["status"] == "complete" and r["net"]["width"] == r["config"]["budget"]["width"] for r in records)
    cells = pd.read_csv(study / "analysis" / "cells.csv")
    assert len(cells) == 3 and cells["params"].gt(0).all() and cells["supervised"].between(0, 1).all()
