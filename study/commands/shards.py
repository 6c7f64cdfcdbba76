"""Which cells one task trains: the chosen cells, split into balanced, disjoint shares.

A sweep is objective x seed x shard. Shard `s` of `n` takes every n-th of the chosen cells, starting at
`s`, so shares differ by at most one cell and never overlap; which cells a shard holds depends only on
the cells file and the command, never on what is already done, so a requeued or re-issued task trains
exactly the cells it had (skipping the complete ones). A job with several tasks (one per GPU, see
conf/hydra/launcher/gpus.yaml) splits its shard again by task rank.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from typing import Any, MutableMapping, Sequence

from study.errors import UserError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Slot:
    """This process's place in the job: task rank and count (one task unless a job runs several)."""

    rank: int = 0
    tasks: int = 1
    local_rank: int = 0


def current_slot() -> Slot:
    """The slot of this process in a submitit job (SLURM or local), or the only slot outside one."""
    try:
        import submitit

        env = submitit.JobEnvironment()
    except (ImportError, RuntimeError):  # not inside a submitit job: a plain run
        return Slot()
    return Slot(env.global_rank, env.num_tasks, env.local_rank)


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


def pinned_device(device: str, slot: Slot, gpu_count: int) -> str:
    """One GPU per task when a job runs several tasks: task k uses cuda:k (wrapping around)."""
    if slot.tasks > 1 and device == "cuda" and gpu_count > 0:
        return f"cuda:{slot.local_rank % gpu_count}"
    return device


VISIBLE_ENV = "STUDY_VISIBLE_GPUS"  # the user's CUDA_VISIBLE_DEVICES, kept for the tasks of a local job
GPU_PRESETS = ("gpus",)  # launcher presets that exist to train on GPUs


def remember_visible_gpus(env: MutableMapping[str, str] = os.environ) -> None:
    """Keep the user's GPU list where submitit's local executor will not overwrite it.

    That executor exports CUDA_VISIBLE_DEVICES=0..n-1 to its tasks whatever the user chose, so
    `CUDA_VISIBLE_DEVICES=2,3` would train on GPUs 0 and 1; `pin_visible_gpus` restores the choice.
    """
    if "CUDA_VISIBLE_DEVICES" in env:
        env[VISIBLE_ENV] = env["CUDA_VISIBLE_DEVICES"]
    else:
        env.pop(VISIBLE_ENV, None)


def task_visible_gpus(slot: Slot, env: MutableMapping[str, str]) -> str | None:
    """CUDA_VISIBLE_DEVICES for this task of a local submitit job (None: leave it as it is).

    One task: the user's whole list. Several: task k gets the k-th entry (wrapping around), its own GPU.
    SLURM jobs are left alone: SLURM sets each task's GPUs itself.
    """
    if env.get("SUBMITIT_EXECUTOR") != "local" or VISIBLE_ENV not in env:
        return None
    entries = [e.strip() for e in env[VISIBLE_ENV].split(",") if e.strip()]
    if slot.tasks > 1 and entries:
        return entries[slot.local_rank % len(entries)]
    return ",".join(entries)


def pin_visible_gpus(slot: Slot, env: MutableMapping[str, str] = os.environ) -> None:
    """Give this task its GPUs of the user's list; must run before anything in the process initialises CUDA."""
    value = task_visible_gpus(slot, env)
    if value is not None and env.get("CUDA_VISIBLE_DEVICES") != value:
        env["CUDA_VISIBLE_DEVICES"] = value


def preset_device(argv: list[str]) -> list[str]:
    """argv with `device=cuda` added for a GPU launcher preset when no device is given (no silent CPU run)."""
    presets = {f"hydra/launcher={p}" for p in GPU_PRESETS}
    if any(a in presets for a in argv) and not any(a.lstrip("+").startswith("device=") for a in argv):
        return [*argv, "device=cuda"]
    return argv


def gpu_count() -> int:
    """GPUs visible to this process (at least 1, so a preset sized by it still runs one task)."""
    import torch

    return max(1, torch.cuda.device_count())


def visible_gpu_count() -> int:
    """GPUs visible to this process, 0 on a machine without any."""
    import torch

    return torch.cuda.device_count()


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
