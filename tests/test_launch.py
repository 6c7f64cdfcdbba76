"""Work grouping (shards, chosen cells, dry run), GPU pinning, launcher presets, and `launch.status`."""

from __future__ import annotations

import json
import shlex

import pytest
from hydra import compose, initialize_config_dir

from study.commands.shards import choose, register_resolvers, share
from study.training.devices import Slot, pinned_device
from study.commands.argv import expand_argv
from study.commands.cli import CONF_DIR
from study.errors import UserError

CELLS = [{"id": f"{k:02d}aa{k:06d}", "arch": "x"} for k in range(10)]
FAST = ["budget=tiny", "workers=1", "threads=1", "dataset.image_size=8", "dataset.test_fraction=0.5"]


def test_shards_are_balanced_disjoint_and_cover_every_chosen_cell():
    rows = choose(CELLS, None)
    shares = [share(rows, s, 3) for s in range(3)]
    assert [len(x) for x in shares] == [4, 3, 3]
    assert sorted(r for x in shares for r, _ in x) == list(range(10))
    # A job with two tasks (one per GPU) splits its shard again, still disjoint.
    halves = [share(rows, 0, 3, Slot(rank=k, tasks=2, local_rank=k)) for k in range(2)]
    assert [r for r, _ in halves[0]] == [0, 6] and [r for r, _ in halves[1]] == [3, 9]


def test_cells_are_chosen_by_id_or_row_and_unknown_ones_are_refused():
    assert [r for r, _ in choose(CELLS, ["3", CELLS[7]["id"], 3])] == [3, 7]
    with pytest.raises(UserError, match="neither a cell id nor a row number"):
        choose(CELLS, ["zz"])
    with pytest.raises(UserError, match="outside 0..1"):
        share(choose(CELLS, None), 2, 2)


def test_each_task_of_a_multi_gpu_job_gets_its_own_device():
    assert [pinned_device("cuda", Slot(k, 4, k), 4) for k in range(4)] == [f"cuda:{k}" for k in range(4)]
    assert pinned_device("cuda", Slot(0, 1, 0), 4) == "cuda"  # one task: the device as configured
    assert pinned_device("cpu", Slot(1, 2, 1), 0) == "cpu"


def test_argv_expansion():
    assert expand_argv(["-m", "objective=a,b", "shards=3"]) == ["-m", "objective=a,b", "shards=3", "shard=0,1,2"]
    assert expand_argv(["-m", "shards=3", "shard=1"]) == ["-m", "shards=3", "shard=1"]  # explicit shard kept
    assert expand_argv(["shards=3"]) == ["shards=3"]  # no sweep without -m: one process trains all shards
    assert expand_argv(["cell=3,17"]) == ["cells=['3','17']"]
    assert expand_argv(["-m", "hydra/launcher=slurm", "dry_run=true"]) == ["-m", "dry_run=true",
                                                                           "hydra/launcher=basic"]
    # the launcher's own settings go with it: the basic launcher has no partition
    assert expand_argv(["-m", "hydra/launcher=slurm", "hydra.launcher.partition=gpu", "+hydra.launcher.qos=x",
                        "dry_run=true"]) == ["-m", "dry_run=true", "hydra/launcher=basic"]


@pytest.mark.parametrize("launcher", ["slurm", "local", "gpus"])
def test_launcher_presets_compose(launcher):
    register_resolvers()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("train", overrides=[f"hydra/launcher={launcher}"], return_hydra_config=True)
    params = cfg.hydra.launcher
    assert params.tasks_per_node >= 1 and params.timeout_min >= 60
    if launcher == "slurm":
        assert params.max_num_timeout > 0 and params.signal_delay_s > 0 and "SlurmLauncher" in params._target_


