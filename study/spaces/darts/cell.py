"""DARTS cells as plain values: a normal and a reduction genotype, their string forms and canonical key.

Nothing here imports torch. Facts from DARTS (Liu, Simonyan & Yang, ICLR 2019) and the DARTS space of
the unnas sample-based experiments honoured here:
  * a genotype has a normal and a reduction cell; each has 4 intermediate nodes, and node k (0-based)
    sums two edges, each an (op, input) pair whose input is 0 or 1 (the outputs of the two previous
    cells) or an earlier node 2..k+1; the two inputs of a node may coincide;
  * 8 ops: none, max_pool_3x3, avg_pool_3x3, skip_connect, sep_conv_3x3, sep_conv_5x5, dil_conv_3x3,
    dil_conv_5x5; the cell's output concatenates its 4 nodes (DARTS' `concat=[2, 3, 4, 5]`).

String form: `normal=<nodes>;reduce=<nodes>` where `<nodes>` lists the 4 nodes separated by `|`, each
node its two edges `op~input` separated by a comma. DARTS-V2 (one line, wrapped here):

    normal=sep_conv_3x3~0,sep_conv_3x3~1|sep_conv_3x3~0,sep_conv_3x3~1|sep_conv_3x3~1,skip_connect~0|
        skip_connect~0,dil_conv_3x3~2;
    reduce=max_pool_3x3~0,max_pool_3x3~1|skip_connect~2,max_pool_3x3~1|max_pool_3x3~0,skip_connect~2|
        skip_connect~2,max_pool_3x3~1

`parse` also accepts the DARTS `Genotype(normal=[('sep_conv_3x3', 0), ...], normal_concat=[2, 3, 4, 5],
reduce=[...], reduce_concat=[2, 3, 4, 5])` repr, so genotypes can be pasted from papers and code.

Canonical key: the string form with each node's two edges sorted by (input, op), since a node's sum
does not depend on their order. Other isomorphisms (renumbering nodes, which only permutes the
concatenated channels) are not merged.

Degenerate: a genotype where either cell's output is identically zero: every node's edges are `none` or
read nodes that are themselves zero. Such a cell discards its inputs (a zero normal cell makes the
network's output independent of the image). This is a per-cell test; a network can in principle lose its
input in other, depth-dependent ways (a zero reduction cell followed by normal cells that read only the
previous cell), which this test does not catch.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from typing import ClassVar

from study.spaces.base import SpaceError

DARTS_OPS: tuple[str, ...] = (
    "none", "max_pool_3x3", "avg_pool_3x3", "skip_connect",
    "sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5",
)
N_NODES = 4
CONCAT = [2, 3, 4, 5]

Edge = tuple[str, int]
Node = tuple[Edge, Edge]
Nodes = tuple[Node, ...]


def _check_nodes(kind: str, nodes: Nodes) -> None:
    if len(nodes) != N_NODES:
        raise SpaceError(f"the {kind} cell needs {N_NODES} nodes, got {len(nodes)}")
    for k, node in enumerate(nodes):
        if len(node) != 2:
            raise SpaceError(f"{kind} node {k} needs 2 edges, got {len(node)}")
        for op, src in node:
            if op not in DARTS_OPS:
                raise SpaceError(f"unknown operation {op!r}; expected one of {', '.join(DARTS_OPS)}")
            if not isinstance(src, int) or not 0 <= src <= k + 1:
                raise SpaceError(f"{kind} node {k} reads input {src!r}; it may read 0..{k + 1} "
                                 f"(0, 1: the previous cells; 2..: earlier nodes)")


def zero_nodes(nodes: Nodes) -> list[bool]:
    """Which nodes are identically zero: all their edges are `none` or read a zero node."""
    zero: list[bool] = [False, False]  # the two cell inputs
    for node in nodes:
        zero.append(all(op == "none" or zero[src] for op, src in node))
    return zero[2:]


def _nodes_str(nodes: Nodes) -> str:
    return "|".join(",".join(f"{op}~{src}" for op, src in node) for node in nodes)


def _parse_nodes(kind: str, text: str) -> Nodes:
    nodes = []
    for k, node in enumerate(text.split("|")):
        edges = []
        for item in node.split(","):
            op, sep, src = item.strip().partition("~")
            if not sep or not src.isdigit():
                raise SpaceError(f"{kind} node {k}: {item!r} should be 'op~input', e.g. 'sep_conv_3x3~0'")
            edges.append((op, int(src)))
        nodes.append(tuple(edges))
    return tuple(nodes)


@dataclass(frozen=True)
class DartsCell:
    """A DARTS genotype: `normal[k]` and `reduce[k]` are node k's two (op, input) edges."""

    normal: Nodes
    reduce: Nodes

    OPS: ClassVar[tuple[str, ...]] = DARTS_OPS

    def __post_init__(self) -> None:
        _check_nodes("normal", self.normal)
        _check_nodes("reduce", self.reduce)

    @classmethod
    def from_lists(cls, normal: list, reduce: list) -> DartsCell:
        """A cell from DARTS-style flat lists of 8 (op, input) pairs each (node k = pairs 2k, 2k+1)."""
        def nodes(kind: str, pairs: list) -> Nodes:
            if len(pairs) != 2 * N_NODES:
                raise SpaceError(f"the {kind} cell needs {2 * N_NODES} (op, input) pairs, got {len(pairs)}")
            edges = [(str(op), src) for op, src in pairs]
            return tuple((edges[2 * k], edges[2 * k + 1]) for k in range(N_NODES))
        return cls(nodes("normal", list(normal)), nodes("reduce", list(reduce)))

    @classmethod
    def from_str(cls, arch: str) -> DartsCell:
        """Parse `normal=...;reduce=...` or a DARTS `Genotype(...)` repr (see module doc)."""
        if not isinstance(arch, str):
            raise SpaceError(f"architecture must be a string, got {type(arch).__name__}")
        text = arch.strip()
        if text.startswith("Genotype("):
            return cls._from_genotype(text)
        parts = dict(part.partition("=")[::2] for part in text.split(";"))
        if set(parts) != {"normal", "reduce"}:
            raise SpaceError(f"{arch!r}: expected 'normal=<nodes>;reduce=<nodes>', "
                             "e.g. 'normal=sep_conv_3x3~0,skip_connect~1|...;reduce=...'")
        return cls(_parse_nodes("normal", parts["normal"]), _parse_nodes("reduce", parts["reduce"]))

    @classmethod
    def _from_genotype(cls, text: str) -> DartsCell:
        try:
            call = ast.parse(text, mode="eval").body
            fields = {kw.arg: _literal(kw.value) for kw in call.keywords}
        except (SyntaxError, ValueError, TypeError, AttributeError):
            raise SpaceError("could not read the Genotype(...) repr; write it as DARTS prints it, with normal=[...], "
                             "normal_concat=[2, 3, 4, 5], reduce=[...], reduce_concat=[2, 3, 4, 5]") from None
        for key in ("normal_concat", "reduce_concat"):
            if list(fields.get(key, CONCAT)) != CONCAT:
                raise SpaceError(f"{key}={list(fields[key])}: this space concatenates all 4 nodes, use {CONCAT}")
        if "normal" not in fields or "reduce" not in fields:
            raise SpaceError("a Genotype needs both normal=[...] and reduce=[...]")
        return cls.from_lists(fields["normal"], fields["reduce"])

    def to_str(self) -> str:
        """The string form `normal=...;reduce=...`, edges in the order given."""
        return f"normal={_nodes_str(self.normal)};reduce={_nodes_str(self.reduce)}"

    def to_genotype(self) -> str:
        """The DARTS `Genotype(...)` repr of this cell."""
        def flat(nodes: Nodes) -> str:
            return "[" + ", ".join(f"({op!r}, {src})" for node in nodes for op, src in node) + "]"
        return (f"Genotype(normal={flat(self.normal)}, normal_concat={CONCAT}, "
                f"reduce={flat(self.reduce)}, reduce_concat={CONCAT})")

    def canonical(self) -> str:
        """The string form with each node's edges sorted by (input, op): equal for reordered pairs."""
        def sort(nodes: Nodes) -> Nodes:
            return tuple(tuple(sorted(node, key=lambda e: (e[1], e[0]))) for node in nodes)
        return DartsCell(sort(self.normal), sort(self.reduce)).to_str()

    def is_degenerate(self) -> bool:
        """True when the normal or the reduction cell outputs an exact zero (see module doc)."""
        return all(zero_nodes(self.normal)) or all(zero_nodes(self.reduce))

    def keys(self) -> dict[str, str]:
        """Benchmark keys: the canonical genotype string."""
        return {"darts_genotype": self.canonical()}


def _literal(node: ast.expr) -> object:
    # range(2, 6) appears in some published genotypes; everything else must be a plain literal.
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "range":
        return list(range(*(ast.literal_eval(a) for a in node.args)))
    return ast.literal_eval(node)
