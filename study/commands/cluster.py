"""What `study.train` does around a sweep sent to a cluster. Check a SLURM request against the cluster
before submitting, so that a refusal is one line naming the
setting to change, and a job that no node can ever run is refused instead of pending forever.

`sinfo` lists every node with its partition, CPUs, memory (MB) and generic resources (GPUs appear as
`gpu:<type>:<count>`). Where `sinfo` is not installed or does not answer, nothing is checked here and
sbatch's own answer stands.
"""

from __future__ import annotations

import logging
import re
import signal
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from study.commands.argv import CommandLine, first_values
from study.errors import UserError
from study.shell import command
from study.commands.cli import CONF_DIR, fail
from study.store.cells import read_cells
from study.store.records import iter_records
from study.store.records import is_complete
from study.training.searches import iter_searches

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Node:
    """What one SLURM node offers."""

    name: str
    partitions: tuple[str, ...]
    cpus: int
    mem_mb: int
    gpus: int


def _gpus(gres: str) -> int:
    """GPUs in a gres string such as `gpu:a100:4(S:0-1),shard:8` (0 for `(null)`)."""
    total = 0
    for item in gres.split(","):
        parts = item.split("(")[0].split(":")
        if parts[0] == "gpu":
            total += int(parts[-1]) if parts[-1].isdigit() else 1
    return total


