"""The NAS-Bench-101 network: modules with the benchmark's channel rules, and its three-stack skeleton.

Skeleton (the benchmark's CIFAR-10 network; width 128, 3 modules per stack): stem conv3x3-BN-ReLU to
`width` channels; three stacks of modules; a 2x2 max pool with stride 2 before stacks 2 and 3, whose
first module doubles the channels. Objectives attach their head to the last feature map (the benchmark's
is a global average pool and a linear layer, which `complexity` includes). The ImageNet stem
(`stem="imagenet"`, as unnas trains NAS-Bench-101 cells on ImageNet) is three conv3x3-BN-ReLU of stride 2,
to width/2, width and width channels (unnas: 64, 128, 128), so the modules start at 1/8 of the input.

Inside a module (the benchmark's `build_module`): the output channels are split as evenly as possible
among the vertices that feed the output (earlier vertices get the remainder, one channel each); any other
vertex takes the largest channel count among the vertices it feeds. A vertex sums its inputs: edges from
the module input go through their own 1x1 conv-BN-ReLU projection to the vertex's channels, edges from
other vertices pass through, cut to the first channels when the source has one more. The output
concatenates the vertices feeding it and adds a projection of the module input when an input -> output
edge exists (a module with no interior vertex is that projection alone). Convolutions have no bias; BN
has a scale and a shift, as TensorFlow's batch normalisation in the benchmark, so the trainable parameter
count equals the benchmark's `trainable_parameters`.
"""

from __future__ import annotations

import torch
from torch import nn

from study.spaces.nb101.cell import NB101Cell

KERNEL = {"conv3x3-bn-relu": 3, "conv1x1-bn-relu": 1}


def vertex_channels(c_in: int, c_out: int, matrix: tuple[tuple[int, ...], ...]) -> list[int]:
    """Channels of every vertex of a pruned module, as the benchmark assigns them (see module doc)."""
    n = len(matrix)
    channels = [0] * n
    channels[0], channels[-1] = c_in, c_out
    if n == 2:
        return channels
    fan_in = sum(matrix[v][n - 1] for v in range(1, n - 1))  # the input's own edge is added, not concatenated
    share, extra = divmod(c_out, fan_in)
    for v in range(1, n - 1):
        if matrix[v][n - 1]:
            channels[v] = share + (1 if extra > 0 else 0)
            extra -= 1
    for v in range(n - 3, 0, -1):  # backwards, so every vertex a vertex feeds is already set
        if not matrix[v][n - 1]:
            channels[v] = max(channels[w] for w in range(v + 1, n - 1) if matrix[v][w])
    return channels


