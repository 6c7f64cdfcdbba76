"""epe_nas (Lopes et al., ICANN 2021): how differently a network's input Jacobians correlate within each class.

The Jacobian of image i is d(sum of its outputs)/d(image i), as for jacob_cov. Per class c, s_c = sum over
the entries of the correlation matrix of that class's Jacobians of log(|corr| + 1e-5). Up to 100 classes the
score is sum_c |s_c|; above, each s_c is divided by its matrix's side and the score is the mean over seen
classes of sum_c' |s_c - s_c'| (the reference's two cases). Uses labels to group the images.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from study.objectives.base import register_objective
from study.objectives.zero_cost import ScoringObjective

EPE_EPS = 1e-5
MANY_CLASSES = 100  # above this many outputs the reference switches to pairwise differences


def input_jacobians(model: nn.Module, inputs: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Rows d(sum of outputs of image i)/d(image i) (B, D) in float64, and the number of outputs per image."""
    model.train()
    x = inputs.detach().clone().requires_grad_(True)
    model.zero_grad()
    out = model(x)  # (B, K)
    out.sum().backward()
    return x.grad.reshape(x.shape[0], -1).double(), out.shape[-1]


def epe_nas(model: nn.Module, inputs: torch.Tensor, labels: torch.Tensor) -> float:
    """Sum over classes of |sum log(|corr| + 1e-5)| of the class's Jacobian correlations (NaN if one is constant)."""
    jac, n_out = input_jacobians(model, inputs)
    many = n_out > MANY_CLASSES
    per_class = []
    for c in torch.unique(labels).tolist():
        rows = jac[labels == c]  # (n_c, D)
        if rows.shape[0] == 1:
            if not many:  # a single image correlates with itself: one entry of 1
                per_class.append(math.log(1 + EPE_EPS))
            continue  # (the reference skips it where it divides by the matrix's side)
        s = torch.log(torch.corrcoef(rows).abs() + EPE_EPS).sum().item()
        per_class.append(s / rows.shape[0] if many else s)
    if not many:
        return float(sum(abs(s) for s in per_class))
    if not per_class:
        return 0.0
    return sum(abs(a - b) for a in per_class for b in per_class) / len(per_class)


@register_objective
class EpeNas(ScoringObjective):
    """Per-class input-Jacobian correlations of one labelled batch: uses labels, not a label-free proxy."""

    name = "epe_nas"
    uses_labels = True
    measure = staticmethod(epe_nas)
