"""A short trainer that knows nothing about the model: SGD with Nesterov momentum and a cosine schedule.

Batches come from the dataset's batch source (study/data/batches.py): uint8 tensors already on the device
indexed per step, or a streaming loader's batches copied to the device as they arrive. Each step lets the
objective augment and transform its batch in one batched call and takes an optimiser step. Losses are summed
on the device and read once per epoch, so the hot loop never waits for the host.

A streamed epoch can stop and resume at any step: every `checkpoint_s` seconds `fit` hands the caller a
state with the step reached (weights, optimiser, generator, the loss so far), and a state with a step
continues that epoch there. Training speed (images per second) and the share of time spent waiting for
batches are kept per epoch (study/training/pace.py).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch import nn

from study.data.batches import BatchSource
from study.objectives import Objective
from study.training.devices import autocast, strict_fp32
from study.training.pace import Pace, Watch
from study.training.run import Budget

log = logging.getLogger(__name__)


class Diverged(RuntimeError):
    """The training loss became NaN or infinite."""

    def __init__(self, epoch: int) -> None:
        super().__init__(f"diverged at epoch {epoch}")
        self.epoch = epoch


@dataclass
class History:
    """Per-epoch training loss, test accuracy and test loss of one run, and how fast it trained."""

    train_loss: list[float] = field(default_factory=list)
    test_acc: list[float] = field(default_factory=list)
    epoch_s: list[float] = field(default_factory=list)
    test_loss: list[float] = field(default_factory=list)  # mean test loss per epoch (the objective's own loss)
    images_per_s: list[float] = field(default_factory=list)  # training images per second of each epoch
    loader_wait: list[float] = field(default_factory=list)  # share of each epoch's training spent waiting for batches
    unreadable: int = 0  # images a streaming loader could not decode (skipped, each replaced by its neighbour)

    @property
    def best(self) -> float:
        """Best test accuracy over epochs (the paper's metric)."""
        return max(self.test_acc)

    @property
    def final(self) -> float:
        """Test accuracy after the last epoch."""
        return self.test_acc[-1]


WARMUP_FACTOR = 0.1  # unnas' OPTIM.WARMUP_FACTOR: the warm-up starts at a tenth of the schedule's lr


def cosine_lr(base_lr: float, epoch: int, epochs: int, warmup_epochs: int = 0) -> float:
    """Cosine schedule evaluated once per epoch (lr at epoch 0 is base_lr); with `warmup_epochs`, scaled by
    a factor rising linearly from 0.1 at epoch 0 towards 1 at the last warm-up epoch (pycls get_epoch_lr)."""
    lr = 0.5 * base_lr * (1.0 + math.cos(math.pi * epoch / epochs))
    if epoch < warmup_epochs:
        alpha = epoch / warmup_epochs
        lr *= WARMUP_FACTOR * (1.0 - alpha) + alpha
    return lr


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


def source_of(data: Any, objective: Objective, seed: int = 0) -> BatchSource:
    """The batch source of `data` for `objective` (a source is used as it is; `seed` orders streamed epochs)."""
    return data if isinstance(data, BatchSource) else data.batches(objective.views(), seed)


@dataclass(frozen=True)
class EpochStart:
    """Where an epoch begins: at `step`, with the training loss summed over the steps before it (K,)."""

    step: int = 0
    loss_sum: torch.Tensor | None = None


def train_epoch(
    model: nn.Module, objective: Objective, data: Any, opt: torch.optim.Optimizer,
    batch_size: int, gens: list[torch.Generator], precision: str = "auto", alive: list[bool] | None = None,
    epoch: int = 0, start: EpochStart = EpochStart(), pace: Pace | None = None,
    on_step: Callable[[int, torch.Tensor], None] | None = None,
) -> torch.Tensor:
    """One pass over the training set, each model in its own random order; the models' mean losses (K,).

    With K > 1 `model` is a stacked network (study/training/stacking.py): the loss is the sum of the live
    models' losses, so each model's gradient, and with SGD's per-element update its step, is its own.
    `data` is a dataset or its batch source; `start` continues an epoch (streamed data only), `pace` times
    it, and `on_step(steps, loss_sum)` runs after every step.
    """
    model.train()
    source = source_of(data, objective)
    k, device = len(gens), source.device
    alive = alive or [True] * k
    steps = start.step
    loss_sum = torch.zeros(k, device=device) if start.loss_sum is None else start.loss_sum.to(device).clone()
    pace = pace or Pace()
    pace.start()
    for images, labels in pace.timed(source.train(gens, batch_size, epoch, steps)):
        inputs, targets = _batch(objective.train_batch, images, labels, gens, alive)
        with autocast(inputs.device, precision):
            outs = _outputs(model, model(inputs), k)
            losses = torch.stack([objective.loss(o, t) for o, t in zip(outs, targets)])  # (K,)
        loss = losses[0] if k == 1 else sum(losses[m] for m in range(k) if alive[m])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        loss_sum += losses.detach()
        steps += 1
        pace.step(images[0].shape[0])
        if on_step is not None:
            on_step(steps, loss_sum)
    return loss_sum / steps


@torch.no_grad()
def precise_bn(
    model: nn.Module, objective: Objective, data: Any, n_samples: int, batch_size: int,
    gens: list[torch.Generator], precision: str = "auto", alive: list[bool] | None = None, epoch: int = 0,
) -> None:
    """Recompute BN running statistics over `n_samples` training images (per model), as unnas does.

    unnas' pycls/core/net.py compute_precise_bn_stats (pycls before its 2020 change to averaging the batch
    variances): the mean of the batch means, and the *total* variance, E[var_b + mean_b^2] - mean^2, so the
    spread of the batch means counts too. Each batch variance is the unbiased one BN itself keeps.
    """
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns or n_samples <= 0:
        return
    momenta = [bn.momentum for bn in bns]
    means = [torch.zeros_like(bn.running_mean) for bn in bns]
    squares = [torch.zeros_like(bn.running_var) for bn in bns]
    for bn in bns:
        bn.momentum = 1.0  # running stats = this batch's
    model.train()
    alive = alive or [True] * len(gens)
    batches = 0
    for images, labels in source_of(data, objective).bn(gens, n_samples, batch_size, epoch):
        inputs, _ = _batch(objective.train_batch, images, labels, gens, alive)
        with autocast(inputs.device, precision):  # the statistics training sees
            model(inputs)
        for bn, mean, square in zip(bns, means, squares):
            mean += bn.running_mean
            square += bn.running_var + bn.running_mean * bn.running_mean
        batches += 1
    for bn, mean, square, m in zip(bns, means, squares, momenta):
        if batches:
            bn.running_mean.copy_(mean / batches)
            bn.running_var.copy_(square / batches - (mean / batches) ** 2)
        bn.momentum = m


@torch.inference_mode()
def test_each(
    model: nn.Module, objective: Objective, data: Any, batch_size: int, seeds: list[int],
    precision: str = "auto", alive: list[bool] | None = None,
) -> tuple[list[float], list[float]]:
    """Top-1 test accuracy and mean test loss of each of the K models; each model's generator is reseeded
    with its seed, so every evaluation sees the same inputs, the ones it would see alone."""
    model.eval()
    source = source_of(data, objective, seeds[0])
    device = source.device
    alive = alive or [True] * len(seeds)
    gens = [torch.Generator(device=device).manual_seed(s) for s in seeds]
    hits = torch.zeros(len(seeds), device=device, dtype=torch.long)
    loss_sum = torch.zeros(len(seeds), device=device, dtype=torch.float64)
    total = 0
    for images, labels in source.test(batch_size):
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
    model: nn.Module, objective: Objective, data: Any, batch_size: int, seeds: list[int],
    precision: str = "auto", alive: list[bool] | None = None,
) -> list[float]:
    """Top-1 test accuracy of each of the K models (see `test_each`)."""
    return test_each(model, objective, data, batch_size, seeds, precision, alive)[0]


