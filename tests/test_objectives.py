"""Every registered objective trains one step on every dataset it accepts (parametrised over the registry)."""

from __future__ import annotations

import math

import pytest
import torch

from study.data import build_dataset
from study.spaces.nb201.network import Trunk
from study.objectives import ObjectiveError, create_objective, list_objectives
from study.objectives.base import objective_class
from study.spaces import draw
from study.training.trainer import evaluate, train
from study.training.run import Budget
from tests.image_fixtures import write_tiny_cifar, write_tiny_folder

# name -> how to build a tiny copy of it in a folder: every objective is tried on every one of them.
DATASETS = {
    "digits": lambda root: build_dataset("digits", image_size=16),
    "cifar10": lambda root: (write_tiny_cifar(root), build_dataset("cifar10", data_root=str(root), download=False,
                                                                  mean=[125.3, 123.0, 113.9], std=[63.0, 62.1, 66.7]))[1],
    "imagefolder": lambda root: (write_tiny_folder(root, {"train": 4, "test": 2}),
                                 build_dataset("imagefolder", data_root=str(root), image_size=32))[1],
    "imagefolder64": lambda root: (write_tiny_folder(root, {"train": 4, "test": 2}),
                                   build_dataset("imagefolder", data_root=str(root), image_size=64))[1],
}


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    return {name: make(tmp_path_factory.mktemp(name)) for name, make in DATASETS.items()}


@pytest.fixture(scope="module")
def digits(datasets):
    return datasets["digits"]


def test_registry_lists_the_paper_objectives():
    assert {"supervised", "rotation", "colorization", "jigsaw"} <= set(list_objectives())
    with pytest.raises(ObjectiveError, match="choose one of"):
        objective_class("colourisation")


@pytest.mark.parametrize("dataset", list(DATASETS))
@pytest.mark.parametrize("name", list_objectives())
def test_one_training_step_on_every_accepted_dataset(name, dataset, datasets):
    data = datasets[dataset]
    cls = objective_class(name)
    if cls.needs_color and data.channels != 3:
        with pytest.raises(ObjectiveError, match="colour"):
            create_objective(name, data)
        return
    obj = create_objective(name, data, crop_padding=2)
    if not obj.trains:  # training-free: one score instead of a step (tests/test_zero_cost.py checks values)
        model = obj.build(Trunk(draw("nb201", 1, seed=0)[0], obj.c_in, 4, 1, fused=obj.fused))
        assert math.isfinite(obj.score(model, torch.Generator().manual_seed(0), 8))
        return
    model = obj.build(Trunk(draw("nb201", 1, seed=0)[0], obj.c_in, 4, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    gen = torch.Generator().manual_seed(0)
    inputs, targets = obj.train_batch(data.train_x[:8], data.train_y[:8], gen)
    logits = model(inputs)
    assert logits.shape[0] == targets.shape[0] == 8 * obj.inputs_per_image
    assert logits.shape[1] == obj.n_classes and int(targets.max()) < obj.n_classes
    loss = obj.loss(logits, targets)
    loss.backward()
    assert torch.isfinite(loss)
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
    before = [p.detach().clone() for p in model.parameters()]
    opt.step()
    assert any(not torch.equal(a, p) for a, p in zip(before, model.parameters()))
    test_inputs, test_targets = obj.test_batch(data.test_x[:4], data.test_y[:4], torch.Generator().manual_seed(0))
    with torch.no_grad():
        model.eval()
        hits = obj.correct(model(test_inputs), test_targets)
    assert 0 <= int(hits) <= test_targets.numel()


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
    budget = Budget(name="t", epochs=3, batch_size=64, lr=0.1)
    history = train(model, obj, digits, budget, seed=0)
    assert evaluate(model, obj, digits, 100, seed=0) == evaluate(model, obj, digits, 512, seed=0)
    assert history.final == pytest.approx(evaluate(model, obj, digits, 512, seed=0))
    assert history.best > 0.5  # 10 classes: chance is 0.1
    assert history.train_loss[-1] < history.train_loss[0]


def test_colorization_inputs_targets_and_per_pixel_head(datasets):
    from study.objectives.color import ab_to_bin, lightness_input, rgb_to_lab

    data = datasets["imagefolder"]
    obj = create_objective("colorization", data)
    images = data.test_x[:3]
    inputs, targets = obj.test_batch(images, data.test_y[:3], torch.Generator())
    lab = rgb_to_lab(images.double() / 255)
    torch.testing.assert_close(inputs, lightness_input(lab).float(), atol=1e-4, rtol=0)
    assert targets.shape == (3, 32, 32) and torch.equal(targets, ab_to_bin(lab[:, 1:]))
    # Flip only: a training batch is the test batch of the same images, some of them mirrored.
    train_in, train_t = obj.train_batch(images, data.test_y[:3], torch.Generator().manual_seed(1))
    for i in range(3):
        assert torch.equal(train_t[i], targets[i]) or torch.equal(train_t[i], targets[i].flip(-1))
    model = obj.build(Trunk(draw("nb201", 1, seed=0)[0], 1, 4, 1))
    logits = model(inputs)
    assert logits.shape == (3, 313, 32, 32)
    # The fast per-pixel loss is the plain cross-entropy over (N, K, H, W), and accuracy counts pixels.
    torch.testing.assert_close(obj.loss(logits, targets), torch.nn.functional.cross_entropy(logits, targets))
    assert int(obj.correct(logits, targets)) == int((logits.argmax(1) == targets).sum())


def test_jigsaw_evaluation_is_repeatable(datasets):
    data = datasets["cifar10"]
    obj = create_objective("jigsaw", data)
    torch.manual_seed(0)
    model = obj.build(Trunk(draw("nb201", 1, seed=0)[0], 3, 4, 1))
    assert evaluate(model, obj, data, 5, seed=0) == evaluate(model, obj, data, 5, seed=0)


def test_paper_budget_per_objective():
    """The paper's CIFAR-10 recipe: lr 0.1 / 128 images for supervised and colorization, 0.025 / 32 otherwise."""
    from tests.test_config import compose_cfg
    from study.commands.settings import budget_for

    cfg = compose_cfg("train", ["budget=paper"])
    expected = {"supervised": (0.1, 128), "colorization": (0.1, 128), "rotation": (0.025, 32), "jigsaw": (0.025, 32)}
    for name, (lr, batch) in expected.items():
        b = budget_for(cfg, name)[0]
        assert (b.lr, b.batch_size, b.epochs, b.weight_decay, b.precise_bn, b.nesterov) == (lr, batch, 100, 5e-4, 1024, True)
