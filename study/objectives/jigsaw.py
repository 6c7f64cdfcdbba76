"""Jigsaw puzzles (Noroozi & Favaro 2016) as UnNAS trains them: which permutation shuffled the tiles?

The image is cut into a g x g grid of cells of side `image_size // g`; each tile is a random crop of side
int(0.76 * cell), rounded down to a multiple of 4, inside its cell (12 of 16 at 32 pixels, the 0.76 of
UnNAS's code; the gap keeps networks from matching tile edges), normalised by its own mean and std (one of
each over the tile's channels and pixels, population std, as UnNAS does; against low-level shortcuts). A
permutation p of the set sends tile k (row-major grid position) to slot p[k], as unnas' prepare_jig
places them; its index in the set is the class. Tiles go through the shared trunk one by one; their pooled
features are concatenated in slot order into one linear layer over the permutation classes.

Grid: 2x2 with all 24 permutations in lexicographic order below 64 pixels (the paper's CIFAR-10 setting,
unnas' permutations_24.npy), 3x3 from 64 pixels up, where cells of 21+ pixels still leave tiles the trunk
can reduce twice: with `permutations=1000`, the paper's set, unnas' hamming_perms_1000_patches_9_max.npy
(shipped, study/objectives/data/); another count, a maximal-Hamming set generated here
(study/objectives/permutations.py, seed `permutation_seed`). `grid=2|3` forces one.

Training: horizontal flip, then 30% of the images converted to grayscale with skimage's rgb2gray weights
(Rec. 709, as unnas; against colour shortcuts such as chromatic aberration), then the dataset's PCA
lighting where it has one (streamed ImageNet, as UnNAS), its normalisation, then tiling. Streamed data
arrives cut by the workers as UnNAS cuts ImageNet for jigsaw: the shorter side resized to `dataset.resize` (256), then a random (testing: centred) crop of grid * (256 // grid)
pixels, 255 = 3 x 85 on the 3x3 grid, whose cells of 85 give tiles of 64. Testing: no flip or grayscale;
the paper draws test permutations and crops at random, here they come from the trainer's test generator,
which is seeded identically for every evaluation, so two evaluations of one network agree.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from study.data.augment import REC709, random_flip, random_grayscale
from study.data import ImageData
from study.data.views import ShortSideCrop, View
from study.spaces.base import Backbone
from study.objectives.base import Objective, ObjectiveError, register_objective
from study.objectives.permutations import all_permutations, hamming_permutations, unnas_permutations

TILE_SCALE = 0.76  # tile side / cell side (UnNAS: int(16 * 0.76) = 12 at 32 pixels)
LARGE_IMAGE = 64  # from this image size up, a 3x3 grid
PAPER_PERMUTATIONS = 1000  # this many on a 3x3 grid: unnas' own file, not a generated set


def grid_for(image_size: int) -> int:
    """The paper's grid: 2x2 for small (CIFAR-sized) images, 3x3 for larger ones."""
    return 2 if image_size < LARGE_IMAGE else 3


def tile_geometry(image_size: int, grid: int) -> tuple[int, int]:
    """(cell side, tile side) for a grid over an image; pixels beyond grid * cell are never used."""
    cell = image_size // grid
    # A multiple of 4: the skeleton's two residual reductions need even sizes (stride-2 conv and 2x2 pool
    # disagree on odd ones). At 32 pixels this is the paper's 12 exactly.
    return cell, int(cell * TILE_SCALE) // 4 * 4