def evaluate(
    model: nn.Module, objective: Objective, data: Any, batch_size: int, seed: int, precision: str = "auto",
) -> float:
    """Top-1 accuracy of one model on the test set; the generator is reseeded so every evaluation sees the
    same inputs."""
    return evaluate_each(model, objective, data, batch_size, [seed], precision)[0]


EpochCallback = Callable[[int, History], None]


@dataclass
class TrainState:
    """A training stopped between two epochs, or within one (streamed data): enough to continue it exactly.

    All of the trainer's randomness comes from its one generator (and, for streamed data, the seed and the
    epoch), so its state is the RNG state.
    """

    epoch: int  # epochs completed
    history: History
    optimizer: dict
    generator: torch.Tensor | None  # None: continue with a generator seeded afresh (state from another device)
    step: int = 0  # steps of the next epoch already done (a mid-epoch state; 0 between epochs)
    loss_sum: torch.Tensor | None = None  # the training loss summed over those steps, (1,)


StateCallback = Callable[[nn.Module, TrainState], None]


def train(
    model: nn.Module, objective: Objective, data: Any, budget: Budget, seed: int,
    on_epoch: EpochCallback | None = None, start: TrainState | None = None, on_state: StateCallback | None = None,
    precision: str = "auto", checkpoint_s: float = 0.0,
) -> History:
    """Train `model` for the budget's epochs, testing after every epoch; raises Diverged on NaN loss.

    `start` continues a training from a saved state (the model already holds its weights); `on_state`
    receives the model and state after every epoch (and, for streamed data, every `checkpoint_s` seconds
    within one), e.g. to checkpoint it. `precision` is `autocast`'s.
    """
    def diverged(m: int, epoch: int) -> None:
        raise Diverged(epoch)

    def state_of(m: int, state: TrainState) -> None:
        if on_state is not None:
            on_state(model, state)

    epoch_of = None if on_epoch is None else (lambda m, epoch, history: on_epoch(epoch, history))
    history = fit(model, objective, data, budget, [seed], [start], epoch_of, state_of, diverged, precision,
                  checkpoint_s=checkpoint_s)[0]
    assert history is not None
    return history


