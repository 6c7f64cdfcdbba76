"""Training-free objectives: score an untrained network once, on one batch or on no data at all.

A scoring objective never trains: `study/training/scoring.py` builds the study's network from the run's seed,
calls `score(model, data, gen)` once and records the number as the run's `score`. Higher means a better
predicted architecture everywhere (each score's sign is chosen so).

- `naswot` (Mellor et al., ICML 2021): log|det K| with K[i, j] = N_A - d_H(c_i, c_j) over the binary codes
  c of every ReLU unit's input (> 0) for a batch of training images; no labels, network in train mode.
- `synflow` (Tanaka et al., NeurIPS 2020): no data. Parameters made absolute, BN layers skipped (as the
  zero-cost-proxy study does for synflow), float64, an all-ones input; score = sum |theta * dR/dtheta|
  over the convolution and linear weights, R = sum of the outputs.
- `jacob_cov` (Mellor et al., 2020 preprint v1): eigenvalues e of the correlation matrix of the per-image
  input Jacobians of the summed outputs; score = -sum(log(e + k) + 1/(e + k)), k = 1e-5. No labels.
- `snip` and `grad_norm` use labels (a cross-entropy loss on one labelled batch) and are baselines, not
  label-free proxies: sum |g * w| and sum of per-layer gradient norms over convolution and linear weights.
"""

from __future__ import annotations

import copy
from typing import Callable, ClassVar, Iterator

import torch
from torch import nn

from study.data import ImageData
from study.objectives.base import Objective, ObjectiveError, register_objective

JACOB_EPS = 1e-5  # the k of Mellor et al.'s first version of the Jacobian score


def weighted_layers(model: nn.Module) -> Iterator[nn.Module]:
    """The convolution and linear layers, whose weights the pruning-based scores sum over."""
    return (m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear)))


