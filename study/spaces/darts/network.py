"""The DARTS networks as the unnas sample-based experiments train them: ops, cells and skeletons.

CIFAR skeleton (DARTS' NetworkCIFAR without the auxiliary head and drop-path): stem conv3x3 to 3C + BN; then
`cells_per_stage` normal cells, a reduction cell, `cells_per_stage` normal cells, a reduction cell,
`cells_per_stage` normal cells (DARTS' 20 layers with reductions at 1/3 and 2/3 of the depth are
cells_per_stage = 6). A reduction cell doubles the channels and halves the resolution (stride 2 on the
edges that read the cell's inputs). Every cell first maps its two inputs (the outputs of the two previous
cells) to C channels: ReLU-conv1x1-BN, or a FactorizedReduce when the older input is still at the
resolution before a reduction. A cell outputs its 4 nodes concatenated (4C channels). Objectives attach
their head to the last feature map; the DARTS head (global average pool + linear) is what `complexity`
includes. With it the parameter count equals the reference implementation's.

ImageNet skeleton (`stem="imagenet"`, DARTS' NetworkImageNet as unnas trains it on ImageNet): the first
stem is conv3x3 stride 2 to C/2, BN, ReLU, conv3x3 stride 2 to C, BN; the second ReLU, conv3x3 stride 2, BN,
so the cells start at 1/8 of the input, with C channels in both inputs, the older one (the first stem's
output) reduced by a FactorizedReduce. `depth` cells in all, reductions at cells depth // 3 and
2 * depth // 3 (unnas: C=32, depth 22: 7 normal, reduction, 6 normal, reduction, 7 normal). `depth=0` is
3 * cells_per_stage + 2, the CIFAR rule, which the same formula gives.

Ops as in DARTS: pools without BN (avg excludes padding), skip_connect is the identity or, with stride 2,
a FactorizedReduce; sep_conv is ReLU-depthwise-pointwise-BN twice; dil_conv is one ReLU-depthwise
(dilation 2)-pointwise-BN; convs have no bias; `none` is an exact zero, left out of the sum.
"""

from __future__ import annotations

import torch
from torch import nn

from study.spaces.darts.cell import DartsCell, Nodes

STEM_MULTIPLIER = 3
SEP = {"sep_conv_3x3": 3, "sep_conv_5x5": 5}
DIL = {"dil_conv_3x3": 3, "dil_conv_5x5": 5}


class ReLUConvBN(nn.Sequential):
    """ReLU -> Conv (no bias) -> BN."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1, affine: bool = True) -> None:
        super().__init__(nn.ReLU(inplace=False), nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, bias=False),
                         nn.BatchNorm2d(c_out, affine=affine))


class DilConv(nn.Sequential):
    """ReLU -> depthwise conv (dilation) -> pointwise conv -> BN."""

    def __init__(self, c: int, kernel: int, stride: int, dilation: int, affine: bool = True) -> None:
        pad = dilation * (kernel - 1) // 2
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c, c, kernel, stride, pad, dilation=dilation, groups=c, bias=False),
            nn.Conv2d(c, c, 1, bias=False),
            nn.BatchNorm2d(c, affine=affine),
        )


class SepConv(nn.Sequential):
    """Two stacked ReLU -> depthwise -> pointwise -> BN; only the first may have stride 2."""

    def __init__(self, c: int, kernel: int, stride: int, affine: bool = True) -> None:
        super().__init__(*DilConv(c, kernel, stride, 1, affine), *DilConv(c, kernel, 1, 1, affine))


class FactorizedReduce(nn.Module):
    """Halve the resolution with two stride-2 1x1 convs on pixel grids offset by one, concatenated, + BN."""

    def __init__(self, c_in: int, c_out: int, affine: bool = True) -> None:
        super().__init__()
        if c_out % 2:
            raise ValueError(f"FactorizedReduce needs an even number of output channels, got {c_out}")
        self.conv_1 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.conv_2 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.bn = nn.BatchNorm2d(c_out, affine=affine)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(x)
        shifted = x[:, :, 1:, 1:]
        if x.shape[-1] % 2 or x.shape[-2] % 2:
            # Odd sizes (where the reference fails): pad the shifted grid so both halves are ceil(H/2).
            shifted = nn.functional.pad(shifted, (0, x.shape[-1] % 2, 0, x.shape[-2] % 2))
        return self.bn(torch.cat([self.conv_1(x), self.conv_2(shifted)], dim=1))  # (B, c_out, H/2, W/2)


def make_op(name: str, c: int, stride: int, affine: bool = True) -> nn.Module | None:
    """One edge op on c channels; None for `none` (an exact zero). `affine=False`: BN without a learned
    scale and shift, as in a supernet's edges."""
    if name == "none":
        return None
    if name == "skip_connect":
        return nn.Identity() if stride == 1 else FactorizedReduce(c, c, affine)
    if name == "max_pool_3x3":
        return nn.MaxPool2d(3, stride, padding=1)
    if name == "avg_pool_3x3":
        return nn.AvgPool2d(3, stride, padding=1, count_include_pad=False)
    if name in SEP:
        return SepConv(c, SEP[name], stride, affine)
    if name in DIL:
        return DilConv(c, DIL[name], stride, 2, affine)
    raise ValueError(f"unknown DARTS operation {name!r}")