def fit(
    model: nn.Module, objective: Objective, data: Any, budget: Budget, seeds: list[int],
    starts: list[TrainState | None], on_epoch: Callable[[int, int, History], None] | None,
    on_state: Callable[[int, TrainState], None] | None, on_diverged: Callable[[int, int], None],
    precision: str = "auto", checkpoint_s: float = 0.0, progress: Callable[[str], None] | None = None,
) -> list[History | None]:
    """Train K models (one, or K side by side in a stacked network) for the budget's epochs.

    Model m has its own seed (data order, augmentation, evaluation inputs), its own optimiser state and
    its own history; `starts[m]` continues it from a saved state (all from the same epoch). After every
    epoch `on_state(m, state)` receives each live model's state (its optimiser state in its own layout when
    stacked). A model whose epoch loss is not finite is handed to `on_diverged(m, epoch)`, cleared and left
    out of the loss from then on; the others go on. Returns each model's history (None if it diverged).

    Streamed data (one model): `on_state` also gets a mid-epoch state every `checkpoint_s` seconds (0: never),
    and `progress(line)` a line on the pace every minute (study/training/pace.py).
    """
    source = source_of(data, objective, seeds[0])
    if source.streams and len(seeds) > 1:
        raise ValueError(f"a streaming dataset trains one model at a time, got {len(seeds)} seeds side by side")
    try:
        return _fit(model, objective, source, budget, seeds, starts, on_epoch, on_state, on_diverged, precision,
                    checkpoint_s, progress)
    finally:
        if source is not data:
            source.close()


