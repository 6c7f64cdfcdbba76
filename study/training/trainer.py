"""A short trainer that knows nothing about the model: SGD with Nesterov momentum and a cosine schedule.

The dataset is already on the training device as uint8 tensors; each step indexes a batch, lets the
objective augment and transform it in one batched call, and takes an optimiser step. Losses are summed
on the device and read once per epoch, so the hot loop never waits for the host.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn

from study.data import ImageData
from study.objectives import Objective

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Budget:
    """How long to train and with what optimiser recipe (the network's size is a NetShape, not this)."""

    name: str
    epochs: int
    batch_size: int
    lr: float
    weight_decay: float = 5e-4
    momentum: float = 0.9
    nesterov: bool = True
    precise_bn: int = 0
    eval_batch_size: int = 512

    def __post_init__(self) -> None:
        for key in ("epochs", "batch_size", "eval_batch_size"):
            if int(getattr(self, key)) < 1:
                raise ValueError(f"budget.{key} must be a positive integer, got {getattr(self, key)}")
        if not self.lr > 0:
            raise ValueError(f"budget.lr must be positive, got {self.lr}")
        if self.precise_bn < 0 or self.weight_decay < 0:
            raise ValueError("budget.precise_bn and budget.weight_decay must not be negative")


class Diverged(RuntimeError):
    """The training loss became NaN or infinite."""

    def __init__(self, epoch: int) -> None:
        super().__init__(f"diverged at epoch {epoch}")
        self.epoch = epoch


@dataclass
class History:
    """Per-epoch training loss and test accuracy of one run."""

    train_loss: list[float] = field(default_factory=list)
    test_acc: list[float] = field(default_factory=list)
    epoch_s: list[float] = field(default_factory=list)

    @property
    def best(self) -> float:
        """Best test accuracy over epochs (the paper's metric)."""
        return max(self.test_acc)

    @property
    def final(self) -> float:
        """Test accuracy after the last epoch."""
        return self.test_acc[-1]


def cosine_lr(base_lr: float, epoch: int, epochs: int) -> float:
    """Cosine schedule evaluated once per epoch, no warm-up (lr at epoch 0 is base_lr)."""
    return 0.5 * base_lr * (1.0 + math.cos(math.pi * epoch / epochs))


def make_optimizer(model: nn.Module, budget: Budget) -> torch.optim.SGD:
    """SGD with the budget's momentum, Nesterov flag and weight decay on all parameters."""
    # foreach: one multi-tensor update instead of a Python loop over ~50 small tensors (torch only
    # picks it by default on CUDA); same arithmetic.
    return torch.optim.SGD(
        model.parameters(), lr=budget.lr, momentum=budget.momentum,
        nesterov=budget.nesterov, weight_decay=budget.weight_decay, foreach=True,
    )


PRECISIONS = ("auto", "fp32", "bf16")


def autocast(device: torch.device, precision: str = "auto") -> torch.autocast:
    """Mixed precision for the forward pass: bf16 autocast or plain fp32.

    `auto` is bf16 on CUDA (tensor cores; same exponent range as fp32, so no loss scaling) and fp32 on CPU,
    where bf16 pays off only on CPUs with AMX and wide layers (benchmarks/throughput.py --precision bf16)
    and costs time on small ones. Parameters, optimiser state and BN statistics stay fp32 either way.
    """
    enabled = compute_precision(precision, device.type) == "bf16"
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=enabled)


def strict_fp32(device_type: str, precision: str) -> None:
    """Make fp32 mean fp32 on CUDA: no TF32 (10-bit mantissa) in convolutions and matmuls when fp32 is asked.

    cuDNN convolutions use TF32 by default on Ampere and later, so `precision=fp32` would otherwise be a
    third, unrecorded precision. Process-wide flags; set before each training. Other precisions: untouched.
    """
    if device_type != "cuda" or compute_precision(precision, device_type) != "fp32":
        return
    if hasattr(torch.backends.cudnn, "conv") and hasattr(torch.backends.cudnn.conv, "fp32_precision"):
        # torch >= 2.9: the new API; mixing it with the allow_tf32 flags raises.
        torch.backends.cuda.matmul.fp32_precision = "ieee"
        torch.backends.cudnn.conv.fp32_precision = "ieee"
    else:
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False