def test_dry_run_prints_the_plan_and_trains_nothing(cli, tmp_path):
    study = tmp_path / "s"
    assert cli("study.sample", "n=5", f"study_dir={study}").returncode == 0
    done = cli("study.train", "-m", "hydra/launcher=slurm", "hydra.launcher.partition=gpu",  # as the README shows
               "objective=rotation,supervised", "shards=2", "dry_run=true", f"study_dir={study}", *FAST)
    assert done.returncode == 0, done.stderr
    ids = [json.loads(line)["id"] for line in (study / "cells.jsonl").read_text().splitlines()]
    for objective in ("rotation", "supervised"):
        assert f"{objective} seed 0 shard 0/2: trains 3 of 3 cells" in done.stdout
        assert f"{objective} seed 0 shard 1/2: trains 2 of 2 cells (0 complete, skipped): #1:{ids[1]} #3:{ids[3]}" \
            in done.stdout
    assert not (study / "runs").exists()
    bad = cli("study.train", "shard=2", "shards=2", f"study_dir={study}", *FAST)
    assert bad.returncode == 2 and bad.stderr.startswith("error: shard=2 is outside")


@pytest.mark.slow
def test_status_counts_failures_and_prints_a_command_that_finishes_the_study(cli, tmp_path):
    study = tmp_path / "s"
    assert cli("study.sample", "n=3", f"study_dir={study}").returncode == 0
    # Rotation diverges on purpose (a real failure in training); supervised trains one cell of three.
    assert cli("study.train", "-m", "objective=rotation,supervised", "cell=0", f"study_dir={study}", *FAST,
               "+budget.objectives.rotation.lr=1e30").returncode == 0
    status = cli("launch.status", f"study_dir={study}")
    assert status.returncode == 0, status.stderr
    lines = status.stdout.splitlines()
    assert any(line.split()[:2] == ["rotation", "0"] and line.split()[3:] == ["0", "1", "0", "2"] for line in lines)
    assert any(line.split()[:2] == ["supervised", "0"] and line.split()[3:] == ["1", "0", "0", "2"] for line in lines)
    assert "diverged at epoch 0" in status.stdout
    commands = [line.strip() for line in lines if line.strip().startswith("python -m study.train")]
    assert len(commands) == 2
    supervised = next(c for c in commands if "objective=supervised" in c)
    assert "cells=[" in supervised and "lr=1e+30" not in supervised  # only what defines the run
    rerun = cli(*shlex.split(supervised)[2:])  # `study.train -m ...` exactly as printed
    assert rerun.returncode == 0, rerun.stderr
    after = cli("launch.status", f"study_dir={study}").stdout
    assert any(line.split()[:2] == ["supervised", "0"] and line.split()[3:] == ["3", "0", "0", "0"]
               for line in after.splitlines())
    assert cli("launch.status", "studydir=x").returncode == 2


def test_slurm_preset_asks_for_no_gpu_with_device_cpu():
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from study.commands.shards import register_resolvers
    from study.commands.cli import CONF_DIR

    register_resolvers()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cpu = compose("train", overrides=["hydra/launcher=slurm", "device=cpu"], return_hydra_config=True)
        gpu = compose("train", overrides=["hydra/launcher=slurm"], return_hydra_config=True)
    cpu, gpu = (OmegaConf.to_container(c.hydra.launcher, resolve=True) for c in (cpu, gpu))
    assert cpu["gpus_per_node"] is None and (cpu["cpus_per_task"], cpu["mem_gb"]) == (4, 8)
    assert (gpu["gpus_per_node"], gpu["cpus_per_task"], gpu["mem_gb"]) == (1, 8, 32)


def test_a_request_no_node_can_run_names_the_setting_to_change():
    from study.commands.cluster import Node, _gpus, check_request
    from study.errors import UserError

    assert _gpus("gpu:a100:4(S:0-1),shard:8") == 4 and _gpus("(null)") == 0 and _gpus("gpu:2") == 2
    cpus_only = [Node("n1", ("debug",), 2, 3000, 0)]
    check_request({"gpus_per_node": None, "cpus_per_task": 2, "mem_gb": 2}, cpus_only)
    for request, words in (({"gpus_per_node": 1}, ["no node with 1 GPU", "device=cpu"]),
                           ({"cpus_per_task": 8}, ["8 CPUs", "hydra.launcher.cpus_per_task=2"]),
                           ({"mem_gb": 32}, ["32 GB", "hydra.launcher.mem_gb=2"]),
                           ({"partition": "gpu"}, ["no partition 'gpu'", "debug"])):
        with pytest.raises(UserError) as err:
            check_request(request, cpus_only)
        assert all(w in str(err.value) for w in words), str(err.value)


