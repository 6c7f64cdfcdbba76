"""plain (the zero-cost proxy study's baseline, Abdelfattah et al., ICLR 2021): sum of gradient x weight.

Signed, unlike snip's |g * w|: the first-order change of the loss if every weight were removed, from the
cross-entropy of one labelled batch. Uses labels.
"""

from __future__ import annotations

import torch

from study.objectives.base import register_objective
from study.objectives.zero_cost import ScoringObjective, labelled_grads


def plain(model: torch.nn.Module, inputs: torch.Tensor, labels: torch.Tensor) -> float:
    """sum of g * w (signed) over conv/linear weights, g the gradient of one labelled batch's cross-entropy."""
    layers = labelled_grads(model, inputs, labels)
    with torch.no_grad():
        return float(sum((m.weight.grad * m.weight).sum() for m in layers))


@register_objective
class Plain(ScoringObjective):
    """Signed gradient x weight on one labelled batch: a labelled baseline, not a label-free proxy."""

    name = "plain"
    uses_labels = True
    fused = False  # the reference's network: one conv per edge
    measure = staticmethod(plain)
