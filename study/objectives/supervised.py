"""Supervised classification with the dataset's labels: the reference ranking.

Two options, off by default, make it the paper's evaluation phase (unnas configs/search_based/eval_phase/cls/,
conf/experiment/eval/): `auxiliary`, the weight of DARTS' auxiliary head on the feature map after the
second reduction cell (0.4 there; training only, the test scores the main head), and `label_smoothing`
(0.1 there), in unnas' form: the target class gets 1 - eps and every other class eps / (K - 1).
"""

from __future__ import annotations

import torch
from torch import nn

from study.data import ImageData
from study.objectives.base import Objective, ObjectiveError, register_objective
from study.spaces.base import Backbone


class WithAuxiliary(nn.Module):
    """A trunk, its head and an auxiliary head: (logits, auxiliary logits) in training, logits in evaluation."""

    def __init__(self, trunk: nn.Module, head: nn.Module, auxiliary: nn.Module) -> None:
        super().__init__()
        self.trunk, self.head, self.auxiliary = trunk, head, auxiliary

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        if not self.training:
            return self.head(self.trunk(x))  # (B, n_classes)
        last, at = self.trunk.forward_aux(x)
        return self.head(last), self.auxiliary(at)  # (B, n_classes) each


def smoothed_cross_entropy(logits: torch.Tensor, targets: torch.Tensor, eps: float) -> torch.Tensor:
    """Mean cross-entropy against 1 - eps on the target and eps / (K - 1) on every other class (unnas' loss)."""
    logp = logits.float().log_softmax(dim=-1)  # (B, K)
    dist = torch.full_like(logp, eps / (logp.shape[-1] - 1))
    dist.scatter_(-1, targets.unsqueeze(-1), 1.0 - eps)
    return -(dist * logp).sum(dim=-1).mean()


@register_objective
class Supervised(Objective):
    """Classify images into the dataset's classes (random crop + horizontal flip, `Objective.crop_and_flip`;
    streamed data: the workers' random resized crop, then flip and PCA lighting)."""

    name = "supervised"
    uses_labels = True

    def __init__(self, data: ImageData, crop_padding: int = 4, auxiliary: float = 0.0,
                 label_smoothing: float = 0.0) -> None:
        super().__init__(data, crop_padding)
        if not 0 <= auxiliary < float("inf") or not 0 <= label_smoothing < 1:
            raise ObjectiveError(f"objective.auxiliary must be >= 0 (got {auxiliary}) and objective.label_smoothing "
                                 f"in [0, 1) (got {label_smoothing}); the paper's evaluation uses 0.4 and 0.1")
        self.auxiliary, self.label_smoothing = float(auxiliary), float(label_smoothing)

    @classmethod
    def chance(cls, options: dict, dataset: dict) -> float | None:
        classes = dataset.get("n_classes")
        return 1 / classes if isinstance(classes, int) and classes > 0 else None

    def build(self, trunk: Backbone) -> nn.Module:
        """Trunk + pooled linear head; with `auxiliary`, DARTS' auxiliary head beside it."""
        net = super().build(trunk)
        if not self.auxiliary:
            return net
        if not hasattr(trunk, "forward_aux"):
            raise ObjectiveError("objective.auxiliary needs a network with an auxiliary point (space=darts)")
        from study.spaces.modules import AuxiliaryHead

        return WithAuxiliary(trunk, net[1], AuxiliaryHead(trunk.aux_c_out, self.n_classes, trunk.aux_imagenet))

    def loss(self, logits: torch.Tensor | tuple[torch.Tensor, torch.Tensor], targets: torch.Tensor) -> torch.Tensor:
        """Cross-entropy (smoothed when asked); plus `auxiliary` times the auxiliary head's in training."""
        if isinstance(logits, tuple):
            main, aux = logits
            return self._loss(main, targets) + self.auxiliary * self._loss(aux, targets)
        return self._loss(logits, targets)

    def _loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        if self.label_smoothing:
            return smoothed_cross_entropy(logits, targets, self.label_smoothing)
        return nn.functional.cross_entropy(logits, targets)

    def train_batch(self, images: torch.Tensor, labels: torch.Tensor, gen: torch.Generator):
        return self.crop_and_flip(images, gen), labels

    def test_batch(self, images: torch.Tensor, labels: torch.Tensor, gen: torch.Generator):
        return self.normalize(images), labels
