"""The DARTS supernet as unnas searches it: every edge of a normal and a reduction cell mixes all 8 ops.

As unnas' DARTS search model (pycls/models/nas/nas_search.py, after DARTS' model_search.py): a cell's 4
nodes each sum one mixed edge from every earlier state (2 + 3 + 4 + 5 = 14 edges); every op is built
without BN affine, and each pooling is followed by a BN without affine; the preprocessing of the two
inputs is ReLU-conv1x1-BN (a FactorizedReduce after a reduction), without affine; the stem keeps its
affine BN; `stem="imagenet"` is unnas' ImageNet search network (its three stride-2 convs, the first cell's
older input at twice the resolution). One alpha of 14 edges x 8 ops per kind of cell (`normal`, `reduce`), initialised
1e-3 * N(0, 1), shared by all cells of the kind. The stack is the one the space trains
(study/spaces/darts/network.py `layout`): cells_per_stage = 2 is unnas' 8-cell search network.
"""

from __future__ import annotations

import torch
from torch import nn

from study.spaces.darts.cell import DARTS_OPS, N_NODES
from study.spaces.darts.network import (CifarStem, FactorizedReduce, ImageNetStem, ReLUConvBN, cell_count, layout,
                                        make_op)
from study.spaces.modules import Mix, MixedEdge

KINDS = ("normal", "reduce")
# Edge order within a cell: node k (2..5 in DARTS' numbering of states) reads states 0..k-1, node by node.
EDGES = [(src, k + 2) for k in range(N_NODES) for src in range(k + 2)]
EDGE_LABELS = [f"{dst}<-{src}" for src, dst in EDGES]


def search_op(name: str, c: int, stride: int) -> nn.Module | None:
    """One op of a mixed edge: the space's op without BN affine; a pooling gets a BN without affine after it."""
    op = make_op(name, c, stride, affine=False)
    if "pool" in name:
        return nn.Sequential(op, nn.BatchNorm2d(c, affine=False))
    return op


class SearchCell(nn.Module):
    """A DARTS cell whose 14 edges each mix all 8 ops; the output concatenates the 4 nodes."""

    def __init__(self, c_pp: int, c_p: int, c: int, reduction: bool, reduction_prev: bool) -> None:
        super().__init__()
        self.reduction = reduction
        self.pre0 = FactorizedReduce(c_pp, c, affine=False) if reduction_prev else ReLUConvBN(c_pp, c, 1, affine=False)
        self.pre1 = ReLUConvBN(c_p, c, 1, affine=False)
        strides = [2 if reduction and src < 2 else 1 for src, _ in EDGES]
        self.edges = nn.ModuleList(MixedEdge([search_op(name, c, s) for name in DARTS_OPS], stride=s) for s in strides)
        self.c_out = N_NODES * c

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, mix: Mix) -> torch.Tensor:
        states = [self.pre0(s0), self.pre1(s1)]  # (B, c, H, W) each
        e = 0
        for _ in range(N_NODES):
            terms = []
            for h in states:
                terms.append(self.edges[e](h, mix.weights[e], None if mix.index is None else mix.index[e]))
                e += 1
            states.append(sum(terms[1:], terms[0]))
        return torch.cat(states[2:], dim=1)  # (B, 4c, H', W')


class Supernet(nn.Module):
    """Stem and the DARTS stack of search cells; `alphas["normal"]` and `alphas["reduce"]`, (14, 8) each."""

    def __init__(self, c_in: int, width: int, cells_per_stage: int, stem: str = "cifar") -> None:
        super().__init__()
        self.stem = ImageNetStem(c_in, width) if stem == "imagenet" else CifarStem(c_in, width)
        c_pp = c_p = self.stem.c_out
        c = width
        self.cells = nn.ModuleList()
        reduction_prev = stem == "imagenet"  # the ImageNet stem's older output is at twice the resolution
        for reduction in layout(cell_count(cells_per_stage)):
            c = 2 * c if reduction else c
            cell = SearchCell(c_pp, c_p, c, reduction, reduction_prev)
            self.cells.append(cell)
            c_pp, c_p, reduction_prev = c_p, cell.c_out, reduction
        self.c_out = c_p
        self.alphas = nn.ParameterDict({kind: nn.Parameter(1e-3 * torch.randn(len(EDGES), len(DARTS_OPS)))
                                        for kind in KINDS})
        self.layout = {kind: (EDGE_LABELS, list(DARTS_OPS)) for kind in KINDS}
        self._mixes: dict[str, Mix] | None = None

    def use(self, mixes: dict[str, Mix] | None) -> None:
        """How the edges mix in the next forward passes (None: softmax over alpha, DARTS' mix)."""
        self._mixes = mixes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mixes = self._mixes or {kind: Mix(torch.softmax(a, dim=-1)) for kind, a in self.alphas.items()}
        s0, s1 = self.stem.pair(x)  # (B, 3C, H, W) twice; ImageNet stem: (B, C, H/4, W/4), (B, C, H/8, W/8)
        for cell in self.cells:
            s0, s1 = s1, cell(s0, s1, mixes["reduce" if cell.reduction else "normal"])
        return s1  # (B, 16C, H/4, W/4); ImageNet stem: (B, 16C, H/32, W/32)
