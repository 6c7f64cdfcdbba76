"""`python -m study.sample n=500`: draw distinct cells into `<study_dir>/cells.jsonl`."""

from __future__ import annotations

if __name__ == "__main__":  # before the imports below: Ctrl-C while they load is one line too
    # start() runs the importable copy of this module: jobs sent through submitit pickle the task by
    # reference, and functions of `__main__` cannot be found in the job's process.
    from study.commands.entry import start

    start("study.sample", "cells.jsonl and study.json are each whole (written atomically)")

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

from omegaconf import DictConfig

from study.commands import settings
from study.commands.cli import hydra_entry
from study.errors import UserError
from study.store.cells import read_info
from study.store.records import CELLS_FILE, STUDY_FILE, StudyError, has_runs, room_to_write, write_atomic, \
    write_json_atomic
from study.spaces import NetShape, describe, get_space

log = logging.getLogger("study.sample")


@dataclass(frozen=True)
class SampleRequest:
    """A typed sample command."""

    study_dir: Path
    space: str
    n: int
    seed: int
    include_degenerate: bool
    force: bool
    shape: NetShape


def parse(cfg: DictConfig) -> SampleRequest:
    """Typed values from the config; UserError for anything out of range."""
    shape = settings.net_shape(cfg)  # the width and depth study.train resolves for the same space and budget
    return SampleRequest(
        study_dir=settings.study_dir(cfg), space=settings.space_name(cfg),
        n=settings.positive_int(cfg, "n", "n"), seed=settings.integer(cfg, "seed", "seed"),
        include_degenerate=settings.boolean(cfg, "include_degenerate"),
        force=settings.boolean(cfg, "force"), shape=shape,
    )


def check(req: SampleRequest) -> None:
    """Refuse a sample request before anything is written."""
    get_space(req.space).sample(req.n, req.seed, req.include_degenerate)  # n too large -> SpaceError naming the limit
    if req.study_dir.exists() and not req.study_dir.is_dir():
        raise UserError(f"study_dir {req.study_dir} is a file; point study_dir at a folder")
    # Before Hydra, whose first act is a log folder inside study_dir.
    room_to_write(req.study_dir, "study_dir", "choose a writable study_dir= (the sample and its logs go there)")
    old = _read_meta(req.study_dir)
    # An unreadable study.json next to runs counts as different: never replace cells blindly. Runs being
    # trained right now (claims, checkpoints, no record yet) count too: their records would fall out of the sample.
    if old != _meta(req) and has_runs(req.study_dir) and not req.force:
        differ = ", ".join(k for k in _meta(req) if (old or {}).get(k) != _meta(req)[k]) if old else "study.json unreadable"
        raise UserError(
            f"{req.study_dir} already has a different sample ({differ}) with runs trained or in training; "
            "add force=true to replace it (runs are kept and still match by cell id) or choose another study_dir"
        )


def _meta(req: SampleRequest) -> dict:
    return {"space": req.space, "n": req.n, "seed": req.seed,
            "include_degenerate": req.include_degenerate, "net": asdict(req.shape)}


def _read_meta(study_dir: Path) -> dict | None:
    """How the current sample was drawn; None when there is no study.json or it is damaged."""
    try:
        return read_info(study_dir).get("sample")
    except StudyError:
        return None


def _current(path: Path) -> str | None:
    """The cells file's text, or None when it cannot be read as text."""
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None


def task(req: SampleRequest) -> None:
    """Draw the sample and write the cells file and study metadata atomically."""
    space = get_space(req.space)
    cells = space.sample(req.n, req.seed, req.include_degenerate)
    rows = [describe(space, c, req.shape) for c in cells]
    text = "".join(json.dumps(r) + "\n" for r in rows)
    path = req.study_dir / CELLS_FILE
    if _read_meta(req.study_dir) == _meta(req) and path.exists():
        # study.json alone is not trusted: the cells file may have been damaged or edited since.
        if _current(path) == text:
            log.info("%s already holds this sample (%d cells); nothing to do", req.study_dir, req.n)
            return
        if not req.force:
            raise UserError(f"{path} is damaged or edited: it does not hold the sample study.json describes; "
                            "add force=true to rewrite it (run records are kept and still match by cell id)")
        log.warning("%s is damaged or edited; rewriting it from study.json's sample (runs are kept)", path)
    # Cells first: a crash in between leaves old metadata, so the next call simply redraws.
    write_atomic(path, text)
    write_json_atomic(req.study_dir / STUDY_FILE, {"sample": _meta(req)})
    params = sorted(r["params"] for r in rows)
    log.info(
        "sampled %d distinct %s cells (seed %d) into %s; params %d..%d (median %d)",
        len(rows), req.space, req.seed, req.study_dir / CELLS_FILE, params[0], params[-1], params[len(params) // 2],
    )


main = hydra_entry("sample", parse, check, task)