def cut_tiles(x: torch.Tensor, grid: int, tile: int, offsets: torch.Tensor) -> torch.Tensor:
    """Crop tile t (row-major grid position) at offsets[b, t] = (dy, dx) inside its cell: (B, T, C, tile, tile)."""
    b, _, size, _ = x.shape
    cell = size // grid
    t = torch.arange(grid * grid, device=x.device)
    span = torch.arange(tile, device=x.device)
    rows = ((t // grid) * cell)[None, :, None] + offsets[..., 0:1] + span  # (B, T, tile)
    cols = ((t % grid) * cell)[None, :, None] + offsets[..., 1:2] + span  # (B, T, tile)
    batch = torch.arange(b, device=x.device)[:, None, None, None]
    hwc = x.permute(0, 2, 3, 1)  # (B, H, W, C): one gather picks whole pixels
    tiles = hwc[batch, rows[..., :, None], cols[..., None, :]]  # (B, T, tile, tile, C)
    return tiles.permute(0, 1, 4, 2, 3)  # (B, T, C, tile, tile)


def normalize_tiles(tiles: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Standardise every tile (B, T, C, h, w) by its own mean and std over channels and pixels."""
    mean = tiles.mean(dim=(2, 3, 4), keepdim=True)
    std = tiles.std(dim=(2, 3, 4), keepdim=True, correction=0)  # np.std, as unnas
    return (tiles - mean) / std.clamp_min(eps)  # a flat tile (std 0) becomes zeros, not NaN


def shuffle_tiles(tiles: torch.Tensor, perms: torch.Tensor) -> torch.Tensor:
    """Slot i of puzzle b shows tile perms[b, i]: tiles (B, T, ...) and perms (B, T) -> (B, T, ...)."""
    batch = torch.arange(tiles.shape[0], device=tiles.device)[:, None]
    return tiles[batch, perms]


class TileClassifier(nn.Module):
    """Each tile through the shared trunk, pooled; features concatenated in slot order; one linear layer."""

    def __init__(self, trunk: Backbone, n_tiles: int, n_classes: int) -> None:
        super().__init__()
        self.trunk = trunk
        self.fc = nn.Linear(n_tiles * trunk.c_out, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t = x.shape[:2]  # x: (B, T, C, h, w)
        feats = self.trunk(x.flatten(0, 1)).mean(dim=(2, 3))  # (B*T, c): tiles folded into the batch
        return self.fc(feats.reshape(b, t * feats.shape[1]))  # (B, n_permutations)


@register_objective
class Jigsaw(Objective):
    """Predict which permutation of a fixed set shuffled an image's tiles; labels are never used."""

    name = "jigsaw"

    @classmethod
    def chance(cls, options: dict, dataset: dict) -> float | None:
        """1/24 on a 2x2 grid (all permutations), 1/permutations on 3x3."""
        grid, size = options.get("grid", "auto"), dataset.get("image_size", 32)
        if grid == "auto" and isinstance(size, int):
            grid = grid_for(size)
        if grid == 2:
            return 1 / 24
        count = options.get("permutations", 1000)
        return 1 / count if grid == 3 and isinstance(count, int) and count > 0 else None

    def __init__(self, data: ImageData, crop_padding: int = 4, grid: int | str = "auto", permutations: int = 1000,
                 permutation_seed: int = 0, grayscale: float = 0.3) -> None:
        super().__init__(data, crop_padding)  # crop_padding is unused: the tile jitter is the crop
        self.grid = grid_for(data.image_size) if grid == "auto" else grid
        if self.grid not in (2, 3):
            raise ObjectiveError(f"jigsaw: objective.grid must be auto, 2 or 3, got {grid!r}")
        self.cell, self.tile = tile_geometry(self.image_size, self.grid)
        if self.tile < 4:
            smallest = next(n for n in range(self.image_size + 1, 1024) if tile_geometry(n, self.grid)[1] >= 4)
            smaller_grid = " or objective.grid=2" if self.grid == 3 else ""
            raise ObjectiveError(f"jigsaw: {self.image_size}-pixel images give {self.tile}-pixel tiles on a "
                                 f"{self.grid}x{self.grid} grid; use dataset.image_size={smallest} or more"
                                 f"{smaller_grid}")
        if not 0.0 <= grayscale <= 1.0:
            raise ObjectiveError(f"jigsaw: objective.grayscale must be a share in [0, 1], got {grayscale!r}")
        self.grayscale = grayscale
        n_tiles = self.grid * self.grid
        if n_tiles == 4:
            table = all_permutations(4)  # all 24: the paper's CIFAR-10 classes
        elif permutations == PAPER_PERMUTATIONS:
            table = unnas_permutations()
        else:
            try:
                table = hamming_permutations(n_tiles, permutations, seed=permutation_seed)
            except ValueError as e:
                raise ObjectiveError(f"jigsaw: objective.permutations: {e}") from None
        self.table = table  # (P, T): class c sends tile k to slot table[c, k]
        # Slot i shows tile argsort(p)[i]: the gather that places tile k in slot p[k].
        self.perms = torch.from_numpy(np.argsort(table, axis=1)).to(data.device)  # (P, T)

    @property
    def n_classes(self) -> int:
        return self.perms.shape[0]

    @property
    def n_tiles(self) -> int:
        """Tiles per puzzle (4 or 9)."""
        return self.grid * self.grid

    def build(self, trunk: Backbone) -> nn.Module:
        return TileClassifier(trunk, self.n_tiles, self.n_classes)

    def puzzles(self, x: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Jittered, per-tile normalised, shuffled tiles (B, T, C, t, t) and permutation classes (B,)."""
        b = x.shape[0]
        offsets = torch.randint(0, self.cell - self.tile + 1, (b, self.n_tiles, 2), generator=gen, device=x.device)
        classes = torch.randint(0, self.n_classes, (b,), generator=gen, device=x.device)
        tiles = normalize_tiles(cut_tiles(x, self.grid, self.tile, offsets))
        return shuffle_tiles(tiles, self.perms[classes]), classes

    def stream_views(self) -> tuple[View, View]:
        """UnNAS' jigsaw crops: shorter side to `resize`, a random (testing: centred) crop of whole grid cells."""
        side = self.grid * (self.data.resize // self.grid)  # 255 of 256 on the 3x3 grid
        return ShortSideCrop(self.data.resize, side, random=True), ShortSideCrop(self.data.resize, side)

    def _standardize(self, x: torch.Tensor, gen: torch.Generator | None = None) -> torch.Tensor:
        """Float [0, 255] images to the dataset's normalisation (UnNAS normalises before tiling); in training,
        the dataset's PCA lighting first where it has one."""
        if gen is not None and self.data.lighting > 0:
            return self.normalize(x, gen)
        mean, std = self.data.mean[None, :, None, None], self.data.std[None, :, None, None]
        return (x / 255.0 - mean) / std

    def train_batch(self, images: torch.Tensor, labels: torch.Tensor, gen: torch.Generator):
        x = random_grayscale(random_flip(images, gen).float(), gen, self.grayscale, REC709)  # float: gray has fractions
        return self.puzzles(self._standardize(x, gen), gen)

    def test_batch(self, images: torch.Tensor, labels: torch.Tensor, gen: torch.Generator):
        return self.puzzles(self._standardize(images.float()), gen)
