"""Hints that can be copied as printed: they name the study, budget and precision, cap shards at the cells
there are to train, and a comma list without -m says to add -m (issue 16, item 8)."""

from __future__ import annotations

import shlex

import pandas as pd

from launch import rerun
from study.commands.argv import CommandLine, chosen_cells, expand_argv
from tests.test_analysis_correlate import write_study


def test_rerun_overrides_carry_study_dir_budget_and_precision(tmp_path):
    from hydra import compose, initialize_config_dir

    from study.commands import settings
    from study.commands.cli import CONF_DIR

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("train", overrides=[f"study_dir={tmp_path}/s", "budget=tiny", "precision=bf16",
                                          "objective=rotation"])
    overrides = rerun.overrides_for(settings.plain(cfg))
    assert overrides is not None
    for expected in (f"study_dir={tmp_path}/s", "budget=tiny", "precision=bf16", "objective=rotation"):
        assert expected in overrides, overrides


def test_correlate_hint_names_the_study_and_its_budget(cli, tmp_path):
    from analysis.correlate import train_hint

    runs = pd.DataFrame({"dataset": ["cifar10"], "budget": ["tiny"]})
    hint = shlex.split(train_hint(tmp_path / "s", "supervised", runs))
    assert hint[:3] == ["python", "-m", "study.train"]
    assert {f"study_dir={tmp_path / 's'}", "objective=supervised", "dataset=cifar10", "budget=tiny"} <= set(hint)
    study = write_study(tmp_path / "r", ["a", "b", "c"], {("rotation", 0): {"a": 0.3, "b": 0.4, "c": 0.5}})
    done = cli("analysis.correlate", f"study_dir={study}")
    assert done.returncode == 2 and f"python -m study.train study_dir={study} space=nb201 objective=supervised" in done.stderr


def test_status_without_runs_names_the_study(cli, tmp_path):
    study = tmp_path / "s"
    assert cli("study.sample", "n=2", f"study_dir={study}").returncode == 0
    done = cli("launch.status", f"study_dir={study}")
    assert done.returncode == 0 and f"study_dir={study}" in done.stdout


def test_shards_are_capped_at_the_cells_to_train(cli, tmp_path):
    assert expand_argv(["-m", "shards=8", "objective=x"], n_cells=1) == ["-m", "shards=1", "objective=x"]
    assert expand_argv(["-m", "shards=8"], n_cells=3)[-1] == "shard=0,1,2"
    assert expand_argv(["-m", "shards=2"], n_cells=5)[-1] == "shard=0,1"
    def chosen(*argv: str) -> int | None:
        return chosen_cells(CommandLine.parse(list(argv)), "x")

    assert chosen("cell=3,17") == 2 and chosen("cells=[a,b,a]") == 2
    assert chosen(f"study_dir={tmp_path}/none") is None
    study = tmp_path / "s"
    assert cli("study.sample", "n=3", f"study_dir={study}").returncode == 0
    assert chosen(f"study_dir={study}") == 3
    done = cli("study.train", "-m", "shards=8", "cells=[1]", "dry_run=true", f"study_dir={study}", "budget=tiny")
    assert done.returncode == 0, done.stderr
    assert "shards=8 capped at 1" in done.stderr
    assert done.stdout.count("trains 1 of 1 cells") == 1 and "Launching 1 jobs" in done.stdout


def test_cfg_job_needs_no_sample_and_status_has_help(cli, tmp_path):
    for module in ("study.train", "analysis.correlate"):
        done = cli(module, "--cfg", "job", f"study_dir={tmp_path}/none")
        assert done.returncode == 0, done.stderr
        assert "study_dir:" in done.stdout
    helped = cli("launch.status", "--help")
    assert helped.returncode == 0 and helped.stdout.startswith("usage: python -m launch.status")
