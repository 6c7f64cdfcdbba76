"""analysis.api gives the numbers analysis.correlate writes, and docs/api.md's example runs as written."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from analysis import api
from study.errors import UserError
from tests.conftest import ROOT
from tests.test_analysis_correlate import planted, write_study

FAST = ("bootstrap=200", "permutations=200", "trials=200")


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """A 40-cell study (supervised and rotation, two seeds each, rotation planted at rho 0.6) under
    <root>/studies/default, analysed by the command as a user runs it."""
    root = tmp_path_factory.mktemp("api")
    _, acc = planted(np.random.default_rng(3), n=40, rho=0.6, noise=0.3)
    cells = sorted(acc[("supervised", 0)])
    write_study(root / "studies" / "default", cells, acc)
    from tests.conftest import run_cli

    done = run_cli("analysis.correlate", cwd=root)
    assert done.returncode == 0, done.stderr[-2000:]
    return root


def test_correlations_are_the_commands_csv(study):
    tables = api.correlate(study / "studies" / "default")
    written = pd.read_csv(study / "studies" / "default" / "analysis" / "correlations.csv")
    assert list(tables.correlations["objective"]) == list(written["objective"])
    numbers = written.select_dtypes("number").columns
    assert np.allclose(tables.correlations[numbers].astype(float), written[numbers], atol=5e-5, equal_nan=True)
    cells = pd.read_csv(study / "studies" / "default" / "analysis" / "cells.csv", index_col="cell_id")
    assert np.allclose(tables.cells["rotation"], cells["rotation"], atol=5e-6, equal_nan=True)


def test_runs_is_one_row_per_record_with_the_cells_facts(study):
    runs = api.runs(study / "studies" / "default")
    assert len(runs) == 40 * 2 * 2 and set(runs["objective"]) == {"supervised", "rotation"}
    assert (runs["cell_flops"] == 2 * runs["cell_params"]).all()  # write_study: flops = 2 * params


def test_overrides_and_refusals_are_the_commands(study):
    req = api.request(study / "studies" / "default", *FAST, "reference=rotation")
    assert (req.bootstrap, req.reference) == (200, "rotation")
    with pytest.raises(UserError, match="merge"):
        api.request(study / "studies" / "default", "merge=max")


def test_truth_of_a_space():
    table = api.truth("nb201")
    assert len(table) == 15625 and table.index.name == "arch" and table.max().max() <= 1.0
    with pytest.raises(ValueError, match="ships no truth"):
        api.truth("darts")


def test_the_documented_example_gives_the_csvs_numbers(study, monkeypatch, capsys):
    code, _ = re.findall(r"```python\n(.*?)```", (ROOT / "docs" / "api.md").read_text(), flags=re.S)
    monkeypatch.chdir(study)
    namespace: dict = {}
    exec(code, namespace)
    written = pd.read_csv(study / "studies" / "default" / "analysis" / "correlations.csv").set_index("objective")
    assert namespace["rho"] == pytest.approx(written.loc["rotation", "spearman"], abs=5e-5)
    assert f"rho = {written.loc['rotation', 'spearman']:.2f}" in capsys.readouterr().out


def _tiny_net():
    import torch
    from torch import nn

    torch.manual_seed(0)
    return nn.Sequential(nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                                       nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU()),
                         nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10)))


def test_every_training_free_score_scores_any_module_as_its_objective_does():
    """api.score on a plain torch module: the objective's own function, the registry's every score."""
    import copy

    import torch

    from study.objectives import zero_cost

    x = torch.randn(16, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    y = torch.arange(16) % 10
    net = _tiny_net()
    got = {name: api.score(name, copy.deepcopy(net), x, y) for name in api.scores()}
    assert {"naswot", "synflow", "jacob_cov", "snip", "zen", "l2_norm"} <= set(got)
    assert all(np.isfinite(v) for v in got.values()), got
    assert got["naswot"] == zero_cost.naswot(copy.deepcopy(net), x)
    assert got["snip"] == zero_cost.snip(copy.deepcopy(net), x, y)
    assert got["synflow"] == zero_cost.synflow(copy.deepcopy(net), (3, 8, 8))
    assert api.score("zen", net, x, seed=3) == api.score("zen", net, x, seed=3) != api.score("zen", net, x, seed=4)
    with pytest.raises(ValueError, match="uses labels"):
        api.score("snip", net, x)
    with pytest.raises(ValueError, match="not a training-free score"):
        api.score("supervised", net, x, y)


def test_the_documented_score_example_runs_as_written(capsys):
    _, code = re.findall(r"```python\n(.*?)```", (ROOT / "docs" / "api.md").read_text(), flags=re.S)
    exec(code, {})
    printed = capsys.readouterr().out
    assert all(name in printed for name in ("naswot", "synflow", "snip"))
