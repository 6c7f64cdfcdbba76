"""sRGB <-> CIE Lab in batched torch, and the 313 quantised ab bins of Zhang et al. 2016.

Lab follows skimage.color.rgb2lab: sRGB companding, the sRGB -> XYZ matrix of the sRGB specification,
the D65 2-degree reference white (0.95047, 1, 1.08883), and the CIE f() with the exact 6/29 threshold
(skimage rounds the slope 1/(3 (6/29)^2) = 7.78704 to 7.787 and the threshold to 0.008856, which moves
a and b by at most 500 * 3.7e-5 * 0.008856 = 1.6e-4).

How the 313 bins are derived (see `derive_ab_bins`). The paper says only "grid size 10, keep the
Q = 313 values which are in-gamut". We tried, on all 256^3 8-bit sRGB colours:
- round a and b to the nearest multiple of 10, keep occupied cells: 261 bins (any L range from 0-100
  down to 1-99; 246 for L in 20-80);
- floor to multiples of 10 (cells [10i, 10i+10)): 268 cells, and their centres are not multiples of 10;
- grid points within a distance r of the ab projection of the gamut: no r gives 313, and published bins
  lie up to about 14.8 from the gamut while some rejected grid points lie only 11.8 from it.
The rule that gives exactly 313, and exactly the published set (checked against the published list,
which runs from (-90, 50) to (100, 0)), is:

    keep the grid point c in 10*Z^2 iff the square [c - 10, c + 10]^2 meets the convex hull of the
    ab projection of the sRGB cube (over all L),

i.e. c lies within Chebyshev distance 10 of that hull; equivalently, c is a corner of some 10 x 10 grid
cell that the hull touches (the released bin file of Zhang et al. is named pts_in_hull.npy). Without
the convex hull (corners of the cells touched by the gamut itself) one gets 309: (40, 90), (100, -90),
(100, -10) and (100, 0) sit in concave dents of the projected gamut. Every half-width in [9.73, 10.07]
gives the same 313 (the next grid point out, (80, 80), lies 10.07 from the hull; 9.5 gives 309 and 11
gives 318), and sampling the cube at 16 to 512 levels per channel changes nothing.
The hull is taken over the surface of the RGB cube (its image bounds the image of the solid cube),
sampled at all 8-bit values, in float64.
"""

from __future__ import annotations

import functools
import logging

import numpy as np
import torch

log = logging.getLogger(__name__)

# sRGB specification, as in skimage.color.colorconv.xyz_from_rgb.
_XYZ_FROM_RGB = (
    (0.412453, 0.357580, 0.180423),
    (0.212671, 0.715160, 0.072169),
    (0.019334, 0.119193, 0.950227),
)
_WHITE_D65 = (0.95047, 1.0, 1.08883)
_DELTA = 6.0 / 29.0  # CIE f() switches from cube root to linear below DELTA**3
L_MEAN, L_STD = 0.4735, 0.2507  # lightness normalisation of the UnNAS colorization input
BIN_STEP = 10.0
N_BINS = 313
_CHUNK = 1 << 15  # pixels per chunk in ab_to_bin: (chunk, 313) float32 temporaries stay ~40 MB


def _matrix(rows: tuple, like: torch.Tensor) -> torch.Tensor:
    return _constant(rows, like.device, like.dtype)


@functools.lru_cache(maxsize=None)
def _constant(rows: tuple, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """A constant built once per device and dtype: torch.tensor on a GPU is a host copy that waits for it."""
    with torch.inference_mode(False):  # a normal tensor, usable by autograd whatever mode built it
        return torch.tensor(rows, dtype=dtype, device=device)


def _float(x: torch.Tensor) -> torch.Tensor:
    """Promote integer and half inputs to at least float32 so the cube roots and powers are accurate."""
    return x.to(torch.promote_types(x.dtype, torch.float32))


def rgb_to_lab(rgb: torch.Tensor) -> torch.Tensor:
    """Convert sRGB in [0, 1], shape (..., 3, H, W), to CIE Lab (D65, 2 degrees), same shape."""
    rgb = _float(rgb)
    # Clamp inside the pow branch so the unused side of `where` never sees a negative base (NaN grads).
    linear = torch.where(
        rgb > 0.04045, ((rgb.clamp_min(0.04045) + 0.055) / 1.055) ** 2.4, rgb / 12.92
    )  # (..., 3, H, W)
    xyz = torch.einsum("ij,...jhw->...ihw", _matrix(_XYZ_FROM_RGB, rgb), linear)
    white = _matrix(_WHITE_D65, rgb)[:, None, None]  # (3, 1, 1)
    t = xyz / white
    f = torch.where(t > _DELTA**3, t.clamp_min(_DELTA**3) ** (1.0 / 3.0), t / (3 * _DELTA**2) + 4.0 / 29.0)
    fx, fy, fz = f.unbind(-3)  # each (..., H, W)
    return torch.stack([116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)], dim=-3)


