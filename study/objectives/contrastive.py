"""Contrastive instance discrimination (SimCLR, Chen et al. 2020): which other view is of the same image?

Every image becomes two augmented views: a random resized crop (area 8-100% of the image, aspect ratio
3/4-4/3, resampled bilinearly to the input size) with a horizontal flip, then, on colour images, colour
jitter of strength 0.5 (brightness, contrast and saturation factors in [0.6, 1.4], hue shifted by up to
0.1 of a turn; applied with probability 0.8, in that fixed order) and grayscale with probability 0.2.
All of it is batched on tensors with the caller's generator. The batch holds the first views of all B
images, then their second views, so view i's pair is view (i + B) mod 2B.

Network: the trunk, global pooling, a 2-layer MLP projection head (hidden width = trunk width, ReLU) to
128 dimensions. Loss: NT-Xent at temperature 0.5 (cross-entropy of each view's cosine similarities to the
2B - 1 other views, its pair being the class). Accuracy, the label-free number the analysis uses: the
share of test views whose nearest other view in the batch (cosine similarity of projections) is their
pair; the test views come from the trainer's test generator, so evaluations are repeatable.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from study.data.augment import random_grayscale
from study.data import ImageData
from study.data.views import View
from study.spaces.base import Backbone
from study.objectives.base import Objective, ObjectiveError, register_objective

MIN_AREA, MAX_AREA = 0.08, 1.0
RATIO = (3 / 4, 4 / 3)


def resized_crop_grid(b: int, size: int, gen: torch.Generator, device: torch.device,
                      min_area: float = MIN_AREA) -> torch.Tensor:
    """Affine sampling grids (B, size, size, 2) of random resized crops, each flipped with probability 0.5."""
    rand = torch.rand(b, 5, generator=gen, device=device)  # area, log-ratio, x offset, y offset, flip
    area = min_area + (MAX_AREA - min_area) * rand[:, 0]
    log_lo, log_hi = math.log(RATIO[0]), math.log(RATIO[1])
    ratio = torch.exp(log_lo + (log_hi - log_lo) * rand[:, 1])
    # Crop side as a fraction of the image side; a crop that would not fit is clamped to the whole side
    # (torchvision redraws up to 10 times instead; the clamp only touches large areas at extreme ratios).
    w = torch.sqrt(area * ratio).clamp(max=1.0)
    h = torch.sqrt(area / ratio).clamp(max=1.0)
    cx = (rand[:, 2] * (1 - w) + w / 2) * 2 - 1  # crop centre in [-1, 1] grid coordinates
    cy = (rand[:, 3] * (1 - h) + h / 2) * 2 - 1
    flip = torch.where(rand[:, 4] < 0.5, -1.0, 1.0)
    theta = torch.zeros(b, 2, 3, device=device)
    theta[:, 0, 0], theta[:, 0, 2] = w * flip, cx
    theta[:, 1, 1], theta[:, 1, 2] = h, cy
    return nn.functional.affine_grid(theta, [b, 1, size, size], align_corners=False)


def gray(x: torch.Tensor) -> torch.Tensor:
    """Luma (ITU-R 601) of RGB images in [0, 1], (B, 1, H, W)."""
    w = torch.tensor([0.299, 0.587, 0.114], device=x.device, dtype=x.dtype)
    return (x * w[None, :, None, None]).sum(1, keepdim=True)


def rotate_hue(x: torch.Tensor, turns: torch.Tensor) -> torch.Tensor:
    """Rotate the chroma of RGB images by `turns` (B,) of a full turn, in YIQ space (luma kept)."""
    to_yiq = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]],
                          device=x.device, dtype=x.dtype)
    yiq = torch.einsum("ij,bjhw->bihw", to_yiq, x)
    cos, sin = torch.cos(2 * math.pi * turns)[:, None, None], torch.sin(2 * math.pi * turns)[:, None, None]
    i, q = yiq[:, 1], yiq[:, 2]
    yiq = torch.stack([yiq[:, 0], cos * i - sin * q, sin * i + cos * q], 1)
    return torch.einsum("ij,bjhw->bihw", torch.linalg.inv(to_yiq), yiq)


def color_jitter(x: torch.Tensor, gen: torch.Generator, strength: float = 0.5, p: float = 0.8) -> torch.Tensor:
    """SimCLR colour distortion of RGB images in [0, 1] (B, 3, H, W): each image jittered with probability p."""
    b = x.shape[0]
    rand = torch.rand(b, 5, generator=gen, device=x.device)
    factor = 1 + 0.8 * strength * (2 * rand[:, :3] - 1)  # brightness, contrast, saturation in [1-0.8s, 1+0.8s]
    f = [factor[:, k, None, None, None] for k in range(3)]
    y = (x * f[0]).clamp(0, 1)
    y = ((y - gray(y).mean(dim=(2, 3), keepdim=True)) * f[1] + gray(y).mean(dim=(2, 3), keepdim=True)).clamp(0, 1)
    y = ((y - gray(y)) * f[2] + gray(y)).clamp(0, 1)
    y = rotate_hue(y, 0.2 * strength * (2 * rand[:, 3] - 1)).clamp(0, 1)
    return torch.where((rand[:, 4] < p)[:, None, None, None], y, x)


def augment_views(images: torch.Tensor, gen: torch.Generator, strength: float = 0.5) -> torch.Tensor:
    """Two SimCLR views of every uint8 image, floats in [0, 1]: (2B, C, H, W), first views then second views."""
    x = (images.float() / 255).repeat(2, 1, 1, 1)  # (2B, C, H, W)
    grid = resized_crop_grid(x.shape[0], x.shape[-1], gen, x.device)
    x = nn.functional.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    if x.shape[1] == 3:  # colour distortion needs colour
        x = random_grayscale(color_jitter(x, gen, strength), gen, 0.2)
    return x


def pair_targets(b: int, device: torch.device) -> torch.Tensor:
    """Index of each view's pair in a batch of 2b views (first views, then second views)."""
    return (torch.arange(2 * b, device=device) + b) % (2 * b)


