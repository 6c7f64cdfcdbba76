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

    start("study.train", "finished runs and each run's last epoch are kept")

import logging
import os
import sys
from dataclasses import replace

from study.commands import preflight
from study.commands import shards as sharding
from study.commands.argv import CommandLine, chosen_cells, expand
from study.commands.cli import fail, hydra_entry
from study.commands.request import TrainRequest, parse
from study.errors import UserError
from study.store.cells import read_cells
from study.training import devices
from study.training.runner import parse_cells, plan
from study.training.workers import groups, run_all

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
    _RUNS["done"] += progress.done
    if progress.failed:
        _RUNS["failed"] += progress.failed
        _RUNS["jobs"].append(f"{label}: {progress.failed} run(s) failed ({progress.first_failure})")
    if progress.skipped:
        log.info("%s: %s; rerun later to pick up any they leave unfinished", label,
                 ", ".join(f"{n} run(s) {why}" for why, n in sorted(progress.skipped.items())))


_main = hydra_entry("train", parse, check, task)
# Runs this process trained, over every job of its sweep: when all of them failed, the command exits 1.
_RUNS: dict = {"done": 0, "failed": 0, "jobs": []}


def main() -> None:
    """`python -m study.train`: parse the command line once, expand its conveniences, run the Hydra app."""
    from omegaconf import OmegaConf

    from study.commands.cli import CONF_DIR
    from study.commands.cluster import (WithoutSbatchErrors, ended_jobs_without_accounting, job_failure,
                                        local_jobs_answer_only_to_their_tasks, slurm_preflight, sweep_summary)

    argv = list(sys.argv[1:])
    default_dir = str(OmegaConf.load(CONF_DIR / "common.yaml").study_dir)
    try:
        given = CommandLine.parse(argv)
        line = expand(given, chosen_cells(given, default_dir))
    except UserError as e:
        fail(str(e))
    devices.remember_visible_gpus()
    sharding.register_resolvers()
    slurm = slurm_preflight(line)
    if slurm:  # submitit echoes sbatch's refusal itself; the one line below says it and what to change
        sys.stderr = WithoutSbatchErrors(sys.stderr)
        ended_jobs_without_accounting()
    submitted = line.multirun and (line.value("hydra/launcher") or "basic") != "basic"
    if submitted:  # let a job's failure reach the handler below instead of Hydra's traceback
        os.environ["HYDRA_FULL_ERROR"] = "1"
        local_jobs_answer_only_to_their_tasks()
    try:
        _main(line)
    except Exception as e:  # only reached for submitit launchers: Hydra passes errors on with HYDRA_FULL_ERROR=1
        if slurm and "sbatch: error" in str(e):
            reason = [ln for ln in str(e).splitlines() if "sbatch: error" in ln][0]
            print(f"error: SLURM refused the job ({reason.strip()}); change the hydra.launcher.* setting it names "
                  "(the request is in conf/hydra/launcher/slurm.yaml; device=cpu asks for no GPU)", file=sys.stderr)
            sys.exit(2)
        failure = job_failure(e) if submitted else None
        if failure is None:
            raise
        again = "" if "rerun" in failure else "; finished runs are kept: rerun the same command to resume"
        print(f"error: {failure}{again}", file=sys.stderr)
        sys.exit(1)
    sweep_summary(given, default_dir)
    if _RUNS["done"] and _RUNS["failed"] == _RUNS["done"]:
        print(f"error: every run failed: {'; '.join(_RUNS['jobs'])}; see the reasons with "
              "`python -m launch.status`", file=sys.stderr)
        sys.exit(1)