def _restore(model: nn.Module, opt: torch.optim.Optimizer, gens: list[torch.Generator],
             starts: list[TrainState | None]) -> tuple[list[History | None], int, EpochStart]:
    """Load the saved states into the optimiser and generators: the histories, the first epoch and its start."""
    k = len(starts)
    histories: list[History | None] = [History() for _ in starts]
    first = {s.epoch for s in starts if s is not None} | ({0} if any(s is None for s in starts) else set())
    if len(first) > 1:
        raise ValueError(f"models side by side must start from the same epoch, got {sorted(first)}")
    resume = EpochStart()
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
        if start.step:
            resume = EpochStart(start.step, start.loss_sum)
    return histories, first.pop(), resume


def _fit(model: nn.Module, objective: Objective, source: BatchSource, budget: Budget, seeds: list[int],
         starts: list[TrainState | None], on_epoch: Callable[[int, int, History], None] | None,
         on_state: Callable[[int, TrainState], None] | None, on_diverged: Callable[[int, int], None],
         precision: str, checkpoint_s: float, progress: Callable[[str], None] | None) -> list[History | None]:
    k = len(seeds)
    device = source.device
    autocast(device, precision)  # refuse an unknown precision before training
    strict_fp32(device.type, precision)
    gens = [torch.Generator(device=device).manual_seed(s) for s in seeds]
    opt = make_optimizer(model, budget)
    histories, first, resume = _restore(model, opt, gens, starts)
    alive = [True] * k
    pace = Pace()
    watch = Watch(source.streams, getattr(source, "workers", None), seeds[0], progress, checkpoint_s)
    for epoch in range(first, budget.epochs):
        t0 = time.perf_counter()
        for group in opt.param_groups:
            group["lr"] = cosine_lr(budget.lr, epoch, budget.epochs, budget.warmup_epochs)
        on_step = None
        if source.resumes_mid_epoch:  # one model: a state within the epoch is that model's
            def save(step: int, loss_sum: torch.Tensor, epoch: int = epoch) -> None:
                if on_state is not None:
                    on_state(0, TrainState(epoch, histories[0], opt.state_dict(), gens[0].get_state(), step,
                                           loss_sum.detach().clone()))

            on_step = watch.hook(f"epoch {epoch + 1}/{budget.epochs}", source.steps(budget.batch_size), pace, save)
        losses = train_epoch(model, objective, source, opt, budget.batch_size, gens, precision, alive, epoch, resume,
                             pace, on_step).tolist()
        resume = EpochStart()
        for m, loss in enumerate(losses):
            if alive[m] and not math.isfinite(loss):
                alive[m], histories[m] = False, None
                if k > 1:
                    model.clear_model(m, opt)
                on_diverged(m, epoch)
        if not any(alive):
            break
        watch.judge(pace)
        precise_bn(model, objective, source, budget.precise_bn, budget.batch_size, gens, precision, alive, epoch)
        accs, test_losses = test_each(model, objective, source, budget.eval_batch_size, seeds, precision, alive)
        seconds = time.perf_counter() - t0
        for m in range(k):
            history = histories[m]
            if history is None:
                continue
            history.train_loss.append(losses[m])
            history.test_acc.append(accs[m])
            history.epoch_s.append(seconds)
            history.test_loss.append(test_losses[m])
            history.images_per_s.append(pace.rate)
            history.loader_wait.append(pace.wait_share)
            history.unreadable = len(getattr(source, "unreadable", ()))
            log.debug("seed %d epoch %d loss %.4f test %.4f", seeds[m], epoch, losses[m], accs[m])
            if on_epoch is not None:
                on_epoch(m, epoch, history)
            if on_state is not None:
                optimizer = opt.state_dict() if k == 1 else model.model_optimizer_state(opt, m)
                on_state(m, TrainState(epoch + 1, history, optimizer, gens[m].get_state()))
    return histories
