"""Run a training-free objective: build the study's untrained network from the seed, score it, record it.

The runner hands a run here when its objective has `trains = False`. The network is the one a
supervised run of the same cell, budget and seed would start from (trunk of the budget's width and depth
plus the supervised head); the batch comes from a generator seeded by the run's seed. No trainer, no
checkpoint: a score takes seconds, so an interrupted run is simply redone.
"""

from __future__ import annotations

import math
import time
from dataclasses import replace
from typing import Any

import torch

from study.spaces import get_space
from study.spaces.modules import count_params
from study.store.records import write_record
from study.training.run import RunSpec, Setup, network_size, record


def build_untrained(spec: RunSpec, setup: Setup, objective: Any) -> torch.nn.Module:
    """The run's network at initialisation, seeded by the run's seed without touching global RNG state."""
    space = get_space(setup.space)
    cell = spec.parsed(setup.space)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(spec.seed)
        # NASWOT hooks every ReLU module: it asks for the plain network (same function, same parameters).
        model = objective.build(space.build(cell, replace(setup.shape, c_in=objective.c_in), plain=not objective.fused))
    return model.to(setup.device)


def score_run(spec: RunSpec, setup: Setup, data: Any, objective: Any) -> dict[str, Any]:
    """Score one run's untrained network and write its record (complete, or failed on a non-finite score)."""
    t0, c0 = time.perf_counter(), time.process_time()
    model = build_untrained(spec, setup, objective)
    # The batch draw uses its own generator, seeded like the trainer's, so a run is repeatable anywhere.
    gen = torch.Generator(device=data.device).manual_seed(spec.seed)
    value = objective.score(model, gen, setup.budget.batch_size)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    common = {"params": count_params(model), "wall_s": wall, "cpu_s": cpu, "device": setup.device, "resumed_from_epoch": None,
              "resumes": []}
    if math.isfinite(value):
        rec = record(spec, setup, "complete", reason=None, score=value, test_acc_best=None, test_acc_final=None,
                     epochs=0, uses_labels=objective.uses_labels, **common)
    else:  # e.g. NASWOT of a network whose ReLU codes cannot tell two images apart
        rec = record(spec, setup, "failed", reason=f"non-finite {objective.name} score {value}", score=None,
                     **common)
    rec["dataset_fingerprint"] = getattr(data, "fingerprint", None)
    # The run's precision setting stays in `precision` (it is part of the run's identity); the score itself is
    # computed in the objective's own dtype.
    rec["score_dtype"] = objective.score_dtype
    rec.update(network_size(get_space(setup.space), spec.parsed(setup.space), setup.shape))
    write_record(spec.path, rec)
    return rec
