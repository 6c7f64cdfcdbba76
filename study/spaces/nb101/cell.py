"""NAS-Bench-101 cells as plain values: adjacency matrix and ops, pruning, the benchmark's graph hash.

Nothing here imports torch. Facts from NAS-Bench-101 (Ying et al., ICML 2019) honoured here:
  * a cell ("module") is a DAG given by an upper-triangular 0/1 adjacency matrix over at most 7 vertices
    and a label per vertex: the first is `input`, the last `output`, the others one of
    `conv3x3-bn-relu`, `conv1x1-bn-relu`, `maxpool3x3`;
  * before any check the graph is pruned: a vertex that is not on some input-to-output path computes
    nothing that reaches the output, so its row and column are deleted. The limits (7 vertices, 9 edges)
    apply to the pruned graph, as in the benchmark;
  * a graph with no input-to-output path is invalid (the benchmark refuses it), so this space has no
    degenerate cells: `is_degenerate()` is always False;
  * the space holds 423,624 unique (non-isomorphic) graphs.

String form: the rows of the adjacency matrix as 0/1 strings joined by `|`, a colon, then the ops joined
by commas, e.g. the benchmark's Inception-like module (one line, wrapped here):

    0111010|0000001|0000001|0000100|0000001|0000001|0000000:
        input,conv1x1-bn-relu,conv3x3-bn-relu,conv3x3-bn-relu,conv3x3-bn-relu,maxpool3x3,output

A cell keeps the matrix and ops it was given (so the string round-trips exactly); `pruned()` is the
graph that is hashed and built.

Canonical key: the benchmark's graph hash (the `nb101_hash` it is queried by). Each vertex starts from
the md5 of (out-degree, in-degree, label), with label -1 for input, -2 for output and the op's index in
(conv3x3-bn-relu, conv1x1-bn-relu, maxpool3x3) otherwise; then, once per vertex count, every vertex's
hash becomes the md5 of its in-neighbours' hashes sorted, `|`, its out-neighbours' hashes sorted, `|`, its
own hash (Weisfeiler-Lehman refinement); the key is the md5 of the sorted list of final hashes. The
hashed strings are Python's repr of plain ints and lists, which this code reproduces exactly.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import ClassVar

from study.spaces.base import SpaceError

INPUT, OUTPUT = "input", "output"
NB101_OPS: tuple[str, ...] = ("conv3x3-bn-relu", "conv1x1-bn-relu", "maxpool3x3")  # benchmark's order
MAX_VERTICES = 7
MAX_EDGES = 9
N_GRAPHS = 423_624  # unique graphs in the benchmark's space

Matrix = tuple[tuple[int, ...], ...]


def _reachable(matrix: Matrix, start: int, forward: bool) -> set[int]:
    """Vertices reachable from `start` along edges (forward) or against them (backward)."""
    n = len(matrix)
    seen, frontier = {start}, [start]
    while frontier:
        v = frontier.pop()
        nexts = (w for w in range(n) if (matrix[v][w] if forward else matrix[w][v]))
        for w in nexts:
            if w not in seen:
                seen.add(w)
                frontier.append(w)
    return seen


def graph_hash(matrix: Matrix, labels: list[int]) -> str:
    """The benchmark's isomorphism-invariant md5 of a (pruned) matrix and integer vertex labels."""
    n = len(matrix)
    in_deg = [sum(matrix[v][w] for v in range(n)) for w in range(n)]
    out_deg = [sum(row) for row in matrix]
    # str() of a tuple of plain ints, e.g. "(3, 0, -1)": numpy integers would print differently.
    hashes = [_md5(str((out_deg[v], in_deg[v], labels[v]))) for v in range(n)]
    for _ in range(n):
        hashes = [
            _md5("".join(sorted(hashes[w] for w in range(n) if matrix[w][v])) + "|"
                 + "".join(sorted(hashes[w] for w in range(n) if matrix[v][w])) + "|" + hashes[v])
            for v in range(n)
        ]
    return _md5(str(sorted(hashes)))


