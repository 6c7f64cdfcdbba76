"""grasp (Wang et al., ICLR 2020; as the zero-cost proxy study sums it): a labelled training-free score.

With g the gradient of the cross-entropy of one labelled batch over the conv/linear weights w and H its
Hessian, score = sum of -w * (H g): a Hessian-vector product through a second, differentiable gradient.
The sign is the zero-cost study's (its authors found accuracy to fall with +w * Hg).
"""

from __future__ import annotations

import torch
from torch import nn

from study.objectives.base import register_objective
from study.objectives.zero_cost import ScoringObjective, weighted_layers


def grasp(model: nn.Module, inputs: torch.Tensor, labels: torch.Tensor) -> float:
    """sum of -w * Hg over conv/linear weights, g and H the gradient and Hessian of one labelled batch's loss."""
    model.train()
    weights = [m.weight for m in weighted_layers(model)]
    loss = nn.functional.cross_entropy(model(inputs), labels)
    grad = torch.autograd.grad(loss, weights, allow_unused=True)
    loss = nn.functional.cross_entropy(model(inputs), labels)  # a second pass, as the reference takes
    grad_f = torch.autograd.grad(loss, weights, create_graph=True, allow_unused=True)
    z = sum((g.detach() * f).sum() for g, f in zip(grad, grad_f) if g is not None and f is not None)
    if not torch.is_tensor(z) or not z.requires_grad:
        return 0.0  # no weight reaches the loss
    hg = torch.autograd.grad(z, weights, allow_unused=True)
    with torch.no_grad():
        return float(sum((-w * h).sum() for w, h in zip(weights, hg) if h is not None))


@register_objective
class Grasp(ScoringObjective):
    """Gradient signal preservation on one labelled batch: a labelled baseline, not a label-free proxy."""

    name = "grasp"
    uses_labels = True
    fused = False  # the reference's network: one conv per edge
    measure = staticmethod(grasp)