class ConvBNReLU(nn.Sequential):
    """Conv (no bias, 'same' padding) -> BN -> ReLU, the benchmark's conv op and projection."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1) -> None:
        super().__init__(
            nn.Conv2d(c_in, c_out, kernel, stride, padding=kernel // 2, bias=False),
            nn.BatchNorm2d(c_out),
            nn.ReLU(inplace=True),
        )


def make_op(name: str, channels: int) -> nn.Module:
    """The op of an interior vertex (channels preserved, stride 1)."""
    if name in KERNEL:
        return ConvBNReLU(channels, channels, KERNEL[name])
    if name == "maxpool3x3":
        return nn.MaxPool2d(3, stride=1, padding=1)
    raise ValueError(f"unknown NAS-Bench-101 operation {name!r}")


class Module(nn.Module):
    """One NAS-Bench-101 module on a pruned cell, from `c_in` to `c_out` channels."""

    def __init__(self, cell: NB101Cell, c_in: int, c_out: int) -> None:
        super().__init__()
        if cell.pruned() is not cell:
            raise ValueError("build modules from a pruned cell")
        self.matrix = cell.matrix
        self.n = len(cell.matrix)
        self.channels = vertex_channels(c_in, c_out, cell.matrix)
        # Keys are vertex numbers as strings; ModuleDict keeps them importable by state_dict.
        self.ops = nn.ModuleDict({str(t): make_op(cell.ops[t], self.channels[t]) for t in range(1, self.n - 1)})
        self.proj = nn.ModuleDict({
            str(t): ConvBNReLU(c_in, self.channels[t], 1) for t in range(1, self.n) if cell.matrix[0][t]
        })
        self.to_output = [t for t in range(1, self.n - 1) if cell.matrix[t][self.n - 1]]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        values: list[torch.Tensor] = [x]
        for t in range(1, self.n - 1):
            terms = [values[s][:, :self.channels[t]] for s in range(1, t) if self.matrix[s][t]]
            if self.matrix[0][t]:
                terms.append(self.proj[str(t)](x))
            values.append(self.ops[str(t)](sum(terms[1:], terms[0])))  # (B, channels[t], H, W)
        if not self.to_output:  # input -> output only
            return self.proj[str(self.n - 1)](x)
        outs = [values[t] for t in self.to_output]
        out = torch.cat(outs, dim=1) if len(outs) > 1 else outs[0]
        if self.matrix[0][self.n - 1]:
            out = out + self.proj[str(self.n - 1)](x)
        return out  # (B, c_out, H, W)


class Backbone(nn.Module):
    """Stem and three stacks of modules with max-pool downsampling; returns the last feature map."""

    def __init__(self, cell: NB101Cell, c_in: int, width: int, cells_per_stage: int, stem: str = "cifar") -> None:
        super().__init__()
        cell = cell.pruned()
        if stem == "imagenet":
            self.stem = nn.Sequential(*(ConvBNReLU(a, b, 3, stride=2) for a, b in _imagenet_stem(c_in, width)))
        else:
            self.stem = ConvBNReLU(c_in, width, 3)
        layers: list[nn.Module] = []
        c = width
        for stack in range(3):
            c_next = c
            if stack > 0:
                # ceil_mode: TensorFlow's 'same' pooling, so odd sizes round up as in the benchmark.
                layers.append(nn.MaxPool2d(2, stride=2, ceil_mode=True))
                c_next = 2 * c
            for _ in range(cells_per_stage):
                layers.append(Module(cell, c, c_next))
                c = c_next
        self.layers = nn.Sequential(*layers)
        self.c_out = c

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(self.stem(x))  # (B, 4*width, ceil(H/4), ceil(W/4)); ImageNet stem: ceil(H/32)


def _imagenet_stem(c_in: int, width: int) -> list[tuple[int, int]]:
    """(c_in, c_out) of the ImageNet stem's three stride-2 convolutions."""
    return [(c_in, width // 2), (width // 2, width), (width, width)]


def module_cost(cell: NB101Cell, c_in: int, c_out: int) -> tuple[int, int]:
    """Parameters and multiply-accumulates per output pixel of one module on a pruned cell."""
    n = len(cell.matrix)
    ch = vertex_channels(c_in, c_out, cell.matrix)
    params = macs = 0
    for t in range(1, n):
        if cell.matrix[0][t]:  # projection 1x1 conv + BN
            params += c_in * ch[t] + 2 * ch[t]
            macs += c_in * ch[t]
        if t < n - 1 and cell.ops[t] in KERNEL:
            k = KERNEL[cell.ops[t]]
            params += k * k * ch[t] * ch[t] + 2 * ch[t]
            macs += k * k * ch[t] * ch[t]
    return params, macs


def complexity(cell: NB101Cell, c_in: int, image_size: int, width: int, cells_per_stage: int,
               n_classes: int, stem: str = "cifar") -> tuple[int, int]:
    """Parameters and MACs per image of Backbone + global pool + linear, without building it."""
    cell = cell.pruned()
    size, c = image_size, width
    if stem == "imagenet":
        params = macs = 0
        for a, b in _imagenet_stem(c_in, width):
            size = (size + 1) // 2
            params, macs = params + 9 * a * b + 2 * b, macs + size * size * 9 * a * b
    else:
        params = 9 * c_in * width + 2 * width
        macs = size * size * 9 * c_in * width
    for stack in range(3):
        c_next = c
        if stack > 0:
            size, c_next = (size + 1) // 2, 2 * c
        for _ in range(cells_per_stage):
            p, m = module_cost(cell, c, c_next)
            params, macs, c = params + p, macs + size * size * m, c_next
    return params + c * n_classes + n_classes, macs + c * n_classes
