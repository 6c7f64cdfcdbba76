"""The search loop beside the trainer: an architecture step, then a weight step, over a supernet.

First-order DARTS as unnas runs it, and GDAS: the training images are cut into two fixed parts (`portion`
for the weights, the rest for the architecture; unnas' PORTION 0.5, NAS-Bench-201's 25k/25k; see `halves`),
indexed in memory or, for a streamed dataset such as ImageNet, read ahead by its loader workers
(`BatchSource.at`). Each step takes one Adam step on the architecture weights (alpha) with a batch of the
architecture part, then one SGD step on the network's weights with a batch of the weight part (gradient
norm clipped), the same objective loss in both: the objective's `train_batch`, the head it builds
(`objective.build(supernet)`) and its `loss`, unchanged, so every trained objective searches alike.
Each step's gradients go to its own parameters only (`autograd` is asked for them alone). Optional
warm-up epochs train the weights with alpha frozen (unnas' ImageNet search: 1 of 2).

Methods say how edges mix (study/spaces/modules.py `Mix`), one file each in study/training/methods/:
`darts` by softmax(alpha), every op running; `gdas` by a Gumbel-softmax hard sample per forward pass.

All randomness (data order, augmentation, Gumbel noise) comes from one generator, whose state the
per-epoch state keeps, so a resumed search continues exactly as if it had never stopped.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import torch
from torch import nn

from study.data.batches import BatchSource
from study.errors import UserError
from study.objectives import Objective
from study.spaces.modules import Mix
from study.training.methods import Method
from study.training.devices import autocast, strict_fp32
from study.training.searches import SearchBudget


SPLIT_SEED = 0  # the parts are fixed: the same images in every search, whatever the search's seed


def halves(n: int, portion: float, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The fixed weight and architecture parts of n training images: a fixed shuffle cut at `portion`.

    DARTS and unnas cut CIFAR-10's own (shuffled) order; a folder dataset lists its images class by class,
    where such a cut would give the two parts different classes. A fixed shuffle, like NAS-Bench-201's
    fixed random 25k/25k split, gives both parts every class whatever the order.
    """
    split = int(math.floor(portion * n))
    if split < 1 or split >= n:
        raise UserError(f"search_budget.portion={portion} of {n} training images leaves a part empty; "
                        "use more images or a portion nearer 0.5")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(SPLIT_SEED)).to(device)
    return order[:split], order[split:]


@dataclass
class SearchState:
    """A search between two epochs: enough to continue it exactly as if it had never stopped."""

    epoch: int  # epochs completed
    history: list[dict[str, Any]] = field(default_factory=list)  # one entry per epoch (see `search`)
    weight_opt: dict | None = None
    arch_opt: dict | None = None
    generator: torch.Tensor | None = None


EpochCallback = Callable[[torch.nn.Module, SearchState], None]
Judge = Callable[[dict[str, list[list[float]]]], dict[str, Any]]  # raw alpha -> the derived cell's entries


def search(
    supernet: nn.Module, model: nn.Module, objective: Objective, data: Any, budget: SearchBudget,
    method: Method, seed: int, judge: Judge, start: SearchState | None = None,
    on_epoch: EpochCallback | None = None, precision: str = "auto",
) -> SearchState:
    """Search for `budget.epochs` epochs on `data` (in memory or streamed); after each, `judge(alpha)` derives
    the cell and says what it is.

    `model` is `objective.build(supernet)`. Each epoch's history entry holds the judge's entries, the
    softmax of every alpha, the supernet's objective accuracy on the architecture part, the mean losses of
    both steps, the learning rate, the method's facts and the epoch's CPU and wall seconds.
    """
    source = data.batches(objective.views(), seed)  # a stream's loader workers start at its first batch
    try:
        return _search(supernet, model, objective, source, budget, method, seed, judge, start, on_epoch, precision)
    finally:
        source.close()


