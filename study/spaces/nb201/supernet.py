"""The NAS-Bench-201 supernet: the space's skeleton with every cell edge a weighted mix of all five ops.

As xautodl's NAS-Bench-201 search networks (TinyNetworkDarts / TinyNetworkGDAS): one architecture
tensor of 6 edges x 5 ops shared by every cell, initialised 1e-3 * N(0, 1); edge e of every cell mixes
none, skip_connect, nor_conv_1x1, nor_conv_3x3 and avg_pool_3x3 (parameter-free pooling and skip, the
convolutions' BN without affine); the stem, the residual reductions and the last BN keep their affine
BN, as in the network a cell trains in. Edge order and op order are the cell string's and NB201_OPS'.

The search loop says how edges mix (`use(mixes)`: softmax weights for DARTS, a hard sample for GDAS);
without it the forward pass mixes by softmax(alpha). Objectives attach their head to `c_out` as to any
trunk. `derive` (study/spaces/nb201/space.py) reads the alpha tensor back into a cell.
"""

from __future__ import annotations

import torch
from torch import nn

from study.spaces.modules import Mix, MixedEdge
from study.spaces.nb201.cell import NB201_OPS, NB201Cell
from study.spaces.nb201.network import make_op, skeleton

KIND = "cell"  # one kind of cell: one alpha for all of them
EDGE_LABELS = [f"{dst}<-{src}" for src, dst in NB201Cell.EDGES]  # xautodl's names for the 6 edges


class SearchCell(nn.Module):
    """A NAS-Bench-201 cell whose 6 edges each mix all 5 ops; node j sums its incoming edges."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.edges = nn.ModuleList(MixedEdge([make_op(name, channels, affine=False) for name in NB201_OPS])
                                   for _ in NB201Cell.EDGES)
        # Per target node, its incoming (edge index, source node), in string order.
        self.inputs = [[(e, src) for e, (src, d) in enumerate(NB201Cell.EDGES) if d == dst]
                       for dst in range(1, NB201Cell.N_NODES)]

    def forward(self, x: torch.Tensor, mix: Mix) -> torch.Tensor:
        nodes = [x]
        for incoming in self.inputs:
            terms = [self.edges[e](nodes[src], mix.weights[e], None if mix.index is None else mix.index[e])
                     for e, src in incoming]
            nodes.append(sum(terms[1:], terms[0]))  # (B, C, H, W)
        return nodes[-1]


class Supernet(nn.Module):
    """Stem, three stages of search cells with two residual reductions, last BN-ReLU; `alphas["cell"]` (6, 5)."""

    def __init__(self, c_in: int, width: int, cells_per_stage: int, channels_last: bool = True) -> None:
        super().__init__()
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.stem, layers, last, self.c_out = skeleton(c_in, width, cells_per_stage, SearchCell)
        self.layers = nn.ModuleList(layers)
        self.last = last  # registered in this order: stem, layers, last (the order of parameters())
        self.alphas = nn.ParameterDict({KIND: nn.Parameter(1e-3 * torch.randn(len(NB201Cell.EDGES), len(NB201_OPS)))})
        self.layout = {KIND: (EDGE_LABELS, list(NB201_OPS))}  # row and column names of each alpha
        self._mixes: dict[str, Mix] | None = None

    def use(self, mixes: dict[str, Mix] | None) -> None:
        """How the edges mix in the next forward passes (None: softmax over alpha, DARTS' mix)."""
        self._mixes = mixes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mix = (self._mixes or {}).get(KIND) or Mix(torch.softmax(self.alphas[KIND], dim=-1))
        x = self.stem(x.contiguous(memory_format=self.memory_format))  # (B, C, H, W)
        for layer in self.layers:
            x = layer(x, mix) if isinstance(layer, SearchCell) else layer(x)
        return self.last(x)  # (B, 4C, H/4, W/4)
