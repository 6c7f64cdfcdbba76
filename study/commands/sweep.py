"""Command-line conveniences of `study.train`, applied to argv before Hydra sees it.

- `shards=N` with `-m` and no `shard=`: sweeps `shard=0,...,N-1` (Hydra cannot sweep over a range
  read from another key), so `objective=a,b seed=0,1 shards=16` submits 2 x 16 tasks (2 x 2 x 16 with `fuse=1`).
- `cell=3,17` (one job training those cells, not one job per cell): becomes `cells=['3','17']`.
- `seed=0,1,2` with `-m`: becomes `seed=[0,1,2]`, one job training the seeds side by side (`fuse`), unless
  `fuse=1` asks for one job per seed as before.
- `dry_run=true` with `-m`: runs the sweep with Hydra's basic launcher in this process, so the plan is
  printed here and nothing is submitted.
"""

from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger(__name__)

_MULTIRUN = ("-m", "--multirun")


def chosen_cells(argv: list[str], default_study_dir: str) -> int | None:
    """How many cells a train command line chooses (`cells=`/`cell=` or the whole sample); None if unknown."""
    from study.errors import UserError
    from study.store.records import read_cells

    pairs = dict(p for p in map(_split, argv) if p)
    if "cell" in pairs:
        return len([v for v in pairs["cell"].split(",") if v.strip()])
    if "cells" in pairs and pairs["cells"].startswith("["):
        inner = pairs["cells"].strip()[1:-1]
        return len({v.strip().strip("'\"") for v in inner.split(",") if v.strip()})
    study_dir = pairs.get("study_dir", default_study_dir)
    if "," in study_dir or "$" in study_dir:
        return None  # a sweep over studies or an interpolation: let each job find its own cells
    try:
        return len(read_cells(Path(study_dir).expanduser()))
    except UserError:
        return None  # the command's own check reports a missing or damaged sample


def _split(arg: str) -> tuple[str, str] | None:
    if arg.startswith("-") or "=" not in arg:
        return None
    key, value = arg.split("=", 1)
    return key, value


def _quoted(value: str) -> str:
    value = value.strip().strip("'\"")
    return "'" + value.replace("'", "\\'") + "'"


def expand_argv(argv: list[str], n_cells: int | None = None) -> list[str]:
    """argv with `shards=N`, `cell=...` and `dry_run=true` expanded as described above.

    `n_cells` (the number of cells the command chooses) caps `shards`: more shards than cells would
    submit tasks with nothing to train.
    """
    multirun = any(a in _MULTIRUN for a in argv)
    pairs = [_split(a) for a in argv]
    keys = {p[0].lstrip("+~") for p in pairs if p}
    out: list[str] = []
    for arg, pair in zip(argv, pairs):
        if pair and pair[0] == "seed" and multirun and _seed_list(pair[1]) and not _is_value(argv, "fuse", "1"):
            out.append("seed=[" + ",".join(_seed_list(pair[1])) + "]")
        elif pair and pair[0] == "cell":
            out.append("cells=[" + ",".join(_quoted(v) for v in pair[1].split(",") if v.strip()) + "]")
        elif pair and pair[0] == "hydra/launcher" and multirun and _is_true(argv, "dry_run"):
            continue  # replaced by the basic launcher below
        else:
            out.append(arg)
    if multirun:
        shards = dict(p for p in pairs if p).get("shards", "")
        if shards.isdigit() and n_cells is not None and int(shards) > max(n_cells, 1) and "shard" not in keys:
            log.warning("shards=%s capped at %d: only %d cell(s) to train, more shards would be empty tasks",
                        shards, max(n_cells, 1), n_cells)
            out = [f"shards={max(n_cells, 1)}" if a == f"shards={shards}" else a for a in out]
            shards = str(max(n_cells, 1))
        if shards.isdigit() and int(shards) > 1 and "shard" not in keys:
            out.append("shard=" + ",".join(str(k) for k in range(int(shards))))
        if _is_true(argv, "dry_run"):
            out.append("hydra/launcher=basic")
    return out


def _is_true(argv: list[str], key: str) -> bool:
    return _is_value(argv, key, "true")


def _is_value(argv: list[str], key: str, value: str) -> bool:
    return any(p and p[0] == key and p[1].strip().lower() == value for p in map(_split, argv))


def _seed_list(value: str) -> list[str]:
    """The seeds of a comma-separated integer sweep (`0,1,2`), else [] (one seed, or another sweep syntax)."""
    parts = [v.strip() for v in value.split(",")]
    return parts if len(parts) > 1 and all(p.lstrip("-").isdigit() for p in parts) else []