def nodes() -> list[Node] | None:
    """The cluster's nodes according to `sinfo`, or None where it does not answer."""
    if shutil.which("sinfo") is None:
        return None
    try:
        out = subprocess.run(["sinfo", "-h", "-N", "-o", "%N|%P|%c|%m|%G"], capture_output=True, text=True,
                             timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    found: dict[str, Node] = {}
    for line in out.stdout.splitlines():
        fields = line.strip().split("|")
        if len(fields) != 5 or not fields[2].isdigit():
            continue
        name, partition, cpus, mem, gres = fields
        mem_mb = int(re.sub(r"\D.*", "", mem) or 0)
        old = found.get(name)
        parts = (old.partitions if old else ()) + (partition.rstrip("*"),)
        found[name] = Node(name, parts, int(cpus), mem_mb, _gpus(gres))
    return list(found.values())


def check_request(request: dict[str, Any], cluster: list[Node]) -> None:
    """UserError naming the setting to change when no node of the partition can run the request."""
    partition = request.get("partition")
    pool = [n for n in cluster if partition is None or partition in n.partitions]
    if not pool:
        raise UserError(f"SLURM has no partition {partition!r}; set hydra.launcher.partition to one of: "
                        f"{', '.join(sorted({p for n in cluster for p in n.partitions}))}")
    gpus = request.get("gpus_per_node") or 0
    cpus = request.get("cpus_per_task") or 1
    mem_gb = request.get("mem_gb") or 0
    if gpus and not any(n.gpus >= gpus for n in pool):
        most = max(n.gpus for n in pool)
        raise UserError(f"the SLURM cluster has no node with {gpus} GPU(s) (at most {most}); "
                        + ("train on CPUs with device=cpu (the slurm preset then asks for no GPU)" if most == 0
                           else f"set hydra.launcher.gpus_per_node={most}"))
    if not any(n.cpus >= cpus for n in pool):
        raise UserError(f"no SLURM node has {cpus} CPUs (at most {max(n.cpus for n in pool)}); "
                        f"set hydra.launcher.cpus_per_task={max(n.cpus for n in pool)} or less")
    if mem_gb and not any(n.mem_mb >= mem_gb * 1024 and n.cpus >= cpus for n in pool):
        most = max(n.mem_mb for n in pool) // 1024
        raise UserError(f"no SLURM node has {mem_gb} GB of memory (at most {most} GB); "
                        f"set hydra.launcher.mem_gb={max(most, 1)} or less")


def preflight(request: dict[str, Any]) -> None:
    """Check `request` (the launcher's gpus_per_node, cpus_per_task, mem_gb, partition) against sinfo."""
    cluster = nodes()
    if cluster:
        check_request(request, cluster)

# The command-line side (used by study.train's main): preflight, sbatch's echo, the summary afterwards.


class WithoutSbatchErrors:
    """A stderr that drops the `sbatch: error` lines submitit copies there (main() reports them once)."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream
        self._dropped = False  # print() writes the line's end separately: drop it with the line

    def write(self, text: str) -> int:
        """Forward everything but sbatch's own error lines."""
        if text.lstrip().startswith("sbatch: error") or (self._dropped and text == "\n"):
            self._dropped = not self._dropped or text != "\n"
            return len(text)
        self._dropped = False
        return self._stream.write(text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def slurm_preflight(line: CommandLine, config_name: str = "train") -> bool:
    """For hydra/launcher=slurm: check the request against the cluster before anything is submitted."""
    import os

    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf import OmegaConf

    if line.value("hydra/launcher") != "slurm" or not line.multirun:
        return False
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            # The launcher's request is the same for every job of the sweep: the first job's config tells it.
            cfg = compose(config_name, overrides=first_values(line), return_hydra_config=True)
        request = OmegaConf.to_container(cfg.hydra.launcher, resolve=True)
    except (HydraException, ValueError, KeyError) as e:  # the command line's own validation reports it
        log.debug("no slurm preflight: %s", e)
        return False
    if shutil.which("sbatch") is None:  # after composing: a wrong launcher setting is named first
        fail("hydra/launcher=slurm submits with SLURM's sbatch, which this machine does not have; run the command "
             "on the cluster's login node, add dry_run=true to print the plan here, or leave out "
             "hydra/launcher=slurm to run here")
    try:
        preflight(request)
    except UserError as e:
        fail(str(e))
    os.environ["HYDRA_FULL_ERROR"] = "1"  # let an sbatch refusal reach main(), which says it in one line
    return True


def sweep_summary(line: CommandLine, default_dir: str, config_name: str = "train") -> None:
    """After a sweep sent to a submitit launcher (its jobs log elsewhere), what the study holds now."""
    launcher = line.value("hydra/launcher") or "basic"
    if not line.multirun or launcher == "basic" or line.is_true("dry_run"):
        return
    study_dir = Path(line.value("study_dir") or default_dir).expanduser()
    try:
        lines = _search_progress(study_dir) if config_name == "search" else _progress(study_dir)
    except UserError:
        return
    what = "searches" if config_name == "search" else "runs"
    print(f"sweep finished ({launcher} launcher); {what} in {study_dir}:\n" + "\n".join(lines)
          + f"\ndetails and the command for what is missing: {command('launch.status', study_dir=study_dir)}")


def _progress(study_dir: Path) -> list[str]:
    """One line per (objective, seed, run folder): runs done, failed and not done (records only)."""
    from collections import Counter

    n = len(read_cells(study_dir))
    counts: Counter = Counter()
    for path, rec in iter_records(study_dir):
        counts[(rec.get("objective"), rec.get("seed"), path.parent.parent.name, rec.get("status"))] += 1
    groups = sorted({k[:3] for k in counts}, key=str)
    lines = []
    for objective, seed, tag in groups:
        done, failed = counts[(objective, seed, tag, "complete")], counts[(objective, seed, tag, "failed")]
        lines.append(f"  {objective} seed {seed} ({tag}): {done} done, {failed} failed, {n - done - failed} not done")
    return lines


def _search_progress(study_dir: Path) -> list[str]:
    """One line per (method, objective, search folder): searches done and failed (records only)."""
    from collections import Counter

    counts: Counter = Counter()
    for path, rec in iter_searches(study_dir):
        counts[(rec.get("method"), rec.get("objective"), path.parent.name, is_complete(rec))] += 1
    return [f"  {method}/{objective} ({tag}): {counts[(method, objective, tag, True)]} done, "
            f"{counts[(method, objective, tag, False)]} failed"
            for method, objective, tag in sorted({k[:3] for k in counts}, key=str)]


def job_failure(e: Exception) -> str | None:
    """One line for a job of a submitit sweep that ended without its result (None for other errors): the job's
    own last error line (or its exception's), and where its log is."""
    import re

    if type(e).__name__ not in ("UncompletedJobError", "FailedJobError"):
        return None
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip() and not set(ln.strip()) <= {"-"}]
    said = [ln for ln in lines if ln.startswith("error: ")]
    reason = said[-1][len("error: "):] if said else (lines[-1] if lines else type(e).__name__)
    found = re.search(r"with path (\S+)_result\.pkl", str(e))
    where = f"; its log: {found.group(1)}_log.err" if found else ""
    return f"a job of the sweep failed: {reason}{where}"


def local_jobs_answer_only_to_their_tasks() -> None:
    """Start submitit's local job controllers with Ctrl-C ignored (their tasks take it back, see cli.py).

    Ctrl-C reaches the whole process group; a controller that gets it prints a KeyboardInterrupt traceback
    and kills its tasks a second later, before they have stopped their workers. Ignoring it, the controller
    waits for its tasks, which stop cleanly, and ends quietly.
    """
    try:
        from submitit.local import local
    except ImportError:
        return
    start = local.start_controller
    if getattr(start, "deaf_to_ctrl_c", False):
        return

    def start_deaf(*args: Any, **kwargs: Any) -> Any:
        # Ignored, not blocked: a blocked mask would pass on to the tasks, and submitit's SIGUSR2 handler there
        # would never run. Only a Ctrl-C in the milliseconds of this call is lost.
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            return start(*args, **kwargs)
        finally:
            signal.signal(signal.SIGINT, previous)

    start_deaf.deaf_to_ctrl_c = True  # type: ignore[attr-defined]
    local.start_controller = start_deaf


ENDED = "ENDED (gone from squeue; no sacct to say how)"


def queued_jobs(ids: set[str]) -> set[str] | None:
    """The entries `squeue` lists for these job ids (`123`, `123_4`, `123_[5-9]`), or None where it does not answer."""
    if shutil.which("squeue") is None or not ids:
        return None
    try:
        out = subprocess.run(["squeue", "-h", "-o", "%i", "-j", ",".join(sorted(ids))], capture_output=True,
                             text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return {ln.strip() for ln in out.stdout.splitlines() if ln.strip()} if out.returncode == 0 else None


def _still_queued(job_id: str, queued: set[str]) -> bool:
    base = job_id.split("_")[0]
    return job_id in queued or base in queued or any(q.startswith(f"{base}_[") for q in queued)


def ended_jobs_without_accounting() -> None:
    """Where SLURM keeps no accounting (sacct fails), learn from `squeue` that a job has ended.

    submitit asks sacct for a job's state; without it a job cancelled or killed before writing its result
    stays UNKNOWN and the submitting command waits forever. A job squeue no longer lists has ended: submitit
    then reads its result, or reports it failed (a one-line error from study.train).
    """
    try:
        from submitit.slurm.slurm import SlurmInfoWatcher
    except ImportError:
        return
    if getattr(SlurmInfoWatcher, "ends_from_squeue", False):
        return
    update = SlurmInfoWatcher.update

    def update_or_ask_squeue(self: Any) -> None:
        self._output = None  # set by submitit's update only when sacct answered
        update(self)
        waiting = self._registered - self._finished
        if self._output is not None or not waiting:
            return
        queued = queued_jobs({job.split("_")[0] for job in waiting})
        if queued is None:
            return
        for job in waiting:
            if not _still_queued(job, queued):
                self._info_dict[job] = {"State": ENDED}
                self._finished.add(job)

    SlurmInfoWatcher.update = update_or_ask_squeue
    SlurmInfoWatcher.ends_from_squeue = True
