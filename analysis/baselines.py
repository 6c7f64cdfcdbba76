"""The params and FLOPs baselines of the network a study trained, not of the one it sampled.

cells.jsonl holds params and FLOPs computed when the sample was drawn, for the sampling command's
network shape. A study trained at another shape (sampled at `budget=default`, trained at `budget=paper`)
must be compared with the complexity of what it trained, so the baselines are recomputed from the shape
stored in the records' config: the supervised classifier (backbone + pooled linear head) at the trained
width, depth and input, the same network for every objective so the ranking does not depend on heads.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

from analysis.tables import BASELINES
from study.errors import UserError
from study.spaces import NetShape, get_space

log = logging.getLogger(__name__)


def trained_shape(record: dict[str, Any], objective: str) -> dict[str, Any] | None:
    """c_in, image_size, n_classes, width and cells_per_stage (and stem and depth, where set) of a run's network.

    Records say it (`net`); older ones only through their stored config (dataset and budget, with the
    objective's budget overrides).
    """
    shape = record.get("net")
    if not isinstance(shape, dict):
        try:
            config = record.get("config") or {}
            data, budget = config["dataset"], dict(config["budget"])
            budget.update((budget.get("objectives") or {}).get(objective) or {})
            shape = {"c_in": data["channels"], "image_size": data["image_size"], "n_classes": data["n_classes"],
                     "width": budget["width"], "cells_per_stage": budget["cells_per_stage"]}
        except (KeyError, TypeError, AttributeError):
            return None
    keys = ("c_in", "image_size", "n_classes", "width", "cells_per_stage")
    ok = all(isinstance(shape.get(k), int) and not isinstance(shape.get(k), bool) for k in keys)
    if not ok:
        return None
    # The ImageNet stem and a depth in cells (newer records) size the network too; older ones have neither.
    extra = {k: shape[k] for k in ("stem", "depth") if k in shape}
    return {**{k: shape[k] for k in keys}, **extra}


def complexity_of(space: str, arch: str, shape: dict[str, int]) -> tuple[int, int] | None:
    """Params and MACs per image of the supervised network of `arch` at `shape`; None if it cannot be built."""

    try:
        entry = get_space(space)
        return entry.complexity(entry.parse(arch), NetShape(**shape))
    except UserError:
        return None


def trained_baselines(sample: pd.DataFrame, scoped: pd.DataFrame, prefer: list[str],
                      read_record: Any) -> tuple[pd.DataFrame, str | None]:
    """Per cell of `sample` (indexed by id, with `arch`): params and FLOPs of the network trained.

    The shape comes from one complete run of the first objective in `prefer` that has one (the
    reference's runs first: per-objective budget overrides may change the width). Falls back to the
    sample's values when the records do not say (hand-made or older studies). Returns the table and a
    sentence for the report saying which shape the baselines describe.
    """
    fallback = sample.reindex(columns=list(BASELINES))
    done = scoped[scoped["status"] == "complete"]
    for objective in [*prefer, *sorted(set(done["objective"]) - set(prefer))]:
        runs = done[done["objective"] == objective]
        if runs.empty:
            continue
        first = runs.iloc[0]
        shape = trained_shape(read_record(first["path"]) or {}, objective)
        space = first.get("space")
        if shape is None or not isinstance(space, str):
            return fallback, None
        values = {cid: complexity_of(space, str(arch), shape) for cid, arch in sample["arch"].items()}
        if any(v is None for v in values.values()):
            return fallback, None
        table = pd.DataFrame.from_dict(values, orient="index", columns=list(BASELINES)).reindex(sample.index)
        depth = f"{shape['depth']} cells" if shape.get("depth") else f"N={shape['cells_per_stage']}"
        stem = ", ImageNet stem" if shape.get("stem", "cifar") != "cifar" else ""
        where = (f"the network trained: C={shape['width']}, {depth}{stem}, input "
                 f"{shape['c_in']}x{shape['image_size']}x{shape['image_size']}, {shape['n_classes']} classes")
        if not np.array_equal(table.to_numpy(float), fallback.to_numpy(float)):
            log.info("params and FLOPs baselines are those of %s (the sample's cells.jsonl describes another shape)",
                     where)
        return table, where
    return fallback, None
