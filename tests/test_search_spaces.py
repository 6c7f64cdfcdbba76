"""Supernets and derivation: the search networks against the reference implementation's, hand-set alphas
against the cells they must derive, and every derived cell a valid member of its space."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from study.spaces import NetShape, SpaceError, get_space, searchable
from study.spaces.darts.cell import DARTS_OPS
from study.spaces.modules import Mix, MixedEdge, PooledLinear, count_params
from study.spaces.nb201.cell import NB201_OPS

ALL_SKIP = "|skip_connect~0|+|skip_connect~0|skip_connect~1|+|skip_connect~0|skip_connect~1|skip_connect~2|"


def _without_conv_bias(model: nn.Module) -> int:
    # xautodl gives a convolution a bias when its BN has no affine; the BN subtracts the mean, so the bias
    # never changes the output (nor gets a gradient): equal parameter counts are counted without it.
    biases = sum(m.bias.numel() for m in model.modules() if isinstance(m, nn.Conv2d) and m.bias is not None)
    return sum(p.numel() for p in model.parameters()) - biases


@pytest.mark.parametrize("width,depth", [(8, 1), (16, 5)])
def test_nb201_supernet_has_the_parameters_of_xautodls_search_network(width, depth):
    search_model = pytest.importorskip("xautodl.models.cell_searchs.search_model_darts")
    from xautodl.models.cell_operations import NAS_BENCH_201

    assert list(NAS_BENCH_201) == list(NB201_OPS)  # the same ops in the same order: alpha's columns agree
    ref = search_model.TinyNetworkDarts(width, depth, 4, 10, NAS_BENCH_201, False, True)
    ours = get_space("nb201").supernet(NetShape(3, 32, 10, width, depth))
    assert tuple(ours.alphas["cell"].shape) == tuple(ref.arch_parameters.shape) == (6, 5)
    weights = count_params(ours) - ours.alphas["cell"].numel() + count_params(PooledLinear(ours.c_out, 10))
    assert weights == _without_conv_bias(ref) - ref.arch_parameters.numel()


@pytest.mark.parametrize("c_pp,c_p,c,reduction,reduction_prev", [(48, 48, 16, False, False), (48, 64, 32, True, False),
                                                                 (64, 128, 32, False, True)])
def test_darts_search_cell_has_the_parameters_of_xautodls(c_pp, c_p, c, reduction, reduction_prev):
    cells = pytest.importorskip("xautodl.models.cell_searchs.search_cells")
    from xautodl.models.cell_operations import DARTS_SPACE

    from study.spaces.darts.supernet import SearchCell

    ref = cells.NASNetSearchCell(DARTS_SPACE, 4, 4, c_pp, c_p, c, reduction, reduction_prev, False, True)
    ours = SearchCell(c_pp, c_p, c, reduction, reduction_prev)
    assert len(ours.edges) == ref.num_edges == 14
    assert count_params(ours) == _without_conv_bias(ref)


@pytest.mark.parametrize("space,kinds", [("nb201", {"cell": (6, 5)}), ("darts", {"normal": (14, 8), "reduce": (14, 8)})])
def test_one_small_random_alpha_per_kind_and_bn_without_affine_in_every_edge(space, kinds):
    torch.manual_seed(0)
    net = get_space(space).supernet(NetShape(3, 16, 10, 4, 1))
    assert {k: tuple(a.shape) for k, a in net.alphas.items()} == kinds
    for a in net.alphas.values():
        assert 0.3e-3 < a.detach().std() < 3e-3  # 1e-3 * N(0, 1)
    edges = [m for m in net.modules() if isinstance(m, MixedEdge)]
    assert edges and all(bn.affine is False for e in edges for bn in e.modules() if isinstance(bn, nn.BatchNorm2d))
    ops = NB201_OPS if space == "nb201" else DARTS_OPS
    assert all(e.n_ops == len(ops) and e.slots == list(range(1, len(ops))) for e in edges)  # all but `none`


def test_all_skip_alpha_derives_nb201_index_1835_at_54_30_percent():
    space = get_space("nb201")
    alpha = np.zeros((6, 5))
    alpha[:, NB201_OPS.index("skip_connect")] = 1.0
    cell = space.derive({"cell": alpha.tolist()})
    truth = space.truth(cell)
    assert cell.to_str() == ALL_SKIP and truth["nb201_index"] == 1835 and round(100 * truth["nb201-cifar10"], 2) == 54.30


def test_nb201_derivation_takes_each_edges_argmax_none_included():
    alpha = np.zeros((6, 5))
    for e, op in enumerate(["none", "nor_conv_3x3", "avg_pool_3x3", "skip_connect", "nor_conv_1x1", "none"]):
        alpha[e, NB201_OPS.index(op)] = 0.5
    cell = get_space("nb201").derive({"cell": alpha.tolist()})
    assert cell.to_str() == "|none~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_1x1~1|none~2|"


def test_darts_derivation_keeps_each_nodes_two_strongest_non_none_inputs():
    space = get_space("darts")
    alpha = np.zeros((14, 8))
    alpha[:, DARTS_OPS.index("none")] = 5.0  # the largest weight everywhere: never chosen
    picks = {0: ("sep_conv_3x3", 2.0), 1: ("max_pool_3x3", 1.0),  # node 0 reads states 0, 1
             3: ("dil_conv_5x5", 3.0), 4: ("skip_connect", 2.5), 2: ("avg_pool_3x3", 0.5),  # node 1: rows 2..4
             8: ("sep_conv_5x5", 4.0), 5: ("dil_conv_3x3", 1.0),  # node 2: rows 5..8
             13: ("skip_connect", 2.0), 12: ("sep_conv_3x3", 1.5)}  # node 3: rows 9..13
    for row, (op, value) in picks.items():
        alpha[row, DARTS_OPS.index(op)] = value
    cell = space.derive({"normal": alpha.tolist(), "reduce": alpha.tolist()})
    assert cell.normal == ((("sep_conv_3x3", 0), ("max_pool_3x3", 1)), (("dil_conv_5x5", 1), ("skip_connect", 2)),
                           (("sep_conv_5x5", 3), ("dil_conv_3x3", 0)), (("skip_connect", 4), ("sep_conv_3x3", 3)))
    assert cell.reduce == cell.normal and not cell.is_degenerate()


@pytest.mark.parametrize("name", ["nb201", "darts"])
def test_every_derived_cell_parses_in_its_space(name):
    space = get_space(name)
    kinds = {"nb201": {"cell": (6, 5)}, "darts": {"normal": (14, 8), "reduce": (14, 8)}}[name]
    rng = np.random.default_rng(0)
    for _ in range(200):
        alpha = {k: (rng.normal(size=shape) * rng.choice([1e-3, 1.0, 10.0])).tolist() for k, shape in kinds.items()}
        cell = space.derive(alpha)
        assert space.parse(cell.to_str()) == cell


def test_derive_refuses_an_alpha_of_the_wrong_shape_in_one_line():
    with pytest.raises(SpaceError, match="6 x 5"):
        get_space("nb201").derive({"cell": [[0.0] * 4] * 6})
    with pytest.raises(SpaceError, match="'reduce'"):
        get_space("darts").derive({"normal": [[0.0] * 8] * 14})


def test_a_space_without_a_supernet_is_refused_naming_those_with_one():
    with pytest.raises(SpaceError, match="nb101.*no supernet.*darts, nb201"):
        searchable("nb101")


def test_a_hard_edge_runs_its_sampled_op_only_and_passes_the_others_straight_through_gradients():
    torch.manual_seed(0)
    ops = [None, nn.Identity(), nn.Conv2d(2, 2, 1, bias=False)]
    edge = MixedEdge(ops)
    x = torch.randn(3, 2, 4, 4)
    w = torch.tensor([0.0, 0.0, 1.0], requires_grad=True)
    out = edge(x, w, index=2)
    assert torch.equal(out, ops[2](x))  # only the sampled op's output, weight 1
    out.sum().backward()
    g = out.detach().numel()  # d(sum)/d(w_j) for an op j not run: its (zero) weight was added everywhere
    assert w.grad[0] == g and w.grad[1] == g and torch.allclose(w.grad[2], ops[2](x).sum())


def test_a_sampled_none_on_a_reduction_edge_is_a_zero_map_of_the_reduced_size():
    from study.spaces.darts.supernet import SearchCell

    cell = SearchCell(6, 6, 4, reduction=True, reduction_prev=False)
    none = torch.zeros(14, 8)
    none[:, 0] = 1.0
    out = cell(torch.randn(2, 6, 7, 7), torch.randn(2, 6, 7, 7), Mix(none, [0] * 14))
    assert out.shape == (2, 16, 4, 4) and not out.any()


def _xautodl_key(key: str) -> str:
    """The name of an xautodl TinyNetwork tensor in our supernet (the classifier is our head's)."""
    import re

    edges = ["1<-0", "2<-0", "2<-1", "3<-0", "3<-1", "3<-2"]  # xautodl's sorted edge keys: our edge order
    key = re.sub(r"^cells\.", "layers.", key.replace("lastact.", "last."))
    edge = re.match(r"layers\.(\d+)\.edges\.(\d<-\d)\.(\d)\.op\.(.*)", key)
    if edge:
        return f"layers.{edge[1]}.edges.{edges.index(edge[2])}.ops.{edge[3]}.{edge[4]}"
    return re.sub(r"\.conv_([ab])\.op\.", r".conv_\1.", key).replace(".downsample.1.", ".shortcut.1.")


@pytest.mark.parametrize("method", ["darts", "gdas"])
def test_nb201_supernet_computes_xautodls_outputs_and_alpha_gradients(method):
    search_model = pytest.importorskip("xautodl.models.cell_searchs.search_model_darts")
    from xautodl.models.cell_operations import NAS_BENCH_201
    from xautodl.models.cell_searchs.search_cells import NAS201SearchCell

    from study.spaces.nb201.supernet import Supernet

    torch.manual_seed(0)
    ref = search_model.TinyNetworkDarts(4, 1, 4, 10, NAS_BENCH_201, False, True)
    ours, head = Supernet(3, 4, 1, channels_last=False), PooledLinear(16, 10)
    mine = {**dict(ours.named_parameters()), **dict(ours.named_buffers())}
    with torch.no_grad():
        for key, value in [*ref.named_parameters(), *ref.named_buffers()]:
            if key.startswith("classifier."):
                getattr(head.fc, key.split(".")[1]).copy_(value)
            elif key.endswith(".bias") and ".op.1." in key:
                value.zero_()  # xautodl's dead conv bias before a BN without affine
            elif key != "arch_parameters":
                mine[_xautodl_key(key)].copy_(value)
        ours.alphas["cell"].copy_(ref.arch_parameters)
    x = torch.randn(8, 3, 8, 8)
    gumbel = -torch.empty(6, 5).exponential_().log()

    def hard(alpha):  # GDAS's straight-through sample, the same noise for both
        probs = torch.softmax((alpha.log_softmax(1) + gumbel) / 3.0, 1)
        index = probs.argmax(1)
        return torch.zeros_like(probs).scatter_(1, index[:, None], 1.0) - probs.detach() + probs, index

    if method == "darts":
        expected = ref(x)[1]
    else:
        weights, index = hard(ref.arch_parameters)
        f = ref.stem(x)
        for cell in ref.cells:
            f = cell.forward_gdas(f, weights, index[:, None]) if isinstance(cell, NAS201SearchCell) else cell(f)
        expected = ref.classifier(ref.lastact(f).mean((2, 3)))
        weights, index = hard(ours.alphas["cell"])
        ours.use({"cell": Mix(weights, index.tolist())})
    got = head(ours(x))
    assert torch.allclose(got, expected, atol=1e-5)
    (expected ** 2).sum().backward()
    (got ** 2).sum().backward()
    assert torch.allclose(ours.alphas["cell"].grad, ref.arch_parameters.grad, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("with_alpha", [False, True])
def test_the_weight_step_clips_as_torch_clips_every_parameter_it_counts(with_alpha):
    from study.training.search import weight_grads

    torch.manual_seed(0)
    w, a = nn.Parameter(torch.randn(5)), nn.Parameter(torch.randn(3))
    loss = (w * 3).sum() ** 2 + (w.sum() * a * 10).sum()
    weight_grads(loss, [w], [a] if with_alpha else [], clip=1.0)
    ref_w, ref_a = nn.Parameter(w.detach().clone()), nn.Parameter(a.detach().clone())
    ((ref_w * 3).sum() ** 2 + (ref_w.sum() * ref_a * 10).sum()).backward()
    torch.nn.utils.clip_grad_norm_([ref_w, ref_a] if with_alpha else [ref_w], 1.0)
    assert torch.allclose(w.grad, ref_w.grad) and a.grad is None  # alpha's own step is the architecture step's


def test_darts_imagenet_stem_supernet_is_unnas_search_network():
    """unnas' ImageNet search network: three stride-2 convs, the first cell's older input reduced, 1/32 out."""
    from study.spaces.darts.network import FactorizedReduce, ImageNetStem
    from study.spaces.darts.supernet import Supernet

    torch.manual_seed(0)
    net = get_space("darts").supernet(NetShape(3, 64, 10, 4, 2, stem="imagenet"))
    assert isinstance(net, Supernet) and isinstance(net.stem, ImageNetStem) and len(net.cells) == 8
    assert isinstance(net.cells[0].pre0, FactorizedReduce)
    out = net(torch.randn(2, 3, 64, 64))
    assert out.shape == (2, net.c_out, 2, 2) and net.c_out == 16 * 4
    out.mean().backward()
    assert all(a.grad is not None and a.grad.abs().sum() > 0 for a in net.alphas.values())
    with pytest.raises(SpaceError, match="imagenet stem"):
        get_space("nb201").supernet(NetShape(3, 64, 10, 4, 1, stem="imagenet"))
