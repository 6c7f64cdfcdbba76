"""Tests for study.objectives.color: Lab conversion against skimage, the 313 ab bins, nearest-bin assignment."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from study.objectives import color

# The derived bins, column by column: a -> (lowest b, highest b), every multiple of 10 in between.
# This is also the published set of Zhang et al. 2016 (313 points from (-90, 50) to (100, 0)).
EXPECTED_COLUMNS = {
    -90: (50, 90), -80: (20, 90), -70: (0, 90), -60: (-20, 90), -50: (-30, 100), -40: (-40, 100),
    -30: (-50, 100), -20: (-50, 100), -10: (-60, 100), 0: (-70, 100), 10: (-80, 90), 20: (-80, 90),
    30: (-90, 90), 40: (-100, 90), 50: (-100, 80), 60: (-110, 80), 70: (-110, 80), 80: (-110, 70),
    90: (-110, 70), 100: (-90, 0),
}  # fmt: skip

# Tolerances against skimage. skimage rounds the CIE constants (7.787, 0.008856), which moves a and b by
# up to 1.6e-4; float32 adds rounding of the same order (observed max 1.7e-4 in both dtypes).
LAB_ATOL = {torch.float64: 1e-3, torch.float32: 1e-3}
# The sRGB standard's two thresholds (0.04045 and 0.0031308) disagree by 5e-9, so colours right at the
# knee come back off by up to 3e-8 even in float64.
ROUND_TRIP_ATOL = {torch.float64: 1e-7, torch.float32: 1e-4}


def _random_rgb(shape: tuple[int, ...], dtype: torch.dtype, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(shape, generator=gen, dtype=torch.float64).to(dtype)


def _special_rgb() -> torch.Tensor:
    """Black, white, primaries, secondaries, greys, and dark colours on the linear branches, (1, 3, 1, N)."""
    cols = [[0, 0, 0], [1, 1, 1], [1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0], [0, 1, 1], [1, 0, 1],
            [0.5, 0.5, 0.5], [0.04, 0.04, 0.04], [0.01, 0.002, 0.03], [0.04045, 0.0404, 0.0405]]  # fmt: skip
    return torch.tensor(cols, dtype=torch.float64).T[None, :, None, :]


def _brute_nearest(ab: np.ndarray, bins: np.ndarray) -> np.ndarray:
    """Reference nearest bin in float64 numpy for ab (N, 2)."""
    return ((ab[:, None, :] - bins[None, :, :]) ** 2).sum(axis=2).argmin(axis=1)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_rgb_to_lab_matches_skimage(dtype: torch.dtype) -> None:
    skcolor = pytest.importorskip("skimage.color")
    rgb = torch.cat([_random_rgb((2, 3, 16, 16), dtype).reshape(1, 3, 1, -1), _special_rgb().to(dtype)], dim=3)
    expected = skcolor.rgb2lab(rgb.double().numpy(), channel_axis=1)
    lab = color.rgb_to_lab(rgb)
    assert lab.dtype == dtype
    np.testing.assert_allclose(lab.double().numpy(), expected, atol=LAB_ATOL[dtype], rtol=0)


def test_lab_to_rgb_matches_skimage() -> None:
    skcolor = pytest.importorskip("skimage.color")
    lab = color.rgb_to_lab(_random_rgb((2, 3, 8, 8), torch.float64))
    expected = skcolor.lab2rgb(lab.numpy(), channel_axis=1)
    np.testing.assert_allclose(color.lab_to_rgb(lab).numpy(), expected, atol=1e-4, rtol=0)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_round_trip(dtype: torch.dtype) -> None:
    rgb = torch.cat([_random_rgb((1, 3, 1, 512), dtype), _special_rgb().to(dtype)], dim=3)
    back = color.lab_to_rgb(color.rgb_to_lab(rgb))
    assert back.dtype == dtype
    torch.testing.assert_close(back, rgb, atol=ROUND_TRIP_ATOL[dtype], rtol=0)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(*[st.floats(0.0, 1.0)] * 3), min_size=1, max_size=8))
def test_round_trip_property(colours: list[tuple[float, float, float]]) -> None:
    rgb = torch.tensor(colours, dtype=torch.float64).T[None, :, :, None]  # (1, 3, N, 1)
    torch.testing.assert_close(color.lab_to_rgb(color.rgb_to_lab(rgb)), rgb, atol=1e-7, rtol=0)


def test_lab_to_rgb_clamps_out_of_gamut() -> None:
    lab = torch.tensor([[150.0, -20.0, 0.0], [50.0, 127.0, -127.0], [-10.0, 0.0, 0.0]]).T[None, :, :, None]
    rgb = color.lab_to_rgb(lab)
    assert torch.isfinite(rgb).all() and rgb.min() >= 0 and rgb.max() <= 1


@pytest.mark.parametrize("shape", [(3, 5, 7), (2, 3, 5, 7), (4, 2, 3, 1, 1)])
def test_shapes_preserved(shape: tuple[int, ...]) -> None:
    rgb = _random_rgb(shape, torch.float64)
    lab = color.rgb_to_lab(rgb)
    assert lab.shape == shape and color.lab_to_rgb(lab).shape == shape
    # Batched conversion equals converting each image on its own.
    flat = rgb.reshape(-1, 3, *shape[-2:])
    torch.testing.assert_close(lab.reshape(flat.shape)[-1], color.rgb_to_lab(flat[-1]))


def test_lightness_input_white_black() -> None:
    rgb = torch.tensor([[1.0, 1.0, 1.0], [0.0, 0.0, 0.0]]).T[None, :, :, None]  # (1, 3, 2, 1): white, black
    x = color.lightness_input(color.rgb_to_lab(rgb))
    assert x.shape == (1, 1, 2, 1)
    expected = torch.tensor([(1 - 0.4735) / 0.2507, -0.4735 / 0.2507])
    torch.testing.assert_close(x.reshape(-1), expected, atol=1e-5, rtol=0)


def test_ab_bins_count_and_grid() -> None:
    bins = color.ab_bins()
    assert bins.shape == (313, 2) and bins.dtype == torch.float32
    assert torch.equal(bins, torch.round(bins / 10) * 10)  # every centre on the 10-grid
    pairs = [tuple(p) for p in bins.long().tolist()]
    assert pairs == sorted(set(pairs))  # distinct and sorted by (a, b)


def test_ab_bins_equal_expected_set() -> None:
    expected = [(a, b) for a, (lo, hi) in EXPECTED_COLUMNS.items() for b in range(lo, hi + 1, 10)]
    assert len(expected) == 313
    assert [tuple(p) for p in color.ab_bins().long().tolist()] == expected


def test_ab_bins_cached_and_not_shared() -> None:
    bins = color.ab_bins()
    bins.zero_()
    assert color.ab_bins().abs().sum() > 0


@pytest.mark.parametrize(("n", "half_width", "count"), [(32, 10.0, 313), (64, 9.5, 309), (64, 11.0, 318)])
def test_derivation_stable(n: int, half_width: float, count: int) -> None:
    """Coarser sampling gives the same set; the neighbouring half-widths give other counts (docstring)."""
    bins = color.derive_ab_bins(n, half_width)
    assert bins.shape[0] == count
    if count == 313:
        assert torch.equal(bins, color.ab_bins())


def _dense_srgb_ab() -> torch.Tensor:
    """ab of a 129-level grid of the sRGB cube plus 2^20 random colours, as (N, 2) float64."""
    v = torch.linspace(0, 1, 129, dtype=torch.float64)
    grid = torch.stack(torch.meshgrid(v, v, v, indexing="ij")).reshape(3, -1)
    rnd = _random_rgb((3, 1 << 20), torch.float64, seed=1)
    rgb = torch.cat([grid, rnd], dim=1)[None, :, :, None]  # (1, 3, N, 1)
    return color.rgb_to_lab(rgb)[0, 1:, :, 0].T


def test_every_srgb_colour_surrounded_by_bins() -> None:
    """The tight property: all four grid corners around any sRGB colour's ab are bins."""
    ab = _dense_srgb_ab()  # (N, 2)
    low = torch.floor(ab / 10).long() + 20  # grid indices shifted to be non-negative (|a|, |b| < 130)
    # Occupancy of the grid points as a 50 x 50 table: a bincount is far faster than a unique over rows.
    hit = torch.zeros(50 * 50, dtype=torch.bool)
    for da in (0, 1):
        for db in (0, 1):
            hit |= torch.bincount((low[:, 0] + da) * 50 + low[:, 1] + db, minlength=50 * 50) > 0
    ij = (color.ab_bins() / 10).long() + 20
    is_bin = torch.zeros(50 * 50, dtype=torch.bool)
    is_bin[ij[:, 0] * 50 + ij[:, 1]] = True
    assert not (hit & ~is_bin).any()
    # All 256^3 colours reach 309 corners (this sample 307); the convex hull adds the last few bins.
    assert 300 <= hit.sum() < 313
    # Hence the nearest grid point is a bin, and the nearest bin lies within half a cell diagonal.
    idx = color.ab_to_bin(ab.T[None, :, :, None])  # (1, N, 1)
    dist = (color.ab_bins().double()[idx.reshape(-1)] - ab).norm(dim=1)
    assert dist.max() <= 5 * math.sqrt(2) + 1e-9


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_ab_to_bin_matches_brute_force(dtype: torch.dtype) -> None:
    gen = torch.Generator().manual_seed(0)
    ab = (torch.randn(3, 2, 20, 20, generator=gen, dtype=torch.float64) * 70).to(dtype)  # many out of gamut
    idx = color.ab_to_bin(ab)
    assert idx.shape == (3, 20, 20) and idx.dtype == torch.int64
    flat = ab.double().permute(0, 2, 3, 1).reshape(-1, 2).numpy()
    bins = color.ab_bins().double().numpy()
    expected = _brute_nearest(flat, bins)
    if dtype == torch.float64:
        np.testing.assert_array_equal(idx.reshape(-1).numpy(), expected)
    else:  # float32 may flip exact near-ties: compare the distances reached instead
        d = ((flat[:, None] - bins[None]) ** 2).sum(axis=2)
        np.testing.assert_allclose(d[np.arange(len(flat)), idx.reshape(-1).numpy()], d.min(axis=1), atol=1e-2)


