"""zen (Lin et al., ICCV 2021, Zen-NAS): expressivity of the feature map under a small input perturbation.

No data and no labels. Every conv and linear weight redrawn from N(0, 1) (biases 0, BN weight 1 and bias 0),
two Gaussian batches x and e, in train mode without gradients: score = log E_n sum_chw |f(x) - f(x + 0.01 e)|
+ sum over BN layers of log sqrt(mean running variance), f the features before the global pool. The running
variances are the ones the two forward passes leave (BN momentum included), as in the reference.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from study.objectives.base import register_objective
from study.objectives.zero_cost import ScoringObjective

MIXUP_GAMMA = 1e-2


def gaussian_init(model: nn.Module, gen: torch.Generator) -> None:
    """Zen-NAS's initialisation, drawn in module order from `gen`."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                m.weight.normal_(generator=gen)
                if m.bias is not None:
                    m.bias.zero_()
            elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)) and m.weight is not None:
                m.weight.fill_(1.0)
                m.bias.zero_()


def zen(model: nn.Sequential, input_shape: tuple[int, ...], batch_size: int, gen: torch.Generator,
        mixup_gamma: float = MIXUP_GAMMA) -> float:
    """The Zen-score of `model` = Sequential(features, pooled head); the caller's network is left as it was."""
    net = copy.deepcopy(model)
    net.train()
    gaussian_init(net, gen)
    features = net[:-1]  # everything before the global pool and classifier
    device = next(net.parameters()).device
    with torch.no_grad():
        x = torch.randn(batch_size, *input_shape, generator=gen, device=device)  # (B, C, H, W)
        e = torch.randn(batch_size, *input_shape, generator=gen, device=device)
        diff = (features(x) - features(x + mixup_gamma * e)).abs().sum(dim=(1, 2, 3)).mean()
        log_bn = sum(torch.log(torch.sqrt(m.running_var.mean())) for m in net.modules()
                     if isinstance(m, nn.BatchNorm2d))
        return float(torch.log(diff) + log_bn)


@register_objective
class Zen(ScoringObjective):
    """Zen-NAS's expressivity score of a Gaussian-initialised network on Gaussian inputs; uses no data."""

    name = "zen"
    needs_data = False
    fused = False  # the BN statistics are per edge in the reference network

    def score(self, model, gen, default_batch):
        size = self.batch_size or default_batch
        return zen(model, (self.c_in, self.data.image_size, self.data.image_size), size, gen)

    @classmethod
    def of_module(cls, model, inputs, labels=None, gen=None):
        """`model` = Sequential(features, pooled head); Gaussian inputs of the batch's shape, drawn from `gen`."""
        return zen(model, tuple(inputs.shape[1:]), len(inputs), gen if gen is not None else torch.Generator())