def compute_precision(precision: str, device_type: str) -> str:
    """What `precision` means on a device type: "bf16" or "fp32" (`auto`: bf16 on CUDA, fp32 elsewhere)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "auto":
        return "bf16" if device_type == "cuda" else "fp32"
    return precision


def train_epoch(
    model: nn.Module, objective: Objective, data: ImageData, opt: torch.optim.Optimizer,
    batch_size: int, gen: torch.Generator, precision: str = "auto",
) -> float:
    """One pass over the training set in a random order; returns the mean training loss."""
    model.train()
    n = data.train_x.shape[0]
    order = torch.randperm(n, generator=gen, device=data.train_x.device)
    loss_sum = torch.zeros((), device=data.train_x.device)
    steps = 0
    for start in range(0, n, batch_size):
        idx = order[start:start + batch_size]
        inputs, targets = objective.train_batch(data.train_x[idx], data.train_y[idx], gen)
        with autocast(inputs.device, precision):
            loss = objective.loss(model(inputs), targets)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        loss_sum += loss.detach()
        steps += 1
    return loss_sum.item() / steps


@torch.no_grad()
def precise_bn(
    model: nn.Module, objective: Objective, data: ImageData, n_samples: int, batch_size: int,
    gen: torch.Generator, precision: str = "auto",
) -> None:
    """Recompute BN running statistics as exact averages over `n_samples` training images."""
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns or n_samples <= 0:
        return
    momenta = [bn.momentum for bn in bns]
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative average over the batches below
    model.train()
    n = data.train_x.shape[0]
    idx_all = torch.randperm(n, generator=gen, device=data.train_x.device)[:n_samples]
    for start in range(0, len(idx_all), batch_size):
        idx = idx_all[start:start + batch_size]
        inputs, _ = objective.train_batch(data.train_x[idx], data.train_y[idx], gen)
        with autocast(inputs.device, precision):  # the statistics training sees
            model(inputs)
    for bn, m in zip(bns, momenta):
        bn.momentum = m


@torch.inference_mode()
def evaluate(
    model: nn.Module, objective: Objective, data: ImageData, batch_size: int, seed: int, precision: str = "auto",
) -> float:
    """Top-1 accuracy on the test set; the generator is reseeded so every evaluation sees the same inputs."""
    model.eval()
    gen = torch.Generator(device=data.test_x.device).manual_seed(seed)
    hits = torch.zeros((), device=data.test_x.device, dtype=torch.long)
    total = 0
    for start in range(0, data.test_x.shape[0], batch_size):
        images = data.test_x[start:start + batch_size]
        inputs, targets = objective.test_batch(images, data.test_y[start:start + batch_size], gen)
        with autocast(inputs.device, precision):
            hits += objective.correct(model(inputs), targets)
        total += targets.numel()
    return hits.item() / total


EpochCallback = Callable[[int, History], None]


@dataclass
class TrainState:
    """A training between two epochs: enough to continue it exactly as if it had never stopped.

    All of the trainer's randomness comes from its one generator, so its state is the RNG state.
    """

    epoch: int  # epochs completed
    history: History
    optimizer: dict
    generator: torch.Tensor | None  # None: continue with a generator seeded afresh (state from another device)


StateCallback = Callable[[nn.Module, TrainState], None]


def train(
    model: nn.Module, objective: Objective, data: ImageData, budget: Budget, seed: int,
    on_epoch: EpochCallback | None = None, start: TrainState | None = None, on_state: StateCallback | None = None,
    precision: str = "auto",
) -> History:
    """Train `model` for the budget's epochs, testing after every epoch; raises Diverged on NaN loss.

    `start` continues a training from a saved state (the model already holds its weights); `on_state`
    receives the model and state after every epoch, e.g. to checkpoint it. `precision` is `autocast`'s.
    """
    autocast(data.train_x.device, precision)  # refuse an unknown precision before training
    strict_fp32(data.train_x.device.type, precision)
    gen = torch.Generator(device=data.train_x.device).manual_seed(seed)
    opt = make_optimizer(model, budget)
    history = History()
    if start is not None:
        opt.load_state_dict(start.optimizer)
        if start.generator is not None:
            gen.set_state(start.generator)
        history = start.history
    for epoch in range(start.epoch if start is not None else 0, budget.epochs):
        t0 = time.perf_counter()
        for group in opt.param_groups:
            group["lr"] = cosine_lr(budget.lr, epoch, budget.epochs)
        loss = train_epoch(model, objective, data, opt, budget.batch_size, gen, precision)
        if not math.isfinite(loss):
            raise Diverged(epoch)
        precise_bn(model, objective, data, budget.precise_bn, budget.batch_size, gen, precision)
        acc = evaluate(model, objective, data, budget.eval_batch_size, seed, precision)
        history.train_loss.append(loss)
        history.test_acc.append(acc)
        history.epoch_s.append(time.perf_counter() - t0)
        log.debug("epoch %d loss %.4f test %.4f", epoch, loss, acc)
        if on_epoch is not None:
            on_epoch(epoch, history)
        if on_state is not None:
            on_state(model, TrainState(epoch + 1, history, opt.state_dict(), gen.get_state()))
    return history
