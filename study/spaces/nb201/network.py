"""The NAS-Bench-201 network: operations, cell, and the residual skeleton (trunk without a head).

Imported lazily (by `NB201Space.build`, tests and benchmarks): the space itself never needs torch.

The skeleton follows the NAS-Bench-201 paper: stem conv3x3 + BN; N cells at C channels; a residual
reduction block to 2C; N cells; a reduction to 4C; N cells; BN + ReLU. Objectives attach their own head
to the trunk's last feature map, so every objective trains the same trunk for a given cell. With the
supervised head (global pool + linear) the parameter count equals the reference implementation's.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from study.spaces.modules import PooledLinear
from study.spaces.nb201.cell import NB201Cell


class ReLUConvBN(nn.Sequential):
    """ReLU -> Conv (no bias) -> BN, the NAS-Bench-201 convolution op (`affine=False`: a supernet's edge)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1, affine: bool = True) -> None:
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2, bias=False),
            nn.BatchNorm2d(c_out, affine=affine),
        )


class BoxPool(nn.Module):
    """Average pooling that excludes padding (AvgPool2d with count_include_pad=False), computed fast.

    The same numbers as `nn.AvgPool2d` up to float rounding, but as a depthwise convolution with a
    constant all-ones kernel times the inverse count of real pixels under each window: on CPU,
    torch's avg_pool2d kernels take several times longer than a depthwise convolution forward and
    backward for the small maps here. The kernel is a non-persistent buffer, not a parameter, so
    parameter counts, state dicts and FLOP counts (which hook nn.Conv2d) are unchanged.
    """

    def __init__(self, channels: int, kernel: int, stride: int = 1, padding: int = 0) -> None:
        super().__init__()
        self.kernel, self.stride, self.padding = kernel, stride, padding
        self.register_buffer("ones", torch.ones(channels, 1, kernel, kernel), persistent=False)
        self._scale: dict[tuple, torch.Tensor] = {}

    def scale(self, x: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
        """1 / (real pixels under each window), (1, 1, H', W') in `dtype` (x's by default); cached per size,
        device and dtype."""
        dtype = x.dtype if dtype is None else dtype
        key = (x.shape[-2], x.shape[-1], x.device, dtype)
        if key not in self._scale:
            # Normal tensors even when first called under inference_mode (evaluation), so training may
            # use the cached scale in autograd afterwards.
            with torch.inference_mode(False), torch.no_grad():
                one = torch.ones(1, 1, *x.shape[-2:], device=x.device, dtype=x.dtype)
                count = nn.functional.conv2d(one, self.ones[:1].to(x.dtype), stride=self.stride, padding=self.padding)
                # Cast to the dtype asked for: under autocast the conv runs in bf16 but `reciprocal` is kept
                # in fp32, which would promote the pooled output, and every op after it, to fp32.
                self._scale[key] = count.reciprocal().to(dtype)
        return self._scale[key]

    def stacked(self, k: int) -> "BoxPool":
        """The same pooling over K models' channels side by side (study/training/stacking.py)."""
        return BoxPool(k * self.ones.shape[0], self.kernel, self.stride, self.padding).to(self.ones.device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ones = self.ones if self.ones.dtype == x.dtype else self.ones.to(x.dtype)
        total = nn.functional.conv2d(x, ones, stride=self.stride, padding=self.padding, groups=x.shape[1])
        return total * self.scale(x, total.dtype)  # (B, C, H', W') in the conv's compute dtype


def make_op(name: str, channels: int, affine: bool = True) -> nn.Module | None:
    """Build one edge operation inside a cell (stride 1, channels preserved); None for `none`.

    `affine=False` gives the convolutions BN without a learned scale and shift, as in a supernet's edges.
    """
    if name == "none":
        return None  # an exact zero: the edge is dropped from the sum
    if name == "skip_connect":
        return nn.Identity()
    if name == "nor_conv_1x1":
        return ReLUConvBN(channels, channels, 1, affine=affine)
    if name == "nor_conv_3x3":
        return ReLUConvBN(channels, channels, 3, affine=affine)
    if name == "avg_pool_3x3":
        return BoxPool(channels, 3, stride=1, padding=1)
    raise ValueError(f"unknown NAS-Bench-201 operation {name!r}")


class Cell(nn.Module):
    """A NAS-Bench-201 cell: node j sums op(i->j)(node i) over i < j; node 3 is the output."""

    stackable = True  # sums of per-channel ops: K models side by side stay apart (study/training/stacking.py)

    def __init__(self, cell: NB201Cell, channels: int) -> None:
        super().__init__()
        self.ops = nn.ModuleDict()
        self.inputs: list[list[tuple[int, str]]] = [[] for _ in range(cell.N_NODES)]
        for (src, dst), op_name in zip(cell.EDGES, cell.edges):
            op = make_op(op_name, channels)
            if op is None:
                continue
            key = f"{src}_{dst}"
            self.ops[key] = op
            self.inputs[dst].append((src, key))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nodes = [x]
        for dst in range(1, len(self.inputs)):
            terms = [self.ops[key](nodes[src]) for src, key in self.inputs[dst]]
            # A node with no inputs is an exact zero (all its edges are `none`).
            nodes.append(sum(terms[1:], terms[0]) if terms else torch.zeros_like(x))
        return nodes[-1]


class FusedCell(nn.Module):
    """The same cell computed with fewer, larger kernels: convolutions sharing a source node run as one.

    Node i's output feeds up to three edges. The reference applies ReLU-Conv-BN once per edge; here the
    ReLU of a node is computed once, and all k x k convolutions leaving it run as one convolution with
    the target edges' filters stacked along output channels, followed by one BN over the stacked
    channels. BN normalises each channel on its own, so this is exactly the per-edge computation with
    the same parameters (an edge's filters and BN affine are a slice of the group's) and the same
    parameter count; only float summation order differs. The backward pass sums the gradients of the
    stacked filters into the node in one transposed convolution instead of several plus adds. Fewer,
    wider kernels pay off most where calls are small: narrow cells, small images, CPUs.

    `models` = K computes K copies side by side (study/training/stacking.py): model m owns channels
    [m*C, (m+1)*C) of every node, each group's convolution runs with K groups (model m's rows of the
    stacked filters are its own group's, in its own order), and a target's slice is taken per model.
    """

    KERNELS = {"nor_conv_1x1": 1, "nor_conv_3x3": 3}

    def __init__(self, cell: NB201Cell, channels: int, models: int = 1) -> None:
        super().__init__()
        self.cell, self.channels, self.models = cell, channels, models
        k = models
        self.groups = nn.ModuleDict()  # "<src>_<kernel>" -> Conv + BN over the group's stacked edges
        self.targets: dict[str, list[int]] = {}  # group key -> target node of each stacked slice
        self.others = nn.ModuleDict()  # skip and pooling edges, "<src>_<dst>"
        for (src, dst), op_name in zip(cell.EDGES, cell.edges):
            if op_name in self.KERNELS:
                self.targets.setdefault(f"{src}_{self.KERNELS[op_name]}", []).append(dst)
            elif op_name != "none":
                self.others[f"{src}_{dst}"] = make_op(op_name, k * channels)
        for key, dsts in self.targets.items():
            kernel = int(key.split("_")[1])
            self.groups[key] = nn.Sequential(
                nn.Conv2d(k * channels, k * channels * len(dsts), kernel, padding=kernel // 2, bias=False, groups=k),
                nn.BatchNorm2d(k * channels * len(dsts)),
            )
        self.n_nodes = cell.N_NODES
        # Per source node, in order: the conv groups it feeds (1x1 before 3x3) and its other edges, so the
        # forward pass does no key building or lookups beyond these.
        self.plan = [([k for k in (f"{src}_1", f"{src}_3") if k in self.groups],
                      [(f"{src}_{dst}", dst) for dst in range(src + 1, self.n_nodes) if f"{src}_{dst}" in self.others])
                     for src in range(self.n_nodes - 1)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        terms: list[list[torch.Tensor]] = [[] for _ in range(self.n_nodes)]
        node = x
        for src, (group_keys, other_edges) in enumerate(self.plan):
            if src > 0:  # every input of node src comes from an earlier node, so it is complete
                node = sum(terms[src][1:], terms[src][0]) if terms[src] else torch.zeros_like(x)
            relu = torch.relu(node) if group_keys else None  # shared by the node's 1x1 and 3x3 groups
            for key in group_keys:
                out = self.groups[key](relu)  # (B, K*n*C, H, W): per model, its n targets' C channels
                for dst, part in zip(self.targets[key], self._parts(out, len(self.targets[key]))):
                    terms[dst].append(part)
            for key, dst in other_edges:
                terms[dst].append(self.others[key](node))
        last = terms[-1]
        return sum(last[1:], last[0]) if last else torch.zeros_like(x)

    def _parts(self, out: torch.Tensor, n: int) -> list[torch.Tensor]:
        """A group's output cut into its n targets' feature maps (B, K*C, H, W) each."""
        if self.models == 1:  # split, not slicing: its backward concatenates the slices' gradients in one call
            return list(out.split(self.channels, dim=1))
        if n == 1:
            return [out]
        per = out.unflatten(1, (self.models, n, self.channels))  # (B, K, n, C, H, W)
        return [per[:, :, j].flatten(1, 2) for j in range(n)]  # each model's j-th target, models side by side

    def stacked(self, k: int) -> "FusedCell":
        """K copies side by side (study/training/stacking.py); tensors keep their names, model m's rows are the
        m-th block of each."""
        ref = next(self.parameters(), None)
        twin = FusedCell(self.cell, self.channels, self.models * k)
        return twin if ref is None else twin.to(ref.device, ref.dtype)

    @torch.no_grad()
    def load_from(self, plain: "Cell") -> None:
        """Copy the weights and BN state of an equivalent per-edge `Cell` into the stacked groups."""
        for key, dsts in self.targets.items():
            src = key.split("_")[0]
            edges = [plain.ops[f"{src}_{dst}"] for dst in dsts]
            conv, bn = self.groups[key]
            conv.weight.copy_(torch.cat([e[1].weight for e in edges]))
            for name in ("weight", "bias", "running_mean", "running_var"):
                getattr(bn, name).copy_(torch.cat([getattr(e[2], name) for e in edges]))
            bn.num_batches_tracked.copy_(edges[0][2].num_batches_tracked)


class ResidualReduction(nn.Module):
    """Residual block that halves the resolution and changes the width (NAS-Bench-201's ResNet block)."""

    stackable = True

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv_a = ReLUConvBN(c_in, c_out, 3, stride=2)
        self.conv_b = ReLUConvBN(c_out, c_out, 3)
        self.shortcut = nn.Sequential(
            BoxPool(c_in, 2, stride=2), nn.Conv2d(c_in, c_out, 1, bias=False)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_b(self.conv_a(x)) + self.shortcut(x)


def skeleton(c_in: int, width: int, cells_per_stage: int, make_cell: Callable[[int], nn.Module]
             ) -> tuple[nn.Module, list[nn.Module], nn.Module, int]:
    """NAS-Bench-201's macro skeleton around any cell: the stem, three stages of `cells_per_stage` cells of
    `make_cell(channels)` joined by two residual reductions (width doubling), the last BN-ReLU, and the
    output channels. Built in this order, so a seed gives the same weights to every network built on it."""
    stem = nn.Sequential(nn.Conv2d(c_in, width, 3, padding=1, bias=False), nn.BatchNorm2d(width))
    layers: list[nn.Module] = []
    c = width
    for stage in range(3):
        if stage > 0:
            layers.append(ResidualReduction(c, 2 * c))
            c *= 2
        layers.extend(make_cell(c) for _ in range(cells_per_stage))
    return stem, layers, nn.Sequential(nn.BatchNorm2d(c), nn.ReLU(inplace=True)), c


class Trunk(nn.Module):
    """Stem, three stages of cells with two reductions, final BN-ReLU; returns the last feature map."""

    stackable = True

    def __init__(
        self, cell: NB201Cell, c_in: int, width: int, cells_per_stage: int, channels_last: bool = True,
        fused: bool = True,
    ) -> None:
        super().__init__()
        # Activations in channels_last (NHWC): oneDNN and cuDNN convolutions, and the pooling, run
        # faster on it (benchmarks/throughput.py); every conv then emits NHWC. Parameters keep their
        # default layout, so the optimizer and state dicts see exactly the same tensors.
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.stem, layers, last, self.c_out = skeleton(
            c_in, width, cells_per_stage, lambda c: (FusedCell if fused else Cell)(cell, c))
        self.layers = nn.Sequential(*layers)
        self.last = last  # registered in this order: stem, layers, last (the order of parameters())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.contiguous(memory_format=self.memory_format)  # (B, C_in, H, W)
        return self.last(self.layers(self.stem(x)))  # (B, 4C, H/4, W/4)


def classifier(cell: NB201Cell, c_in: int, width: int, cells_per_stage: int, n_classes: int) -> nn.Module:
    """The reference NAS-Bench-201 classifier: trunk + pooled linear head."""
    trunk = Trunk(cell, c_in, width, cells_per_stage)
    return nn.Sequential(trunk, PooledLinear(trunk.c_out, n_classes))
