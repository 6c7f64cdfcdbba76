"""The one submit-and-report main of the sweep commands (`study.train`, `study.search`).

Both parse the command line once, expand their conveniences, check a SLURM request against the cluster
before anything is submitted, run the Hydra app, and then report alike: a job of a submitit sweep that
failed is one line (exit 1), SLURM's refusal of a request is one line (exit 2), a sweep sent to a cluster
ends with what the study holds now, and a command all of whose jobs failed exits 1 naming them.
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass, field
from typing import Any, Callable

from study.commands.argv import CommandLine
from study.commands.cli import CONF_DIR, fail
from study.errors import UserError
from study.commands import shards as sharding
from study.commands.cluster import (WithoutSbatchErrors, ended_jobs_without_accounting, job_failure,
                                    local_jobs_answer_only_to_their_tasks, slurm_preflight, sweep_summary)
from study.training import devices

log = logging.getLogger(__name__)


@dataclass
class Tally:
    """Jobs this process ran over every Hydra job of its sweep, and the failures, one entry per Hydra job."""

    done: int = 0
    failed: int = 0
    jobs: list[str] = field(default_factory=list)

    def add(self, progress: Any, label: str, noun: str) -> None:
        """Count one Hydra job's progress; log what other processes took off its hands."""
        self.done += progress.done
        if progress.failed:
            self.failed += progress.failed
            self.jobs.append(f"{label}: {progress.failed} {noun}(s) failed ({progress.first_failure})")
        if progress.skipped:
            log.info("%s: %s; rerun later to pick up any they leave unfinished", label,
                     ", ".join(f"{n} {noun}(s) {why}" for why, n in sorted(progress.skipped.items())))


TALLY = Tally()


def plural(noun: str) -> str:
    """`runs`, `searches`."""
    return f"{noun}es" if noun.endswith(("s", "sh", "ch")) else f"{noun}s"


def default_study_dir() -> str:
    """The study folder a command uses when the command line names none (conf/common.yaml)."""
    from omegaconf import OmegaConf

    return str(OmegaConf.load(CONF_DIR / "common.yaml").study_dir)


def sweep_main(config_name: str, noun: str, app: Callable[[CommandLine], None],
               expand: Callable[[CommandLine, str], CommandLine]) -> None:
    """Run a sweep command: `app` is its Hydra entry (cli.hydra_entry), `expand` its command-line conveniences."""

    default_dir = default_study_dir()
    try:
        given = CommandLine.parse(list(sys.argv[1:]))
        line = expand(given, default_dir)
    except UserError as e:
        fail(str(e))
    devices.remember_visible_gpus()
    sharding.register_resolvers()  # the launchers' ${gpu_count:} and ${on_device:...}
    slurm = slurm_preflight(line, config_name)
    if slurm:  # submitit echoes sbatch's refusal itself; the one line below says it and what to change
        sys.stderr = WithoutSbatchErrors(sys.stderr)
        ended_jobs_without_accounting()
    submitted = line.multirun and (line.value("hydra/launcher") or "basic") != "basic"
    if submitted:  # let a job's failure reach the handler below instead of Hydra's traceback
        os.environ["HYDRA_FULL_ERROR"] = "1"
        local_jobs_answer_only_to_their_tasks()
    try:
        app(line)
    except Exception as e:  # only reached for submitit launchers: Hydra passes errors on with HYDRA_FULL_ERROR=1
        if slurm and "sbatch: error" in str(e):
            reason = [ln for ln in str(e).splitlines() if "sbatch: error" in ln][0]
            print(f"error: SLURM refused the job ({reason.strip()}); change the hydra.launcher.* setting it names "
                  "(the request is in conf/hydra/launcher/slurm.yaml; device=cpu asks for no GPU)", file=sys.stderr)
            sys.exit(2)
        failure = job_failure(e) if submitted else None
        if failure is None:
            raise
        again = "" if "rerun" in failure else f"; finished {plural(noun)} are kept: rerun the same command to resume"
        print(f"error: {failure}{again}", file=sys.stderr)
        sys.exit(1)
    sweep_summary(given, default_dir, config_name)
    if TALLY.done and TALLY.failed == TALLY.done:
        print(f"error: every {noun} failed: {'; '.join(TALLY.jobs)}; see the reasons with "
              "`python -m launch.status`", file=sys.stderr)
        sys.exit(1)
