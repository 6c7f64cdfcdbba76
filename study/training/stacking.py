"""K networks of one architecture as one network: every layer holds the K models side by side.

Model k owns channels [k*c, (k+1)*c) of every feature map. A convolution becomes one grouped convolution
with K times the groups (model k's filters see only model k's channels), a BatchNorm normalises each
channel over the batch as before (so each model's statistics come from its own images), a linear layer
becomes K linears in one batched matmul, and parameterless layers (ReLU, pooling by channel, sums of
feature maps) act per channel anyway. The stacked network therefore computes exactly what the K networks
compute alone, with K times wider kernels: fewer, larger calls, which is what small networks lack on both
CPUs and GPUs (benchmarks/throughput.py --fused).

A module may take part only if its forward treats channels independently: no concatenation, split or
reshape along the channel dimension. Such modules say so with `stackable = True`; torch's containers,
activations, convolutions, BN and linears are known here. A module that cuts or mixes channel blocks
(the NAS-Bench-201 `FusedCell`) or holds constant buffers sized by its channels (`BoxPool`) provides its
own K-model version through `stacked(k)`, whose tensors keep their names with model m's rows as the m-th
block; everything else is refused with `NotStackable`, and the caller trains alone.

The stacked network keeps a map from each of its tensors to the slices of the K models' own state dicts,
so a model's weights, BN statistics and optimiser state can be read out in the layout it has alone (its
checkpoints and records are the same files a run alone writes) and loaded back.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn


class NotStackable(TypeError):
    """A module whose forward mixes channels (or is unknown here), so K copies cannot share one network."""


class StackedLinear(nn.Module):
    """K linear layers (in -> out each) applied to (B, K*in) features as one batched matmul -> (B, K*out).

    Weight rows [k*out, (k+1)*out) and bias entries are model k's, like the stacked convolutions.
    """

    stackable = True

    def __init__(self, k: int, in_features: int, out_features: int, bias: bool = True) -> None:
        super().__init__()
        self.k, self.in_features, self.out_features = k, in_features, out_features
        self.weight = nn.Parameter(torch.empty(k * out_features, in_features))
        self.bias = nn.Parameter(torch.empty(k * out_features)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        xs = x.reshape(b, self.k, self.in_features).transpose(0, 1)  # (K, B, in)
        w = self.weight.view(self.k, self.out_features, self.in_features).transpose(1, 2)  # (K, in, out)
        if self.bias is None:
            out = torch.bmm(xs, w)
        else:
            out = torch.baddbmm(self.bias.view(self.k, 1, self.out_features), xs, w)  # (K, B, out)
        return out.transpose(0, 1).reshape(b, self.k * self.out_features)


_PARAMETERLESS = (nn.ReLU, nn.Identity, nn.Dropout, nn.Flatten)
_CONTAINERS = (nn.Sequential, nn.ModuleDict, nn.ModuleList)


@dataclass(frozen=True)
class Piece:
    """Rows of one stacked tensor that hold one model's tensor of the same name (dim 0; None: a shared counter)."""

    name: str
    model: int
    rows: tuple[int, int] | None


def _rows(t: torch.Tensor, rows: tuple[int, int] | None) -> torch.Tensor:
    return t if rows is None else t[rows[0]:rows[1]]


def _stack_module(mods: list[nn.Module]) -> nn.Module:
    """One module computing the K modules `mods` (same class and shapes) side by side."""
    first, k = mods[0], len(mods)
    if isinstance(first, nn.Conv2d):
        if first.padding_mode != "zeros":
            raise NotStackable(f"a convolution with padding_mode={first.padding_mode!r}")
        conv = nn.Conv2d(k * first.in_channels, k * first.out_channels, first.kernel_size, first.stride,
                         first.padding, first.dilation, k * first.groups, first.bias is not None)
        return conv.to(first.weight.device, first.weight.dtype)
    if isinstance(first, (nn.BatchNorm1d, nn.BatchNorm2d)):
        bn = type(first)(k * first.num_features, first.eps, first.momentum, first.affine, first.track_running_stats)
        ref = first.running_mean if first.running_mean is not None else first.weight
        return bn.to(ref.device, ref.dtype) if ref is not None else bn
    if isinstance(first, nn.Linear):
        lin = StackedLinear(k, first.in_features, first.out_features, first.bias is not None)
        return lin.to(first.weight.device, first.weight.dtype)
    if isinstance(first, _PARAMETERLESS):
        return copy.deepcopy(first)
    if hasattr(first, "stacked"):  # a module with its own rule (e.g. constant buffers sized by channels)
        return first.stacked(k)
    if isinstance(first, _CONTAINERS) or getattr(first, "stackable", False):
        if first._parameters or first._buffers:
            raise NotStackable(f"{type(first).__name__} holds its own tensors; it needs a stacking rule")
        stacked = copy.copy(first)
        stacked._parameters, stacked._buffers = {}, {}
        stacked._modules = {name: _stack_module([m._modules[name] for m in mods]) for name in first._modules}
        return stacked
    raise NotStackable(f"{type(first).__name__} is not known to act on each channel alone")


