"""Property-based tests: the architecture string and canonical form, and record round-trips."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from study.store.records import content_checksum, read_record, seal, write_record
from study.spaces import SpaceError
from study.spaces.nb201 import NB201_OPS, NB201Cell, nb201_classes

settings.register_profile("study", max_examples=150, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("study")

cells = st.tuples(*[st.sampled_from(NB201_OPS)] * 6).map(NB201Cell)
EDGE = {e: k for k, e in enumerate(NB201Cell.EDGES)}


def with_ops(cell: NB201Cell, **changes: str) -> NB201Cell:
    """`cell` with the ops of some edges replaced, edges named like e13 for 1 -> 3."""
    edges = list(cell.edges)
    for name, op in changes.items():
        edges[EDGE[(int(name[1]), int(name[2]))]] = op
    return NB201Cell(tuple(edges))


def dead_nodes(cell: NB201Cell) -> set[int]:
    """Nodes whose sum is empty (written out by hand, independently of NB201Cell.canonical)."""
    dead: set[int] = set()
    for j in (1, 2, 3):
        if all(cell.op(i, j) == "none" or i in dead for i in range(j)):
            dead.add(j)
    return dead


@given(cells)
def test_string_round_trip(cell):
    assert NB201Cell.from_str(cell.to_str()) == cell
    assert NB201Cell.from_str(f"  {cell.to_str()}\n") == cell


@given(cells)
def test_canonical_form_is_idempotent_through_the_representative(cell):
    classes = nb201_classes()
    rep = classes[cell.canonical()]
    assert rep.canonical() == cell.canonical()
    assert classes[rep.canonical()] == rep
    assert rep.n_weighted_ops() <= cell.n_weighted_ops()  # the representative is the leanest member


@given(cells, st.lists(st.sampled_from(NB201_OPS), min_size=3, max_size=3))
def test_edges_out_of_dead_nodes_do_not_matter(cell, ops):
    changes = {f"e{i}{j}": op for (i, j), op in zip([(1, 2), (1, 3), (2, 3)], ops) if i in dead_nodes(cell)}
    assert with_ops(cell, **changes).canonical() == cell.canonical()


@given(cells, st.sampled_from(NB201_OPS), st.sampled_from(NB201_OPS))
def test_edges_into_a_node_nobody_reads_do_not_matter(cell, a, b):
    unread = with_ops(cell, e23="none")  # node 2 now feeds nothing
    assert with_ops(unread, e02=a, e12=b).canonical() == unread.canonical()


@given(cells)
def test_swapping_two_unconnected_middle_nodes_is_an_isomorphism(cell):
    cell = with_ops(cell, e12="none")  # nodes 1 and 2 are then interchangeable
    swapped = with_ops(cell, e01=cell.op(0, 2), e02=cell.op(0, 1), e13=cell.op(2, 3), e23=cell.op(1, 3))
    assert swapped.canonical() == cell.canonical()


@given(cells)
def test_a_skip_makes_node_1_an_alias_of_the_input(cell):
    cell = with_ops(cell, e01="skip_connect", e03="none")
    moved = with_ops(cell, e03=cell.op(1, 3), e13="none")  # read x directly instead of through node 1
    assert moved.canonical() == cell.canonical()


@given(cells, cells)
def test_equal_keys_come_only_from_equal_or_merged_cells(a, b):
    # Sanity in the other direction: cells in different classes get different representatives.
    classes = nb201_classes()
    assert (a.canonical() == b.canonical()) == (classes[a.canonical()] == classes[b.canonical()])


alphabet = st.sampled_from(list("|+~0123 ") + list(NB201_OPS) + ["none~0", "|none~0|", "x", "\n", "é"])


@given(st.one_of(st.text(), st.lists(alphabet, max_size=20).map("".join),
                 st.binary().map(lambda b: b.decode("latin-1"))))
def test_garbage_strings_raise_space_error_only(text):
    try:
        cell = NB201Cell.from_str(text)
    except SpaceError:
        return
    assert NB201Cell.from_str(cell.to_str()) == cell  # it parsed: then it must be a real cell


@given(cells, st.integers(min_value=0, max_value=200), st.sampled_from(list("|+~0123x_ ")))
def test_one_character_mutations_never_crash_the_parser(cell, pos, char):
    text = cell.to_str()
    pos %= len(text) + 1
    for mutated in (text[:pos] + char + text[pos:], text[:pos] + text[pos + 1:], text[:pos] + char + text[pos + 1:]):
        try:
            NB201Cell.from_str(mutated)
        except SpaceError:
            pass


@given(st.lists(st.integers(), max_size=6).map(tuple))
def test_cells_with_the_wrong_number_of_edges_are_refused(edges):
    try:
        NB201Cell(tuple(NB201_OPS[e % 5] for e in edges))
    except SpaceError:
        assert len(edges) != 6
    else:
        assert len(edges) == 6


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)
records = st.fixed_dictionaries(
    {"status": st.sampled_from(["complete", "failed"]), "cell_id": st.text(min_size=1)},
    optional={"test_acc_best": st.floats(0, 1), "history": json_values, "reason": st.text() | st.none()},
).flatmap(lambda base: st.dictionaries(st.text().filter(lambda k: k not in base and k not in ("checksum", "record_format")),
                                       json_values, max_size=4).map(lambda extra: {**extra, **base}))


@given(records)
def test_record_round_trip(rec):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "r.json"
        write_record(path, rec)
        back = read_record(path)
        assert back == seal(rec) and back["checksum"] == content_checksum(back)
        assert {k: v for k, v in back.items() if k not in ("checksum", "record_format")} == rec


@given(records, st.data())
def test_any_one_byte_change_is_caught_or_harmless(rec, data):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "r.json"
        write_record(path, rec)
        raw = bytearray(path.read_bytes())
        pos = data.draw(st.integers(0, len(raw) - 1))
        raw[pos] = data.draw(st.integers(0, 255).filter(lambda b: b != raw[pos]))
        path.write_bytes(bytes(raw))
        back = read_record(path)
        # Either the damage is detected, or it only touched formatting (same content as written).
        assert back is None or back == seal(rec)


@given(records)
def test_old_records_without_checksum_are_accepted(rec):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "r.json"
        path.write_text(json.dumps(rec))
        assert read_record(path) == rec
