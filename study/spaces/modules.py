"""Torch parts every space shares: the pooled linear head that `complexity` counts, the counters, and a
supernet's mixed edge.

Imported lazily (this module imports torch); tests check each space's closed-form complexity against
`count_params` and `count_flops` of backbone + `PooledLinear`.
"""

from __future__ import annotations

from dataclasses import dataclass

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


class AuxiliaryHead(nn.Module):
    """DARTS' auxiliary classifier on the feature map after the second reduction cell, as unnas builds it.

    ReLU, avg-pool 5 (stride 2 after the ImageNet stem, 3 after the CIFAR stem; padding excluded), conv1x1 to
    128 + BN + ReLU, conv2x2 to 768 (+ BN after the CIFAR stem only: unnas' ImageNet head omits it, as the
    paper's runs did) + ReLU, linear. A map smaller than the pool's 5 pixels (tiny test images; the paper's
    224 px gives 7) is average-pooled to 2x2 instead, and a pooled map larger than 2x2 (a CIFAR-stem network
on larger images) is average-pooled to 2x2 after it, so the same weights apply at any input size.
    """

    def __init__(self, c_in: int, n_classes: int, imagenet: bool = True) -> None:
        super().__init__()
        self.pool = nn.AvgPool2d(5, stride=2 if imagenet else 3, padding=0, count_include_pad=False)
        tail = [nn.ReLU()] if imagenet else [nn.BatchNorm2d(768), nn.ReLU()]
        self.features = nn.Sequential(nn.Conv2d(c_in, 128, 1, bias=False), nn.BatchNorm2d(128), nn.ReLU(),
                                      nn.Conv2d(128, 768, 2, bias=False), *tail)
        self.fc = nn.Linear(768, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(x)
        x = self.pool(x) if min(x.shape[-2:]) >= 5 else x
        if tuple(x.shape[-2:]) != (2, 2):  # other input sizes than the paper's: the 2x2 its weights expect
            x = nn.functional.adaptive_avg_pool2d(x, 2)
        x = self.features(x)  # (B, 768, 1, 1)
        return self.fc(x.flatten(1))  # (B, n_classes)


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


@dataclass(frozen=True)
class Mix:
    """How the edges of one kind of supernet cell combine their ops in the next forward passes.

    `weights[e, k]` weighs op k on edge e. With `index` (hard sampling, GDAS) edge e runs only op
    `index[e]`; the other ops add their weight, which is zero in value but carries their
    straight-through gradient. Without it (DARTS) every op runs and the outputs are summed, weighted.
    """

    weights: torch.Tensor  # (E, K)
    index: list[int] | None = None  # per edge, the op that runs


class MixedEdge(nn.Module):
    """One supernet edge: every op of the space on the same input, mixed by a row of architecture weights.

    `none` (None in `ops`) is an exact zero: weighted, it adds nothing and gets no gradient, so it is
    never computed (the same numbers as multiplying a zero tensor). `stride` says the output's size when
    the sampled op is `none` and nothing else runs.
    """

    def __init__(self, ops: list[nn.Module | None], stride: int = 1) -> None:
        super().__init__()
        self.n_ops, self.stride = len(ops), stride
        self.ops = nn.ModuleDict({str(k): op for k, op in enumerate(ops) if op is not None})
        self.slots = [int(k) for k in self.ops]

    def forward(self, x: torch.Tensor, weights: torch.Tensor, index: int | None = None) -> torch.Tensor:
        if index is None:
            terms = [weights[k] * op(x) for k, op in zip(self.slots, self.ops.values())]
            return sum(terms[1:], terms[0])  # (B, C, H', W')
        key = str(index)
        if key in self.ops:
            out = self.ops[key](x)
        else:  # `none` sampled: a zero map of the output's size
            b, c, h, w = x.shape
            out = x.new_zeros(b, c, -(-h // self.stride), -(-w // self.stride))
        rest = weights.sum() - weights[index]  # exactly 0; d/d(weights[j]) = 1 for every other op j
        return weights[index] * out + rest
