"""The NAS-Bench-101 space: string form, the benchmark's hash, validity, sampling, network and sizes."""

from __future__ import annotations

import itertools
from fractions import Fraction

import pytest
import torch
from torch import nn

from study.errors import UserError
from study.spaces.modules import PooledLinear, count_flops, count_params
from study.spaces.nb101.space import NB101Space, cell_from_mask, full_matrices, n_representations
from study.spaces.base import NetShape, SpaceError
from study.spaces.nb101.cell import NB101Cell
from study.spaces.nb101.network import vertex_channels

C3, C1, MP = "conv3x3-bn-relu", "conv1x1-bn-relu", "maxpool3x3"

# The Inception-like module of the NAS-Bench-101 README and notebook (google-research/nasbench).
INCEPTION = NB101Cell.from_lists(
    [[0, 1, 1, 1, 0, 1, 0],
     [0, 0, 0, 0, 0, 0, 1],
     [0, 0, 0, 0, 0, 0, 1],
     [0, 0, 0, 0, 1, 0, 0],
     [0, 0, 0, 0, 0, 0, 1],
     [0, 0, 0, 0, 0, 0, 1],
     [0, 0, 0, 0, 0, 0, 0]],
    ["input", C1, C3, C3, C3, MP, "output"],
)
# The same module as the benchmark's data set stores it (NASBench.ipynb, the output of querying it):
# its vertices numbered differently.
INCEPTION_AS_STORED = NB101Cell.from_lists(
    [[0, 1, 1, 1, 1, 0, 0],
     [0, 0, 0, 0, 0, 0, 1],
     [0, 0, 0, 0, 0, 0, 1],
     [0, 0, 0, 0, 0, 0, 1],
     [0, 0, 0, 0, 0, 1, 0],
     [0, 0, 0, 0, 0, 0, 1],
     [0, 0, 0, 0, 0, 0, 0]],
    ["input", C3, C1, MP, C3, C3, "output"],
)
SPACE = NB101Space()
SMALL = NetShape(c_in=1, image_size=8, n_classes=10, width=8, cells_per_stage=1)


def classifier(cell: NB101Cell, shape: NetShape) -> nn.Module:
    backbone = SPACE.build(cell, shape)
    return nn.Sequential(backbone, PooledLinear(backbone.c_out, shape.n_classes))


def test_string_round_trip():
    s = INCEPTION.to_str()
    assert s == ("0111010|0000001|0000001|0000100|0000001|0000001|0000000:"
                 "input,conv1x1-bn-relu,conv3x3-bn-relu,conv3x3-bn-relu,conv3x3-bn-relu,maxpool3x3,output")
    assert SPACE.parse(s) == INCEPTION and SPACE.parse(s).to_str() == s


def test_hash_is_the_benchmarks_and_ignores_vertex_order():
    # The hash the benchmark indexes this module by (its README example; also in google-research's
    # unified_functional_hashing tests).
    assert INCEPTION.canonical() == "28cfc7874f6d200472e1a9dcd8650aa0"
    assert INCEPTION_AS_STORED.canonical() == INCEPTION.canonical()
    assert INCEPTION.keys() == {"nb101_hash": "28cfc7874f6d200472e1a9dcd8650aa0"}
    # Swapping the labels of two parallel branches is an isomorphism; changing the chain's second op is not.
    assert NB101Cell(INCEPTION.matrix, ("input", C3, C1, C3, C3, MP, "output")).canonical() == INCEPTION.canonical()
    assert NB101Cell(INCEPTION.matrix, ("input", C1, C3, C3, C1, MP, "output")).canonical() != INCEPTION.canonical()


def test_pruning_removes_dead_vertices_before_hashing():
    # Vertex 2 has no path to the output and vertex 3 none from the input: both are pruned away.
    cell = SPACE.parse("01100|00001|00000|00001|00000:input,conv3x3-bn-relu,maxpool3x3,conv1x1-bn-relu,output")
    assert cell.pruned().to_str() == "010|001|000:input,conv3x3-bn-relu,output"
    assert cell.canonical() == SPACE.parse("010|001|000:input,conv3x3-bn-relu,output").canonical()


