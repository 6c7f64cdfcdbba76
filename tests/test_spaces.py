"""What every registered space must do (a new space is tested here without writing a test)."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from study.spaces import SPACES, NetShape, SpaceError, cell_id, describe, get_space
from study.spaces.modules import PooledLinear, count_flops, count_params

SHAPES = [NetShape(c_in=3, image_size=16, n_classes=10, width=4, cells_per_stage=1),
          NetShape(c_in=1, image_size=8, n_classes=7, width=6, cells_per_stage=2)]


@pytest.fixture(params=SPACES.names())
def space(request):
    return get_space(request.param)


def test_the_registry_builds_spaces_by_name(space):
    assert space.name in SPACES.names()
    with pytest.raises(SpaceError, match=r"unknown space 'no_such_space'; choose one of: .*" + space.name):
        get_space("no_such_space")


def test_string_round_trip_and_canonical_key_are_stable(space):
    for cell in space.sample(12, seed=5):
        again = space.parse(cell.to_str())
        assert again == cell and again.to_str() == cell.to_str()
        assert again.canonical() == cell.canonical()
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in cell.keys().items())


def test_samples_are_distinct_deterministic_and_prefix_stable(space):
    big = space.sample(20, seed=3)
    assert len({c.canonical() for c in big}) == 20
    assert not any(c.is_degenerate() for c in big)
    assert space.sample(20, seed=3) == big
    assert space.sample(7, seed=3) == big[:7]


@pytest.mark.parametrize("bad", ["", "not a cell", 17])
def test_bad_strings_are_refused_with_a_space_error(space, bad):
    with pytest.raises(SpaceError):
        space.parse(bad)


@pytest.mark.parametrize("shape", SHAPES)
def test_backbone_shape_and_complexity_equal_to_counting(space, shape):
    for cell in space.sample(3, seed=1):
        torch.manual_seed(0)
        backbone = space.build(cell, shape)
        x = torch.randn(2, shape.c_in, shape.image_size, shape.image_size)
        out = backbone.eval()(x)
        assert out.shape[:2] == (2, backbone.c_out) and out.dim() == 4
        net = torch.nn.Sequential(backbone, PooledLinear(backbone.c_out, shape.n_classes))
        assert space.complexity(cell, shape) == (count_params(net), count_flops(net, x))


def test_cells_file_row_carries_the_benchmark_keys(space):
    cell = space.sample(1, seed=0)[0]
    row = describe(space, cell, SHAPES[0])
    assert row["id"] == cell_id(cell.canonical()) and row["arch"] == cell.to_str()
    assert list(row)[:3] == ["id", "arch", "canonical"] and list(row)[-2:] == ["params", "flops"]
    assert {k: row[k] for k in cell.keys()} == cell.keys()


def test_nb201_rows_keep_their_keys():
    row = describe(get_space("nb201"), get_space("nb201").sample(1, seed=0)[0], SHAPES[0])
    assert list(row) == ["id", "arch", "canonical", "nb201_key", "params", "flops"]


def test_spaces_import_no_torch():
    code = "import sys, study.spaces; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_a_stem_or_depth_a_space_lacks_is_refused_in_one_line():
    nb201 = get_space("nb201")
    cell = nb201.sample(1, seed=0)[0]
    for shape, words in ((NetShape(3, 16, 10, 4, 1, stem="imagenet"), "no imagenet stem"),
                         (NetShape(3, 16, 10, 4, 1, depth=8), "leave budget.depth at 0")):
        with pytest.raises(SpaceError, match=words):
            nb201.complexity(cell, shape)
        with pytest.raises(SpaceError, match=words):
            nb201.build(cell, shape)
    with pytest.raises(SpaceError, match="budget.stem must be one of cifar, imagenet"):
        NetShape(3, 16, 10, 4, 1, stem="resnet")
