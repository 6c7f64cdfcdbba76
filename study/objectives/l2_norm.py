"""l2_norm (the zero-cost proxy study's baseline): the sum over layers of each weight tensor's L2 norm.

No data and no labels: at initialisation it measures how many and how wide the layers are. The sum is per
layer (sqrt of each layer's sum of squares), so the one-conv-per-edge network is scored, as in the reference.
"""

from __future__ import annotations

import torch
from torch import nn

from study.objectives.base import register_objective
from study.objectives.zero_cost import ScoringObjective, weighted_layers


def l2_norm(model: nn.Module) -> float:
    """Sum over conv/linear layers of the Frobenius norm of the weight."""
    with torch.no_grad():
        return float(sum(m.weight.double().norm() for m in weighted_layers(model)))


@register_objective
class L2Norm(ScoringObjective):
    """Summed per-layer weight norms of the untrained network; uses no data."""

    name = "l2_norm"
    needs_data = False
    fused = False  # a stacked conv would merge several layers' norms into one

    def score(self, model, gen, default_batch):
        return l2_norm(model)

    @classmethod
    def of_module(cls, model, inputs=None, labels=None, gen=None):
        return l2_norm(model)
