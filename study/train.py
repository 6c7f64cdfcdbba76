"""`python -m study.train -m objective=rotation,supervised`: train every sampled cell under an objective.

Each Hydra job is one (objective, seed[, shard]); it trains its cells of `<study_dir>/cells.jsonl` that
have no complete record yet and writes one record per run. Rerunning the same command skips finished
runs and resumes interrupted ones from their checkpoints. `shards=N`, `cells=[...]`/`cell=a,b` and
`dry_run=true` group the work for a cluster (study/commands/shards.py, study/commands/argv.py).
"""

from __future__ import annotations

if __name__ == "__main__":  # before the imports below (a second or more): Ctrl-C while they load is one line too
    # start() runs the importable copy of this module: jobs sent through submitit pickle the task by
    # reference, and functions of `__main__` cannot be found in the job's process.
    from study.commands.entry import start

    start("study.train")

import logging
from dataclasses import replace

from study.commands import preflight
from study.commands import shards as sharding
from study.commands.argv import CommandLine, chosen_cells, expand
from study.commands.cli import hydra_entry
from study.commands.request import TrainRequest, parse
from study.commands.submit import TALLY, sweep_main
from study.store.cells import read_cells
from study.training import devices
from study.training.runner import groups, parse_cells, plan, run_all

log = logging.getLogger("study.train")

check = preflight.check


def task(req: TrainRequest) -> None:
    """Train every sampled cell that lacks a complete record for this objective and seed."""
    from study.data import build_dataset

    setup = req.setup
    preflight.warn_if_resized(req.study_dir, setup.shape)
    slot = devices.current_slot()
    cells = read_cells(req.study_dir)
    rows = sharding.share(sharding.choose(cells, req.cells), req.shard, req.shards, slot)
    where = ("" if req.shard is None else f" shard {req.shard}/{req.shards}") + (
        f" task {slot.rank}/{slot.tasks}" if slot.tasks > 1 else "")
    mine = [cell for _, cell in rows]
    parsed = parse_cells(mine, setup.space)  # each cell parsed once; the runs carry it from here
    gpus = devices.gpu_count() if setup.device.startswith("cuda") else 0
    setup = replace(setup, device=devices.pinned_device(setup.device, slot, gpus))
    todo, done = [], 0
    for seed in req.seeds:
        planned, finished = plan(req.study_dir, mine, setup, seed, parsed)
        todo, done = todo + planned, done + finished
        if req.dry_run:
            pending = {spec.cell_id for spec in planned}
            print(f"{setup.objective} seed {seed}{where}: trains {len(planned)} of {len(mine)} cells ({finished} complete, "
                  "skipped): " + (" ".join(f"#{row}:{cell['id']}" for row, cell in rows if cell["id"] in pending) or "-"))
    if req.dry_run:
        return
    label = f"{setup.objective} seed {','.join(map(str, req.seeds))}{where}"
    total = len(mine) * len(req.seeds)
    if done:
        log.info("%s: skipping %d of %d runs with a complete record", label, done, total)
    if not todo:
        log.info("%s: all %d runs are complete; nothing to train", label, total)
        return
    workers = min(req.workers, len(groups(todo, setup.fuse)))
    fused = f", {setup.fuse} seeds of a cell as one network" if setup.fuse > 1 else ""
    log.info("%s: training %d runs (%s budget, %s, %d worker(s) x %d thread(s) on %s%s)", label, len(todo),
             setup.budget.name, setup.dataset, workers, setup.threads, setup.device, fused)
    if workers > 1:  # decode or download once here: workers then read the cache, and errors stay one line
        build_dataset(setup.dataset, **setup.dataset_options)
    progress = run_all(todo, setup, workers, label)
    log.info("%s: %d trained, %d failed; records in %s", label, progress.done - progress.failed,
             progress.failed, req.study_dir / "runs")
    TALLY.add(progress, label, "run")


def expand_line(given: CommandLine, default_dir: str) -> CommandLine:
    """The train command's conveniences (shards, cell lists, seed lists; study/commands/argv.py)."""
    return expand(given, chosen_cells(given, default_dir))


def main() -> None:
    """`python -m study.train`: parse the command line once, expand its conveniences, run the Hydra app."""
    sweep_main("train", "run", hydra_entry("train", parse, check, task), expand_line)
