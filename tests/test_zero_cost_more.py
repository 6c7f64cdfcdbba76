"""The six zero-cost proxies of NAS-Bench-Suite-Zero that came after naswot, synflow, jacob_cov, snip and
grad_norm: values worked out by hand on tiny networks, and parity with the reference implementations.

Parity numbers: computed once with the reference code (zero-cost-nas' foresight/pruners/measures for fisher,
grasp, plain and l2_norm, summed as its `find_measures` sums them; NASLib's pruners/measures for epe_nas and
zen) on the network and batch of `reference_network` / `reference_batch` below, the network passed to each
measure in train mode, zen's global RNG seeded 2 before its call. Only the numbers are kept here.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from study.objectives.base import objective_class
from study.objectives.epe_nas import EPE_EPS, epe_nas
from study.objectives.fisher import fisher
from study.objectives.grasp import grasp
from study.objectives.l2_norm import l2_norm
from study.objectives.plain import plain
from study.objectives.zen import zen
from study.spaces import get_space
from study.spaces.modules import PooledLinear
from study.spaces.nb201.network import Trunk

REFERENCE_CELL = "|nor_conv_3x3~0|+|nor_conv_1x1~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|none~2|"
REFERENCE = {  # reference code's values on that network and batch (module docstring)
    "fisher": 0.13094782829284668,
    "grasp": 2.427943229675293,
    "plain": 0.10153107345104218,
    "l2_norm": 30.043012619018555,
    "epe_nas": 122.80467276567101,
    "zen": 11.257377624511719,
}


def reference_network() -> nn.Sequential:
    """The per-edge NAS-Bench-201 network of REFERENCE_CELL, C=4, N=1, 10 classes, from torch seed 0."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        trunk = Trunk(get_space("nb201").parse(REFERENCE_CELL), 3, 4, 1, fused=False)
        return nn.Sequential(trunk, PooledLinear(trunk.c_out, 10))


def reference_batch() -> tuple[torch.Tensor, torch.Tensor]:
    """16 Gaussian 8x8 images (generator seed 1) and labels 0..3, four of each."""
    return torch.randn(16, 3, 8, 8, generator=torch.Generator().manual_seed(1)), torch.arange(16) % 4


OURS = {
    "fisher": lambda: fisher(reference_network(), *reference_batch()),
    "grasp": lambda: grasp(reference_network(), *reference_batch()),
    "plain": lambda: plain(reference_network(), *reference_batch()),
    "l2_norm": lambda: l2_norm(reference_network()),
    "epe_nas": lambda: epe_nas(reference_network(), *reference_batch()),
    "zen": lambda: zen(reference_network(), (3, 8, 8), 16, torch.Generator().manual_seed(2)),
}


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_parity_with_the_reference_implementation(name):
    assert OURS[name]() == pytest.approx(REFERENCE[name], rel=1e-5)


def test_facts_say_which_proxies_use_labels_and_data():
    labelled = {"fisher", "grasp", "plain", "epe_nas"}
    for name in ("fisher", "grasp", "plain", "epe_nas", "l2_norm", "zen"):
        cls = objective_class(name)
        assert not cls.trains and cls.uses_labels == (name in labelled)
        assert cls.needs_data == (name not in ("l2_norm", "zen"))
        # per-layer sums and per-BN statistics are those of the one-conv-per-edge network; a Jacobian is not
        assert cls.fused == (name == "epe_nas")


def linear(weight: list[list[float]]) -> nn.Linear:
    layer = nn.Linear(len(weight[0]), len(weight), bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor(weight))
    return layer


def logistic_case() -> tuple[float, float, float, float]:
    """One input x, logits (a x, b x), label 0: dL/dlogits = (p0 - 1, p1) = (-p1, p1)."""
    a, b, x = 1.0, -2.0, 1.5
    p1 = math.exp(b * x) / (math.exp(a * x) + math.exp(b * x))
    return a, b, x, p1


def test_plain_is_signed_gradient_times_weight():
    # dL/dw = (-p1 x, p1 x); sum g*w = -p1 x a + p1 x b, negative here where snip's |g w| would be positive.
    a, b, x, p1 = logistic_case()
    value = plain(linear([[a], [b]]), torch.tensor([[x]]), torch.tensor([0]))
    assert value == pytest.approx(p1 * x * (b - a), rel=1e-5) and value < 0


def test_fisher_of_one_logistic_unit():
    # Outputs a_k = (a x, b x), gradients (-p1, p1); one image: F_k = 0.5 (a_k g_k)^2, fan-in 1.
    a, b, x, p1 = logistic_case()
    expected = 0.5 * (a * x * p1) ** 2 + 0.5 * (b * x * p1) ** 2
    assert fisher(linear([[a], [b]]), torch.tensor([[x]]), torch.tensor([0])) == pytest.approx(expected, rel=1e-5)


