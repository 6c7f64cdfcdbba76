"""What kind of proxy an objective is, for the analysis tables, without importing torch.

Training-free objectives (study/objectives/zero_cost.py) score an untrained network; those that read
labels (snip, grad_norm) are labelled baselines, not label-free proxies, and are marked so in every table.
tests/test_zero_cost.py checks this table against the objectives' own `trains` and `uses_labels` flags.
"""

from __future__ import annotations

# name -> uses labels
TRAINING_FREE = {"naswot": False, "synflow": False, "jacob_cov": False, "snip": True, "grad_norm": True}


def training_free_kind(name: str) -> str | None:
    """`training-free`, `training-free, labels`, or None for an objective that trains (or an unknown name)."""
    base = name.rsplit("/", 1)[-1]  # compared studies prefix their columns with "<label>/"
    if base not in TRAINING_FREE:
        return None
    return "training-free, labels" if TRAINING_FREE[base] else "training-free"
