"""Colorization (Zhang et al. 2016) as UnNAS trains it: predict each pixel's ab colour bin from lightness.

Input: the L channel of CIE Lab, normalised as (L/100 - 0.4735)/0.2507 (UnNAS divides by 100 and uses
the mean of the CIFAR channel means and stds; on streamed ImageNet the mean of ImageNet's, 0.449 and 0.226). Target: per pixel, the nearest of the 313 in-gamut ab bins
(study/objectives/color.py derives them from the sRGB gamut and documents how); plain per-pixel cross-entropy, no
class rebalancing. Head: a 1x1 convolution to 313 on the trunk's last feature map, bilinearly upsampled
to the input size (corners aligned, as unnas). Accuracy: per-pixel top-1. Augmentation: horizontal flip
only, no crop (as UnNAS); streamed data arrives through the workers' random resized crop (UnNAS on
ImageNet), and gets no PCA lighting.
"""

from __future__ import annotations

import torch
from torch import nn

from study.data.augment import random_flip
from study.objectives.color import L_MEAN, L_STD, N_BINS, ab_bins, bin_lookup, lightness_input, rgb_to_lab
from study.data import ImageData
from study.spaces.base import Backbone
from study.objectives.base import Objective, register_objective


class PixelClassifier(nn.Module):
    """Trunk, a 1x1 conv to K classes on its last feature map, bilinear upsampling (corners aligned) to the
    input size."""

    stackable = True  # acts on each channel alone: K models side by side stay apart (study/training/stacking.py)

    def __init__(self, trunk: Backbone, n_classes: int) -> None:
        super().__init__()
        self.trunk = trunk
        self.head = nn.Conv2d(trunk.c_out, n_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # fp32 from here: interpolated in bf16, neighbouring logits of 313 bins collide on 8 significant bits
        # and the per-pixel argmax (accuracy) resolves the ties to the lower bin; the loss upcasts anyway.
        logits = self.head(self.trunk(x)).float()  # (B, K, H/4, W/4)
        # Channels-last: each pixel's K logits contiguous, which makes the upsampling and the per-pixel
        # cross-entropy over 313 classes about twice as fast on CPU (benchmarks/objectives.py).
        logits = logits.contiguous(memory_format=torch.channels_last)
        # align_corners=True: unnas' Classifier (pycls/models/common.py) upsamples with nn.Upsample(..., True).
        return nn.functional.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=True)


@register_objective
class Colorization(Objective):
    """Classify every pixel's ab colour into 313 bins from the lightness channel; labels are never used."""

    name = "colorization"
    needs_color = True

    def __init__(self, data: ImageData, crop_padding: int = 4) -> None:
        super().__init__(data, crop_padding)  # crop_padding is unused: the paper flips only
        self.bins = ab_bins().to(data.device)  # (313, 2)
        self.lookup = bin_lookup(str(data.device))  # one table per device, shared by every run
        self.lightness = data.lightness or (L_MEAN, L_STD)  # the dataset's, else unnas' CIFAR-10 constants

    @property
    def n_classes(self) -> int:
        return N_BINS

    @property
    def c_in(self) -> int:
        return 1

    def build(self, trunk: Backbone) -> nn.Module:
        return PixelClassifier(trunk, self.n_classes)

    @staticmethod
    def loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Mean per-pixel cross-entropy of (B, K, H, W) logits, computed as (B*H*W, K) rows."""
        rows = logits.permute(0, 2, 3, 1).reshape(-1, logits.shape[1])  # a view when logits are channels-last
        return nn.functional.cross_entropy(rows, targets.reshape(-1))

    def lightness_and_bins(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised L (B, 1, H, W) and nearest-bin targets (B, H, W) of uint8 RGB images (B, 3, H, W)."""
        lab = rgb_to_lab(images.float() / 255.0)  # (B, 3, H, W)
        return lightness_input(lab, *self.lightness), self.lookup(lab[:, 1:])

    def train_batch(self, images: torch.Tensor, labels: torch.Tensor, gen: torch.Generator):
        return self.lightness_and_bins(random_flip(images, gen))

    def test_batch(self, images: torch.Tensor, labels: torch.Tensor, gen: torch.Generator):
        return self.lightness_and_bins(images)
