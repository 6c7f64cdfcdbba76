"""Every config group composes with the real conf/, and typed parsing accepts it."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from study.commands.cli import CONF_DIR
from study.commands.request import parse as _parse_train
from study.commands.settings import budget_for


def parse_train(cfg):
    """(study_dir, setup, seeds, workers) of a composed train config."""
    req = _parse_train(cfg)
    return req.study_dir, req.setup, req.seeds, req.workers


def resolve_budget(cfg, objective):
    return budget_for(cfg, objective)[0]


resolve_run = budget_for

SEARCH_ONLY = ("method", "search_budget")  # groups of study.search alone (tests/test_search_config.py)
GROUPS = {g.name: sorted(p.stem for p in g.glob("*.yaml")) for g in CONF_DIR.iterdir()
          if g.is_dir() and not g.name.startswith(("hydra", "local", "experiment", *SEARCH_ONLY))}
EXPERIMENTS = sorted(p.relative_to(CONF_DIR / "experiment").with_suffix("").as_posix()
                     for p in (CONF_DIR / "experiment").rglob("*.yaml") if not p.parent.name == "search")


def compose_cfg(name: str, overrides: list[str]):
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(name, overrides=overrides)


@pytest.mark.parametrize("group,option", [(g, o) for g, opts in GROUPS.items() for o in opts])
def test_every_option_composes_into_train(group, option, tmp_path):
    cfg = compose_cfg("train", [f"{group}={option}", f"study_dir={tmp_path}"])
    assert cfg[group].name == option  # registry key == config stem == name


@pytest.mark.parametrize("budget", GROUPS["budget"])
@pytest.mark.parametrize("objective", GROUPS["objective"])
def test_every_budget_resolves_for_every_objective(budget, objective):
    cfg = compose_cfg("train", [f"budget={budget}", f"objective={objective}"])
    b = resolve_budget(cfg, objective)
    assert b.name == budget and b.epochs >= 1


def test_paper_budget_is_the_papers_recipe():
    cfg = compose_cfg("train", ["budget=paper"])
    (sup, shape), rot = resolve_run(cfg, "supervised"), resolve_budget(cfg, "rotation")
    assert (sup.epochs, sup.lr, sup.batch_size, shape.width, shape.cells_per_stage) == (100, 0.1, 128, 16, 5)
    assert (rot.lr, rot.batch_size) == (0.025, 32)
    assert sup.weight_decay == 5e-4 and sup.nesterov and sup.momentum == 0.9 and sup.precise_bn == 1024


@pytest.mark.parametrize("name", ["sample", "train", "correlate", "search"])
def test_top_level_configs_share_study_dir(name):
    assert compose_cfg(name, [])["study_dir"] == "studies/default"


def test_train_parse_gives_typed_setup(tmp_path):
    cfg = compose_cfg("train", ["budget=tiny", "workers=2", "threads=1", f"study_dir={tmp_path}"])
    study_dir, setup, seeds, workers = parse_train(cfg)
    assert study_dir == Path(tmp_path) and seeds == [0] and workers == 2 and setup.threads == 1 and setup.fuse == 1
    assert setup.device == "cpu" and setup.budget.name == "tiny"
    assert "hydra" not in setup.config and setup.config["budget"]["name"] == "tiny"


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_composes_and_parses_for_sample_and_train(experiment, tmp_path):
    from study.sample import parse as parse_sample

    cfg = compose_cfg("train", [f"experiment={experiment}", f"study_dir={tmp_path}"])
    _, setup, _, _ = parse_train(cfg)
    sample = parse_sample(compose_cfg("sample", [f"experiment={experiment}", f"study_dir={tmp_path}"]))
    assert sample.shape == setup.shape  # cells.jsonl's params describe the network the study trains
    if experiment.startswith("ladder/"):
        assert setup.budget.name == experiment.removeprefix("ladder/")  # a rung's runs are named by the rung


def test_an_experiment_sets_what_the_command_line_does_not():
    cfg = compose_cfg("train", ["experiment=short", "dataset=imagefolder", "budget.epochs=1"])
    assert cfg.dataset.name == "imagefolder" and cfg.dataset.image_size == 16  # the group chosen, the recipe kept
    assert cfg.budget.name == "short" and cfg.budget.epochs == 1
