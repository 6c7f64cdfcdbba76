"""How a loader worker cuts one decoded image into the square an objective trains on: the per-image geometry.

Two cuts cover the paper's ImageNet preprocessing (unnas pycls/datasets/transforms.py and prepare.py):
- `ResizedCrop(size)`: Inception-style random crop (area share uniform in [0.08, 1], aspect ratio uniform in
  [3/4, 4/3], width and height swapped with probability 1/2, up to 10 tries, else the centre crop of the
  shorter side) resized to size x size. Supervised, rotation and colorization train on it at 224.
- `ShortSideCrop(resize, size, random)`: the shorter side resized to `resize`, then a size x size crop,
  at a random offset (jigsaw's training crop, 255 of 256) or centred (every objective's test view, 224
  of 256; jigsaw's, 255 of 256).

Each cut is computed as a box in the original image and resampled in one step (PIL's `resize(box=...)`,
bilinear, antialiased when it shrinks): the same pixels as resizing the whole image first and cropping
after, without resizing the parts the crop throws away. unnas resizes with OpenCV's bilinear filter, which
does not antialias; crop offsets here include the last position (unnas' `randint(0, h - size)` never
picks it). Randomness comes from the numpy generator the caller passes, one per image, so a cut does not
depend on which worker makes it. Flips, colour and everything after the crop happen on the device
(the objectives).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

Box = tuple[float, float, float, float]  # left, top, right, bottom in the original image's pixels


class View(Protocol):
    """A per-image cut: a square of `size` pixels from an image of any size."""

    size: int

    def box(self, width: int, height: int, rng: np.random.Generator) -> Box:
        """The region of a width x height image that becomes the output square."""

    def cut(self, image: Any, rng: np.random.Generator) -> np.ndarray:
        """The output (size, size, 3) uint8 of an RGB PIL image."""

    def cut_tensor(self, image: Any, rng: np.random.Generator) -> Any:
        """The output (3, size, size) uint8 of a (3, H, W) uint8 tensor (the same draws from `rng`)."""


def _resample(image: Any, box: Box, size: int) -> np.ndarray:
    from PIL import Image

    return np.asarray(image.resize((size, size), Image.BILINEAR, box=box))  # (size, size, 3)


def resample_tensor(image: Any, box: Box, size: int) -> Any:
    """The box of a (3, H, W) uint8 tensor, rounded to whole pixels, resized to (3, size, size) (bilinear,
    antialiased when it shrinks: torch's uint8 kernel)."""
    import torch

    height, width = image.shape[-2:]
    left, top = min(max(round(box[0]), 0), width - 1), min(max(round(box[1]), 0), height - 1)
    right, bottom = max(min(round(box[2]), width), left + 1), max(min(round(box[3]), height), top + 1)
    crop = image[None, :, top:bottom, left:right]  # (1, 3, h, w)
    return torch.nn.functional.interpolate(crop, size=(size, size), mode="bilinear", antialias=True,
                                           align_corners=False)[0]  # (3, size, size)


def centre_square(width: int, height: int) -> Box:
    """The centred square of side min(width, height)."""
    side = min(width, height)
    left, top = (width - side) / 2, (height - side) / 2
    return left, top, left + side, top + side


@dataclass(frozen=True)
class ResizedCrop:
    """Inception-style random-sized crop resized to `size` (RandomResizedCrop with unnas' draws)."""

    size: int
    area: tuple[float, float] = (0.08, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    tries: int = 10

    def box(self, width: int, height: int, rng: np.random.Generator) -> Box:
        """A random box of area share U(area) and aspect U(ratio) (swapped w.p. 1/2), else the centre square."""
        for _ in range(self.tries):
            target = rng.uniform(*self.area) * width * height
            aspect = rng.uniform(*self.ratio)
            w, h = round(math.sqrt(target * aspect)), round(math.sqrt(target / aspect))
            if rng.uniform() < 0.5:
                w, h = h, w
            if 0 < w <= width and 0 < h <= height:
                left, top = int(rng.integers(0, width - w + 1)), int(rng.integers(0, height - h + 1))
                return left, top, left + w, top + h
        return centre_square(width, height)

    def cut(self, image: Any, rng: np.random.Generator) -> np.ndarray:
        """The random crop of an RGB PIL image, resampled to (size, size, 3) uint8."""
        return _resample(image, self.box(*image.size, rng), self.size)

    def cut_tensor(self, image: Any, rng: np.random.Generator) -> Any:
        """The random crop of a (3, H, W) uint8 tensor, resampled to (3, size, size)."""
        return resample_tensor(image, self.box(image.shape[-1], image.shape[-2], rng), self.size)


@dataclass(frozen=True)
class ShortSideCrop:
    """Shorter side to `resize`, then a `size` square: random offset (training) or centred (testing)."""

    resize: int
    size: int
    random: bool = False

    def __post_init__(self) -> None:
        if self.size > self.resize:
            raise ValueError(f"a {self.size}-pixel crop does not fit in a shorter side of {self.resize}")

    def box(self, width: int, height: int, rng: np.random.Generator) -> Box:
        """The crop, mapped back to the original image (the resize never rounds the shorter side)."""
        scale = self.resize / min(width, height)
        # unnas (transforms.scale) floors the longer side; the crop must fit in what that leaves.
        if width <= height:
            rw, rh = self.resize, math.floor(height * scale)
        else:
            rw, rh = math.floor(width * scale), self.resize
        if self.random:
            x, y = int(rng.integers(0, rw - self.size + 1)), int(rng.integers(0, rh - self.size + 1))
        else:
            x, y = math.ceil((rw - self.size) / 2), math.ceil((rh - self.size) / 2)
        return x / scale, y / scale, (x + self.size) / scale, (y + self.size) / scale

    def cut(self, image: Any, rng: np.random.Generator) -> np.ndarray:
        """The crop of an RGB PIL image, resampled to (size, size, 3) uint8."""
        return _resample(image, self.box(*image.size, rng), self.size)

    def cut_tensor(self, image: Any, rng: np.random.Generator) -> Any:
        """The crop of a (3, H, W) uint8 tensor, resampled to (3, size, size)."""
        return resample_tensor(image, self.box(image.shape[-1], image.shape[-2], rng), self.size)
