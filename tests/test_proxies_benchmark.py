"""benchmarks/proxies.py: every training-free objective of the registry scored per cell, resumed, and reported
with label-free scores apart from labelled ones."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from study.objectives import list_objectives
from study.objectives.base import objective_class
from tests.conftest import ROOT
from tests.image_fixtures import write_tiny_folder


@pytest.mark.slow
def test_proxies_benchmark_scores_every_training_free_objective_and_resumes(tmp_path):
    write_tiny_folder(tmp_path / "images", {"train": 6})
    script = [sys.executable, str(ROOT / "benchmarks" / "proxies.py")]
    measure = [*script, "--cells", "12", "--batch", "8", "--data-root", str(tmp_path / "images"),
               "--out", str(tmp_path / "out")]
    done = subprocess.run(measure, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr
    rows = (tmp_path / "out" / "proxies.jsonl").read_text().splitlines()
    free = {n for n in list_objectives() if not objective_class(n).trains}
    assert len(rows) == 12 and all(free <= set(json.loads(r)) for r in rows)
    assert all(json.loads(r)[f"{n}_cpu_s"] >= 0 for r in rows for n in free)
    again = subprocess.run(measure, capture_output=True, text=True, timeout=600, check=False)
    assert again.returncode == 0 and (tmp_path / "out" / "proxies.jsonl").read_text().splitlines() == rows
    report = subprocess.run([*script, "--report", "--bootstrap", "20", "--out", str(tmp_path / "out")],
                            capture_output=True, text=True, timeout=600, check=False)
    assert report.returncode == 0, report.stderr
    table = json.loads((tmp_path / "out" / "proxies.json").read_text())
    labels = [r["labels"] for r in table["scores"]]
    assert labels == sorted(labels)  # every label-free row before the first labelled one
    assert {r["score"]: r["labels"] for r in table["scores"]} == {
        **{n: objective_class(n).uses_labels for n in free}, "params": False, "flops": False}
    assert table["combined"] and all("snip" not in c["members"] for c in table["combined"])
    assert "| naswot | no | batch |" in (tmp_path / "out" / "proxies.md").read_text()