def lab_to_rgb(lab: torch.Tensor) -> torch.Tensor:
    """Convert CIE Lab, shape (..., 3, H, W), back to sRGB clamped to [0, 1], same shape."""
    lab = _float(lab)
    big_l, a, b = lab.unbind(-3)
    fy = (big_l + 16.0) / 116.0
    f = torch.stack([fy + a / 500.0, fy, fy - b / 200.0], dim=-3)  # (..., 3, H, W)
    t = torch.where(f > _DELTA, f**3, 3 * _DELTA**2 * (f - 4.0 / 29.0))
    xyz = t * _matrix(_WHITE_D65, lab)[:, None, None]
    rgb_from_xyz = torch.linalg.inv(_matrix(_XYZ_FROM_RGB, lab))
    # Out-of-gamut Lab gives linear values outside [0, 1]; clamping here keeps the pow real.
    linear = torch.einsum("ij,...jhw->...ihw", rgb_from_xyz, xyz).clamp(0.0, 1.0)
    rgb = torch.where(linear > 0.0031308, 1.055 * linear.clamp_min(0.0031308) ** (1.0 / 2.4) - 0.055, 12.92 * linear)
    return rgb.clamp(0.0, 1.0)


def lightness_input(lab: torch.Tensor, mean: float = L_MEAN, std: float = L_STD) -> torch.Tensor:
    """Return the normalised L channel (L/100 - mean)/std of Lab (B, 3, H, W) as (B, 1, H, W); the default is
    unnas' CIFAR-10 normalisation (0.4735, 0.2507), its ImageNet one is (0.449, 0.226)."""
    return (lab[:, :1] / 100.0 - mean) / std


def srgb_cube_surface(n: int = 256) -> torch.Tensor:
    """Return the colours on the six faces of the RGB cube on an n x n grid each, shape (6*n*n, 3)."""
    v = torch.linspace(0.0, 1.0, n, dtype=torch.float64)
    u, w = torch.meshgrid(v, v, indexing="ij")
    faces = []
    for channel in range(3):
        for level in (0.0, 1.0):
            others = [u.reshape(-1), w.reshape(-1)]
            others.insert(channel, torch.full((n * n,), level, dtype=torch.float64))
            faces.append(torch.stack(others, dim=1))
    return torch.cat(faces)  # (6*n*n, 3)


def _convex_hull(points: np.ndarray) -> np.ndarray:
    """Return the vertices of the 2-D convex hull, counter-clockwise (Andrew's monotone chain)."""
    pts = np.unique(points, axis=0)  # sorted by x then y, which the chain needs

    def chain(seq: np.ndarray) -> list[np.ndarray]:
        out: list[np.ndarray] = []
        for p in seq:
            while len(out) >= 2:
                (ox, oy), (ax, ay) = out[-2], out[-1]
                if (ax - ox) * (p[1] - oy) - (ay - oy) * (p[0] - ox) > 0:
                    break
                out.pop()
            out.append(p)
        return out

    lower, upper = chain(pts), chain(pts[::-1])
    return np.array(lower[:-1] + upper[:-1])


