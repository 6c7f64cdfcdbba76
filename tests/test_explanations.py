"""Explanations that name the real reason: a stray seed, a zero seed-to-seed rho, a train command whose
every run failed (issue 16, item 9)."""

from __future__ import annotations

import math

import pandas as pd

from analysis.correlate import analyse
from analysis.report import render
from analysis.tables import seed_noise
from tests.conftest import run_cli
from tests.test_analysis_correlate import request, write_study
from tests.test_faults import TRAIN, sample


def test_a_stray_seed_is_named_as_the_reason_cells_are_dropped(tmp_path):
    cells = [f"c{i}" for i in range(6)]
    acc = {("supervised", 0): {c: 0.5 + 0.01 * i for i, c in enumerate(cells)},
           ("rotation", 0): {c: 0.3 + 0.02 * ((i * 5) % 6) for i, c in enumerate(cells)},
           ("supervised", 5): {"c0": 0.55}}  # one stray run with seed 5
    study = write_study(tmp_path / "s", cells, acc)
    results, _, _ = analyse(request(study))
    assert len(results.cells) == 1 and len(results.dropped) == 5
    for reason in results.dropped["reason"]:
        assert reason.startswith("supervised lacks seed 5 (seed 5 has 1 of 6 cells)"), reason
        assert "require_all_seeds" in reason and "missing" not in reason
    md = render(results, [])
    assert "seed 5 has 1 of 6 cells" in md
    assert "Every objective has a single seed" not in md  # supervised has two seeds; they share too few cells
    assert "enough analysed cells" in md


def test_a_zero_seed_to_seed_rho_has_no_ceiling():
    table = pd.DataFrame({0: [1, 2, 3, 4, 5], 1: [2, 5, 3, 1, 4]}, dtype=float)  # Spearman exactly 0
    row = seed_noise({"rotation": table}).iloc[0]
    assert row["seed_rho"] == 0 and math.isnan(row["ceiling"])


def test_train_exits_1_with_one_line_when_every_run_failed(tmp_path):
    study = sample(tmp_path, n=2)
    done = run_cli("study.train", *TRAIN, "budget.lr=1e9", f"study_dir={study}")
    assert done.returncode == 1, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("error: every run failed: supervised seed 0: 2 run(s) failed (diverged"), last
    assert "Traceback" not in done.stderr