def relu_kernel(model: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
    """K = N_A - d_H of the ReLU codes of a batch (B, B), float64; every nn.ReLU call contributes.

    One forward pass with a pre-hook on every nn.ReLU. Per hook, with codes c (B, n) in {0, 1},
    c c^T counts shared actives, (1 - c)(1 - c)^T shared inactives = n - s_i - s_j + c c^T (s: row
    sums), so K gets 2 c c^T - s_i - s_j + n and no (B, N_A) matrix of all codes is kept.
    """
    b = inputs.shape[0]
    kernel = torch.zeros(b, b, dtype=torch.float64, device=inputs.device)

    def hook(module: nn.Module, args: tuple) -> None:
        codes = (args[0].detach() > 0).reshape(b, -1).float()  # (B, n): the unit's input, before an in-place ReLU
        shared = (codes @ codes.T).double()  # exact: n < 2^24 units per ReLU
        active = codes.sum(1, dtype=torch.float64)  # (B,)
        kernel.add_(2 * shared - active[:, None] - active[None, :] + codes.shape[1])

    handles = [m.register_forward_pre_hook(hook) for m in model.modules() if isinstance(m, nn.ReLU)]
    try:
        with torch.no_grad():
            model(inputs)
    finally:
        for h in handles:
            h.remove()
    return kernel


def naswot(model: nn.Module, inputs: torch.Tensor) -> float:
    """log|det K| of the ReLU-code kernel of a batch; -inf when two images share every code (K singular)."""
    model.train()
    return torch.linalg.slogdet(relu_kernel(model, inputs)).logabsdet.item()


def synflow(model: nn.Module, input_shape: tuple[int, ...]) -> float:
    """sum |theta * dR/dtheta| over conv/linear weights of |model| without BN, float64, all-ones input."""
    net = copy.deepcopy(model).double()  # the caller's network keeps its signs, dtype and BN
    for name, module in list(net.named_modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, nn.modules.batchnorm._BatchNorm):
                setattr(module, child_name, nn.Identity())
            elif isinstance(child, nn.ReLU):  # without its BN, an in-place ReLU would write into a view
                child.inplace = False
    with torch.no_grad():
        for p in net.parameters():
            p.abs_()
    net.zero_grad()
    out = net(torch.ones(1, *input_shape, dtype=torch.float64, device=next(net.parameters()).device))
    out.sum().backward()
    with torch.no_grad():
        return float(sum((m.weight * m.weight.grad).abs().sum() for m in weighted_layers(net)
                         if m.weight.grad is not None))


def jacob_cov(model: nn.Module, inputs: torch.Tensor, eps: float = JACOB_EPS) -> float:
    """-sum(log(e + eps) + 1/(e + eps)) over eigenvalues e of the correlation of per-image input Jacobians."""
    model.train()
    x = inputs.detach().clone().requires_grad_(True)
    model.zero_grad()
    model(x).sum().backward()
    jac = x.grad.reshape(x.shape[0], -1).double()  # (B, D): row i is d(sum of outputs of image i)/d(image i)
    corr = torch.corrcoef(jac)  # (B, B)
    eig = torch.linalg.eigvalsh(corr)
    return -float(torch.sum(torch.log(eig + eps) + 1.0 / (eig + eps)))


def labelled_grads(model: nn.Module, inputs: torch.Tensor, labels: torch.Tensor) -> list[nn.Module]:
    """Backpropagate the cross-entropy of a labelled batch; returns the conv/linear layers with gradients."""
    model.train()
    model.zero_grad()
    nn.functional.cross_entropy(model(inputs), labels).backward()
    return [m for m in weighted_layers(model) if m.weight.grad is not None]


def snip(model: nn.Module, inputs: torch.Tensor, labels: torch.Tensor) -> float:
    """sum |g * w| over conv/linear weights (connection sensitivity, Lee et al. 2019), labels needed."""
    layers = labelled_grads(model, inputs, labels)
    with torch.no_grad():
        return float(sum((m.weight.grad * m.weight).abs().sum() for m in layers))


def grad_norm(model: nn.Module, inputs: torch.Tensor, labels: torch.Tensor) -> float:
    """Sum over conv/linear layers of the L2 norm of the weight gradient, labels needed."""
    return float(sum(m.weight.grad.norm() for m in labelled_grads(model, inputs, labels)))


class ScoringObjective(Objective):
    """A training-free objective: no head of its own (the supervised network), no trainer, one score.

    `batch_size` images of the training set, chosen by the run's generator, are scored (None: the
    budget's batch size); `fused = False` asks for the per-edge cell, whose ReLUs are modules.
    """

    trains: ClassVar[bool] = False
    fused: ClassVar[bool] = True
    needs_data: ClassVar[bool] = True

    def __init__(self, data: ImageData, crop_padding: int = 4, batch_size: int | None = 128) -> None:
        super().__init__(data, crop_padding)
        if data.streams and self.needs_data:
            raise ObjectiveError(f"{self.name} scores a batch of an in-memory dataset; dataset {data.name!r} "
                                 "streams (scoring streamed images is not supported yet): score on dataset=cifar10 "
                                 "or imagefolder")
        if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int)
                                       or batch_size < 2):
            raise ObjectiveError(f"{self.name}: objective.batch_size must be an integer >= 2 or null (the "
                                 f"budget's), got {batch_size!r}")
        self.batch_size = batch_size

    def batch(self, gen: torch.Generator, default: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised training images (B, C, H, W) and labels (B,), chosen by `gen`, no augmentation."""
        n = self.data.train_x.shape[0]
        size = min(self.batch_size or default, n)
        idx = torch.randperm(n, generator=gen, device=gen.device)[:size].to(self.data.train_x.device)
        return self.normalize(self.data.train_x[idx]), self.data.train_y[idx]

    # The score of a model on one batch: measure(model, images, labels) where the objective uses labels,
    # measure(model, images) otherwise (set as staticmethod(fn)); objectives scoring otherwise override score().
    measure: ClassVar[Callable[..., float] | None] = None

    def score(self, model: nn.Module, gen: torch.Generator, default_batch: int) -> float:
        """The objective's score of an untrained `model` (higher = better predicted architecture)."""
        return self.of_module(model, *self.batch(gen, default_batch), gen=gen)

    @classmethod
    def of_module(cls, model: nn.Module, inputs: torch.Tensor, labels: torch.Tensor | None = None,
                  gen: torch.Generator | None = None) -> float:
        """The score of any module on a batch of normalised inputs (B, C, H, W), with their labels where the
        score uses them; `gen` draws what a score draws (zen). What `score` computes on a study's batch."""
        if cls.measure is None:
            raise NotImplementedError(f"{cls.__name__} sets neither measure nor of_module()")
        if not cls.uses_labels:
            return cls.measure(model, inputs)
        if labels is None:
            raise ValueError(f"{cls.name} uses labels: pass the batch's labels")
        return cls.measure(model, inputs, labels)

    def train_batch(self, images, labels, gen):
        raise TypeError(f"{self.name} is training-free; it scores networks with score()")

    test_batch = train_batch


@register_objective
class NASWOT(ScoringObjective):
    """log|det| of the ReLU-code kernel of one unlabelled batch (Mellor et al., ICML 2021)."""

    name = "naswot"
    fused = False  # the per-edge cell applies one nn.ReLU per conv edge, as the reference network does
    measure = staticmethod(naswot)


@register_objective
class SynFlow(ScoringObjective):
    """Synaptic flow of the absolute-valued network on an all-ones input; uses no data."""

    name = "synflow"
    score_dtype = "float64"  # its products of absolute weights overflow float32
    needs_data = False

    def score(self, model, gen, default_batch):
        return synflow(model, (self.c_in, self.data.image_size, self.data.image_size))

    @classmethod
    def of_module(cls, model, inputs, labels=None, gen=None):
        return synflow(model, tuple(inputs.shape[1:]))  # the shape of one input alone


@register_objective
class JacobCov(ScoringObjective):
    """How uncorrelated the input Jacobians of one unlabelled batch are (Mellor et al. 2020, v1)."""

    name = "jacob_cov"
    measure = staticmethod(jacob_cov)


@register_objective
class Snip(ScoringObjective):
    """Connection sensitivity on one labelled batch: a labelled baseline, not a label-free proxy."""

    name = "snip"
    uses_labels = True
    measure = staticmethod(snip)


@register_objective
class GradNorm(ScoringObjective):
    """Sum of weight-gradient norms on one labelled batch: a labelled baseline, not a label-free proxy."""

    name = "grad_norm"
    uses_labels = True
    measure = staticmethod(grad_norm)