class Stacked(nn.Module):
    """K models of one architecture trained as one network (see the module doc).

    Inputs are the K models' inputs stacked on the channel dimension, (B, K*C, ...), one batch of B per
    model; `split` turns the output (B, K*n, ...) into the K models' outputs (B, n, ...).
    """

    def __init__(self, models: list[nn.Module]) -> None:
        super().__init__()
        if not models:
            raise ValueError("stacking needs at least one model")
        self.k = len(models)
        with torch.random.fork_rng(devices=[]):  # building the stacked layers draws initial weights: no trace
            self.net = _stack_module(list(models))
        self._template = {key: (t.shape, t.dtype) for key, t in models[0].state_dict().items()}
        self._param_order = [name for name, _ in models[0].named_parameters()]
        own = self.net.state_dict()
        pieces: list[Piece] = []
        for key, tensor in models[0].state_dict().items():
            if key not in own or own[key].dim() != tensor.dim():
                raise NotStackable(f"no stacked tensor for {key}")
            for m in range(self.k):
                if tensor.dim() == 0:  # a counter (num_batches_tracked): shared, equal for every model
                    pieces.append(Piece(key, m, None))
                else:
                    n = tensor.shape[0]
                    pieces.append(Piece(key, m, (m * n, (m + 1) * n)))
        self.pieces = pieces
        for m, model in enumerate(models):
            self.load_model(m, model.state_dict())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def split(self, out: torch.Tensor) -> list[torch.Tensor]:
        """The K models' outputs (each (B, n, ...)) from the stacked output (B, K*n, ...)."""
        return list(out.unflatten(1, (self.k, -1)).unbind(1))

    @torch.no_grad()
    def load_model(self, m: int, state: dict[str, torch.Tensor]) -> None:
        """Put model `m`'s own state dict (its layout alone) into its slices."""
        own = self.net.state_dict(keep_vars=True)
        for p in self.pieces:
            if p.model == m:
                target = own[p.name]
                target = target.data if isinstance(target, nn.Parameter) else target
                _rows(target, p.rows).copy_(state[p.name])

    @torch.no_grad()
    def model_state(self, m: int) -> dict[str, torch.Tensor]:
        """Model `m`'s state dict in its layout alone (fresh tensors; what its checkpoint holds)."""
        own = self.net.state_dict()
        out = {key: torch.empty(shape, dtype=dtype, device=self._device()) for key, (shape, dtype) in self._template.items()}
        for p in self.pieces:
            if p.model == m:
                out[p.name].copy_(_rows(own[p.name], p.rows))
        return out

    @torch.no_grad()
    def clear_model(self, m: int, opt: torch.optim.Optimizer | None = None) -> None:
        """Zero model `m`'s parameters, momentum and BN statistics (variance 1): a diverged model's NaNs go.

        Its slices then compute zeros; with its loss left out they receive no gradient and stay zero.
        """
        own = self.net.state_dict(keep_vars=True)
        for p in self.pieces:
            if p.model == m and p.rows is not None:
                target = own[p.name]
                if isinstance(target, nn.Parameter):
                    buf = opt.state.get(target, {}).get("momentum_buffer") if opt is not None else None
                    if buf is not None:
                        _rows(buf, p.rows).zero_()
                    target = target.data
                _rows(target, p.rows).fill_(1.0 if p.name.endswith("running_var") else 0.0)

    def _device(self) -> torch.device:
        return next(iter(self.net.state_dict().values())).device

    # Optimiser state (SGD's momentum buffers) moves between the layouts the same way as the parameters.
    def _param_pieces(self, m: int) -> list[Piece]:
        names = {n for n, _ in self.net.named_parameters()}
        return [p for p in self.pieces if p.model == m and p.name in names]

    @torch.no_grad()
    def model_optimizer_state(self, opt: torch.optim.Optimizer, m: int) -> dict[str, Any]:
        """Model `m`'s optimiser state dict as its optimiser alone would hold it (SGD: momentum buffers)."""
        params = dict(self.net.named_parameters())
        index = {name: i for i, name in enumerate(self._param_order)}
        state: dict[int, dict[str, Any]] = {}
        for p in self._param_pieces(m):
            buf = opt.state.get(params[p.name], {}).get("momentum_buffer")
            if buf is not None:
                state[index[p.name]] = {"momentum_buffer": _rows(buf, p.rows).clone()}
        groups = [{**{k: v for k, v in g.items() if k != "params"}, "params": list(range(len(self._param_order)))}
                  for g in opt.state_dict()["param_groups"]]
        return {"state": state, "param_groups": groups}

    @torch.no_grad()
    def load_model_optimizer_state(self, opt: torch.optim.Optimizer, m: int, saved: dict[str, Any]) -> None:
        """Put model `m`'s optimiser state (its layout alone) into the stacked optimiser's buffers."""
        params = dict(self.net.named_parameters())
        index = {name: i for i, name in enumerate(self._param_order)}
        for p in self._param_pieces(m):
            entry = saved["state"].get(index[p.name]) or saved["state"].get(str(index[p.name]))
            if not entry or entry.get("momentum_buffer") is None:
                continue
            param = params[p.name]
            buf = opt.state.setdefault(param, {}).get("momentum_buffer")
            if buf is None:
                buf = opt.state[param]["momentum_buffer"] = torch.zeros_like(param)
            _rows(buf, p.rows).copy_(entry["momentum_buffer"])