@pytest.mark.parametrize("arch,message", [
    ("0100|0010|0000|0000:input,conv3x3-bn-relu,conv3x3-bn-relu,output", "no path from input to output"),
    ("011|001|000:input,conv5x5,output", "unknown operation 'conv5x5'"),
    ("011|001|000:conv3x3-bn-relu,conv3x3-bn-relu,output", "first op must be 'input'"),
    ("011|101|000:input,conv3x3-bn-relu,output", "upper-triangular"),
    ("011|001:input,conv3x3-bn-relu,output", "square"),
    ("012|001|000:input,conv3x3-bn-relu,output", "0s and 1s"),
    ("011|001|000", "expected 'rows:ops'"),
    ("01|00:input,conv3x3-bn-relu,output", "2 vertices need 2 ops"),
])
def test_invalid_cells_are_user_errors_naming_the_problem(arch, message):
    with pytest.raises(SpaceError, match=message) as err:
        SPACE.parse(arch)
    assert isinstance(err.value, UserError) and "\n" not in str(err.value)


def test_limits_apply_after_pruning():
    # 8 vertices, of which one is dead: pruned to 7, so valid.
    rows = ["01000000", "00100000", "00010000", "00001000", "00000100", "00000011", "00000000", "00000000"]
    ok = SPACE.parse("|".join(rows) + ":input," + ",".join([C3] * 6) + ",output")
    assert len(ok.pruned().ops) == 7
    # 13 edges on 6 vertices: too many.
    with pytest.raises(SpaceError, match="13 edges after pruning; NAS-Bench-101 allows at most 9"):
        SPACE.parse("011111|001111|000110|000001|000001|000000:input," + ",".join([C3] * 4) + ",output")


def test_vertex_channels_follow_the_benchmark():
    # Expected values from nasbench's model_builder tests (compute_vertex_channels).
    branch = ((0, 1, 1, 1, 0), (0, 0, 0, 0, 1), (0, 0, 0, 0, 1), (0, 0, 0, 0, 1), (0, 0, 0, 0, 0))
    assert vertex_channels(8, 8, branch) == [8, 3, 3, 2, 8]
    assert vertex_channels(8, 15, branch) == [8, 5, 5, 5, 15]
    chain = ((0, 1, 0, 1, 0), (0, 0, 1, 0, 1), (0, 0, 0, 1, 0), (0, 0, 0, 0, 1), (0, 0, 0, 0, 0))
    assert vertex_channels(8, 15, chain) == [8, 8, 7, 7, 15]
    assert vertex_channels(5, 1, ((0, 1), (0, 0))) == [5, 1]


def test_sample_is_distinct_prefix_stable_and_seeded():
    a = SPACE.sample(60, seed=1)
    assert len({c.canonical() for c in a}) == 60
    assert SPACE.sample(20, seed=1) == a[:20]
    assert SPACE.sample(20, seed=2) != a[:20]
    assert all(c.pruned() == c for c in a)
    # Uniform over classes: most of the 423,624 graphs have 7 vertices, most of a sample does too.
    assert sum(len(c.ops) == 7 for c in a) > 40
    with pytest.raises(SpaceError, match="n<=423624"):
        SPACE.sample(423_625, seed=0)


def test_representation_counts_make_the_sampler_uniform():
    # Summing 1/r over every unpruned (matrix, ops) pair counts each class once. Checked exactly
    # against distinct hashes for up to 5 vertices (the whole space needs minutes).
    for v in range(2, 6):
        hashes, total = set(), Fraction(0)
        for mask in full_matrices(v):
            for labels in itertools.product(range(3), repeat=v - 2):
                cell = cell_from_mask(v, int(mask), list(labels))
                hashes.add(cell.canonical())
                total += Fraction(1, n_representations(cell))
        assert total == len(hashes), v