def test_fisher_spreads_each_channel_over_its_fan_in():
    # Same logits from a 3-input layer whose last two inputs are 0: F_k unchanged, multiplied by fan-in 3.
    a, b, x, p1 = logistic_case()
    expected = 3 * (0.5 * (a * x * p1) ** 2 + 0.5 * (b * x * p1) ** 2)
    value = fisher(linear([[a, 5.0, -1.0], [b, 2.0, 7.0]]), torch.tensor([[x, 0.0, 0.0]]), torch.tensor([0]))
    assert value == pytest.approx(expected, rel=1e-5)


def test_grasp_of_one_logistic_unit_is_minus_w_hessian_gradient():
    # z = (a x, b x), p = softmax(z), L = -log p0. dL/dw = (p - e0) x; H = x^2 p1 p0 [[1, -1], [-1, 1]].
    a, b, x, p1 = logistic_case()
    p0 = 1 - p1
    g = torch.tensor([-p1 * x, p1 * x])
    hg = x * x * p0 * p1 * torch.tensor([[1.0, -1.0], [-1.0, 1.0]]) @ g
    expected = -(a * hg[0] + b * hg[1]).item()
    assert grasp(linear([[a], [b]]), torch.tensor([[x]]), torch.tensor([0])) == pytest.approx(expected, rel=1e-5)


def test_l2_norm_sums_the_norm_of_each_layer_not_of_all_weights():
    model = nn.Sequential(linear([[3.0, 4.0]]), nn.ReLU(), linear([[0.0], [-2.0]]))
    assert l2_norm(model) == pytest.approx(5.0 + 2.0)


class Project(nn.Module):
    """Output = x @ w per image: every image's Jacobian of the summed output is w itself."""

    def __init__(self, rows: torch.Tensor) -> None:
        super().__init__()
        self.rows = rows  # (B, D): a different "Jacobian" per image, selected by the image's first entry

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x * self.rows).sum(1, keepdim=True)  # d/dx_i = rows[i]


def test_epe_nas_sums_per_class_log_correlations():
    # Class 0: rows (1, 0, -1) and (-1, 0, 1), correlation -1; class 1: rows (1, -1, 0) and (1, 0, -1), +0.5.
    rows = torch.tensor([[1.0, 0.0, -1.0], [1.0, -1.0, 0.0], [-1.0, 0.0, 1.0], [1.0, 0.0, -1.0]])
    labels = torch.tensor([0, 1, 0, 1])
    one = math.log(1 + EPE_EPS)
    expected = abs(2 * one + 2 * math.log(1 + EPE_EPS)) + abs(2 * one + 2 * math.log(0.5 + EPE_EPS))
    assert epe_nas(Project(rows), torch.zeros(4, 3), labels) == pytest.approx(expected, rel=1e-9)


def test_zen_leaves_the_caller_network_alone_and_repeats_with_its_generator():
    model = reference_network()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    one = zen(model, (3, 8, 8), 4, torch.Generator().manual_seed(5))
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert zen(model, (3, 8, 8), 4, torch.Generator().manual_seed(5)) == one
    assert zen(model, (3, 8, 8), 4, torch.Generator().manual_seed(6)) != one


def test_fisher_keeps_no_activation_alive():
    # A gradient hook that held its own tensor made a cycle the collector never freed: every scored
    # network's activations stayed in memory (gigabytes over a few hundred cells).
    import gc
    import weakref

    model = reference_network()
    conv = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
    outputs = []
    conv.register_forward_hook(lambda module, args, out: outputs.append(weakref.ref(out)))
    fisher(model, *reference_batch())
    del model, conv
    gc.collect()
    assert outputs and all(ref() is None for ref in outputs)


class ProjectMany(Project):
    """Project with 101 outputs that sum to the same value: the reference's case for over 100 classes."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x).expand(-1, 101) / 101


def test_epe_nas_over_100_classes_takes_pairwise_differences_of_size_normalised_sums():
    # Per class s_c / n_c: class 0 (correlation -1) 4 log(1 + k) / 2, class 1 (correlation 0.5)
    # (2 log(1 + k) + 2 log(0.5 + k)) / 2; class 2 has one image and is skipped. Score: sum over ordered
    # pairs of |s_c - s_c'| over the 2 classes seen = |s_0 - s_1|.
    rows = torch.tensor([[1.0, 0.0, -1.0], [1.0, -1.0, 0.0], [-1.0, 0.0, 1.0], [1.0, 0.0, -1.0], [0.0, 1.0, 2.0]])
    labels = torch.tensor([0, 1, 0, 1, 2])
    s0 = 4 * math.log(1 + EPE_EPS) / 2
    s1 = (2 * math.log(1 + EPE_EPS) + 2 * math.log(0.5 + EPE_EPS)) / 2
    assert epe_nas(ProjectMany(rows), torch.zeros(5, 3), labels) == pytest.approx(abs(s0 - s1), rel=1e-6)