def _md5(text: str) -> str:
    return hashlib.md5(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class NB101Cell:
    """One NAS-Bench-101 module: `matrix[i][j] == 1` is an edge i -> j; `ops[i]` labels vertex i."""

    matrix: Matrix
    ops: tuple[str, ...]

    OPS: ClassVar[tuple[str, ...]] = NB101_OPS

    def __post_init__(self) -> None:
        n = len(self.matrix)
        if n < 2 or any(len(row) != n for row in self.matrix):
            raise SpaceError(f"the adjacency matrix must be square with at least 2 rows, got rows of lengths "
                             f"{[len(r) for r in self.matrix]}")
        if len(self.ops) != n:
            raise SpaceError(f"{n} vertices need {n} ops, got {len(self.ops)}; give one op per matrix row")
        if any(x not in (0, 1) for row in self.matrix for x in row):
            raise SpaceError("adjacency entries must be 0 or 1")
        if any(self.matrix[i][j] for i in range(n) for j in range(i + 1)):
            raise SpaceError("the adjacency matrix must be upper-triangular (edges only from a vertex to a later one)")
        if self.ops[0] != INPUT or self.ops[-1] != OUTPUT:
            raise SpaceError(f"the first op must be {INPUT!r} and the last {OUTPUT!r}, "
                             f"got {self.ops[0]!r} and {self.ops[-1]!r}")
        bad = [op for op in self.ops[1:-1] if op not in NB101_OPS]
        if bad:
            raise SpaceError(f"unknown operation {bad[0]!r}; expected one of {', '.join(NB101_OPS)}")
        keep = self._kept()
        if len(keep) < 2:
            raise SpaceError("no path from input to output; connect the input to the output through the graph")
        pruned = self.pruned()
        if len(pruned.ops) > MAX_VERTICES:
            raise SpaceError(f"{len(pruned.ops)} vertices after pruning; NAS-Bench-101 allows at most {MAX_VERTICES}")
        if pruned.n_edges() > MAX_EDGES:
            raise SpaceError(f"{pruned.n_edges()} edges after pruning; NAS-Bench-101 allows at most {MAX_EDGES}")

    @classmethod
    def from_lists(cls, matrix: list[list[int]], ops: list[str]) -> NB101Cell:
        """A cell from nested lists (or arrays) of ints and a list of op names."""
        return cls(tuple(tuple(int(x) for x in row) for row in matrix), tuple(str(op) for op in ops))

    @classmethod
    def from_str(cls, arch: str) -> NB101Cell:
        """Parse `rows:ops`, e.g. `011|001|000:input,conv3x3-bn-relu,output` (see module doc)."""
        if not isinstance(arch, str):
            raise SpaceError(f"architecture must be a string, got {type(arch).__name__}")
        rows, sep, ops = arch.strip().partition(":")
        if not sep:
            raise SpaceError(f"{arch!r}: expected 'rows:ops', e.g. '011|001|000:input,conv3x3-bn-relu,output'")
        matrix = []
        for row in rows.split("|"):
            if not row or set(row) - {"0", "1"}:
                raise SpaceError(f"{arch!r}: matrix row {row!r} must be a string of 0s and 1s")
            matrix.append(tuple(int(c) for c in row))
        return cls(tuple(matrix), tuple(op.strip() for op in ops.split(",")))

    def to_str(self) -> str:
        """The string form `rows:ops` of the matrix and ops as given."""
        rows = "|".join("".join(str(x) for x in row) for row in self.matrix)
        return f"{rows}:{','.join(self.ops)}"

    def n_edges(self) -> int:
        """Number of edges."""
        return sum(sum(row) for row in self.matrix)

    def _kept(self) -> list[int]:
        n = len(self.matrix)
        on_path = _reachable(self.matrix, 0, True) & _reachable(self.matrix, n - 1, False)
        return sorted(on_path) if {0, n - 1} <= on_path else []

    def pruned(self) -> NB101Cell:
        """The same cell without vertices off every input-to-output path (the graph that is built)."""
        keep = self._kept()
        if len(keep) == len(self.matrix):
            return self
        matrix = tuple(tuple(self.matrix[i][j] for j in keep) for i in keep)
        return NB101Cell(matrix, tuple(self.ops[i] for i in keep))

    def labels(self) -> list[int]:
        """Integer vertex labels as the benchmark hashes them: -1 input, -2 output, else the op's index."""
        return [-1] + [NB101_OPS.index(op) for op in self.ops[1:-1]] + [-2]

    def canonical(self) -> str:
        """The benchmark's graph hash of the pruned cell (equal for isomorphic cells)."""
        p = self.pruned()
        return graph_hash(p.matrix, p.labels())

    def is_degenerate(self) -> bool:
        """Always False: a cell without an input-to-output path is refused as invalid."""
        return False

    def keys(self) -> dict[str, str]:
        """Benchmark keys: the NAS-Bench-101 hash the benchmark's data set is indexed by."""
        return {"nb101_hash": self.canonical()}
