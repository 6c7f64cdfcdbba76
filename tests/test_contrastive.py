"""The contrastive objective: view pairing, NT-Xent and accuracy on literal projections, batched augmentation.

One training step on every dataset it accepts is in tests/test_objectives.py (parametrised over the registry).
"""

from __future__ import annotations

import math

import pytest
import torch

from study.data import build_dataset
from study.spaces.nb201.network import Trunk
from study.objectives import ObjectiveError, create_objective
from study.objectives.contrastive import (augment_views, color_jitter, gray, pair_targets, resized_crop_grid,
                                          rotate_hue)
from study.spaces import draw
from study.training.trainer import evaluate
from tests.image_fixtures import write_tiny_folder


@pytest.fixture(scope="module")
def digits():
    return build_dataset("digits", image_size=16)


@pytest.fixture(scope="module")
def rgb(tmp_path_factory):
    root = tmp_path_factory.mktemp("rgb")
    write_tiny_folder(root, {"train": 4, "test": 2})
    return build_dataset("imagefolder", data_root=str(root), image_size=32)


def test_pairs_are_first_views_then_second_views():
    assert pair_targets(2, torch.device("cpu")).tolist() == [2, 3, 0, 1]


def test_accuracy_counts_views_whose_nearest_other_view_is_their_pair(digits):
    obj = create_objective("contrastive", digits)
    targets = pair_targets(2, torch.device("cpu"))
    right = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.9, 0.1], [0.1, 0.9]])  # views 0/2 and 1/3 point alike
    assert int(obj.correct(right, targets)) == 4
    swapped = right[[0, 1, 3, 2]]  # every view's nearest is now the other image's view
    assert int(obj.correct(swapped, targets)) == 0
    # View 3 leans towards image 0: view 1's nearest is still view 3 (cos 0.45 vs 0.11 and 0), but view 3's
    # nearest is view 2 (cos 0.94 vs 0.89 and 0.45), not its pair, view 1.
    mixed = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.9, 0.1], [1.0, 0.5]])
    assert int(obj.correct(mixed, targets)) == 3
    assert int(obj.correct(mixed * torch.tensor([[5.0], [0.1], [2.0], [3.0]]), targets)) == 3  # cosine: scale-free


def test_nt_xent_of_literal_projections(digits):
    # Pairs identical and orthogonal to the other image: each view has similarity 1 to its pair and 0 to the
    # two others, so every row's loss is -log(e^(1/T) / (e^(1/T) + 2)) with T = 0.5.
    obj = create_objective("contrastive", digits, temperature=0.5)
    z = torch.tensor([[1.0, 0.0], [0.0, 1.0], [2.0, 0.0], [0.0, 3.0]])
    expected = -math.log(math.exp(2.0) / (math.exp(2.0) + 2.0))
    assert float(obj.loss(z, pair_targets(2, z.device))) == pytest.approx(expected, rel=1e-6)


def test_views_are_batched_repeatable_and_in_range(rgb):
    images = rgb.train_x[:4]
    a = augment_views(images, torch.Generator().manual_seed(0))
    b = augment_views(images, torch.Generator().manual_seed(0))
    assert a.shape == (8, 3, 32, 32) and torch.equal(a, b)
    assert 0 <= float(a.min()) and float(a.max()) <= 1
    assert not torch.allclose(a[:4], a[4:])  # the two views of an image differ
    gray_views = augment_views(torch.randint(0, 256, (3, 1, 16, 16), dtype=torch.uint8), torch.Generator())
    assert gray_views.shape == (6, 1, 16, 16)  # one channel: crop and flip only


def test_crops_stay_inside_the_image_cover_the_area_range_and_flip_half():
    grid = resized_crop_grid(2000, 8, torch.Generator().manual_seed(0), torch.device("cpu"))
    assert float(grid.abs().max()) <= 1.0
    # Grid points are pixel centres, so the sampled width is (x of last - x of first) * size / (size - 1).
    width = (grid[:, 0, -1, 0] - grid[:, 0, 0, 0]).abs() / 2 * 8 / 7
    height = (grid[:, -1, 0, 1] - grid[:, 0, 0, 1]) / 2 * 8 / 7
    area = width * height
    assert 0.08 - 1e-4 <= float(area.min()) < 0.1 and float(area.max()) > 0.9
    flipped = (grid[:, 0, -1, 0] < grid[:, 0, 0, 0]).float().mean()
    assert 0.45 < float(flipped) < 0.55


def test_colour_jitter_keeps_images_without_strength_or_probability():
    x = torch.rand(4, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    assert torch.equal(color_jitter(x, torch.Generator(), strength=0.5, p=0.0), x)
    assert torch.allclose(color_jitter(x, torch.Generator(), strength=0.0, p=1.0), x, atol=1e-5)


def test_hue_rotation_keeps_luma_and_a_full_turn_is_identity():
    x = torch.rand(3, 3, 4, 4, generator=torch.Generator().manual_seed(2))
    turned = rotate_hue(x, torch.tensor([0.1, 0.25, -0.1]))
    assert torch.allclose(gray(turned), gray(x), atol=1e-5) and not torch.allclose(turned, x)
    assert torch.allclose(rotate_hue(x, torch.ones(3)), x, atol=1e-5)


def test_evaluation_is_repeatable_and_counts_two_views_per_image(rgb):
    obj = create_objective("contrastive", rgb)
    torch.manual_seed(0)
    model = obj.build(Trunk(draw("nb201", 1, seed=0)[0], 3, 4, 1))
    acc = evaluate(model, obj, rgb, 8, seed=0)
    assert acc == evaluate(model, obj, rgb, 8, seed=0) and 0 <= acc <= 1
    inputs, targets = obj.test_batch(rgb.test_x, rgb.test_y, torch.Generator().manual_seed(0))
    assert inputs.shape[0] == targets.numel() == 2 * len(rgb.test_x)


def test_bad_options_are_refused(digits):
    with pytest.raises(ObjectiveError, match="temperature"):
        create_objective("contrastive", digits, temperature=0)
    with pytest.raises(ObjectiveError, match="projection_dim"):
        create_objective("contrastive", digits, projection_dim=0)
