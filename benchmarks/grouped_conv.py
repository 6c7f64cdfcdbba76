"""Why stacking models pays little on a CPU: one convolution's forward + backward, K models three ways.

For the shapes the studies train (batch, channels, map size, kernel), on one thread, CPU time per model of:
- alone: one model's convolution (channels_last, as the network runs it);
- grouped: K models as one convolution with K groups (what study/training/stacking.py builds);
- dense: K models as one ordinary convolution over K times the channels, its off-diagonal blocks zero
  (the same outputs, more arithmetic, kernels oneDNN tunes more);
- bmm: K models as im2col (unfold) and one batched matrix multiply.
Speedups above 1 mean the K models cost less together than one after the other.

    OMP_NUM_THREADS=1 python benchmarks/grouped_conv.py [--k 3]
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

# (batch, channels, map size): the default study's first stage (supervised, rotation), its last stage,
# and the paper network's first stage.
SHAPES = ((128, 8, 8), (512, 8, 8), (128, 32, 2), (128, 16, 32))


def _cpu_ms(step, reps: int) -> float:
    for _ in range(3):
        step()
    t = time.process_time()
    for _ in range(reps):
        step()
    return (time.process_time() - t) / reps * 1e3


def conv_ms(batch: int, cin: int, cout: int, size: int, kernel: int, groups: int, reps: int) -> float:
    """Forward + backward of one convolution (weights and input both need gradients)."""
    x = torch.randn(batch, cin, size, size).contiguous(memory_format=torch.channels_last).requires_grad_()
    w = torch.randn(cout, cin // groups, kernel, kernel, requires_grad=True)
    g = torch.randn(batch, cout, size, size).contiguous(memory_format=torch.channels_last)
    return _cpu_ms(lambda: F.conv2d(x, w, padding=kernel // 2, groups=groups).backward(g), reps)


def bmm_ms(batch: int, c: int, size: int, kernel: int, k: int, reps: int) -> float:
    """K models' convolutions as unfold + one batched matmul, forward + backward."""
    x = torch.randn(batch, k * c, size, size, requires_grad=True)
    w = torch.randn(k, c, c * kernel * kernel, requires_grad=True)
    g = torch.randn(k, c, batch * size * size)

    def step() -> None:
        cols = F.unfold(x, kernel, padding=kernel // 2)  # (B, K*C*k*k, H*W)
        cols = cols.view(batch, k, c * kernel * kernel, size * size).permute(1, 2, 0, 3)
        torch.bmm(w, cols.reshape(k, c * kernel * kernel, batch * size * size)).backward(g)

    return _cpu_ms(step, reps)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--k", type=int, default=3, help="models side by side")
    p.add_argument("--reps", type=int, default=20)
    args = p.parse_args()
    torch.set_num_threads(1)
    k = args.k
    print(f"K={k}, one thread; ms per model (speedup over alone)")
    print("| batch | channels | map | kernel | alone ms | grouped | dense | bmm |\n|---|---|---|---|---|---|---|---|")
    for batch, c, size in SHAPES:
        for kernel in (1, 3):
            alone = conv_ms(batch, c, c, size, kernel, 1, args.reps)
            grouped = conv_ms(batch, k * c, k * c, size, kernel, k, args.reps) / k
            dense = conv_ms(batch, k * c, k * c, size, kernel, 1, args.reps) / k
            bmm = bmm_ms(batch, c, size, kernel, k, args.reps) / k
            print(f"| {batch} | {c} | {size} | {kernel} | {alone:.2f} | {grouped:.2f} ({alone / grouped:.2f}x) | "
                  f"{dense:.2f} ({alone / dense:.2f}x) | {bmm:.2f} ({alone / bmm:.2f}x) |", flush=True)


if __name__ == "__main__":
    main()