class Cell(nn.Module):
    """One DARTS cell: preprocess both inputs to c channels, 4 nodes summing two edges, concatenate."""

    def __init__(self, nodes: Nodes, c_pp: int, c_p: int, c: int, reduction: bool, reduction_prev: bool) -> None:
        super().__init__()
        self.pre0 = FactorizedReduce(c_pp, c) if reduction_prev else ReLUConvBN(c_pp, c, 1)
        self.pre1 = ReLUConvBN(c_p, c, 1)
        self.reduction, self.c = reduction, c
        self.ops = nn.ModuleDict()
        self.edges: list[list[tuple[int, str]]] = []  # per node: (input, op key) of its non-none edges
        for k, node in enumerate(nodes):
            kept = []
            for e, (name, src) in enumerate(node):
                op = make_op(name, c, 2 if reduction and src < 2 else 1)
                if op is not None:
                    self.ops[f"{k}_{e}"] = op
                    kept.append((src, f"{k}_{e}"))
            self.edges.append(kept)
        self.c_out = len(nodes) * c

    def forward(self, s0: torch.Tensor, s1: torch.Tensor) -> torch.Tensor:
        states = [self.pre0(s0), self.pre1(s1)]  # (B, c, H, W) each
        for kept in self.edges:
            terms = [self.ops[key](states[src]) for src, key in kept]
            if not terms:  # both edges `none`
                h, w = states[1].shape[-2:]
                size = ((h + 1) // 2, (w + 1) // 2) if self.reduction else (h, w)
                terms = [states[1].new_zeros(states[1].shape[0], self.c, *size)]
            states.append(sum(terms[1:], terms[0]))
        return torch.cat(states[2:], dim=1)  # (B, 4c, H', W')


def cell_count(cells_per_stage: int, depth: int = 0) -> int:
    """Cells in all: `depth`, or 3 * cells_per_stage + 2 (k normal, reduction, k normal, reduction, k normal)."""
    return depth or 3 * cells_per_stage + 2


def layout(cells: int) -> list[bool]:
    """Which of `cells` cells reduce: cells // 3 and 2 * cells // 3 (DARTS' rule)."""
    return [i in (cells // 3, 2 * cells // 3) for i in range(cells)]


class CifarStem(nn.Sequential):
    """conv3x3 to 3C + BN; both inputs of the first cell are its output."""

    def __init__(self, c_in: int, width: int) -> None:
        c_stem = STEM_MULTIPLIER * width
        super().__init__(nn.Conv2d(c_in, c_stem, 3, padding=1, bias=False), nn.BatchNorm2d(c_stem))
        self.c_out = c_stem

    def pair(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The first cell's two inputs."""
        s = self(x)  # (B, 3C, H, W)
        return s, s


class ImageNetStem(nn.Module):
    """Three stride-2 conv3x3 (to C/2, C, C); the first cell reads the outputs after the second and third."""

    def __init__(self, c_in: int, width: int) -> None:
        super().__init__()
        half = width // 2
        self.stem0 = nn.Sequential(nn.Conv2d(c_in, half, 3, 2, 1, bias=False), nn.BatchNorm2d(half), nn.ReLU(),
                                   nn.Conv2d(half, width, 3, 2, 1, bias=False), nn.BatchNorm2d(width))
        self.stem1 = nn.Sequential(nn.ReLU(), nn.Conv2d(width, width, 3, 2, 1, bias=False), nn.BatchNorm2d(width))
        self.c_out = width

    def pair(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The first cell's two inputs: at 1/4 and 1/8 of the input."""
        s0 = self.stem0(x)  # (B, C, H/4, W/4)
        return s0, self.stem1(s0)  # (B, C, H/8, W/8)


class Backbone(nn.Module):
    """Stem and the DARTS stack of normal and reduction cells; returns the last cell's output."""

    def __init__(self, cell: DartsCell, c_in: int, width: int, cells_per_stage: int, stem: str = "cifar",
                 depth: int = 0) -> None:
        super().__init__()
        self.stem = ImageNetStem(c_in, width) if stem == "imagenet" else CifarStem(c_in, width)
        c_pp = c_p = self.stem.c_out
        c = width
        self.cells = nn.ModuleList()
        reduction_prev = stem == "imagenet"  # the ImageNet stem's older output is at twice the resolution
        cells = cell_count(cells_per_stage, depth)
        self.aux_at = 2 * cells // 3  # DARTS' auxiliary head reads the output of this cell (the second reduction)
        self.aux_imagenet = stem == "imagenet"
        for i, reduction in enumerate(layout(cells)):
            c = 2 * c if reduction else c
            block = Cell(cell.reduce if reduction else cell.normal, c_pp, c_p, c, reduction, reduction_prev)
            self.cells.append(block)
            c_pp, c_p, reduction_prev = c_p, block.c_out, reduction
            if i == self.aux_at:
                self.aux_c_out = c_p
        self.c_out = c_p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_aux(x)[0]  # (B, 16C, H/4, W/4) (CIFAR stem), (B, 16C, H/32, W/32) (ImageNet stem)

    def forward_aux(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The last feature map and the one the auxiliary head reads (after cell `aux_at`)."""
        s0, s1 = self.stem.pair(x)
        aux = s1
        for i, cell in enumerate(self.cells):
            s0, s1 = s1, cell(s0, s1)
            if i == self.aux_at:
                aux = s1  # (B, 4 * 4C, H', W')
        return s1, aux


def _edge_cost(name: str, c: int, stride: int) -> tuple[int, int]:
    """Parameters and MACs per output pixel of one edge op."""
    if name in SEP:
        k = SEP[name]
        return 2 * (k * k * c + c * c + 2 * c), 2 * (k * k * c + c * c)
    if name in DIL:
        k = DIL[name]
        return k * k * c + c * c + 2 * c, k * k * c + c * c
    if name == "skip_connect" and stride == 2:
        return c * c + 2 * c, c * c
    return 0, 0  # none, identity, pools


def _stem_cost(c_in: int, image_size: int, width: int, stem: str) -> tuple[int, int, int, int]:
    """Params and MACs of the stem, the channels of its outputs and the resolution the cells start at."""
    if stem != "imagenet":
        c_stem = STEM_MULTIPLIER * width
        return 9 * c_in * c_stem + 2 * c_stem, image_size * image_size * 9 * c_in * c_stem, c_stem, image_size
    params = macs = 0
    size = image_size
    for a, b in ((c_in, width // 2), (width // 2, width), (width, width)):  # three stride-2 conv3x3 + BN
        size = (size + 1) // 2
        params, macs = params + 9 * a * b + 2 * b, macs + size * size * 9 * a * b
    return params, macs, width, size


def complexity(cell: DartsCell, c_in: int, image_size: int, width: int, cells_per_stage: int,
               n_classes: int, stem: str = "cifar", depth: int = 0) -> tuple[int, int]:
    """Parameters and MACs per image of Backbone + global pool + linear, without building it."""
    params, macs, c_stem, size = _stem_cost(c_in, image_size, width, stem)
    c_pp, c_p, c = c_stem, c_stem, width
    for reduction in layout(cell_count(cells_per_stage, depth)):
        c = 2 * c if reduction else c
        # Both preprocessings output c channels at the resolution of the previous cell's output (a
        # FactorizedReduce of the older input costs what a 1x1 conv at that resolution does).
        params += c_pp * c + 2 * c + c_p * c + 2 * c
        macs += size * size * (c_pp * c + c_p * c)
        out = (size + 1) // 2 if reduction else size
        for node in (cell.reduce if reduction else cell.normal):
            for name, src in node:
                p, m = _edge_cost(name, c, 2 if reduction and src < 2 else 1)
                params, macs = params + p, macs + out * out * m
        c_pp, c_p, size = c_p, 4 * c, out
    return params + c_p * n_classes + n_classes, macs + c_p * n_classes
