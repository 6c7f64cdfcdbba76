"""Rotation prediction (Gidaris et al. 2018) as UnNAS trains it: all four rotations of every image."""

from __future__ import annotations

import torch

from study.data.augment import rotations
from study.objectives.base import Objective, register_objective


@register_objective
class Rotation(Objective):
    """Predict which of 0/90/180/270 degrees an image was rotated by; labels are never used.

    Each image is augmented once (crop + flip, CIFAR-10 in unnas' order: `Objective.crop_and_flip`; streamed
    data: the workers' random resized crop, flip and PCA lighting), then all four rotations enter the batch,
    so a batch of B images is 4B inputs; the test set is scored on all four rotations of every image.
    """

    name = "rotation"
    inputs_per_image = 4

    @classmethod
    def chance(cls, options: dict, dataset: dict) -> float | None:
        return 1 / 4

    @property
    def n_classes(self) -> int:
        return 4

    def train_batch(self, images: torch.Tensor, labels: torch.Tensor, gen: torch.Generator):
        return rotations(self.crop_and_flip(images, gen))

    def test_batch(self, images: torch.Tensor, labels: torch.Tensor, gen: torch.Generator):
        return rotations(self.normalize(images))
