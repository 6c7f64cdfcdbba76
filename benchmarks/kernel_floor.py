"""Where the default study's CPU time goes, and the floor set by torch's own kernels.

    python benchmarks/kernel_floor.py [--cells 12 --json out.json]

Trains real default-budget runs (digits 8x8, the default budget, single-threaded, as each local worker
does) of cells spread over the default sample's FLOPs range, once plainly for the wall time and once under
torch.profiler, and splits each run's CPU time into
  conv: oneDNN convolution kernels, forward and backward (aten::mkldnn_convolution, convolution_backward)
  bn:   BatchNorm kernels, forward and backward (aten::native_batch_norm[_backward])
  rest: everything else (augmentation, ReLU, sums, loss, optimizer, Python, dispatch).
Scaled to the 500 cells of the default study on this machine's cores (one single-thread worker per
core), conv + bn is the wall time no change outside those kernels can go below.

`--fusion` adds a probe of training K cells as one network ("horizontal fusion": K models side by side as
grouped convolutions and one BN over their stacked channels): ReLU-conv-BN forward and backward at the
default study's stage-1 shapes, per model, for K = 1, 4, 8.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from study_projection import default_config, default_run  # noqa: E402

CONV_OPS = ("aten::mkldnn_convolution", "aten::convolution_backward")
BN_OPS = ("aten::native_batch_norm", "aten::native_batch_norm_backward")


def spread(n: int) -> list[str]:
    """`n` cells of the default sample at evenly spaced FLOPs ranks (lightest to heaviest)."""
    from study.spaces import NetShape, draw
    from study.spaces.nb201 import complexity

    budget, ds = default_config()
    sample = draw("nb201", 500, seed=0)
    ranked = sorted(sample, key=lambda c: complexity(c, NetShape(1, ds["image_size"], 10, budget["width"],
                                                              budget["cells_per_stage"]))[1])
    return [ranked[round(i * (len(ranked) - 1) / max(1, n - 1))].to_str() for i in range(n)]


def kernel_shares(fn: Callable[[], Any]) -> dict[str, float]:
    """Shares of `fn()`'s self CPU time (under torch.profiler) spent in conv and in BN kernels (CPU only)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    self_us: dict[str, float] = {}
    for e in prof.key_averages():
        self_us[e.key] = self_us.get(e.key, 0.0) + e.self_cpu_time_total
    total = sum(self_us.values())
    return {"conv": sum(self_us.get(k, 0.0) for k in CONV_OPS) / total,
            "bn": sum(self_us.get(k, 0.0) for k in BN_OPS) / total}


def run(arch: str, objective: str, profile: bool) -> dict[str, float]:
    """One default-budget training of `arch`: its CPU seconds, or its kernel shares when profiled."""
    from study.training.trainer import train

    model, obj, data, budget = default_run(arch, objective)
    if profile:
        return kernel_shares(lambda: train(model, obj, data, budget, 0))
    c0 = time.process_time()
    train(model, obj, data, budget, 0)
    return {"cpu_s": time.process_time() - c0}


def floor(n_cells: int, cores: int) -> dict[str, Any]:
    """Per-run CPU and kernel seconds for both objectives, and the default study's projection."""
    archs = spread(n_cells)
    out: dict[str, Any] = {"cells": archs, "objectives": {}}
    run(archs[-1], "supervised", profile=False)  # warm-up: oneDNN builds its kernels on first use
    for objective in ("supervised", "rotation"):
        runs = []
        for arch in archs:
            plain = run(arch, objective, profile=False)
            prof = run(arch, objective, profile=True)
            # The profiler's own overhead lands in "rest"; the kernel shares are taken of the plain run.
            share_conv, share_bn = prof["conv"], prof["bn"]
            runs.append({"arch": arch, "cpu_s": plain["cpu_s"], "conv_s": plain["cpu_s"] * share_conv,
                         "bn_s": plain["cpu_s"] * share_bn})
            print(f"  {objective:10s} {plain['cpu_s']:5.2f} s  conv {share_conv:4.0%}  bn {share_bn:4.0%}  {arch}",
                  flush=True)
        out["objectives"][objective] = {
            "runs": runs, **{k: statistics.mean(r[k] for r in runs) for k in ("cpu_s", "conv_s", "bn_s")}}
    per_cell = {k: sum(out["objectives"][o][k] for o in ("supervised", "rotation")) for k in ("cpu_s", "conv_s", "bn_s")}
    scale = 500 / cores / 60
    out["projection_min"] = {"measured": per_cell["cpu_s"] * scale, "conv_and_bn_kernels": (per_cell["conv_s"] +
                             per_cell["bn_s"]) * scale, "conv_kernels": per_cell["conv_s"] * scale, "cores": cores}
    return out


def fusion_probe(reps: int = 20) -> list[dict[str, Any]]:
    """ReLU-conv3x3-BN forward+backward per model when K models run as one grouped layer."""
    rows = []
    for batch in (128, 512):  # supervised, rotation (4 rotations of 128 images)
        for k in (1, 4, 8):
            c = 8 * k
            x = torch.randn(batch, c, 8, 8).contiguous(memory_format=torch.channels_last).requires_grad_(True)
            layer = torch.nn.Sequential(torch.nn.ReLU(), torch.nn.Conv2d(c, c, 3, padding=1, bias=False, groups=k),
                                        torch.nn.BatchNorm2d(c)).to(memory_format=torch.channels_last)
            grad = torch.randn_like(x)
            times = []
            for r in range(reps + 3):
                t0 = time.process_time()
                layer(x).backward(grad)
                if r >= 3:
                    times.append(time.process_time() - t0)
            per_model = statistics.median(times) / k * 1e3
            rows.append({"batch": batch, "k": k, "ms_per_model": per_model})
            print(f"  batch {batch:3d}  K={k}: {per_model:.3f} ms per model", flush=True)
    return rows


def main() -> None:
    """Measure, print, optionally write JSON."""
    from study.training.devices import cpu_count

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cells", type=int, default=12, help="cells of the default sample, spread over FLOPs")
    p.add_argument("--fusion", action="store_true", help="also probe horizontal fusion of K cells")
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    torch.set_num_threads(1)
    cores = cpu_count()
    print(f"default budget, digits 8x8, 1 thread per run, {args.cells} cells of the default sample:")
    result = floor(args.cells, cores)
    for objective in ("supervised", "rotation"):
        o = result["objectives"][objective]
        print(f"{objective:10s} mean CPU s per run {o['cpu_s']:.2f}: conv kernels {o['conv_s']:.2f} "
              f"({o['conv_s'] / o['cpu_s']:.0%}), BN kernels {o['bn_s']:.2f} ({o['bn_s'] / o['cpu_s']:.0%})")
    pm = result["projection_min"]
    print(f"default study (500 cells, {cores} single-thread workers): {pm['measured']:.1f} min as measured; "
          f"conv + BN kernels alone {pm['conv_and_bn_kernels']:.1f} min (conv alone {pm['conv_kernels']:.1f})")
    if args.fusion:
        print("horizontal fusion probe (ReLU-conv3x3-BN fwd+bwd at 8x8, C=8 per model):")
        result["fusion"] = fusion_probe()
    result["torch"] = torch.__version__
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
