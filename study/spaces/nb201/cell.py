"""Search spaces as plain values: cells, their string form and canonical (isomorphism) keys.

Nothing here imports torch: a cell is data that the network builders read.

NAS-Bench-201 (Dong & Yang, ICLR 2020). A cell is a DAG on 4 nodes (0 = input, 3 = output) with an
edge i -> j for every i < j; each edge carries one of five operations and each node sums its inputs.
That gives 5^6 = 15,625 cells written `|op~0|+|op~0|op~1|+|op~0|op~1|op~2|` (nodes 1, 2, 3).

Canonical form. Many cells compute the same function. We write every node as a multiset of summands:
  * node 0 is `x`;
  * an edge with `none` contributes nothing (an exact zero), and so does any edge leaving a node whose
    sum is empty (a dead node: the edge only sees zeros; a conv on zeros learns at most a constant bias
    through its BN, independent of the input);
  * `skip_connect` adds its source's summands unchanged (sums are associative, so they are flattened);
  * any other op wraps its source's whole sum: `conv3x3(x+pool3x3(x))`;
  * summands are sorted, so edge order does not matter; multiplicity is kept (`x+x` is not `x`).
The canonical key is the output node's sum. Cells with equal keys compute the same family of functions
of the input, so a study trains one of them (the leanest member, see `nb201_classes`). This merges the
15,625 cells into 4,930 classes. One class (341 cells) has an empty output: the output does not depend
on the input, so its accuracy is chance. Such cells are *degenerate* and excluded from sampling by default.

NAS-Bench-201's benchmark key (`nb201_key`, 6,466 classes) merges less: it keeps a zero marker for each
vanished summand (`x` and `x+0` differ) and pastes a skip's source string in as one summand, so
`a+b` arriving through a skip next to `c` is not recognised as `a+(b+c)`. Dropping only the zero
markers from that key gives 5,390 classes; flattening the sums as well gives our 4,930. `nb201_key` is
kept for cross-referencing results with the benchmark.
"""

from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass
from typing import ClassVar, Iterator

from study.spaces.base import SpaceError

NB201_OPS: tuple[str, ...] = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
# Short names used inside canonical expressions; shorter keys read better in tables.
_SHORT = {"nor_conv_1x1": "conv1x1", "nor_conv_3x3": "conv3x3", "avg_pool_3x3": "pool3x3"}
_ZERO = "0"


@dataclass(frozen=True)
class NB201Cell:
    """One NAS-Bench-201 cell: `edges[k]` is the op on the k-th edge in string order.

    Edge order is (0->1), (0->2), (1->2), (0->3), (1->3), (2->3), as in the string form.
    """

    edges: tuple[str, ...]

    N_NODES: ClassVar[int] = 4
    EDGES: ClassVar[tuple[tuple[int, int], ...]] = ((0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3))

    def __post_init__(self) -> None:
        if len(self.edges) != len(self.EDGES):
            raise SpaceError(f"a NAS-Bench-201 cell has 6 edges, got {len(self.edges)}")
        bad = [op for op in self.edges if op not in NB201_OPS]
        if bad:
            raise SpaceError(f"unknown operation {bad[0]!r}; expected one of {', '.join(NB201_OPS)}")

    @classmethod
    def from_str(cls, arch: str) -> "NB201Cell":
        """Parse the official string form `|op~0|+|op~0|op~1|+|op~0|op~1|op~2|`."""
        if not isinstance(arch, str):
            raise SpaceError(f"architecture must be a string, got {type(arch).__name__}")
        nodes = arch.strip().split("+")
        if len(nodes) != 3:
            raise SpaceError(f"{arch!r}: expected 3 node groups joined by '+', got {len(nodes)}")
        edges: list[str] = []
        for j, node in enumerate(nodes, start=1):
            if not (node.startswith("|") and node.endswith("|")) or len(node) < 2:
                raise SpaceError(f"{arch!r}: node group {node!r} must look like |op~0|...|")
            items = node[1:-1].split("|")
            if len(items) != j:
                raise SpaceError(f"{arch!r}: node {j} needs {j} inputs, got {len(items)}")
            for i, item in enumerate(items):
                op, sep, src = item.partition("~")
                if not sep or src != str(i):
                    raise SpaceError(f"{arch!r}: {item!r} should be 'op~{i}'")
                edges.append(op)
        return cls(tuple(edges))

    def to_str(self) -> str:
        """The official NAS-Bench-201 string."""
        groups, k = [], 0
        for j in range(1, self.N_NODES):
            groups.append("|" + "|".join(f"{self.edges[k + i]}~{i}" for i in range(j)) + "|")
            k += j
        return "+".join(groups)

    def op(self, src: int, dst: int) -> str:
        """The op on edge src -> dst."""
        return self.edges[self.EDGES.index((src, dst))]

    def canonical(self) -> str:
        """Functional canonical key: equal for cells that compute the same function (see module doc)."""
        nodes: list[tuple[str, ...]] = [("x",)]
        for j in range(1, self.N_NODES):
            terms: list[str] = []
            for i in range(j):
                op, src = self.op(i, j), nodes[i]
                if op == "none" or not src:
                    continue  # exact zero, or an edge leaving a dead node
                if op == "skip_connect":
                    terms.extend(src)  # sums are associative: flatten
                else:
                    terms.append(f"{_SHORT[op]}({'+'.join(src)})")
            nodes.append(tuple(sorted(terms)))
        return "+".join(nodes[-1]) or _ZERO

    def nb201_key(self) -> str:
        """NAS-Bench-201's own isomorphism key (its string format), 6,466 classes over the space.

        Zero summands stay in the sum as '#', and skip connections paste their source's string as one
        summand, so nested sums are sorted as units rather than flattened.
        """
        nodes = ["0"]
        for j in range(1, self.N_NODES):
            terms = []
            for i in range(j):
                op, src = self.op(i, j), nodes[i]
                if op == "none" or src == "#":
                    terms.append("#")
                elif op == "skip_connect":
                    terms.append(src)
                else:
                    terms.append(f"({src})@{op}")
            nodes.append("+".join(sorted(terms)))
        return nodes[-1]

    def is_degenerate(self) -> bool:
        """True when the output does not depend on the input (zero output)."""
        return self.canonical() == _ZERO

    def keys(self) -> dict[str, str]:
        """The benchmark key written into cells.jsonl next to ours."""
        return {"nb201_key": self.nb201_key()}

    def n_weighted_ops(self) -> int:
        """Number of edges that carry an op other than none (used to pick a lean representative)."""
        return sum(op != "none" for op in self.edges)


def nb201_cells() -> Iterator[NB201Cell]:
    """All 15,625 NAS-Bench-201 cells in a fixed order."""
    for edges in itertools.product(NB201_OPS, repeat=len(NB201Cell.EDGES)):
        yield NB201Cell(edges)


def _representative_order(cell: NB201Cell) -> tuple[int, tuple[int, ...]]:
    # The trained member of a class is the leanest one: fewest ops (edges into dead ends or from dead
    # nodes are `none`, so no parameters are wasted), then the first in enumeration order.
    return (cell.n_weighted_ops(), tuple(NB201_OPS.index(op) for op in cell.edges))


@functools.lru_cache(maxsize=None)
def nb201_classes() -> dict[str, NB201Cell]:
    """Canonical key -> representative cell, for every class of the space (degenerate one included)."""
    best: dict[str, NB201Cell] = {}
    for cell in nb201_cells():
        key = cell.canonical()
        if key not in best or _representative_order(cell) < _representative_order(best[key]):
            best[key] = cell
    return dict(sorted(best.items()))

