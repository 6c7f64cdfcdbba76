"""The NAS-Bench-201 network: ops, shapes, parameter counts against the reference implementation."""

from __future__ import annotations

import pytest
import torch



from study.spaces import NetShape, draw
from study.spaces.modules import count_flops, count_params
from study.spaces.nb201 import NB201_OPS, NB201Cell, complexity
from study.spaces.nb201.network import Cell, FusedCell, Trunk, classifier, make_op

# Parameter counts of the reference NAS-Bench-201 TinyNetwork (xautodl 1.0.0) with C=16, N=5,
# 10 classes, computed with that package: sum(p.numel() for p in TinyNetwork(16, 5, genotype, 10).parameters()).
REFERENCE_PARAMS = {
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|": 1_531_546,
    "|nor_conv_1x1~0|+|nor_conv_1x1~0|nor_conv_1x1~1|+|nor_conv_1x1~0|nor_conv_1x1~1|nor_conv_1x1~2|": 241_306,
    "|skip_connect~0|+|none~0|skip_connect~1|+|avg_pool_3x3~0|none~1|none~2|": 73_306,
    "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|": 73_306,
    "|nor_conv_1x1~0|+|nor_conv_3x3~0|skip_connect~1|+|none~0|avg_pool_3x3~1|nor_conv_1x1~2|": 372_346,
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|": 802_426,
    "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|": 129_306,
}


@pytest.mark.parametrize("op", NB201_OPS)
def test_every_op_keeps_shape(op):
    module = make_op(op, 8)
    if op == "none":
        assert module is None
        return
    x = torch.randn(2, 8, 6, 6)
    assert module(x).shape == x.shape


def test_cell_sums_its_inputs():
    # node1 = x, node2 = x + node1 = 2x, node3 = node2 + x = 3x
    c = NB201Cell.from_str("|skip_connect~0|+|skip_connect~0|skip_connect~1|+|skip_connect~0|none~1|skip_connect~2|")
    x = torch.randn(1, 4, 5, 5)
    torch.testing.assert_close(Cell(c, 4)(x), 3 * x)


def test_degenerate_cell_outputs_zero():
    c = NB201Cell.from_str("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|")
    assert Cell(c, 4)(torch.randn(1, 4, 5, 5)).abs().sum() == 0


@pytest.mark.parametrize("arch,expected", REFERENCE_PARAMS.items())
def test_parameter_counts_match_the_reference(arch, expected):
    assert count_params(classifier(NB201Cell.from_str(arch), 3, 16, 5, 10)) == expected


def test_against_xautodl_when_installed():
    tiny = pytest.importorskip("xautodl.models.cell_infers.tiny_network")
    genotypes = pytest.importorskip("xautodl.models.cell_searchs.genotypes")
    for c in draw("nb201", 12, seed=7):
        ref = tiny.TinyNetwork(16, 5, genotypes.Structure.str2structure(c.to_str()), 10)
        assert count_params(classifier(c, 3, 16, 5, 10)) == sum(p.numel() for p in ref.parameters())


@pytest.mark.parametrize("c_in,size,width,n", [(3, 32, 16, 5), (1, 16, 8, 1), (1, 8, 4, 2)])
def test_trunk_and_classifier_shapes(c_in, size, width, n):
    c = draw("nb201", 1, seed=0)[0]
    trunk = Trunk(c, c_in, width, n)
    x = torch.randn(3, c_in, size, size)
    assert trunk(x).shape == (3, 4 * width, size // 4, size // 4)
    assert classifier(c, c_in, width, n, 7)(x).shape == (3, 7)


@pytest.mark.parametrize("args", [(3, 32, 16, 5, 10), (1, 16, 8, 1, 10), (1, 12, 4, 2, 7)])
def test_closed_form_complexity_equals_measured(args):
    c_in, size, width, n, classes = args
    for c in draw("nb201", 8, seed=1, include_degenerate=True):
        net = classifier(c, c_in, width, n, classes)
        measured = (count_params(net), count_flops(net, torch.zeros(2, c_in, size, size)))
        assert complexity(c, NetShape(c_in, size, classes, width, n)) == measured


@pytest.mark.parametrize("arch", [c.to_str() for c in draw("nb201", 24, seed=11)] + [
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|",
    "|nor_conv_1x1~0|+|nor_conv_3x3~0|nor_conv_1x1~1|+|nor_conv_1x1~0|nor_conv_3x3~1|nor_conv_1x1~2|",
    "|none~0|+|nor_conv_3x3~0|none~1|+|none~0|nor_conv_1x1~1|nor_conv_3x3~2|",
    "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|",
])
def test_fused_cell_computes_the_per_edge_cell(arch):
    """Stacking a node's convolutions changes kernels, not the function: outputs, gradients, BN statistics."""
    cell = NB201Cell.from_str(arch)
    torch.manual_seed(0)
    per_edge, fused = Cell(cell, 4), FusedCell(cell, 4)
    fused.load_from(per_edge)
    assert count_params(fused) == count_params(per_edge)
    assert sum(isinstance(m, torch.nn.Conv2d) for m in fused.modules()) <= sum(
        isinstance(m, torch.nn.Conv2d) for m in per_edge.modules())
    x = torch.randn(3, 4, 6, 6, requires_grad=True)
    weights = torch.randn(3, 4, 6, 6)
    outs, grads = [], []
    for module in (per_edge, fused):
        out = module(x)
        outs.append(out)
        if out.requires_grad:  # not for the all-`none` cell, an exact constant zero
            grads.append(torch.autograd.grad((out * weights).sum(), x)[0])
    torch.testing.assert_close(outs[1], outs[0], rtol=1e-5, atol=1e-5)
    if grads:
        torch.testing.assert_close(grads[1], grads[0], rtol=1e-5, atol=1e-5)
    # Running statistics updated identically: each edge's BN is a slice of its group's BN.
    per_edge_means = {key: op[2].running_mean for key, op in per_edge.ops.items() if isinstance(op, torch.nn.Sequential)}
    for key, dsts in fused.targets.items():
        src = key.split("_")[0]
        stacked = torch.cat([per_edge_means[f"{src}_{dst}"] for dst in dsts])
        torch.testing.assert_close(fused.groups[key][1].running_mean, stacked, rtol=1e-5, atol=1e-6)
