"""Batched augmentation against per-image definitions you can read."""

from __future__ import annotations

import torch

from study.data.augment import normalize, random_crop, random_flip, random_grayscale, rotations


def test_random_crop_matches_a_per_image_crop_of_the_padded_image():
    x = torch.arange(4 * 2 * 6 * 6, dtype=torch.float32).reshape(4, 2, 6, 6)
    gen = torch.Generator().manual_seed(0)
    out = random_crop(x, 2, gen)
    gen = torch.Generator().manual_seed(0)
    oy, ox = torch.randint(0, 5, (4,), generator=gen), torch.randint(0, 5, (4,), generator=gen)
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    for i in range(4):
        torch.testing.assert_close(out[i], padded[i, :, oy[i]:oy[i] + 6, ox[i]:ox[i] + 6])


def test_random_crop_offsets_vary_and_zero_padding_enters():
    x = torch.ones(2000, 1, 8, 8, dtype=torch.uint8)
    out = random_crop(x, 4, torch.Generator().manual_seed(1))
    assert out.dtype == torch.uint8 and out.shape == x.shape
    zeros = (out == 0).flatten(1).sum(1)
    assert zeros.min() == 0 and zeros.max() > 0 and len(zeros.unique()) > 5


def test_flip_flips_about_half():
    x = torch.randn(1000, 1, 3, 3)
    out = random_flip(x, torch.Generator().manual_seed(0))
    flipped = (out == x.flip(3)).flatten(1).all(1)
    kept = (out == x).flatten(1).all(1)
    assert bool((flipped | kept).all()) and 400 < int(flipped.sum()) < 600


def test_grayscale_turns_a_share_gray():
    x = torch.rand(1000, 3, 4, 4)
    out = random_grayscale(x, torch.Generator().manual_seed(0), p=0.3)
    gray = (out[:, 0] == out[:, 1]).flatten(1).all(1) & (out[:, 1] == out[:, 2]).flatten(1).all(1)
    assert 240 < int(gray.sum()) < 360
    torch.testing.assert_close(out[~gray], x[~gray])


def test_rotations_are_rot90_with_matching_labels():
    x = torch.randn(5, 3, 7, 7)
    inputs, labels = rotations(x)
    assert inputs.shape == (20, 3, 7, 7) and labels.tolist() == [k for k in range(4) for _ in range(5)]
    for j in range(20):
        k, i = int(labels[j]), j % 5
        torch.testing.assert_close(inputs[j], torch.rot90(x[i], k, dims=(1, 2)))
    # rotation 1 is 90 degrees counter-clockwise: the top row becomes the left column, reversed
    torch.testing.assert_close(inputs[5, :, :, 0], x[0, :, 0, :].flip(-1))


def test_normalize_standardises_per_channel():
    x = torch.tensor([[[[0, 255]], [[51, 51]]]], dtype=torch.uint8)  # (1, 2, 1, 2)
    out = normalize(x, torch.tensor([0.5, 0.2]), torch.tensor([0.5, 0.1]))
    torch.testing.assert_close(out, torch.tensor([[[[-1.0, 1.0]], [[0.0, 0.0]]]]))
