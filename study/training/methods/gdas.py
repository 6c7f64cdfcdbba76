"""GDAS (Dong & Yang, CVPR 2019): per forward pass, per edge, one op drawn by Gumbel-max, with a
straight-through one-hot weight; the temperature annealed linearly from tau_max to tau_min over the epochs
(xautodl's NAS-Bench-201 GDAS)."""

from __future__ import annotations

import math

import torch

from study.errors import UserError
from study.spaces.modules import Mix
from study.training.methods import METHODS, Alphas, Method


@METHODS.register("gdas")
class Gdas(Method):
    """GDAS: per forward pass, per edge, one op drawn by Gumbel-max; its weight is a straight-through one-hot."""

    name = "gdas"

    def __init__(self, tau_max: float = 10.0, tau_min: float = 0.1) -> None:
        if not 0 < tau_min <= tau_max < math.inf:
            raise UserError(f"method gdas needs 0 < tau_min <= tau_max, got tau_min={tau_min}, tau_max={tau_max}")
        self.tau_max, self.tau_min = tau_max, tau_min

    def tau(self, epoch: int, epochs: int) -> float:
        """The temperature in `epoch`: linear from tau_max (first epoch) to tau_min (last)."""
        return self.tau_max - (self.tau_max - self.tau_min) * epoch / max(1, epochs - 1)

    def mixes(self, alphas: Alphas, epoch: int, epochs: int, gen: torch.Generator) -> dict[str, Mix]:
        tau = self.tau(epoch, epochs)
        return {kind: self._sample(a, tau, gen) for kind, a in alphas.items()}

    @staticmethod
    def _sample(alpha: torch.Tensor, tau: float, gen: torch.Generator) -> Mix:
        while True:  # redraw the (vanishingly rare) noise that overflows, as xautodl does
            gumbel = -torch.empty_like(alpha).exponential_(generator=gen).log()  # (E, K)
            probs = torch.softmax((alpha.log_softmax(dim=-1) + gumbel) / tau, dim=-1)
            if torch.isfinite(gumbel).all() and torch.isfinite(probs).all():
                break
        index = probs.argmax(dim=-1)  # (E,)
        hard = torch.zeros_like(probs).scatter_(-1, index[:, None], 1.0)
        return Mix(hard - probs.detach() + probs, index.tolist())  # one-hot in value, softmax's gradient

    def eval_mixes(self, alphas: Alphas) -> dict[str, Mix]:
        out = {}
        for kind, a in alphas.items():
            index = a.detach().argmax(dim=-1)
            out[kind] = Mix(torch.zeros_like(a).scatter_(-1, index[:, None], 1.0), index.tolist())
        return out

    def facts(self, epoch: int, epochs: int) -> dict[str, float]:
        return {"tau": self.tau(epoch, epochs)}
