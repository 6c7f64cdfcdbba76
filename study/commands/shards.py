"""Which cells one task trains: the chosen cells, split into balanced, disjoint shares.

A sweep is objective x seed x shard. Shard `s` of `n` takes every n-th of the chosen cells, starting at
`s`, so shares differ by at most one cell and never overlap; which cells a shard holds depends only on
the cells file and the command, never on what is already done, so a requeued or re-issued task trains
exactly the cells it had (skipping the complete ones). A job with several tasks (one per GPU, see
conf/hydra/launcher/gpus.yaml) splits its shard again by task rank.
"""

from __future__ import annotations

import logging
import re
from typing import Any, Sequence

from study.errors import UserError
from study.training.devices import Slot, gpu_count, visible_gpu_count

log = logging.getLogger(__name__)


def choose(cells: list[dict[str, Any]], wanted: Sequence[Any] | None) -> list[tuple[int, dict[str, Any]]]:
    """(row, cell) of the cells named by id or by row number in cells.jsonl; all of them when None."""
    rows = list(enumerate(cells))
    if wanted is None:
        return rows
    by_id = {c["id"]: (i, c) for i, c in rows}
    chosen, seen = [], set()
    for value in wanted:
        key = str(value).strip()
        if key in by_id:
            row = by_id[key]
        elif re.fullmatch(r"\d+", key) and int(key) < len(cells):
            row = rows[int(key)]
        else:
            raise UserError(f"cells: {key!r} is neither a cell id nor a row number below {len(cells)}; "
                            "see cells.jsonl or `python -m launch.status` for the ids")
        if row[0] not in seen:
            seen.add(row[0])
            chosen.append(row)
    return chosen


def share(rows: list[tuple[int, dict[str, Any]]], shard: int | None, shards: int,
          slot: Slot = Slot()) -> list[tuple[int, dict[str, Any]]]:
    """The rows shard `shard` of `shards` trains (all shards when `shard` is None), split again by task."""
    if shard is not None and not 0 <= shard < shards:
        raise UserError(f"shard={shard} is outside 0..{shards - 1}; use shard=0..{shards - 1} or drop shard")
    mine = rows if shard is None else rows[shard::shards]
    return mine[slot.rank::slot.tasks]


def register_resolvers() -> None:
    """`${gpu_count:}` (at least 1), `${visible_gpu_count:}` (0 without GPUs) and `${on_device:...}` for launcher
    presets."""
    from omegaconf import OmegaConf

    if not OmegaConf.has_resolver("gpu_count"):
        OmegaConf.register_new_resolver("gpu_count", gpu_count)
    if not OmegaConf.has_resolver("visible_gpu_count"):
        OmegaConf.register_new_resolver("visible_gpu_count", visible_gpu_count)
    if not OmegaConf.has_resolver("on_device"):
        OmegaConf.register_new_resolver("on_device", on_device)


def on_device(device: str, cpu_value: Any, gpu_value: Any) -> Any:
    """`${on_device:${device},cpu_value,gpu_value}`: a launcher request that depends on device=cpu."""
    return cpu_value if str(device) == "cpu" else gpu_value