def similarities(z: torch.Tensor) -> torch.Tensor:
    """Cosine similarities between every two views (N, N), a view's own similarity set to -inf."""
    z = nn.functional.normalize(z.float(), dim=1)
    sim = z @ z.T
    return sim.masked_fill(torch.eye(len(z), dtype=torch.bool, device=z.device), -math.inf)


class ProjectionNet(nn.Module):
    """Backbone, global average pooling, Linear-ReLU-Linear projection head."""

    stackable = True  # acts on each channel alone: K models side by side stay apart (study/training/stacking.py)

    def __init__(self, trunk: Backbone, out_dim: int) -> None:
        super().__init__()
        self.trunk = trunk
        c = trunk.c_out
        self.head = nn.Sequential(nn.Linear(c, c), nn.ReLU(inplace=True), nn.Linear(c, out_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.trunk(x).mean(dim=(2, 3)))  # (N, out_dim)


@register_objective
class Contrastive(Objective):
    """Tell which other view in the batch comes from the same image (NT-Xent); labels are never used."""

    name = "contrastive"
    inputs_per_image = 2

    def __init__(self, data: ImageData, crop_padding: int = 4, temperature: float = 0.5,
                 projection_dim: int = 128, jitter: float = 0.5) -> None:
        super().__init__(data, crop_padding)  # crop_padding is unused: the resized crop replaces it
        if not (isinstance(temperature, (int, float)) and temperature > 0):
            raise ObjectiveError(f"contrastive: objective.temperature must be positive, got {temperature!r}")
        if isinstance(projection_dim, bool) or not isinstance(projection_dim, int) or projection_dim < 1:
            raise ObjectiveError("contrastive: objective.projection_dim must be a positive integer, "
                                 f"got {projection_dim!r}")
        if not (isinstance(jitter, (int, float)) and 0 <= jitter <= 1):
            raise ObjectiveError(f"contrastive: objective.jitter must be a strength in [0, 1], got {jitter!r}")
        self.temperature, self.projection_dim, self.jitter = float(temperature), projection_dim, float(jitter)

    @property
    def n_classes(self) -> int:
        return self.projection_dim  # outputs of the head

    def build(self, trunk: Backbone) -> nn.Module:
        return ProjectionNet(trunk, self.projection_dim)

    def stream_views(self) -> tuple[View, View]:
        """Streamed data: the test view (resize, centre crop) in training too; the random crops are made here."""
        test = super().stream_views()[1]
        return test, test

    def pair_views(self, images: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised views (2B, C, H, W) and each view's pair index (2B,)."""
        x = augment_views(images, gen, self.jitter)
        mean, std = self.data.mean[None, :, None, None], self.data.std[None, :, None, None]
        return (x - mean) / std, pair_targets(images.shape[0], images.device)

    def train_batch(self, images: torch.Tensor, labels: torch.Tensor, gen: torch.Generator):
        return self.pair_views(images, gen)

    def test_batch(self, images: torch.Tensor, labels: torch.Tensor, gen: torch.Generator):
        return self.pair_views(images, gen)

    def loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """NT-Xent: cross-entropy of each view's similarities / temperature, its pair as the class."""
        return nn.functional.cross_entropy(similarities(logits) / self.temperature, targets)

    @staticmethod
    def correct(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Number of views whose nearest other view (cosine similarity of projections) is their pair."""
        return (similarities(logits).argmax(1) == targets).sum()
