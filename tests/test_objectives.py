"""Every registered objective trains one step on every dataset it accepts (parametrised over the registry)."""

from __future__ import annotations

import pytest
import torch

from study.data import build_dataset
from study.network import Trunk
from study.objectives import ObjectiveError, create_objective, list_objectives
from study.objectives.base import objective_class
from study.sampler import draw
from study.trainer import Budget, evaluate, train

DATASETS = {"digits": {"image_size": 16}}


@pytest.fixture(scope="module")
def digits():
    return build_dataset("digits", image_size=16)


def test_registry_lists_the_paper_objectives():
    assert {"supervised", "rotation"} <= set(list_objectives())
    with pytest.raises(ObjectiveError, match="choose one of"):
        objective_class("colourisation")


@pytest.mark.parametrize("name", list_objectives())
def test_one_training_step_on_every_accepted_dataset(name, digits):
    cls = objective_class(name)
    if cls.needs_color and digits.channels != 3:
        with pytest.raises(ObjectiveError, match="colour"):
            create_objective(name, digits)
        return
    obj = create_objective(name, digits, crop_padding=2)
    model = obj.build(Trunk(draw("nb201", 1, seed=0)[0], obj.c_in, 4, 1))
    gen = torch.Generator().manual_seed(0)
    inputs, targets = obj.train_batch(digits.train_x[:8], digits.train_y[:8], gen)
    logits = model(inputs)
    assert logits.shape[0] == targets.shape[0] == 8 * obj.inputs_per_image
    loss = obj.loss(logits, targets)
    loss.backward()
    assert torch.isfinite(loss)
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_rotation_targets_are_rotations_not_labels(digits):
    obj = create_objective("rotation", digits, crop_padding=2)
    images = digits.test_x[:6]
    inputs, targets = obj.test_batch(images, digits.test_y[:6], torch.Generator())
    assert obj.n_classes == 4 and targets.tolist() == [0] * 6 + [1] * 6 + [2] * 6 + [3] * 6
    torch.testing.assert_close(inputs[6:12], torch.rot90(obj.normalize(images), 1, dims=(2, 3)))


def test_evaluation_is_repeatable_and_learning_beats_chance(digits):
    obj = create_objective("supervised", digits, crop_padding=2)
    torch.manual_seed(0)
    model = obj.build(Trunk(draw("nb201", 1, seed=0)[0], 1, 8, 1))
    budget = Budget(name="t", epochs=3, width=8, cells_per_stage=1, batch_size=64, lr=0.1)
    history = train(model, obj, digits, budget, seed=0)
    assert evaluate(model, obj, digits, 100, seed=0) == evaluate(model, obj, digits, 512, seed=0)
    assert history.final == pytest.approx(evaluate(model, obj, digits, 512, seed=0))
    assert history.best > 0.5  # 10 classes: chance is 0.1
    assert history.train_loss[-1] < history.train_loss[0]
