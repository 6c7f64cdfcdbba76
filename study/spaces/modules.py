"""Torch parts every space shares: the pooled linear head that `complexity` counts, and the counters.

Imported lazily (this module imports torch); tests check each space's closed-form complexity against
`count_params` and `count_flops` of backbone + `PooledLinear`.
"""

from __future__ import annotations

import torch
from torch import nn


class PooledLinear(nn.Module):
    """Global average pool then a linear classifier: the NAS-Bench-201 head."""

    stackable = True  # per-channel pooling, then a linear (study/training/stacking.py)

    def __init__(self, c_in: int, n_classes: int) -> None:
        super().__init__()
        self.fc = nn.Linear(c_in, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.mean(dim=(2, 3)))  # (B, n_classes)


def count_params(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def count_flops(model: nn.Module, example: torch.Tensor) -> int:
    """Multiply-accumulates of one forward pass per input image (convs and linears; BN, ReLU ignored)."""
    total = 0

    def conv_hook(module: nn.Conv2d, inputs: tuple, out: torch.Tensor) -> None:
        nonlocal total
        k = module.kernel_size[0] * module.kernel_size[1] * module.in_channels // module.groups
        total += out.numel() * k

    def linear_hook(module: nn.Linear, inputs: tuple, out: torch.Tensor) -> None:
        nonlocal total
        total += out.numel() * module.in_features

    handles = []
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            handles.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            handles.append(m.register_forward_hook(linear_hook))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(example)
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return total // example.shape[0]