def _prune_interior(points: np.ndarray, n_dirs: int = 64) -> np.ndarray:
    """Drop points strictly inside the polygon of extreme points in n_dirs directions (never hull vertices)."""
    # Leaves only the rim for the Python hull loop: about 10x faster on the 393k cube-surface colours.
    theta = np.linspace(0.0, 2 * np.pi, n_dirs, endpoint=False)
    dirs = np.stack([np.cos(theta), np.sin(theta)], axis=1)
    poly = _convex_hull(points[np.unique((dirs @ points.T).argmax(axis=1))])  # (V, 2)
    edges = np.roll(poly, -1, axis=0) - poly  # (V, 2), counter-clockwise
    rel = points[:, None, :] - poly[None]  # (N, V, 2)
    cross = edges[None, :, 0] * rel[..., 1] - edges[None, :, 1] * rel[..., 0]
    return points[~(cross > 1e-9).all(axis=1)]


def derive_ab_bins(n: int = 256, half_width: float = BIN_STEP) -> torch.Tensor:
    """Derive the in-gamut ab grid points (see module docstring), sorted by (a, b), as (Q, 2) float."""
    rgb = srgb_cube_surface(n).T[None, :, :, None]  # (1, 3, N, 1)
    ab = rgb_to_lab(rgb)[0, 1:, :, 0].T.numpy()  # (N, 2)
    hull = _convex_hull(_prune_interior(ab))
    # Minkowski sum with the square [-w, w]^2: a grid point is in it iff its square meets the hull.
    corners = np.array([[-1, -1], [-1, 1], [1, -1], [1, 1]], dtype=np.float64) * half_width
    grown = _convex_hull((hull[:, None, :] + corners[None]).reshape(-1, 2))
    lo = np.floor(grown.min(axis=0) / BIN_STEP) * BIN_STEP
    hi = np.ceil(grown.max(axis=0) / BIN_STEP) * BIN_STEP
    ga, gb = np.meshgrid(np.arange(lo[0], hi[0] + 1, BIN_STEP), np.arange(lo[1], hi[1] + 1, BIN_STEP), indexing="ij")
    grid = np.stack([ga.ravel(), gb.ravel()], axis=1)  # (G, 2), already sorted by (a, b)
    edges = np.roll(grown, -1, axis=0) - grown
    rel = grid[:, None, :] - grown[None]
    cross = edges[None, :, 0] * rel[..., 1] - edges[None, :, 1] * rel[..., 0]
    inside = (cross >= -1e-9 * BIN_STEP).all(axis=1)  # closed hull: touching counts
    return torch.from_numpy(grid[inside]).float()


@functools.lru_cache(maxsize=1)
def _ab_bins_cached() -> torch.Tensor:
    bins = derive_ab_bins()
    if bins.shape[0] != N_BINS:
        raise RuntimeError(f"derived {bins.shape[0]} ab bins, expected {N_BINS}")
    log.debug("derived %d ab bins", bins.shape[0])
    return bins


def ab_bins() -> torch.Tensor:
    """Return the 313 ab bin centres of Zhang et al. 2016, shape (313, 2), sorted by (a, b)."""
    return _ab_bins_cached().clone()  # clone: the cached tensor must not be mutated by callers


