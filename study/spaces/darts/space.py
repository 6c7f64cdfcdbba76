"""The DARTS space as registered (`darts`): sampling, building and sizing its cells."""


from __future__ import annotations

import math
from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np

from study.spaces.base import SPACES, NetShape, SpaceError, draw_from_stream
from study.spaces.darts.cell import DARTS_OPS, N_NODES, DartsCell, Nodes

if TYPE_CHECKING:
    from torch import nn

def _pairs(options: int) -> int:
    return options * (options + 1) // 2  # unordered pairs, repeats allowed


def n_classes_of_space(include_degenerate: bool) -> int:
    """Number of canonical genotypes (each node's edge pair unordered), with or without degenerate ones."""
    per_cell = math.prod(_pairs(len(DARTS_OPS) * (k + 2)) for k in range(N_NODES))
    if include_degenerate:
        return per_cell ** 2
    # A cell is all-zero when every node's edges are `none` or read an (all-zero) earlier node.
    zero = math.prod(_pairs(sum(op == "none" or src >= 2 for op in DARTS_OPS for src in range(k + 2)))
                     for k in range(N_NODES))
    return (per_cell - zero) ** 2


def _random_nodes(rng: np.random.Generator) -> Nodes:
    nodes = []
    for k in range(N_NODES):
        ops = rng.integers(0, len(DARTS_OPS), size=2)
        srcs = rng.integers(0, k + 2, size=2)
        nodes.append(tuple((DARTS_OPS[int(o)], int(s)) for o, s in zip(ops, srcs)))
    return tuple(nodes)


def random_cells(rng: np.random.Generator) -> Iterator[DartsCell]:
    """An endless stream of genotypes: every edge's op and input uniform and independent, normal then reduce."""
    while True:
        normal = _random_nodes(rng)
        yield DartsCell(normal, _random_nodes(rng))


@SPACES.register("darts")
class DartsSpace:
    """DARTS: normal + reduction cells of 4 nodes with two edges each, 8 ops; key = sorted edge pairs."""

    name = "darts"

    def parse(self, arch: str) -> DartsCell:
        """A validated genotype from `normal=...;reduce=...` or a DARTS `Genotype(...)` repr."""
        return DartsCell.from_str(arch)

    def sample(self, n: int, seed: int, include_degenerate: bool = False) -> list[DartsCell]:
        """`n` genotypes with distinct canonical keys: the first of each key in a seeded uniform stream.

        The stream depends only on `seed`, so a smaller sample is a prefix of a larger one. Degenerate
        genotypes (a cell with an all-zero output) are skipped unless `include_degenerate`.
        """
        limit = n_classes_of_space(include_degenerate)
        if n > limit:
            raise SpaceError(f"n={n} is more than the {limit} distinct genotypes of space 'darts'; use n<={limit}")
        return draw_from_stream(random_cells(np.random.Generator(np.random.PCG64(seed))), n, include_degenerate)

    def build(self, cell: DartsCell, shape: NetShape, plain: bool = False) -> nn.Module:
        """The backbone (stem, normal and reduction cells; see network.py) for `shape`; has `c_out`."""
        from study.spaces.darts.network import Backbone

        _check(shape)
        return Backbone(cell, shape.c_in, shape.width, shape.cells_per_stage, shape.stem, shape.depth)

    def complexity(self, cell: DartsCell, shape: NetShape) -> tuple[int, int]:
        """Trainable parameters and MACs per image of the backbone plus a pooled linear head (closed form)."""
        from study.spaces.darts.network import complexity

        _check(shape)
        return complexity(cell, shape.c_in, shape.image_size, shape.width, shape.cells_per_stage, shape.n_classes,
                          shape.stem, shape.depth)


def _check(shape: NetShape) -> None:
    """DARTS has both stems and a depth in cells; the ImageNet stem halves the width once, which must stay even."""
    shape.check_variants("darts", stems=("cifar", "imagenet"), depth=True)
    if shape.stem == "imagenet" and shape.width % 4:
        # C/2 stem channels, then FactorizedReduce halves of C: both need even counts.
        raise SpaceError(f"the DARTS ImageNet network needs budget.width divisible by 4, got {shape.width}; e.g. 32")
    if 0 < shape.depth < 3:
        raise SpaceError(f"budget.depth={shape.depth} leaves no room for DARTS' two reduction cells; use 0 or 3 and up")
