"""fisher (Turner et al., ICLR 2020; as the zero-cost proxy study sums it): a labelled training-free score.

Per output channel k of every convolution and linear layer, with a its output and g = dL/da on one labelled
batch: F_k = 0.5 * mean over images of (sum over positions of a * g)^2. The reference spreads F_k over the
channel's fan-in before summing (pruning wants a value per weight), so the score is sum_k F_k * fan_in.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from study.objectives.base import register_objective
from study.objectives.zero_cost import ScoringObjective, weighted_layers


def fisher(model: nn.Module, inputs: torch.Tensor, labels: torch.Tensor) -> float:
    """sum over conv/linear output channels of 0.5 * mean_n (sum_hw a * dL/da)^2 times the channel's fan-in."""
    model.train()
    total = torch.zeros((), dtype=torch.float64)

    def grab(module: nn.Module, args: tuple, out: torch.Tensor) -> None:
        fan_in = math.prod(module.weight.shape[1:])
        act = out.detach()  # (B, C, H, W) or (B, C); the hook must not hold `out` itself (a cycle that leaks)

        def on_grad(grad: torch.Tensor) -> None:
            nonlocal total
            per_image = (act * grad).sum(dim=tuple(range(2, act.dim()))) if act.dim() > 2 else act * grad  # (B, C)
            total = total + per_image.pow(2).mean(0).mul(0.5).sum().double() * fan_in

        if out.requires_grad:
            out.register_hook(on_grad)

    handles = [m.register_forward_hook(grab) for m in weighted_layers(model)]
    try:
        model.zero_grad()
        nn.functional.cross_entropy(model(inputs), labels).backward()
    finally:
        for h in handles:
            h.remove()
    return float(total)


@register_objective
class Fisher(ScoringObjective):
    """Fisher information of the channels on one labelled batch: a labelled baseline, not a label-free proxy."""

    name = "fisher"
    uses_labels = True
    fused = False  # per-channel sums over the reference's one conv per edge
    measure = staticmethod(fisher)
