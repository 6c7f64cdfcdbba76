"""The Python API for notebooks: a study's runs, analysis.correlate's tables and a space's truth as DataFrames,
and the training-free scores of the registry on any torch module.

The functions compose the same config and call the same code as the commands (analysis/correlate.py's
`analyse`), so a number here is the number in `<study_dir>/analysis/*.csv`; nothing is written. docs/api.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch

from analysis import correlate as command
from analysis import truth as truths
from analysis.load import load_cells, load_runs
from analysis.report import Results
from study.commands.cli import CONF_DIR
from study.objectives import list_objectives
from study.objectives.base import objective_class


@dataclass(frozen=True)
class Analysis:
    """analysis.correlate's tables: each DataFrame is the CSV of the same name, unrounded."""

    correlations: pd.DataFrame  # correlations.csv: every objective and baseline against the reference
    truth: pd.DataFrame  # truth.csv: every objective against the ground truth (empty without one)
    noise: pd.DataFrame  # noise.csv: seed-to-seed agreement and reliability per objective
    selection: pd.DataFrame  # selection.csv
    cells: pd.DataFrame  # cells.csv: one row per cell (objectives merged over seeds, baselines, truth)
    runs: pd.DataFrame  # runs.csv: one row per run record
    results: Results  # everything report.md is written from


def request(study_dir: str | Path, *overrides: str) -> command.Request:
    """analysis.correlate's checked request for `study_dir`, composed from conf/correlate.yaml like the command
    (`overrides` as on its command line: "budget=tiny", "bootstrap=200"); raises UserError when refused."""
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3", job_name="api"):
        cfg = compose("correlate", overrides=[f"study_dir={Path(study_dir)}", *overrides])
    req = command.parse(cfg)
    command.check(req)
    return req


def correlate(study_dir: str | Path, *overrides: str) -> Analysis:
    """The tables `python -m analysis.correlate study_dir=... overrides...` writes, as DataFrames."""
    results, runs, cells = command.analyse(request(study_dir, *overrides))
    return Analysis(results.correlations, results.truth, results.noise, results.selection, cells, runs, results)


def runs(study_dir: str | Path) -> pd.DataFrame:
    """One row per run record of the study, with its cell's params and FLOPs from cells.jsonl (`cell_params`,
    `cell_flops`) and the space's truth columns where the space ships a truth (NAS-Bench-201)."""
    table = load_runs(Path(study_dir))
    cells = load_cells(Path(study_dir))
    table = table.join(cells[[c for c in ("params", "flops") if c in cells.columns]].add_prefix("cell_"), on="cell_id")
    spaces = table["space"].dropna().unique()
    known = truths.builtin(str(spaces[0])) if len(spaces) == 1 else None
    return table if known is None else table.join(known.table, on="arch")


def truth(space: str) -> pd.DataFrame:
    """The ground truth a space ships (NAS-Bench-201: every cell's accuracies as fractions, by `arch`)."""
    found = truths.builtin(space)
    if found is None:
        raise ValueError(f"space {space!r} ships no truth table; analysis.correlate takes truth=PATH for it")
    return found.table


def scores() -> list[str]:
    """The training-free scores `score` takes (the registry's objectives that train nothing)."""
    return [name for name in list_objectives() if not objective_class(name).trains]


def score(name: str, model: torch.nn.Module, inputs: torch.Tensor, labels: torch.Tensor | None = None,
          seed: int = 0) -> float:
    """Training-free score `name` of any module on a batch, as `study.train objective=<name>` computes it on a
    cell's network: `inputs` normalised images (B, C, H, W), `labels` (B,) for the scores that use labels;
    `seed` seeds what a score draws (zen's Gaussian weights and inputs). Higher predicts a better network.
    Scores that need gradients leave them in the module's .grad; its weights are not changed."""
    if name not in scores():
        raise ValueError(f"{name!r} is not a training-free score; choose one of {', '.join(scores())}")
    return objective_class(name).of_module(model, inputs, labels, gen=torch.Generator().manual_seed(seed))
