"""The cells a study's searches found, as a study of their own that `study.train` trains as it is.

A search's cell is judged by training it with labels (at CIFAR size here; the paper's own evaluation phase
trains it on ImageNet, conf/experiment/eval/). After every finished
search, `<study_dir>/found/<space>/` is rewritten from all complete search records of that space: a
`cells.jsonl` with one row per distinct cell found (id, arch, canonical, benchmark keys, params and FLOPs
at the first search's network shape, and `found_by`, the searches that found it) and a `study.json`
saying where it came from. Then, with no file edited by hand:

    python -m study.train -m study_dir=<study_dir>/found/<space> space=<space> experiment=short objective=supervised

Rows are ordered by the first search that found each cell (method, objective, seed, budget), so a cell's
id, which names its runs, never changes; rewriting is serialised by a lock, so two searches finishing at
once both land in the file.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from study.files import locked
from study.spaces import NetShape, describe, get_space
from study.store.records import CELLS_FILE, STUDY_FILE, is_complete, write_atomic, write_json_atomic
from study.training.searches import SEARCHES_DIR, iter_searches

log = logging.getLogger(__name__)

FOUND_DIR = "found"


def found_dir(study_dir: Path, space: str) -> Path:
    """The study of the cells found by the searches of `space`."""
    return Path(study_dir) / FOUND_DIR / space


def write_found(study_dir: Path) -> list[Path]:
    """Rewrite every space's found-cells study from the complete search records; returns their folders."""
    with locked(Path(study_dir) / SEARCHES_DIR / ".found.lock"):
        by_space: dict[str, list[dict[str, Any]]] = {}
        for _, rec in iter_searches(study_dir):
            if is_complete(rec) and rec.get("arch"):
                by_space.setdefault(rec["space"], []).append(rec)
        written = []
        for space_name, recs in sorted(by_space.items()):
            recs.sort(key=lambda r: (r["method"], r["objective"], r["seed"], r["budget"], r["identity"]))
            space, shape = get_space(space_name), NetShape(**recs[0]["net"])
            rows: dict[str, dict[str, Any]] = {}
            for rec in recs:
                cell = space.parse(rec["arch"])
                row = rows.setdefault(rec["cell_id"], {**describe(space, cell, shape), "found_by": []})
                row["found_by"].append(f"{rec['method']}/{rec['objective']}/{rec['dataset']}-{rec['budget']}/"
                                       f"seed{rec['seed']}")
            folder = found_dir(study_dir, space_name)
            write_atomic(folder / CELLS_FILE, "".join(json.dumps(r) + "\n" for r in rows.values()))
            write_json_atomic(folder / STUDY_FILE, {"sample": {"space": space_name, "from": "study.search",
                                                               "cells": len(rows), "searches": len(recs),
                                                               "net": recs[0]["net"]}})
            written.append(folder)
        return written