def test_launch_rerun_is_not_a_command(cli):
    done = cli("launch.rerun", "study_dir=x")
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "python -m launch.status" in done.stderr


def test_a_path_with_spaces_and_umlauts_is_quoted_alike_everywhere_and_printed_as_written(cli, tmp_path):
    from study import shell
    from launch import rerun
    from study.commands import settings
    from study.commands.argv import CommandLine

    study = tmp_path / "my studies" / "für"
    quoted = f"study_dir='{study}'"
    assert cli("study.sample", "n=2", quoted).returncode == 0
    bare = cli("launch.status", f"study_dir={study}")  # unquoted: the same hint as every other command gives
    assert bare.returncode == 2 and bare.stderr.count("\n") == 1 and f"\"{quoted}\"" in bare.stderr, bare.stderr
    status = cli("launch.status", quoted)
    assert status.returncode == 0 and "\\u" not in status.stdout, status.stdout
    start = status.stdout.split("`")[1]
    assert CommandLine.parse(shlex.split(start)[3:]).override("study_dir").value() == str(study)
    # the command that trains what is missing, rebuilt from a run's config: real characters, pasted as printed
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("train", overrides=[quoted, "budget=tiny"])
    printed = rerun.command(rerun.overrides_for(settings.plain(cfg)), [0], ["c1"], False)
    assert "für" in printed and "\\u" not in printed
    line = CommandLine.parse(shlex.split(printed)[3:])
    assert line.override("study_dir").value() == str(study) and line.value("budget") == "tiny"
    assert shell.command("launch.status", study_dir=study) == f"python -m launch.status 'study_dir=\"{study}\"'"


def test_without_accounting_a_job_gone_from_the_queue_ends_the_wait(tmp_path, monkeypatch):
    """sacct disabled: submitit would wait forever for a cancelled job; squeue's word ends the wait."""
    import os

    from submitit.slurm.slurm import SlurmInfoWatcher

    from study.commands.cluster import ENDED, ended_jobs_without_accounting

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "sacct").write_text("#!/bin/sh\necho 'sacct: error: Slurm accounting storage is disabled' >&2\nexit 1\n")
    (bin_dir / "squeue").write_text("#!/bin/sh\necho 124\necho 125_[3-9]\n")  # 123 is gone, 124 runs, 125 pends
    for tool in ("sacct", "squeue"):
        (bin_dir / tool).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setattr(SlurmInfoWatcher, "update", SlurmInfoWatcher.update)  # both undone after the test
    monkeypatch.setattr(SlurmInfoWatcher, "ends_from_squeue", False, raising=False)
    ended_jobs_without_accounting()
    watcher = SlurmInfoWatcher(delay_s=0)
    for job in ("123_0", "124", "125_4"):
        watcher.register_job(job)
    watcher.update()
    assert watcher.is_done("123_0", mode="cache") and watcher.get_state("123_0", mode="cache") == ENDED
    assert not watcher.is_done("124", mode="cache") and not watcher.is_done("125_4", mode="cache")


def test_a_failed_job_of_a_sweep_is_one_line_naming_its_error_and_log():
    from submitit.core.utils import UncompletedJobError

    from study.commands.cluster import job_failure

    e = UncompletedJobError("Job 7_0 (task: 0) with path /s/logs/.submitit/7_0/7_0_0_result.pkl\nhas not produced "
                            "any output (state: FAILED)\nError stream produced:\n----------------------------------\n"
                            "[12:00:00] training\nerror: a worker process was killed by SIGKILL\n")
    assert job_failure(e) == ("a job of the sweep failed: a worker process was killed by SIGKILL; its log: "
                              "/s/logs/.submitit/7_0/7_0_0_log.err")
    assert job_failure(ValueError("x")) is None


@pytest.mark.parametrize("module", ["study.train", "study.search"])
def test_a_slurm_sweep_without_slurm_is_refused_in_one_line(inline, monkeypatch, tmp_path, module):
    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch here
    status, err = inline(module, "-m", "hydra/launcher=slurm", "seed=0,1", f"study_dir={tmp_path / 's'}")
    assert status == 2 and err.count("\n") == 1 and "sbatch" in err and "dry_run=true" in err, err
