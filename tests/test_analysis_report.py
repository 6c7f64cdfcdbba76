"""`python -m analysis.correlate` on a small synthetic study: every table, figure and report.md is written."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis import plots, tables
from analysis.report import latex
from test_analysis_correlate import planted, write_study

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
FIGURES = ("correlations", "rank_heatmap", "random_experiment", "accuracy_ecdf")


@pytest.fixture(scope="module")
def analysed(tmp_path_factory):
    """A 24-cell, two-seed study with a failed and a missing run, analysed once by the real command."""
    from conftest import run_cli

    root = tmp_path_factory.mktemp("report")
    _, acc = planted(np.random.default_rng(5), n=24, rho=0.6, noise=0.4)
    cells = sorted(acc[("supervised", 0)])
    acc[("rotation", 1)][cells[0]] = None                      # failed
    del acc[("rotation", 1)][cells[1]]                         # missing
    study = write_study(root / "study", cells, acc)
    done = run_cli("analysis.correlate", f"study_dir={study}", "bootstrap=200", "permutations=200", "trials=200")
    assert done.returncode == 0, done.stderr
    return study / "analysis"


def test_every_figure_is_rendered_as_png_and_pdf(analysed):
    for stem in FIGURES:
        png, pdf = analysed / f"{stem}.png", analysed / f"{stem}.pdf"
        assert png.read_bytes()[:8] == PNG_MAGIC and png.stat().st_size > 10_000, stem
        assert pdf.read_bytes()[:5] == b"%PDF-" and pdf.stat().st_size > 5_000, stem


def test_tables_and_report_are_written(analysed):
    corr = pd.read_csv(analysed / "correlations.csv")
    assert {"objective", "kind", "reference", "n_cells", "spearman", "kendall", "spearman_low", "spearman_high",
            "kendall_low", "kendall_high", "p_value", "ceiling", "ref_ceiling"} <= set(corr.columns)
    assert set(corr["objective"]) == {"rotation", "params", "flops"} and (corr["n_cells"] == 22).all()
    cells = pd.read_csv(analysed / "cells.csv", index_col="cell_id")
    assert {"rotation", "supervised", "params", "flops", "random", "in_analysis"} <= set(cells.columns)
    assert len(cells) == 24 and cells["in_analysis"].sum() == 22
    runs = pd.read_csv(analysed / "runs.csv")
    assert len(runs) == 4 * 24 - 1 and set(runs["status"]) == {"complete", "failed"}
    selection = pd.read_csv(analysed / "selection.csv")
    assert set(selection["objective"]) == {"supervised", "rotation", "params", "flops", "random"}
    tex = (analysed / "correlations.tex").read_text()
    assert r"\toprule" in tex and r"\bottomrule" in tex and tex.count(r"\\") == 4  # header + three rows
    report = (analysed / "report.md").read_text()
    for heading in ("## Setup", "## Completeness", "## Rank correlation with supervised accuracy",
                    "## Noise ceiling", "## Selection quality", "## Figures"):
        assert heading in report
    for stem in FIGURES:
        assert f"({stem}.png)" in report
    assert "rotation (0,1), supervised (0,1)" in report and "epochs 2" in report
    assert "| rotation | 0,1 | 22 | 1 | 1 |" in report


def test_figure_functions_take_dataframes_and_return_figures():
    rng = np.random.default_rng(0)
    cells = pd.DataFrame({"supervised": rng.uniform(0.5, 0.9, 12), "rotation": rng.uniform(0.3, 0.6, 12)})
    corr = tables.correlations(cells, "supervised", ["rotation"], bootstrap=50, permutations=50)
    curves = tables.random_curves(cells, "supervised", ["supervised", "rotation"], trials=50)
    for fig in (plots.scatter_panels(cells, "supervised", ["rotation"], corr),
                plots.rank_heatmap(tables.rank_matrix(cells, ["supervised", "rotation"])),
                plots.random_experiment(curves, "supervised"),
                plots.accuracy_ecdf(tables.ecdf(cells, ["supervised", "rotation"]))):
        assert len(fig.axes) >= 1
        plots.plt.close(fig)


def test_latex_table_escapes_names_and_signs():
    corr = pd.DataFrame([{"objective": "c10/jig_saw", "kind": "objective", "n_cells": 9, "spearman": -0.25,
                          "spearman_low": -0.5, "spearman_high": 0.1, "kendall": -0.2, "kendall_low": float("nan"),
                          "kendall_high": float("nan"), "p_value": 0.0004, "ceiling": float("nan"),
                          "partial": -0.31, "partial_low": -0.52, "partial_high": -0.05, "combined": 0.9,
                          "combined_low": float("nan"), "combined_high": float("nan")}])
    row = latex(corr, "super_vised").splitlines()[-3]
    assert row == (r"c10/jig\_saw & objective & 9 & $-$0.25 [$-$0.50, 0.10] & $-$0.20 [---] & $<$0.001 & -- & "
                   r"$-$0.31 [$-$0.52, $-$0.05] & 0.90 [---] \\")


def test_bad_compare_entry_is_one_line_on_stderr(cli, tmp_path):
    study = write_study(tmp_path / "s", ["a", "b", "c"], {("supervised", 0): {"a": 0.1, "b": 0.2, "c": 0.3}})
    done = cli("analysis.correlate", f"study_dir={study}", f"compare=[{tmp_path}/nowhere]")
    assert done.returncode == 2 and done.stderr.startswith("error: no sample in") and done.stderr.count("\n") == 1
    assert not (study / "analysis").exists()