def _search(supernet: nn.Module, model: nn.Module, objective: Objective, source: BatchSource, budget: SearchBudget,
            method: Method, seed: int, judge: Judge, start: SearchState | None, on_epoch: EpochCallback | None,
            precision: str) -> SearchState:
    device = source.device
    autocast(device, precision)  # refuse an unknown precision before searching
    strict_fp32(device.type, precision)
    gen = torch.Generator(device=device).manual_seed(seed)
    arch = list(supernet.alphas.values())
    taken = {id(p) for p in arch}
    weights = [p for p in model.parameters() if id(p) not in taken]
    w_opt = torch.optim.SGD(weights, lr=budget.lr, momentum=budget.momentum, nesterov=budget.nesterov,
                            weight_decay=budget.weight_decay, foreach=True)
    a_opt = torch.optim.Adam(arch, lr=budget.arch_lr, betas=(budget.arch_beta1, budget.arch_beta2),
                             weight_decay=budget.arch_weight_decay)
    state = start or SearchState(0)
    if start is not None:
        w_opt.load_state_dict(start.weight_opt)
        a_opt.load_state_dict(start.arch_opt)
        if start.generator is not None:
            gen.set_state(start.generator)
    w_part, a_part = halves(source.train_count(), budget.portion, device)
    for epoch in range(state.epoch, budget.epochs):
        t0, c0 = time.perf_counter(), time.process_time()
        for group in w_opt.param_groups:
            group["lr"] = budget.lr_at(epoch)
        train_arch = epoch >= budget.warmup_epochs
        losses = _epoch(supernet, model, objective, source, budget, method, (w_part, a_part), (weights, arch),
                        (w_opt, a_opt), epoch, gen, train_arch, precision)
        c1 = time.process_time()
        if not math.isfinite(losses[0]) or (train_arch and not math.isfinite(losses[1])):
            raise FloatingPointError(f"the search diverged in epoch {epoch + 1} (losses {losses[0]}, {losses[1]})")
        acc = score(supernet, model, objective, source, a_part, budget, method, seed, precision)
        alpha = {kind: a.detach().cpu().tolist() for kind, a in supernet.alphas.items()}
        entry = {"epoch": epoch + 1, **judge(alpha),
                 "alpha": {kind: torch.softmax(a.detach().cpu(), dim=-1).tolist() for kind, a in supernet.alphas.items()},
                 "supernet_acc": acc, "weight_loss": losses[0], "arch_loss": losses[1] if train_arch else None,
                 "lr": budget.lr_at(epoch), **method.facts(epoch, budget.epochs),
                 "train_cpu_s": c1 - c0, "cpu_s": time.process_time() - c0, "wall_s": time.perf_counter() - t0}
        state = SearchState(epoch + 1, state.history + [entry], w_opt.state_dict(), a_opt.state_dict(), gen.get_state())
        if on_epoch is not None:
            on_epoch(model, state)
    return state


def _epoch(supernet: nn.Module, model: nn.Module, objective: Objective, source: BatchSource, budget: SearchBudget,
           method: Method, parts: tuple, params: tuple, opts: tuple, epoch: int, gen: torch.Generator,
           train_arch: bool, precision: str) -> tuple[float, float]:
    """One epoch over the weight part, each step an architecture step then a weight step; mean losses."""
    (w_part, a_part), (weights, arch), (w_opt, a_opt) = parts, params, opts
    model.train()
    device, bs = source.device, budget.batch_size
    w_order = w_part[torch.randperm(len(w_part), generator=gen, device=device)]
    a_order = a_part[torch.randperm(len(a_part), generator=gen, device=device)]
    # A streamed dataset (ImageNet's layout) drops the weight part's last partial batch, as unnas' loaders do
    # (drop_last); in-memory searches keep it, as every search run so far did.
    starts = range(0, len(w_order) - bs + 1 if source.streams and len(w_order) >= bs else len(w_order), bs)

    def picks() -> Iterator[torch.Tensor]:
        """Each step's image indices: the architecture batch (when alpha trains), then the weight batch."""
        for start in starts:
            w_idx = w_order[start:start + bs]
            if train_arch:  # the architecture part may be shorter than the weight part: its batches wrap around
                yield a_order[torch.arange(start, start + len(w_idx), device=device) % len(a_order)]
            yield w_idx

    batches = source.at(picks(), key=(epoch,))  # a stream decodes ahead of the steps
    sums = torch.zeros(2, device=device, dtype=torch.float64)
    steps = 0
    for _ in starts:
        if train_arch:
            loss = _loss(supernet, model, objective, next(batches), method.mixes(supernet.alphas, epoch, budget.epochs, gen),
                         gen, precision)
            grads = torch.autograd.grad(loss, arch)  # alpha's gradient alone: no weight-gradient kernels run
            for p, g in zip(arch, grads):
                p.grad = g
            a_opt.step()
            a_opt.zero_grad(set_to_none=True)
            sums[1] += loss.detach()
        loss = _loss(supernet, model, objective, next(batches), method.mixes(supernet.alphas, epoch, budget.epochs, gen),
                     gen, precision)
        w_opt.zero_grad(set_to_none=True)
        weight_grads(loss, weights, arch if budget.grad_clip_alpha else [], budget.grad_clip)
        w_opt.step()
        sums[0] += loss.detach()
        steps += 1
    left = next(batches, None)  # ends the pass: a stream's loader is then free for the next one
    assert left is None
    supernet.use(None)
    return tuple((sums / steps).tolist())


