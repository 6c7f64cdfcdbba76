"""NAS-Bench-201 cells: string form, validation, canonical form and the counts it yields."""

from __future__ import annotations

import pytest

from study.spaces import SpaceError, cell_id, get_space
from study.spaces.nb201 import NB201Cell, nb201_cells, nb201_classes

ALL_CONV = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"


def cell(arch: str) -> NB201Cell:
    return NB201Cell.from_str(arch)


def test_round_trip_of_the_official_string():
    c = cell(ALL_CONV)
    assert c.to_str() == ALL_CONV
    assert c.edges == ("nor_conv_3x3",) * 6
    assert c.op(1, 3) == "nor_conv_3x3"


def test_edge_order_follows_the_string():
    c = cell("|skip_connect~0|+|none~0|avg_pool_3x3~1|+|nor_conv_1x1~0|none~1|nor_conv_3x3~2|")
    assert c.op(0, 1) == "skip_connect" and c.op(1, 2) == "avg_pool_3x3"
    assert c.op(0, 3) == "nor_conv_1x1" and c.op(2, 3) == "nor_conv_3x3" and c.op(0, 2) == "none"


@pytest.mark.parametrize("bad", [
    "", "|nor_conv_3x3~0|", "|conv~0|+|none~0|none~1|+|none~0|none~1|none~2|",
    "|none~1|+|none~0|none~1|+|none~0|none~1|none~2|", "|none~0|+|none~0|+|none~0|none~1|none~2|",
    "none~0+none~0|none~1+none~0|none~1|none~2", "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|none~3|",
])
def test_malformed_strings_are_refused_with_a_reason(bad):
    with pytest.raises(SpaceError):
        cell(bad)


# Pairs that compute the same function: each line is readable at a glance.
SAME = [
    # edge order inside a node does not matter
    ("|nor_conv_1x1~0|+|nor_conv_3x3~0|none~1|+|none~0|skip_connect~1|skip_connect~2|",
     "|nor_conv_3x3~0|+|nor_conv_1x1~0|none~1|+|none~0|skip_connect~1|skip_connect~2|"),
    # an op on an edge out of a dead node is zero: node 1 is dead on both sides
    ("|none~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|none~0|none~1|skip_connect~2|",
     "|none~0|+|nor_conv_3x3~0|none~1|+|none~0|avg_pool_3x3~1|skip_connect~2|"),
    # x routed through skip 0->1->3 equals x directly 0->3
    ("|skip_connect~0|+|none~0|none~1|+|none~0|skip_connect~1|none~2|",
     "|none~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|"),
    # a sum reaching the output through a skip is flattened: (a+b)+c == a+(b+c)
    ("|nor_conv_1x1~0|+|nor_conv_3x3~0|skip_connect~1|+|none~0|none~1|skip_connect~2|",
     "|nor_conv_1x1~0|+|nor_conv_3x3~0|none~1|+|none~0|skip_connect~1|skip_connect~2|"),
]
DIFFERENT = [
    # x + x is not x
    ("|skip_connect~0|+|none~0|none~1|+|skip_connect~0|skip_connect~1|none~2|",
     "|skip_connect~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|"),
    # conv1x1(conv3x3(x)) is not conv3x3(conv1x1(x))
    ("|nor_conv_3x3~0|+|none~0|nor_conv_1x1~1|+|none~0|none~1|skip_connect~2|",
     "|nor_conv_1x1~0|+|none~0|nor_conv_3x3~1|+|none~0|none~1|skip_connect~2|"),
    # pooling is not a skip
    ("|avg_pool_3x3~0|+|none~0|none~1|+|none~0|skip_connect~1|none~2|",
     "|skip_connect~0|+|none~0|none~1|+|none~0|skip_connect~1|none~2|"),
]


@pytest.mark.parametrize("a,b", SAME)
def test_isomorphic_cells_share_the_canonical_key(a, b):
    assert cell(a) != cell(b)
    assert cell(a).canonical() == cell(b).canonical()
    assert cell_id(cell(a).canonical()) == cell_id(cell(b).canonical())


@pytest.mark.parametrize("a,b", DIFFERENT)
def test_different_cells_keep_different_keys(a, b):
    assert cell(a).canonical() != cell(b).canonical()


def test_flattening_merges_what_the_benchmark_key_keeps_apart():
    a, b = SAME[3]
    assert cell(a).nb201_key() != cell(b).nb201_key()


def test_counts_over_the_whole_space():
    cells = list(nb201_cells())
    assert len(cells) == 15_625
    assert len({c.nb201_key() for c in cells}) == 6_466  # NAS-Bench-201's published count
    assert sum(c.is_degenerate() for c in cells) == 341
    classes = nb201_classes()
    assert len(classes) == 4_930
    assert sum(c.is_degenerate() for c in classes.values()) == 1


def test_representative_is_the_leanest_member_of_its_class():
    for key, rep in nb201_classes().items():
        assert rep.canonical() == key
    dead_branch = cell("|none~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|none~0|none~1|skip_connect~2|")
    rep = nb201_classes()[dead_branch.canonical()]
    assert rep.op(1, 2) == "none"  # the conv out of the dead node is not trained


def test_degenerate_cells_have_zero_output():
    assert cell("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|").is_degenerate()
    assert cell("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|none~0|none~1|none~2|").is_degenerate()
    assert not cell(ALL_CONV).is_degenerate()


def test_space_registry():
    assert get_space("nb201").parse(ALL_CONV) == cell(ALL_CONV)
    with pytest.raises(SpaceError, match="nb201"):
        get_space("nb101x")