def test_ab_to_bin_exact_ties_take_first_bin() -> None:
    """Points exactly between grid points go to the lowest (a, b), as argmin over sorted bins does."""
    pts = np.array([[15.0, 15.0], [5.0, -5.0], [-5.0, 0.0], [0.0, 95.0], [-85.0, 85.0]])
    ab = torch.from_numpy(pts).T[None, :, :, None]  # (1, 2, N, 1)
    expected = _brute_nearest(pts, color.ab_bins().double().numpy())
    np.testing.assert_array_equal(color.ab_to_bin(ab).reshape(-1).numpy(), expected)


def test_ab_to_bin_custom_bins() -> None:
    """Off-grid bins take the brute-force path; on-grid subsets take the lookup path."""
    gen = torch.Generator().manual_seed(2)
    ab = torch.randn(2, 2, 8, 8, generator=gen, dtype=torch.float64) * 50
    flat = ab.permute(0, 2, 3, 1).reshape(-1, 2).numpy()
    for bins in (color.ab_bins().double() + 3.3, color.ab_bins().double()[::7]):
        idx = color.ab_to_bin(ab, bins)
        np.testing.assert_array_equal(idx.reshape(-1).numpy(), _brute_nearest(flat, bins.numpy()))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu() -> None:
    rgb = _random_rgb((2, 3, 16, 16), torch.float32)
    lab = color.rgb_to_lab(rgb)
    torch.testing.assert_close(color.rgb_to_lab(rgb.cuda()).cpu(), lab, atol=1e-4, rtol=0)
    assert torch.equal(color.ab_to_bin(lab[:, 1:].cuda()).cpu(), color.ab_to_bin(lab[:, 1:]))
