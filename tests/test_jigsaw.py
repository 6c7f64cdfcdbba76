"""Jigsaw puzzles against definitions you can read: tiles are crops of their cells, un-shuffling restores them."""

from __future__ import annotations

import pytest
import torch

from study.data import ImageData
from study.spaces.nb201.network import Trunk
from study.objectives import ObjectiveError, create_objective
from study.objectives.jigsaw import cut_tiles, grid_for, normalize_tiles, shuffle_tiles, tile_geometry
from study.spaces import draw


def image_data(size: int, n: int = 16, channels: int = 3, seed: int = 0) -> ImageData:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (n, channels, size, size), dtype=torch.uint8, generator=gen)
    y = torch.zeros(n, dtype=torch.int64)
    return ImageData("rand", x, y, x, y, 10, torch.full((channels,), 0.5), torch.full((channels,), 0.25))


def test_grid_and_tile_sizes_follow_the_paper():
    assert grid_for(32) == 2 and grid_for(63) == 2 and grid_for(64) == 3 and grid_for(96) == 3
    assert tile_geometry(32, 2) == (16, 12)  # the paper: 12x12 tiles in 16x16 cells
    assert tile_geometry(64, 3) == (21, 12) and tile_geometry(225, 3) == (75, 56)  # multiples of 4


def test_tiles_are_crops_of_their_cells():
    x = torch.randn(3, 2, 32, 32)
    offsets = torch.randint(0, 5, (3, 4, 2), generator=torch.Generator().manual_seed(0))
    tiles = cut_tiles(x, 2, 12, offsets)
    assert tiles.shape == (3, 4, 2, 12, 12)
    for b in range(3):
        for t in range(4):
            top, left = 16 * (t // 2) + int(offsets[b, t, 0]), 16 * (t % 2) + int(offsets[b, t, 1])
            torch.testing.assert_close(tiles[b, t], x[b, :, top:top + 12, left:left + 12])


def test_tiles_are_normalised_by_their_own_statistics():
    tiles = normalize_tiles(torch.randn(5, 4, 3, 6, 6) * 7 + 3)
    flat = tiles.flatten(2)
    torch.testing.assert_close(flat.mean(-1), torch.zeros(5, 4), atol=1e-5, rtol=0)
    torch.testing.assert_close(flat.std(-1, correction=0), torch.ones(5, 4), atol=1e-5, rtol=0)  # np.std, as unnas
    assert torch.equal(normalize_tiles(torch.full((1, 1, 1, 2, 2), 4.0)), torch.zeros(1, 1, 1, 2, 2))  # flat: no NaN


@pytest.mark.parametrize("size", [32, 64])
def test_unshuffling_with_the_inverse_permutation_restores_the_jittered_image(size):
    """Put slot i's tile back at grid position perm[i]: every position then holds its own normalised crop."""
    data = image_data(size, n=6)
    obj = create_objective("jigsaw", data)
    gen = torch.Generator().manual_seed(3)
    puzzles, classes = obj.test_batch(data.test_x, data.test_y, gen)
    gen = torch.Generator().manual_seed(3)  # replay the draws the objective made
    offsets = torch.randint(0, obj.cell - obj.tile + 1, (6, obj.n_tiles, 2), generator=gen)
    assert torch.equal(classes, torch.randint(0, obj.n_classes, (6,), generator=gen))
    standard = obj._standardize(data.test_x.float())
    for b in range(6):
        perm = obj.perms[classes[b]]
        restored = torch.empty_like(puzzles[b])
        restored[perm] = puzzles[b]  # inverse permutation: slot i showed tile perm[i]
        for t in range(obj.n_tiles):
            top = obj.cell * (t // obj.grid) + int(offsets[b, t, 0])
            left = obj.cell * (t % obj.grid) + int(offsets[b, t, 1])
            crop = standard[b, :, top:top + obj.tile, left:left + obj.tile]
            torch.testing.assert_close(restored[t], (crop - crop.mean()) / crop.std(correction=0), atol=1e-4, rtol=0)


def test_shuffle_puts_tile_p_i_in_slot_i():
    tiles = torch.arange(2 * 4).reshape(2, 4).float()[..., None]  # tile t of puzzle b holds 4b + t
    out = shuffle_tiles(tiles, torch.tensor([[2, 0, 3, 1], [0, 1, 2, 3]]))
    assert out[..., 0].tolist() == [[2, 0, 3, 1], [4, 5, 6, 7]]


def test_permutation_sets_and_model_shapes():
    small, large = create_objective("jigsaw", image_data(32)), create_objective("jigsaw", image_data(64))
    assert (small.grid, small.n_classes, large.grid, large.n_classes) == (2, 24, 3, 1000)
    assert len({tuple(p) for p in large.perms.tolist()}) == 1000
    cell = draw("nb201", 1, seed=0)[0]
    model = small.build(Trunk(cell, 3, 4, 1))
    inputs, targets = small.train_batch(small.data.train_x[:5], small.data.train_y[:5], torch.Generator())
    assert inputs.shape == (5, 4, 3, 12, 12) and model(inputs).shape == (5, 24) and targets.shape == (5,)
    assert model.fc.in_features == 4 * model.trunk.c_out  # pooled features of all slots, concatenated


def test_slot_order_matters_to_the_model():
    """The same tiles in another order give other logits: features are concatenated, not pooled over slots."""
    obj = create_objective("jigsaw", image_data(32))
    torch.manual_seed(0)
    model = obj.build(Trunk(draw("nb201", 1, seed=0)[0], 3, 4, 1)).eval()
    tiles, _ = obj.test_batch(obj.data.test_x[:2], obj.data.test_y[:2], torch.Generator())
    with torch.no_grad():
        assert not torch.allclose(model(tiles), model(tiles[:, [1, 0, 3, 2]]))


def test_training_turns_about_30_percent_gray_and_test_is_repeatable():
    data = image_data(32, n=400)
    obj = create_objective("jigsaw", data)
    tiles, _ = obj.train_batch(data.train_x, data.train_y, torch.Generator().manual_seed(0))
    gray = (tiles[:, :, 0] == tiles[:, :, 1]).flatten(1).all(1) & (tiles[:, :, 1] == tiles[:, :, 2]).flatten(1).all(1)
    # Gray images become equal channels before per-channel normalisation, so after the dataset's
    # (equal here) statistics and the per-tile scalar standardisation the channels stay equal.
    assert 80 < int(gray.sum()) < 160
    first = obj.test_batch(data.test_x, data.test_y, torch.Generator().manual_seed(7))
    second = obj.test_batch(data.test_x, data.test_y, torch.Generator().manual_seed(7))
    assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1])


@pytest.mark.parametrize("options,words", [({"grid": 5}, "grid"), ({"grayscale": 2.0}, "grayscale"),
                                           ({"grid": 3, "permutations": 0}, "permutations")])
def test_bad_options_are_refused(options, words):
    with pytest.raises(ObjectiveError, match=words):
        create_objective("jigsaw", image_data(64), **options)