def weight_grads(loss: torch.Tensor, weights: list[nn.Parameter], arch: list[nn.Parameter], clip: float) -> None:
    """Set the weights' .grad to the gradient of `loss`, scaled as clip_grad_norm_ scales it to norm `clip`, the
    norm taken over the weights' and `arch`'s gradients together (unnas and xautodl clip over every parameter,
    alpha included; [] counts the weights alone). Alpha's .grad stays untouched: its step is the architecture
    step's."""
    if not arch:
        loss.backward(inputs=weights)
        nn.utils.clip_grad_norm_(weights, clip, foreach=True)
        return
    grads = torch.autograd.grad(loss, weights + arch, allow_unused=True)
    norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads if g is not None]))
    scale = (clip / (norm + 1e-6)).clamp(max=1.0)  # clip_grad_norm_'s rule
    for p, g in zip(weights, grads):
        p.grad = None if g is None else g * scale


def _loss(supernet: nn.Module, model: nn.Module, objective: Objective, batch: tuple[torch.Tensor, torch.Tensor],
          mixes: dict[str, Mix], gen: torch.Generator, precision: str) -> torch.Tensor:
    """The objective's loss on the training images `batch`, the supernet mixing its edges by `mixes`."""
    supernet.use(mixes)
    inputs, targets = objective.train_batch(*batch, gen)
    with autocast(inputs.device, precision):
        return objective.loss(model(inputs), targets)


@torch.inference_mode()
def score(supernet: nn.Module, model: nn.Module, objective: Objective, source: BatchSource, a_part: torch.Tensor,
          budget: SearchBudget, method: Method, seed: int, precision: str = "auto") -> float:
    """The supernet's objective accuracy on (the first `eval_images` of) the architecture part, mixed as the
    method scores it, with the objective's deterministic test inputs.

    BN normalises with each batch's own statistics and leaves the running ones as they are: those were
    gathered over the paths training sampled, and GDAS' strongest path alone, normalised with them, scores
    near chance (a supervised GDAS search at the cpu budget, epoch 165: 16% with them, 46% with the batch's).
    """
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    model.train()
    for bn in bns:
        bn.track_running_stats = False  # batch statistics, and no update of the running ones
    supernet.use(method.eval_mixes(supernet.alphas))
    part = a_part[:budget.eval_images] if budget.eval_images else a_part
    gen = torch.Generator(device=source.device).manual_seed(seed)  # the same inputs every epoch
    hits, total = torch.zeros((), device=part.device, dtype=torch.long), 0
    size = budget.eval_batch_size
    for batch in source.at((part[i:i + size] for i in range(0, len(part), size)), key=(0,), test_view=True):
        inputs, targets = objective.test_batch(*batch, gen)
        with autocast(inputs.device, precision):
            hits += objective.correct(model(inputs), targets)
        total += targets.numel()
    supernet.use(None)
    for bn in bns:
        bn.track_running_stats = True
    return hits.item() / total