@pytest.mark.parametrize("arch", [
    INCEPTION.to_str(),
    "01|00:input,output",                                   # input -> output only: a projection
    "0101|0010|0001|0000:input,maxpool3x3,conv1x1-bn-relu,output",  # input also added to the output
])
def test_forward_shape_and_complexity_equal_counting(arch):
    cell = SPACE.parse(arch)
    model = classifier(cell, SMALL)
    x = torch.randn(2, 1, 8, 8)
    features = model[0](x)
    assert features.shape == (2, model[0].c_out, 2, 2) and model[0].c_out == 4 * SMALL.width
    assert SPACE.complexity(cell, SMALL) == (count_params(model), count_flops(model, x[:1]))


def test_odd_image_sizes_round_up_like_the_benchmark():
    shape = NetShape(c_in=3, image_size=7, n_classes=5, width=6, cells_per_stage=2)
    model = classifier(INCEPTION, shape)
    x = torch.randn(1, 3, 7, 7)
    assert model[0](x).shape[-2:] == (2, 2)
    assert SPACE.complexity(INCEPTION, shape) == (count_params(model), count_flops(model, x))


def test_parameter_count_equals_the_benchmarks():
    # trainable_parameters of this module in NAS-Bench-101 (README / NASBench.ipynb query output):
    # 2,694,282 with the benchmark's CIFAR-10 network (stem 128, 3 stacks x 3 modules, 10 classes).
    paper = NetShape(c_in=3, image_size=32, n_classes=10, width=128, cells_per_stage=3)
    assert count_params(classifier(INCEPTION, paper)) == 2_694_282
    assert SPACE.complexity(INCEPTION, paper)[0] == 2_694_282


# unnas' first sampled NAS-Bench-101 cell (configs/sample_based/nas_bench/imagenet/*/000907.yaml).
UNNAS_000907 = NB101Cell.from_lists(
    [[0, 1, 0, 1, 0, 0, 0],
     [0, 0, 1, 0, 1, 0, 0],
     [0, 0, 0, 1, 0, 0, 0],
     [0, 0, 0, 0, 1, 0, 0],
     [0, 0, 0, 0, 0, 1, 1],
     [0, 0, 0, 0, 0, 0, 1],
     [0, 0, 0, 0, 0, 0, 0]],
    ["input", C3, C1, C1, MP, C1, "output"],
)


def test_imagenet_network_parameter_counts_equal_unnas():
    # Computed with unnas' pycls/models/nas_bench/model_builder.py (ImageNet stem, width 128, 3 stacks x 4
    # modules) and its task heads, sum of parameter sizes.
    from study.objectives.colorization import PixelClassifier

    imagenet = NetShape(c_in=3, image_size=224, n_classes=1000, width=128, cells_per_stage=4, stem="imagenet")
    for cell, supervised, rotation, colorization in ((INCEPTION, 4_371_752, 3_860_804, 4_018_169),
                                                     (UNNAS_000907, 6_099_240, 5_588_292, 5_745_657)):
        backbone = SPACE.build(cell, imagenet)
        assert count_params(nn.Sequential(backbone, PooledLinear(backbone.c_out, 1000))) == supervised
        assert SPACE.complexity(cell, imagenet)[0] == supervised
        assert count_params(nn.Sequential(backbone, PooledLinear(backbone.c_out, 4))) == rotation
        gray = SPACE.build(cell, NetShape(1, 224, 313, 128, 4, stem="imagenet"))
        assert count_params(PixelClassifier(gray, 313)) == colorization
    stem = [m for m in backbone.stem.modules() if isinstance(m, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.stride) for c in stem] == [(3, 64, (2, 2)), (64, 128, (2, 2)),
                                                                         (128, 128, (2, 2))]


@pytest.mark.parametrize("size", [64, 70])
def test_imagenet_stem_shape_and_complexity_equal_counting(size):
    shape = NetShape(c_in=3, image_size=size, n_classes=5, width=8, cells_per_stage=2, stem="imagenet")
    model = classifier(UNNAS_000907, shape)
    x = torch.randn(1, 3, size, size)
    side = -(-size // 32)
    assert model[0](x).shape == (1, 32, side, side)
    assert SPACE.complexity(UNNAS_000907, shape) == (count_params(model), count_flops(model, x))
