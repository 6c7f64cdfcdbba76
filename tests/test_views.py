"""The paper's ImageNet preprocessing against its definition: crop boxes and sizes, and the lighting noise."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

from study.data.augment import IMAGENET_EIGVAL, IMAGENET_EIGVEC, lighting, normalize
from study.data.views import ResizedCrop, ShortSideCrop, centre_square


def _photo(width: int, height: int, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    img = 128 + 60 * np.sin(xx[..., None] / 9 + rng.uniform(0, 6, 3)) + 50 * np.cos(yy[..., None] / 13)
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))


def test_random_resized_crop_draws_area_and_aspect_in_range_inside_the_image():
    view, rng = ResizedCrop(224), np.random.default_rng(0)
    shares, aspects = [], []
    for _ in range(3000):
        left, top, right, bottom = view.box(500, 375, rng)
        assert 0 <= left < right <= 500 and 0 <= top < bottom <= 375
        w, h = right - left, bottom - top
        shares.append(w * h / (500 * 375))
        aspects.append(w / h)
    shares, aspects = np.array(shares), np.array(aspects)
    # Rounding each side to whole pixels moves the share and the ratio a little past their bounds.
    assert shares.min() >= 0.08 * 0.97 and shares.max() <= 1.0
    assert np.all((aspects >= 0.75 * 0.98) & (aspects <= 4 / 3 * 1.02))
    assert 0.4 < np.mean(aspects > 1) < 0.6  # width and height swapped half of the time
    assert shares.min() < 0.1 and shares.max() > 0.95  # the whole range is drawn


def test_random_resized_crop_falls_back_to_the_centre_square_and_cuts_to_size():
    view = ResizedCrop(224)
    assert view.box(1000, 10, np.random.default_rng(0)) == centre_square(1000, 10) == (495, 0, 505, 10)
    out = view.cut(_photo(500, 375), np.random.default_rng(1))
    assert out.shape == (224, 224, 3) and out.dtype == np.uint8


def test_short_side_crop_is_resize_256_then_centre_224():
    view, image = ShortSideCrop(256, 224), _photo(500, 375)
    scale = 256 / 375  # the longer side becomes floor(500 * 256 / 375) = 341, the crop starts at (59, 16)
    assert view.box(500, 375, np.random.default_rng(0)) == pytest.approx(
        (59 / scale, 16 / scale, 283 / scale, 240 / scale))
    reference = np.asarray(image.resize((341, 256), Image.BILINEAR))[16:240, 59:283]
    cut = view.cut(image, np.random.default_rng(0))
    assert cut.shape == (224, 224, 3)
    assert np.abs(cut.astype(float) - reference).mean() < 1.5  # one resampling of the box, not two steps
    tensor = view.cut_tensor(torch.from_numpy(np.array(image)).permute(2, 0, 1), np.random.default_rng(0))
    assert tensor.shape == (3, 224, 224) and np.abs(tensor.permute(1, 2, 0).numpy() - cut.astype(float)).mean() < 3


def test_jigsaw_crop_offsets_cover_every_position_including_the_last():
    view, rng = ShortSideCrop(256, 255, random=True), np.random.default_rng(0)
    boxes = [view.box(256, 300, rng) for _ in range(2000)]  # resized: 256 x 300 -> x in {0, 1}, y in 0..45
    xs, ys = {b[0] for b in boxes}, {b[1] for b in boxes}
    assert xs == {0, 1} and min(ys) == 0 and max(ys) == 45 and len(ys) == 46
    assert all(b[2] - b[0] == 255 and b[3] - b[1] == 255 for b in boxes)
    with pytest.raises(ValueError, match="does not fit"):
        ShortSideCrop(224, 256)


def test_pca_lighting_adds_one_colour_offset_per_image_with_alexnets_covariance():
    n, std = 20000, 0.1
    x = torch.full((n, 3, 4, 4), 0.5)
    out = lighting(x, torch.Generator().manual_seed(0), std)
    assert torch.equal(out.amax(dim=(2, 3)), out.amin(dim=(2, 3)))  # the same offset on every pixel
    offsets = (out[:, :, 0, 0] - 0.5).double()  # (N, 3)
    v, lam = torch.tensor(IMAGENET_EIGVEC, dtype=torch.float64), torch.tensor(IMAGENET_EIGVAL, dtype=torch.float64)
    expected = std ** 2 * v @ torch.diag(lam ** 2) @ v.T  # Cov(V (alpha * lambda)), alpha ~ N(0, std^2)
    measured = torch.cov(offsets.T)
    assert torch.allclose(measured, expected, rtol=0, atol=0.05 * expected.abs().max())
    assert offsets.mean(0).abs().max() < 4 * math.sqrt(expected.diag().max() / n)
    # In the eigenbasis the offsets are independent with std 0.1 * eigenvalue.
    alphas = offsets @ v / lam  # (N, 3): alpha_j * ... recovered (V is orthonormal)
    assert alphas.std(0).tolist() == pytest.approx([std] * 3, rel=0.03)


def test_normalize_adds_lighting_only_in_training_and_only_where_the_dataset_asks():
    from dataclasses import replace

    from study.data.stream import stand_in
    from study.objectives import create_objective

    data = stand_in("imagenet", {"resize": 36}, 32, 3)
    images = torch.randint(0, 256, (5, 3, 32, 32), dtype=torch.uint8)
    objective = create_objective("supervised", data)
    plain = normalize(images, data.mean, data.std)
    assert torch.equal(objective.normalize(images), plain)
    lit = objective.normalize(images, torch.Generator().manual_seed(0))
    shift = (lit - plain) * data.std[None, :, None, None]  # back in [0, 1] units: the lighting offset
    assert shift.abs().max() > 0 and torch.allclose(shift.amax(dim=(2, 3)), shift.amin(dim=(2, 3)), atol=1e-5)
    dark = create_objective("supervised", replace(data, lighting=0.0))
    assert torch.equal(dark.normalize(images, torch.Generator().manual_seed(0)), plain)
