"""The network's shape apart from the training recipe: per-space shapes, identity, trained vs sampled."""

from __future__ import annotations

import json
import logging
from dataclasses import asdict

import pytest

from study import sample as sample_app
from study import train as train_app
from study.commands.settings import budget_for
from study.store.cells import read_cells
from study.store.records import iter_records
from study.spaces import NetShape, get_space
from study.training.run import Budget
from tests.test_config import compose_cfg

SPACE_SHAPES = ["+space.shapes.tiny.width=6", "+space.shapes.tiny.cells_per_stage=2"]


def test_budget_is_the_recipe_only():
    assert not {"width", "cells_per_stage"} & {f for f in Budget.__dataclass_fields__}


def test_the_spaces_entry_for_the_budget_sets_the_shape_and_the_command_line_wins(tmp_path):
    base = ["budget=tiny", f"study_dir={tmp_path}", "device=cpu"]
    _, plain = budget_for(compose_cfg("train", base), "supervised")
    assert (plain.width, plain.cells_per_stage) == (4, 1)  # conf/budget/tiny.yaml; nb201.yaml has no shapes
    _, spaced = budget_for(compose_cfg("train", base + SPACE_SHAPES), "supervised")
    assert (spaced.width, spaced.cells_per_stage) == (6, 2)
    _, explicit = budget_for(compose_cfg("train", base + SPACE_SHAPES + ["budget.width=16"]), "supervised")
    assert (explicit.width, explicit.cells_per_stage) == (16, 2)
    other = compose_cfg("train", ["budget=default", f"study_dir={tmp_path}"] + SPACE_SHAPES)
    assert budget_for(other, "supervised")[1].width == 8  # an entry for another budget does not apply
    sampled = sample_app.parse(compose_cfg("sample", base[:2] + SPACE_SHAPES)).shape
    assert sampled == spaced  # sample and train size the network alike
    assert sampled == NetShape(c_in=1, image_size=8, n_classes=10, width=6, cells_per_stage=2)


def test_width_and_depth_stay_in_the_run_identity(tmp_path):
    cfg = compose_cfg("train", ["budget=tiny", f"study_dir={tmp_path}", "device=cpu"])
    identity = train_app.parse(cfg).setup.identity()
    assert (identity["budget"]["width"], identity["budget"]["cells_per_stage"]) == (4, 1)
    wider = train_app.parse(compose_cfg("train", ["budget=tiny", f"study_dir={tmp_path}", "device=cpu",
                                                  "budget.width=6"])).setup.identity()
    assert wider != identity


@pytest.mark.parametrize("width", [4, 6])
def test_records_carry_the_trained_shape_and_its_size(tmp_path, caplog, width):
    study = tmp_path / "s"
    sample_cfg = compose_cfg("sample", ["budget=tiny", "n=1", f"study_dir={study}"])
    sample_app.check(sample_app.parse(sample_cfg))
    sample_app.task(sample_app.parse(sample_cfg))
    train_cfg = compose_cfg("train", ["budget=tiny", f"study_dir={study}", "device=cpu", "workers=1",
                                      "dataset.test_fraction=0.9", f"budget.width={width}"])
    train_app.check(train_app.parse(train_cfg))
    with caplog.at_level(logging.WARNING, logger="study.train"):
        train_app.task(train_app.parse(train_cfg))
    (_, rec), = iter_records(study)
    row = read_cells(study)[0]
    shape = NetShape(c_in=1, image_size=8, n_classes=10, width=width, cells_per_stage=1)
    assert rec["status"] == "complete" and rec["net"] == asdict(shape)
    space = get_space("nb201")
    assert (rec["net_params"], rec["net_flops"]) == space.complexity(space.parse(row["arch"]), shape)
    sampled = json.loads((study / "study.json").read_text())["sample"]["net"]
    if width == sampled["width"]:
        assert (rec["net_params"], rec["net_flops"]) == (row["params"], row["flops"])
        assert "differs from the sampled one" not in caplog.text
    else:
        assert rec["net_params"] > row["params"]
        assert "differs from the sampled one (width 4 -> 6)" in caplog.text