def _nearest_brute(flat: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    """Return the argmin over centres (Q, 2) of the squared distance for each row of flat (N, 2)."""
    out = torch.empty(flat.shape[0], dtype=torch.int64, device=flat.device)
    # Differences rather than |x|^2 - 2x.c + |c|^2: no cancellation, so ties and near-ties resolve as a
    # plain argmin would; chunked so the (chunk, Q) temporaries stay small.
    for start in range(0, flat.shape[0], _CHUNK):
        x = flat[start : start + _CHUNK]
        d = (x[:, None, 0] - centres[None, :, 0]) ** 2 + (x[:, None, 1] - centres[None, :, 1]) ** 2
        out[start : start + _CHUNK] = d.argmin(dim=1)
    return out


def _nearest_on_grid(flat: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    """Nearest centre via a lookup table of grid cells, -1 where the nearest grid point is no centre."""
    ij = torch.round(centres / BIN_STEP).long()  # (Q, 2)
    lo = ij.min(dim=0).values
    size = ij.max(dim=0).values - lo + 1
    lut = torch.full(size.tolist(), -1, dtype=torch.int64, device=flat.device)
    lut[ij[:, 0] - lo[0], ij[:, 1] - lo[1]] = torch.arange(ij.shape[0], device=flat.device)
    # The nearest point of a square lattice is the coordinatewise rounding. ceil(x - 0.5) sends exact
    # halves down, to the lower (a, b), which is the bin argmin picks first since bins sort by (a, b).
    cell = torch.ceil(flat / BIN_STEP - 0.5).nan_to_num(0.0).clamp(-(2**30), 2**30).long() - lo
    inside = ((cell >= 0) & (cell < size)).all(dim=1)
    cell = torch.minimum(cell.clamp_min(0), size - 1)
    return torch.where(inside, lut[cell[:, 0], cell[:, 1]], -1)


def ab_to_bin(ab: torch.Tensor, bins: torch.Tensor | None = None) -> torch.Tensor:
    """Return the index of the nearest bin (squared Euclidean) for ab (B, 2, H, W), as (B, H, W) int64."""
    ab = _float(ab)
    centres = (ab_bins() if bins is None else bins).to(device=ab.device, dtype=ab.dtype)  # (Q, 2)
    b, _, h, w = ab.shape
    flat = ab.permute(0, 2, 3, 1).reshape(-1, 2)  # (B*H*W, 2)
    ij = torch.round(centres / BIN_STEP)
    lattice = torch.equal(ij * BIN_STEP, centres) and ij.unique(dim=0).shape[0] == ij.shape[0]
    if not lattice:
        return _nearest_brute(flat, centres).reshape(b, h, w)
    # Fast path: if the nearest grid point is a bin it is the nearest bin. That covers every sRGB
    # colour (its rounded cell is always a bin); only out-of-gamut ab falls back to the full argmin.
    idx = _nearest_on_grid(flat, centres)
    miss = (idx < 0).nonzero().squeeze(1)
    if miss.numel():
        idx[miss] = _nearest_brute(flat[miss], centres)
    return idx.reshape(b, h, w)


class BinLookup:
    """Nearest-bin targets for sRGB images on one device, with no host round trip per batch.

    `ab_to_bin` checks its bins and builds its grid table on every call, and finds out-of-table pixels with
    `nonzero`: each of those waits for the GPU. Here the table is built once and covers the whole grid:
    a grid point that is a bin maps to that bin (the exact nearest bin for every sRGB colour, whose four
    surrounding grid points are all bins, tests/test_color.py), any other grid point, and ab beyond the
    table, to the bin nearest that grid point (out-of-gamut ab only, which images never produce).
    """

    def __init__(self, device: torch.device | str) -> None:
        centres = ab_bins()  # (Q, 2), on the 10-grid by construction
        ij = torch.round(centres / BIN_STEP).long()
        lo, hi = ij.min(dim=0).values, ij.max(dim=0).values
        ga, gb = torch.meshgrid(torch.arange(lo[0], hi[0] + 1), torch.arange(lo[1], hi[1] + 1), indexing="ij")
        grid = torch.stack([ga.reshape(-1), gb.reshape(-1)], dim=1).float() * BIN_STEP  # (G, 2)
        lut = _nearest_brute(grid, centres).reshape(ga.shape)  # (A, B): bins map to themselves
        with torch.inference_mode(False):
            self.lo, self.size = lo.to(device), (hi - lo + 1).to(device)
            self.lut = lut.to(device)

    def __call__(self, ab: torch.Tensor) -> torch.Tensor:
        """Bin index per pixel of ab (B, 2, H, W), as (B, H, W) int64."""
        b, _, h, w = ab.shape
        flat = _float(ab).permute(0, 2, 3, 1).reshape(-1, 2)  # (B*H*W, 2)
        # Rounded as in _nearest_on_grid (exact halves go to the lower bin, as argmin over sorted bins).
        cell = torch.ceil(flat / BIN_STEP - 0.5).nan_to_num(0.0).clamp(-(2**30), 2**30).long() - self.lo
        cell = torch.minimum(cell.clamp_min(0), self.size - 1)
        return self.lut[cell[:, 0], cell[:, 1]].reshape(b, h, w)


@functools.lru_cache(maxsize=None)
def bin_lookup(device: str) -> BinLookup:
    """The BinLookup of a device (`cpu`, `cuda:0`), built once per process."""
    return BinLookup(device)
