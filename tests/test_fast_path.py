"""The fast path computes what the plain eager path computes: same parameters, same losses step by step.

Fast path: cells with the convolutions of each node stacked into one (study.spaces.nb201.network.FusedCell),
channels_last activations, pooling as a depthwise convolution (study.spaces.nb201.network.BoxPool), foreach SGD
(study.training.trainer.make_optimizer). Plain path: one ReLU-conv-BN per edge as the reference computes it
(study.spaces.nb201.network.Cell), contiguous NCHW, torch's nn.AvgPool2d, the default single-tensor SGD. Different
summation orders give float32 rounding differences, which a few SGD steps amplify only slightly: losses
must agree to 1e-4 (absolute) over 4 steps.
"""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from study.data import build_dataset
from study.spaces.nb201.network import BoxPool, Cell, FusedCell, Trunk
from study.spaces.modules import count_params
from study.objectives import create_objective
from study.spaces.nb201 import NB201Cell
from study.training.trainer import evaluate, make_optimizer
from study.training.run import Budget

TOLERANCE = 1e-4
ARCHS = [
    "|avg_pool_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_1x1~1|avg_pool_3x3~2|",
    # three 3x3 convs stacked on node 0, two 1x1 on node 1: what FusedCell changes most
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_1x1~1|+|nor_conv_3x3~0|nor_conv_1x1~1|avg_pool_3x3~2|",
]


def plain(model: nn.Module) -> nn.Module:
    """A copy of a per-edge `model` in the plain eager form: NCHW activations and torch's own average pooling."""
    model = copy.deepcopy(model)
    assert not any(isinstance(m, FusedCell) for m in model.modules())
    for module in model.modules():
        if isinstance(module, Trunk):
            module.memory_format = torch.contiguous_format
        for name, child in module.named_children():
            if isinstance(child, BoxPool):
                setattr(module, name, nn.AvgPool2d(child.kernel, child.stride, child.padding,
                                                   count_include_pad=False))
    return model


def fast_copy(slow: nn.Module, fast: nn.Module) -> nn.Module:
    """Load the weights of the plain per-edge model `slow` into the fused model `fast` (same cell)."""
    slow_state, fast_state = slow.state_dict(), fast.state_dict()
    missing = fast.load_state_dict({k: v for k, v in slow_state.items() if k in fast_state}, strict=False).missing_keys
    fused = [m for m in fast.modules() if isinstance(m, FusedCell)]
    per_edge = [m for m in slow.modules() if isinstance(m, Cell)]
    assert len(fused) == len(per_edge) > 0
    for f, p in zip(fused, per_edge):
        f.load_from(p)
    cell_keys = {f"{name}.{key}" for name, m in fast.named_modules() if isinstance(m, FusedCell)
                 for key in m.state_dict()}
    assert set(missing) <= cell_keys  # everything outside the cells loaded by name
    return fast


@pytest.fixture(scope="module")
def data():
    return build_dataset("digits", image_size=8)


@pytest.mark.parametrize("size,kernel,stride,padding", [((2, 3, 8, 8), 3, 1, 1), ((2, 4, 5, 7), 3, 1, 1),
                                                        ((2, 4, 8, 8), 2, 2, 0), ((1, 2, 7, 7), 2, 2, 0)])
def test_box_pool_equals_avg_pool_with_gradients(size, kernel, stride, padding):
    x = torch.randn(*size, generator=torch.Generator().manual_seed(0), requires_grad=True)
    fast = BoxPool(size[1], kernel, stride, padding)(x)
    ref = nn.AvgPool2d(kernel, stride, padding, count_include_pad=False)(x)
    torch.testing.assert_close(fast, ref, rtol=0, atol=1e-6)
    weights = torch.randn(ref.shape, generator=torch.Generator().manual_seed(1))
    g_fast, = torch.autograd.grad((fast * weights).sum(), x)
    g_ref, = torch.autograd.grad((ref * weights).sum(), x)
    torch.testing.assert_close(g_fast, g_ref, rtol=0, atol=1e-6)


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("objective_name", ["supervised", "rotation"])
def test_fast_and_plain_paths_give_the_same_losses(data, objective_name, arch):
    objective = create_objective(objective_name, data, crop_padding=1)
    torch.manual_seed(0)
    slow = plain(objective.build(Trunk(NB201Cell.from_str(arch), data.channels, 4, 1, fused=False)))
    fast = fast_copy(slow, objective.build(Trunk(NB201Cell.from_str(arch), data.channels, 4, 1)))
    assert count_params(fast) == count_params(slow)
    assert not any(isinstance(m, BoxPool) for m in slow.modules())
    with torch.no_grad():  # identical starting point
        x = objective.test_batch(data.test_x[:16], data.test_y[:16], torch.Generator())[0]
        torch.testing.assert_close(fast.eval()(x), slow.eval()(x), rtol=0, atol=1e-5)

    budget = Budget("t", 1, 32, 0.1)
    opt_fast = make_optimizer(fast, budget)
    opt_slow = torch.optim.SGD(slow.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4,
                               foreach=False)
    gen_fast, gen_slow = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    losses = {"fast": [], "slow": []}
    for step in range(4):
        idx = torch.arange(step * 32, (step + 1) * 32)
        for key, model, opt, gen in (("fast", fast, opt_fast, gen_fast), ("slow", slow, opt_slow, gen_slow)):
            model.train()
            inputs, targets = objective.train_batch(data.train_x[idx], data.train_y[idx], gen)
            loss = objective.loss(model(inputs), targets)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses[key].append(loss.item())
    assert losses["fast"] == pytest.approx(losses["slow"], abs=TOLERANCE)
    assert len(set(losses["fast"])) > 1  # the steps really trained
    # Evaluation (inference mode) after training agrees too; BN running stats must match.
    acc_fast = evaluate(fast, objective, data, 512, seed=0)
    acc_slow = evaluate(slow, objective, data, 512, seed=0)
    assert abs(acc_fast - acc_slow) <= 2 / data.test_x.shape[0] / objective.inputs_per_image + 1e-9


@pytest.mark.parametrize("precision,dtype", [("bf16", torch.bfloat16), ("fp32", torch.float32),
                                             ("auto", torch.float32)])
def test_precision_sets_the_compute_dtype_and_keeps_training_close(data, precision, dtype):
    """precision=bf16 runs convolutions in bf16 on CPU too; epoch losses within 10% of fp32; weights stay fp32."""
    from study.training.trainer import train

    objective = create_objective("supervised", data, crop_padding=1)
    budget = Budget("t", 2, 64, 0.05)
    results = {}
    for name in ("fp32", precision):
        torch.manual_seed(0)
        model = objective.build(Trunk(NB201Cell.from_str(ARCHS[1]), data.channels, 4, 1))
        seen = set()
        conv = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
        conv.register_forward_hook(lambda m, i, out: seen.add(out.dtype))
        results[name] = train(model, objective, data, budget, seed=0, precision=name)
        assert all(p.dtype == torch.float32 for p in model.parameters())
    assert seen == {dtype}
    # bf16 rounding grows over two epochs of SGD; a broken bf16 path would be far off (or NaN).
    assert results[precision].train_loss == pytest.approx(results["fp32"].train_loss, rel=0.1)


def test_unknown_precision_is_refused(data):
    from study.training.trainer import train

    objective = create_objective("supervised", data, crop_padding=1)
    model = objective.build(Trunk(NB201Cell.from_str(ARCHS[0]), data.channels, 4, 1))
    with pytest.raises(ValueError, match="precision"):
        train(model, objective, data, Budget("t", 1, 64, 0.05), seed=0, precision="fp16")
