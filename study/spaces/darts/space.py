"""The DARTS space as registered (`darts`): sampling, building and sizing its cells; for searches, the
supernet and the genotype an alpha derives (DARTS' rule)."""


from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from study.spaces.base import SPACES, NetShape, SpaceError, alpha_rows, draw_from_stream
from study.spaces.darts.cell import DARTS_OPS, N_NODES, DartsCell, Nodes

if TYPE_CHECKING:
    from torch import nn

N_EDGES = sum(k + 2 for k in range(N_NODES))  # 14 mixed edges per cell in a supernet


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


    def supernet(self, shape: NetShape) -> "nn.Module":
        """unnas' search network at `shape`: every edge mixes the 8 ops; alphas `normal` and `reduce`, (14, 8)."""
        from study.spaces.darts.supernet import Supernet

        shape.check_variants(self.name, stems=("cifar", "imagenet"))
        return Supernet(shape.c_in, shape.width, shape.cells_per_stage, shape.stem)

    def derive(self, alpha: Mapping[str, Any]) -> DartsCell:
        """The genotype of an alpha by DARTS' rule: per node its two inputs of largest non-`none` weight
        (after a softmax over ops), each with its op of largest weight other than `none`."""
        return DartsCell(*(derive_nodes(alpha_rows(self.name, alpha, kind, N_EDGES, len(DARTS_OPS)))
                           for kind in ("normal", "reduce")))


def _check(shape: NetShape) -> None:
    """DARTS has both stems and a depth in cells; the ImageNet stem halves the width once, which must stay even."""
    shape.check_variants("darts", stems=("cifar", "imagenet"), depth=True)
    if shape.stem == "imagenet" and shape.width % 2:
        # The first cell's FactorizedReduce splits C into halves (the stem's C // 2 may be odd: unnas' 42, 46, 54).
        raise SpaceError(f"the DARTS ImageNet network needs an even budget.width, got {shape.width}; e.g. 32")
    if 0 < shape.depth < 3:
        raise SpaceError(f"budget.depth={shape.depth} leaves no room for DARTS' two reduction cells; use 0 or 3 and up")


def derive_nodes(rows: list[list[float]]) -> Nodes:
    """The 4 nodes DARTS' rule keeps from one kind's 14 rows of alpha (softmax taken here)."""
    none = DARTS_OPS.index("none")
    weights = []
    for row in rows:
        top = max(row)
        exp = [math.exp(v - top) for v in row]
        weights.append([v / sum(exp) for v in exp])
    nodes, start = [], 0
    for k in range(N_NODES):
        inputs = range(k + 2)
        strongest = {j: max(w for i, w in enumerate(weights[start + j]) if i != none) for j in inputs}
        kept = sorted(inputs, key=lambda j: -strongest[j])[:2]  # stable: ties keep the earlier input
        node = []
        for j in kept:
            row = weights[start + j]
            best = max((i for i in range(len(row)) if i != none), key=row.__getitem__)
            node.append((DARTS_OPS[best], j))
        nodes.append(tuple(node))
        start += k + 2
    return tuple(nodes)

