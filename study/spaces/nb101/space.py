"""The NAS-Bench-101 space as registered (`nb101`): sampling, building and sizing its cells."""


from __future__ import annotations

import functools
import itertools
from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np

from study.spaces.base import SPACES, NetShape, SpaceError, draw_from_stream
from study.spaces.nb101.cell import INPUT, MAX_EDGES, MAX_VERTICES, N_GRAPHS, NB101_OPS, OUTPUT, NB101Cell

if TYPE_CHECKING:
    from torch import nn

def _edges(v: int) -> list[tuple[int, int]]:
    # Bit k of a matrix mask is the k-th (src, dst) pair in this order.
    return [(i, j) for j in range(v) for i in range(j)]


@functools.cache
def full_matrices(v: int) -> np.ndarray:
    """Bit masks of the v-vertex matrices that pruning leaves unchanged and that have at most 9 edges.

    Every vertex is on an input-output path exactly when every row but the last and every column but the
    first has an edge.
    """
    pairs = _edges(v)
    masks = np.arange(2 ** len(pairs), dtype=np.int64)
    keep = np.bitwise_count(masks) <= MAX_EDGES
    for u in range(v):
        out_bits = sum(1 << k for k, (i, _) in enumerate(pairs) if i == u)
        in_bits = sum(1 << k for k, (_, j) in enumerate(pairs) if j == u)
        if u < v - 1:
            keep &= (masks & out_bits) != 0
        if u > 0:
            keep &= (masks & in_bits) != 0
    return masks[keep]


def cell_from_mask(v: int, mask: int, labels: list[int]) -> NB101Cell:
    """The v-vertex cell with edges from bit mask `mask` and inner ops NB101_OPS[labels[k]]."""
    rows = [[0] * v for _ in range(v)]
    for k, (i, j) in enumerate(_edges(v)):
        rows[i][j] = (int(mask) >> k) & 1
    ops = (INPUT, *(NB101_OPS[int(k)] for k in labels), OUTPUT)
    return NB101Cell(tuple(tuple(r) for r in rows), ops)


def n_representations(cell: NB101Cell) -> int:
    """How many (matrix, ops) pairs of the cell's vertex count, unchanged by pruning, are isomorphic to it.

    Renumbering the inner vertices in any topological order gives a valid upper-triangular matrix, and
    two orders give the same matrix exactly when they differ by an automorphism (a renumbering that keeps
    ops and edges), so the count is (topological orders) / (automorphisms).
    """
    m, n = cell.matrix, len(cell.matrix)
    inner = range(1, n - 1)
    preds = {t: frozenset(s for s in inner if m[s][t]) for t in inner}
    orders: dict[frozenset[int], int] = {frozenset(): 1}  # placed set -> orders that place it first
    for placed in sorted((frozenset(c) for r in range(n - 1) for c in itertools.combinations(inner, r)), key=len):
        for t in inner:
            if t not in placed and preds[t] <= placed and placed in orders:
                nxt = placed | {t}
                orders[nxt] = orders.get(nxt, 0) + orders[placed]
    n_orders = orders.get(frozenset(inner), 1)
    n_auto = 0
    for perm in itertools.permutations(inner):
        p = (0, *perm, n - 1)
        if all(cell.ops[p[i]] == cell.ops[i] for i in inner) and all(
                m[p[i]][p[j]] == m[i][j] for i in range(n) for j in range(i + 1, n)):
            n_auto += 1
    return n_orders // n_auto


def random_cells(rng: np.random.Generator) -> Iterator[NB101Cell]:
    """An endless stream of pruned cells, each isomorphism class (hash) equally likely.

    A proposal is uniform over all unpruned (matrix, ops) pairs of 2 to 7 vertices; a class with r such
    pairs is proposed r times as often, so the proposal is kept with probability 1/r.
    """
    sizes = list(range(2, MAX_VERTICES + 1))
    weights = np.array([len(full_matrices(v)) * len(NB101_OPS) ** (v - 2) for v in sizes], dtype=float)
    while True:
        v = sizes[int(rng.choice(len(sizes), p=weights / weights.sum()))]
        masks = full_matrices(v)
        mask, labels = int(masks[rng.integers(len(masks))]), list(rng.integers(0, len(NB101_OPS), size=v - 2))
        cell = cell_from_mask(v, mask, labels)
        if rng.random() * n_representations(cell) < 1.0:
            yield cell


@SPACES.register("nb101")
class NB101Space:
    """NAS-Bench-101: 423,624 unique module graphs; canonical key = the benchmark's graph hash."""

    name = "nb101"

    def parse(self, arch: str) -> NB101Cell:
        """A validated cell from its string form `rows:ops`."""
        return NB101Cell.from_str(arch)

    def sample(self, n: int, seed: int, include_degenerate: bool = False) -> list[NB101Cell]:
        """`n` cells with distinct hashes, uniform over the classes: the first of each in `random_cells`.

        Uniform over classes is what drawing indices into the benchmark's list of graphs gives (unnas'
        NAS-Bench-101 configs are named by such indices). Drawing random matrices and ops instead, as the
        benchmark's random search does, favours small graphs: 0 of 500 distinct draws had 7 vertices,
        where 359,082 of the 423,624 classes do (the 64,542 smaller ones counted by enumeration).

        The stream depends only on `seed`, so a smaller sample is a prefix of a larger one. Cells come
        pruned (the graph that is trained). There are no degenerate cells, so `include_degenerate` changes
        nothing. A sample close to the whole space takes very many draws (coupon collector).
        """
        if n > N_GRAPHS:
            raise SpaceError(f"n={n} is more than the {N_GRAPHS} distinct cells of space 'nb101'; use n<={N_GRAPHS}")
        return draw_from_stream(random_cells(np.random.Generator(np.random.PCG64(seed))), n, include_degenerate)

    def build(self, cell: NB101Cell, shape: NetShape, plain: bool = False) -> nn.Module:
        """The backbone (stem + 3 stacks) for `shape`; has `c_out`."""
        from study.spaces.nb101.network import Backbone

        _check(shape)
        return Backbone(cell, shape.c_in, shape.width, shape.cells_per_stage, shape.stem)

    def complexity(self, cell: NB101Cell, shape: NetShape) -> tuple[int, int]:
        """Trainable parameters and MACs per image of the backbone plus a pooled linear head (closed form)."""
        from study.spaces.nb101.network import complexity

        _check(shape)
        return complexity(cell, shape.c_in, shape.image_size, shape.width, shape.cells_per_stage, shape.n_classes,
                          shape.stem)


def _check(shape: NetShape) -> None:
    """NAS-Bench-101 has both stems; its depth is modules per stack (cells_per_stage), not a cell count."""
    shape.check_variants("nb101", stems=("cifar", "imagenet"))
    if shape.stem == "imagenet" and shape.width < 2:
        raise SpaceError(f"the NAS-Bench-101 ImageNet stem starts at width/2 channels; budget.width={shape.width} "
                         "is too narrow, e.g. 128")
