"""Host-device synchronisations per training batch of each objective, counted by torch on a GPU.

    python benchmarks/gpu_syncs.py [--json syncs.json]

Runs a few training steps per objective on the paper network with CUDA's sync debug mode set to "warn"
and counts the warnings of the last step (the first ones build per-device tables). The trainer reads the
loss once per epoch, so a step should need none.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from study.data import ImageData  # noqa: E402
from study.spaces.nb201.network import Trunk  # noqa: E402
from study.objectives import create_objective  # noqa: E402
from study.spaces.nb201 import NB201Cell  # noqa: E402
from study.training.run import Budget
from study.training.trainer import make_optimizer  # noqa: E402
from study.training.devices import autocast

PAPER_OBJECTIVES = ("supervised", "rotation", "colorization", "jigsaw")
CELL = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"


def syncs_per_step(name: str, device: str, steps: int = 3) -> int:
    """Synchronisations torch reports during the last of `steps` training steps of objective `name`."""
    gen = torch.Generator(device=device).manual_seed(0)
    x = torch.randint(0, 256, (256, 3, 32, 32), generator=gen, device=device, dtype=torch.uint8)
    y = torch.randint(0, 10, (256,), generator=gen, device=device)
    stats = torch.full((3,), 0.5, device=device), torch.full((3,), 0.25, device=device)
    data = ImageData("syncs", x, y, x, y, 10, *stats)
    objective = create_objective(name, data)
    model = objective.build(Trunk(NB201Cell.from_str(CELL), objective.c_in, 16, 5)).to(device)
    opt = make_optimizer(model, Budget("syncs", 1, 32, 0.01))
    count = 0
    for step in range(steps):
        idx = torch.randperm(256, generator=gen, device=device)[:32]
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            if device.startswith("cuda"):  # elsewhere nothing to count: a smoke test of the steps
                torch.cuda.set_sync_debug_mode("warn")
            inputs, targets = objective.train_batch(x[idx], y[idx], gen)
            with autocast(torch.device(device)):
                loss = objective.loss(model(inputs), targets)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if device.startswith("cuda"):
                torch.cuda.set_sync_debug_mode("default")
        count = sum("synchroniz" in str(w.message) for w in caught)
    return count


def main() -> None:
    """Count and print per objective."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    counts = {name: syncs_per_step(name, args.device) for name in PAPER_OBJECTIVES}
    for name, n in counts.items():
        print(f"{name:<13} {n} host-device synchronisation(s) per training step")
    if args.json:
        args.json.write_text(json.dumps(counts, indent=2))


if __name__ == "__main__":
    main()
