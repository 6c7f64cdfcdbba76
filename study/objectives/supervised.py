"""Supervised classification with the dataset's labels: the reference ranking."""

from __future__ import annotations

import torch

from study.data.augment import random_crop, random_flip
from study.objectives.base import Objective, register_objective


@register_objective
class Supervised(Objective):
    """Classify images into the dataset's classes (random crop with zero padding + horizontal flip; streamed
    data: the workers' random resized crop, then flip and PCA lighting)."""

    name = "supervised"
    uses_labels = True

    @classmethod
    def chance(cls, options: dict, dataset: dict) -> float | None:
        classes = dataset.get("n_classes")
        return 1 / classes if isinstance(classes, int) and classes > 0 else None

    def train_batch(self, images: torch.Tensor, labels: torch.Tensor, gen: torch.Generator):
        x = random_flip(random_crop(images, self.crop_padding, gen), gen)
        return self.normalize(x, gen), labels

    def test_batch(self, images: torch.Tensor, labels: torch.Tensor, gen: torch.Generator):
        return self.normalize(images), labels
