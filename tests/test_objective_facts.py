"""A new objective is one registered class (and its YAML): everything else reads its facts from it.

The label use, training-free kind, chance level and score dtype that the runner, the records and the
analysis need come from the class; no table elsewhere names objectives. These tests register objectives
that exist nowhere else and run them through the runner and the analysis functions.
"""

from __future__ import annotations

import json

import pytest
import torch

from analysis import caveats
from analysis.tables import kind_of
from study.data import build_dataset
from study.objectives.base import OBJECTIVES, Objective, register_objective
from study.objectives.zero_cost import ScoringObjective
from study.spaces import NetShape, draw
from study.training.run import Budget, RunSpec, Setup
from study.training.runner import execute

SHAPE = NetShape(c_in=1, image_size=8, n_classes=10, width=4, cells_per_stage=1)


class Flip(Objective):
    """Was the image mirrored? A label-free task that no module of the package knows about."""

    name = "flip_test_only"

    @property
    def n_classes(self) -> int:
        return 2

    @classmethod
    def chance(cls, options: dict, dataset: dict) -> float | None:
        return 1 / 2

    def _pairs(self, images: torch.Tensor, gen: torch.Generator):
        x = self.normalize(images)
        return torch.cat([x, x.flip(-1)]), torch.cat([torch.zeros(len(x)), torch.ones(len(x))]).long()

    def train_batch(self, images, labels, gen):
        return self._pairs(images, gen)

    def test_batch(self, images, labels, gen):
        return self._pairs(images, gen)


class Sum(ScoringObjective):
    """A training-free score that reads labels and is computed in float64."""

    name = "sum_test_only"
    uses_labels = True
    score_dtype = "float64"

    def score(self, model, gen, batch_size):
        return float(sum(p.detach().double().abs().sum() for p in model.parameters()))


@pytest.fixture
def registered():
    added = [register_objective(Flip), register_objective(Sum)]
    yield added
    for cls in added:
        OBJECTIVES._items.pop(cls.name)


def _setup(objective: str) -> Setup:
    return Setup(space="nb201", objective=objective, objective_options={}, dataset="digits",
                 dataset_options={"image_size": 8}, budget=Budget(name="t", epochs=1, batch_size=128, lr=0.1),
                 shape=SHAPE, device="cpu", threads=1)


def test_a_new_trained_objective_trains_and_is_analysed_without_naming_it_anywhere(registered, tmp_path):
    data = build_dataset("digits", image_size=8)
    cell = draw("nb201", 1, seed=1)[0]
    rec = execute(RunSpec("c", cell.to_str(), Flip.name, 0, tmp_path / "c.json"), _setup(Flip.name), data)
    assert rec["status"] == "complete" and 0 <= rec["test_acc_best"] <= 1
    assert json.loads((tmp_path / "c.json").read_text())["objective"] == Flip.name
    assert kind_of(Flip.name, "supervised") == "objective"
    assert caveats.chance_level(Flip.name, rec["config"]) == 0.5
    assert caveats.chance_level(f"other/{Flip.name}", {}) == 0.5  # a compared study's column


def test_a_new_training_free_objective_is_scored_with_its_own_dtype_and_kind(registered, tmp_path):
    data = build_dataset("digits", image_size=8)
    cell = draw("nb201", 1, seed=1)[0]
    rec = execute(RunSpec("c", cell.to_str(), Sum.name, 0, tmp_path / "c.json"), _setup(Sum.name), data)
    assert rec["status"] == "complete" and rec["score"] > 0 and rec["uses_labels"] is True
    assert rec["score_dtype"] == "float64"
    assert kind_of(Sum.name, "supervised") == "training-free, labels"
    assert caveats.chance_level(Sum.name, {}) is None


@pytest.mark.parametrize("name", sorted(OBJECTIVES.names()))
def test_every_registered_objective_states_its_facts(name):
    cls = OBJECTIVES.get(name)
    assert cls.kind() in ("objective", "training-free", "training-free, labels")
    assert cls.score_dtype in ("float32", "float64")
    chance = cls.chance({}, {"n_classes": 10, "image_size": 32})
    assert chance is None or 0 < chance < 1


def test_names_that_are_not_objectives_have_no_facts():
    assert caveats.chance_level("params", {}) is None and kind_of("nb201-cifar10", "supervised") == "objective"
