"""Drawing distinct canonical cells deterministically."""

from __future__ import annotations

import pytest

from study.errors import UserError
from study.spaces import NetShape, describe, draw, get_space


def test_draw_is_deterministic_distinct_and_non_degenerate():
    a, b = draw("nb201", 200, seed=3), draw("nb201", 200, seed=3)
    assert a == b
    keys = [c.canonical() for c in a]
    assert len(set(keys)) == 200
    assert not any(c.is_degenerate() for c in a)
    assert draw("nb201", 200, seed=4) != a


def test_smaller_sample_is_a_prefix_of_a_larger_one():
    assert draw("nb201", 30, seed=0) == draw("nb201", 500, seed=0)[:30]


def test_whole_space_and_one_more():
    n = len(get_space("nb201").classes())
    assert n == 4_929
    assert len({c.canonical() for c in draw("nb201", n, seed=0)}) == n
    with pytest.raises(UserError, match="n<=4929"):
        draw("nb201", n + 1, seed=0)
    assert len(draw("nb201", n + 1, seed=0, include_degenerate=True)) == n + 1


def test_describe_gives_ids_strings_and_sizes():
    c = draw("nb201", 1, seed=0)[0]
    row = describe(get_space("nb201"), c, NetShape(c_in=3, image_size=32, n_classes=10, width=16, cells_per_stage=5))
    assert row["arch"] == c.to_str() and row["canonical"] == c.canonical()
    assert len(row["id"]) == 10 and row["params"] > 0 and row["flops"] > 0
