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
from study.training.devices import autocast, strict_fp32
from study.training.run import Budget

log = logging.getLogger(__name__)


class Diverged(RuntimeError):
    """The training loss became NaN or infinite."""

    def __init__(self, epoch: int) -> None:
        super().__init__(f"diverged at epoch {epoch}")
        self.epoch = epoch


@dataclass
class History:
    """Per-epoch training loss, test accuracy and test loss of one run."""

    train_loss: list[float] = field(default_factory=list)
    test_acc: list[float] = field(default_factory=list)
    epoch_s: list[float] = field(default_factory=list)
    test_loss: list[float] = field(default_factory=list)  # mean test loss per epoch (the objective's own loss)

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


def _outputs(model: nn.Module, out: torch.Tensor, k: int) -> list[torch.Tensor]:
    """Each model's output: the output itself alone, the stacked network's split for K models side by side."""
    return [out] if k == 1 else model.split(out)


def _batch(make: Callable, images: list[torch.Tensor], labels: list[torch.Tensor],
           gens: list[torch.Generator], alive: list[bool]) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The network's input (the models' inputs stacked on channels) and each model's targets.

    Every model turns its own images into inputs with its own generator, exactly as it would alone; a model
    that has diverged gets zeros (its weights are cleared and its loss is not counted).
    """
    parts = [make(x, y, g) if ok else None for x, y, g, ok in zip(images, labels, gens, alive)]
    live = next(p for p in parts if p is not None)
    parts = [p if p is not None else (torch.zeros_like(live[0]), live[1]) for p in parts]
    if len(parts) == 1:
        return parts[0][0], [parts[0][1]]
    return torch.cat([p[0] for p in parts], 1), [p[1] for p in parts]  # (B, K*C, H, W)


def train_epoch(
    model: nn.Module, objective: Objective, data: ImageData, opt: torch.optim.Optimizer,
    batch_size: int, gens: list[torch.Generator], precision: str = "auto", alive: list[bool] | None = None,
) -> torch.Tensor:
    """One pass over the training set, each model in its own random order; the models' mean losses (K,).

    With K > 1 `model` is a stacked network (study/training/stacking.py): the loss is the sum of the live
    models' losses, so each model's gradient, and with SGD's per-element update its step, is its own.
    """
    model.train()
    k, device = len(gens), data.train_x.device
    alive = alive or [True] * k
    n = data.train_x.shape[0]
    orders = [torch.randperm(n, generator=g, device=device) for g in gens]
    loss_sum = torch.zeros(k, device=device)
    steps = 0
    for start in range(0, n, batch_size):
        idx = [order[start:start + batch_size] for order in orders]
        inputs, targets = _batch(objective.train_batch, [data.train_x[i] for i in idx],
                                 [data.train_y[i] for i in idx], gens, alive)
        with autocast(inputs.device, precision):
            outs = _outputs(model, model(inputs), k)
            losses = torch.stack([objective.loss(o, t) for o, t in zip(outs, targets)])  # (K,)
        loss = losses[0] if k == 1 else sum(losses[m] for m in range(k) if alive[m])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        loss_sum += losses.detach()
        steps += 1
    return loss_sum / steps


@torch.no_grad()
def precise_bn(
    model: nn.Module, objective: Objective, data: ImageData, n_samples: int, batch_size: int,
    gens: list[torch.Generator], precision: str = "auto", alive: list[bool] | None = None,
) -> None:
    """Recompute BN running statistics as exact averages over `n_samples` training images (per model)."""
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns or n_samples <= 0:
        return
    momenta = [bn.momentum for bn in bns]
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative average over the batches below
    model.train()
    alive = alive or [True] * len(gens)
    n = data.train_x.shape[0]
    picks = [torch.randperm(n, generator=g, device=data.train_x.device)[:n_samples] for g in gens]
    for start in range(0, len(picks[0]), batch_size):
        idx = [p[start:start + batch_size] for p in picks]
        inputs, _ = _batch(objective.train_batch, [data.train_x[i] for i in idx],
                           [data.train_y[i] for i in idx], gens, alive)
        with autocast(inputs.device, precision):  # the statistics training sees
            model(inputs)
    for bn, m in zip(bns, momenta):
        bn.momentum = m


@torch.inference_mode()
def test_each(
    model: nn.Module, objective: Objective, data: ImageData, batch_size: int, seeds: list[int],
    precision: str = "auto", alive: list[bool] | None = None,
) -> tuple[list[float], list[float]]:
    """Top-1 test accuracy and mean test loss of each of the K models; each model's generator is reseeded
    with its seed, so every evaluation sees the same inputs, the ones it would see alone."""
    model.eval()
    device = data.test_x.device
    alive = alive or [True] * len(seeds)
    gens = [torch.Generator(device=device).manual_seed(s) for s in seeds]
    hits = torch.zeros(len(seeds), device=device, dtype=torch.long)
    loss_sum = torch.zeros(len(seeds), device=device, dtype=torch.float64)
    total = 0
    for start in range(0, data.test_x.shape[0], batch_size):
        images, labels = data.test_x[start:start + batch_size], data.test_y[start:start + batch_size]
        inputs, targets = _batch(objective.test_batch, [images] * len(seeds), [labels] * len(seeds),
                                 gens, alive)
        n = targets[0].numel()
        with autocast(inputs.device, precision):
            outs = _outputs(model, model(inputs), len(seeds))
            hits += torch.stack([objective.correct(o, t) for o, t in zip(outs, targets)])
            # The objective's loss is a mean over its targets: weighted by their count, batches add up exactly.
            loss_sum += torch.stack([objective.loss(o.float(), t) for o, t in zip(outs, targets)]).double() * n
        total += n
    return [h / total for h in hits.tolist()], [v / total for v in loss_sum.tolist()]


def evaluate_each(
    model: nn.Module, objective: Objective, data: ImageData, batch_size: int, seeds: list[int],
    precision: str = "auto", alive: list[bool] | None = None,
) -> list[float]:
    """Top-1 test accuracy of each of the K models (see `test_each`)."""
    return test_each(model, objective, data, batch_size, seeds, precision, alive)[0]


def evaluate(
    model: nn.Module, objective: Objective, data: ImageData, batch_size: int, seed: int, precision: str = "auto",
) -> float:
    """Top-1 accuracy of one model on the test set; the generator is reseeded so every evaluation sees the
    same inputs."""
    return evaluate_each(model, objective, data, batch_size, [seed], precision)[0]


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
    def diverged(m: int, epoch: int) -> None:
        raise Diverged(epoch)

    def state_of(m: int, state: TrainState) -> None:
        if on_state is not None:
            on_state(model, state)

    epoch_of = None if on_epoch is None else (lambda m, epoch, history: on_epoch(epoch, history))
    history = fit(model, objective, data, budget, [seed], [start], epoch_of, state_of, diverged, precision)[0]
    assert history is not None
    return history


def fit(
    model: nn.Module, objective: Objective, data: ImageData, budget: Budget, seeds: list[int],
    starts: list[TrainState | None], on_epoch: Callable[[int, int, History], None] | None,
    on_state: Callable[[int, TrainState], None] | None, on_diverged: Callable[[int, int], None],
    precision: str = "auto",
) -> list[History | None]:
    """Train K models (one, or K side by side in a stacked network) for the budget's epochs.

    Model m has its own seed (data order, augmentation, evaluation inputs), its own optimiser state and
    its own history; `starts[m]` continues it from a saved state (all from the same epoch). After every
    epoch `on_state(m, state)` receives each live model's state (its optimiser state in its own layout when
    stacked). A model whose epoch loss is not finite is handed to `on_diverged(m, epoch)`, cleared and left
    out of the loss from then on; the others go on. Returns each model's history (None if it diverged).
    """
    k = len(seeds)
    device = data.train_x.device
    autocast(device, precision)  # refuse an unknown precision before training
    strict_fp32(device.type, precision)
    gens = [torch.Generator(device=device).manual_seed(s) for s in seeds]
    opt = make_optimizer(model, budget)
    histories: list[History | None] = [History() for _ in seeds]
    first = {s.epoch for s in starts if s is not None} | ({0} if any(s is None for s in starts) else set())
    if len(first) > 1:
        raise ValueError(f"models side by side must start from the same epoch, got {sorted(first)}")
    for m, start in enumerate(starts):
        if start is None:
            continue
        if k == 1:
            opt.load_state_dict(start.optimizer)
        else:
            model.load_model_optimizer_state(opt, m, start.optimizer)
        if start.generator is not None:
            gens[m].set_state(start.generator)
        histories[m] = start.history
    alive = [True] * k
    for epoch in range(first.pop(), budget.epochs):
        t0 = time.perf_counter()
        for group in opt.param_groups:
            group["lr"] = cosine_lr(budget.lr, epoch, budget.epochs)
        losses = train_epoch(model, objective, data, opt, budget.batch_size, gens, precision, alive).tolist()
        for m, loss in enumerate(losses):
            if alive[m] and not math.isfinite(loss):
                alive[m], histories[m] = False, None
                if k > 1:
                    model.clear_model(m, opt)
                on_diverged(m, epoch)
        if not any(alive):
            break
        precise_bn(model, objective, data, budget.precise_bn, budget.batch_size, gens, precision, alive)
        accs, test_losses = test_each(model, objective, data, budget.eval_batch_size, seeds, precision, alive)
        seconds = time.perf_counter() - t0
        for m in range(k):
            history = histories[m]
            if history is None:
                continue
            history.train_loss.append(losses[m])
            history.test_acc.append(accs[m])
            history.epoch_s.append(seconds)
            history.test_loss.append(test_losses[m])
            log.debug("seed %d epoch %d loss %.4f test %.4f", seeds[m], epoch, losses[m], accs[m])
            if on_epoch is not None:
                on_epoch(m, epoch, history)
            if on_state is not None:
                optimizer = opt.state_dict() if k == 1 else model.model_optimizer_state(opt, m)
                on_state(m, TrainState(epoch + 1, history, optimizer, gens[m].get_state()))
    return histories
