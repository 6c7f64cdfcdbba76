"""DARTS (Liu et al., ICLR 2019), first order as unnas runs it: every op of every edge runs, weighted by
softmax(alpha)."""

from __future__ import annotations

import torch

from study.spaces.modules import Mix
from study.training.methods import METHODS, Alphas, Method


@METHODS.register("darts")
class Darts(Method):
    """DARTS: every op runs, weighted by softmax(alpha) over ops."""

    name = "darts"

    def mixes(self, alphas: Alphas, epoch: int, epochs: int, gen: torch.Generator) -> dict[str, Mix]:
        return {kind: Mix(torch.softmax(a, dim=-1)) for kind, a in alphas.items()}

    def eval_mixes(self, alphas: Alphas) -> dict[str, Mix]:
        return {kind: Mix(torch.softmax(a.detach(), dim=-1)) for kind, a in alphas.items()}
