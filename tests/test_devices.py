"""Ready for a GPU, checked on a CPU: device choice, GPU pinning, run identity, cross-device resume, TF32."""

from __future__ import annotations

import json
import logging
import sys
from dataclasses import asdict, replace

import cloudpickle
import pandas as pd
import pytest
import torch
from hydra import compose, initialize_config_dir

from analysis.load import trained_on
from analysis.studies import StudySpec, select_runs
from study.commands import shards
from study.training import devices
from study.commands.argv import expand_argv
from study.training.devices import Slot, remember_visible_gpus, task_visible_gpus
from study.training.checkpoint import Checkpointer, path_for
from study.commands.cli import CONF_DIR
from study.data import build_dataset
from study.errors import UserError
from study.spaces.nb201.network import Trunk
from study.objectives import create_objective
from study.store.records import identity_hash
from study.training.runner import execute
from study.training.run import RunSpec, Setup
from study.spaces import NetShape, draw
from study.training.devices import check_gpu_index, gpus_allocated, resolve_device
from study.training.run import Budget
from study.training.trainer import train
from study.training.devices import strict_fp32

BUDGET = Budget(name="t", epochs=2, batch_size=128, lr=0.1)
SHAPE = NetShape(c_in=1, image_size=8, n_classes=10, width=4, cells_per_stage=1)
SMALL = {"image_size": 8, "test_fraction": 0.5}


@pytest.fixture(scope="module")
def data():
    return build_dataset("digits", **SMALL)


def _setup(**kw) -> Setup:
    base = dict(space="nb201", objective="supervised", objective_options={"crop_padding": 2}, dataset="digits",
                dataset_options=SMALL, budget=BUDGET, shape=SHAPE, device="cpu", threads=1)
    return Setup(**{**base, **kw})


# --- 1. a checkpoint from another device type --------------------------------------------------------------

def _checkpoint_after_one_epoch(data, path, ident, **changes):
    """Train epoch 1 of 2 and save it, then rewrite fields of the file (as another device or older code would)."""
    cell = draw("nb201", 1, seed=3)[0]
    objective = create_objective("supervised", data, crop_padding=2)
    torch.manual_seed(0)
    model = objective.build(Trunk(cell, 1, SHAPE.width, SHAPE.cells_per_stage))
    train(model, objective, data, replace(BUDGET, epochs=1), seed=0, on_state=Checkpointer(path, ident).save)
    saved = torch.load(path, weights_only=True)
    for key, value in changes.items():
        if value is None:
            saved.pop(key)
        else:
            saved[key] = value
    torch.save(saved, path)
    return cell, saved


CUDA_STATE = torch.zeros(16, dtype=torch.uint8)  # what a CUDA generator's get_state() holds


@pytest.mark.parametrize("changes", [{"device_type": "cuda", "generator": CUDA_STATE},   # written on a GPU
                                     {"device_type": None, "generator": CUDA_STATE}],   # older code, on a GPU
                         ids=["cuda", "no-device-field"])
def test_checkpoint_from_another_device_resumes_weights_with_a_fresh_generator(data, tmp_path, changes, caplog):
    cell = draw("nb201", 1, seed=3)[0]
    spec = RunSpec("c", cell.to_str(), "supervised", 0, tmp_path / "c.json")
    setup = _setup()
    ident = {"cell_id": "c", "seed": 0, "identity": identity_hash(setup.identity())}
    _checkpoint_after_one_epoch(data, path_for(spec.path), ident, **changes)
    with caplog.at_level(logging.WARNING, logger="study.training.checkpoint"):
        rec = execute(spec, setup, data)
    assert rec["status"] == "complete" and rec["epochs"] == 2
    assert rec["resumed_from_epoch"] == 1 and rec["rng_restarts"] == [1]
    assert "random stream started afresh" in caplog.text
    assert not path_for(spec.path).exists()  # the record holds the result: the checkpoint is gone


def test_older_cpu_checkpoint_without_the_device_field_resumes_exactly(data, tmp_path):
    cell = draw("nb201", 1, seed=3)[0]
    straight = execute(RunSpec("c", cell.to_str(), "supervised", 0, tmp_path / "a" / "c.json"), _setup(), data)
    spec = RunSpec("c", cell.to_str(), "supervised", 0, tmp_path / "b" / "c.json")
    ident = {"cell_id": "c", "seed": 0, "identity": straight["identity"]}
    _, saved = _checkpoint_after_one_epoch(data, path_for(spec.path), ident, device_type=None)
    assert saved["generator"].numel() == torch.Generator().get_state().numel()
    rec = execute(spec, _setup(), data)
    assert rec["resumed_from_epoch"] == 1 and rec["rng_restarts"] == []
    assert rec["history"] == straight["history"]  # the same random stream: bit for bit


def test_checkpoints_say_which_device_type_wrote_them(data, tmp_path):
    ident = {"cell_id": "c", "seed": 0, "identity": "x"}
    _, saved = _checkpoint_after_one_epoch(data, tmp_path / "c.ckpt", ident)
    assert saved["device_type"] == "cpu"


# --- 5. identity and records say what was run ---------------------------------------------------------------

def test_identity_is_unchanged_on_cpu_fp32_and_separates_other_devices_and_precisions():
    cpu = _setup()
    # The identity every existing study was trained under (all on CPU in fp32): hashes and folders stay.
    old = {"space": "nb201", "objective": "supervised", "objective_options": {"crop_padding": 2},
           "dataset": "digits", "dataset_options": SMALL,
           "budget": {**{k: v for k, v in asdict(BUDGET).items() if k not in type(BUDGET).later},  # fields added later
                      "width": SHAPE.width, "cells_per_stage": SHAPE.cells_per_stage}}
    assert identity_hash(cpu.identity()) == identity_hash(old)
    hashes = {identity_hash(s.identity()) for s in (cpu, _setup(device="cuda", precision="bf16"),
                                                   _setup(device="cuda", precision="fp32"),
                                                   _setup(precision="bf16"))}
    assert len(hashes) == 4
    # Which GPU of a machine trained a run does not make it another run.
    assert _setup(device="cuda:1", precision="bf16").identity() == _setup(device="cuda", precision="bf16").identity()


def test_records_name_device_type_and_precision(data, tmp_path):
    cell = draw("nb201", 1, seed=3)[0]
    rec = execute(RunSpec("c", cell.to_str(), "supervised", 0, tmp_path / "c.json"), _setup(), data)
    assert rec["device_type"] == "cpu" and rec["precision"] == "fp32"
    assert json.loads((tmp_path / "c.json").read_text())["device_type"] == "cpu"


def _runs(devices):
    rows = [{"cell_id": f"c{i}", "objective": "supervised", "space": "nb201", "dataset": "digits", "budget": "t",
             "identity": f"id-{d}", "status": "complete", "dataset_fingerprint": "f", "device": d,
             "precision": "bf16" if d == "cuda" else "fp32", "test_acc_best": 0.5} for i, d in enumerate(devices)]
    return pd.DataFrame(rows)


def test_analysis_refuses_to_mix_devices_unless_one_is_chosen(tmp_path):
    runs = _runs(["cpu", "cuda", "cpu"])
    with pytest.raises(UserError, match=r"several devices \(cpu, cuda\); pick one with device="):
        select_runs(runs, StudySpec(tmp_path, "s"))
    kept = select_runs(runs, StudySpec(tmp_path, "s", device="cpu"))
    assert list(kept["cell_id"]) == ["c0", "c2"]
    kept = select_runs(runs, StudySpec(tmp_path, "s", precision="bf16"))
    assert list(kept["cell_id"]) == ["c1"]


def test_records_from_before_devices_counted_read_as_cpu_fp32():
    assert trained_on({"device": "cpu"}) == {"device": "cpu", "precision": "fp32"}
    assert trained_on({"device": "cuda:3", "precision": "bf16"}) == {"device": "cuda", "precision": "bf16"}


def test_correlate_takes_device_and_precision_selections():
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("correlate", overrides=["device=cuda", "precision=bf16"])
    from analysis.correlate import parse, primary_spec

    spec = primary_spec(parse(cfg))
    assert (spec.device, spec.precision) == ("cuda", "bf16")


# --- 2, 3. launchers keep the GPUs the user gave --------------------------------------------------------------

def test_local_launcher_exposes_the_visible_gpus(monkeypatch):
    # submitit's local executor exports CUDA_VISIBLE_DEVICES=0..gpus_per_node-1: 0 would hide every GPU.
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    shards.register_resolvers()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("train", overrides=["hydra/launcher=local"], return_hydra_config=True)
    assert cfg.hydra.launcher.gpus_per_node == 2


def test_each_task_of_a_local_job_gets_its_own_entry_of_the_users_list():
    env = {"CUDA_VISIBLE_DEVICES": "2,3"}
    remember_visible_gpus(env)
    env.update(SUBMITIT_EXECUTOR="local", CUDA_VISIBLE_DEVICES="0,1")  # what submitit exports to the tasks
    assert [task_visible_gpus(Slot(k, 2, k), env) for k in range(2)] == ["2", "3"]
    assert task_visible_gpus(Slot(), env) == "2,3"  # one task: the whole list
    assert task_visible_gpus(Slot(1, 2, 1), {**env, "SUBMITIT_EXECUTOR": "slurm"}) is None  # SLURM sets its own
    remember_visible_gpus(unset := {"STUDY_VISIBLE_GPUS": "7"})
    assert unset == {}  # no list given: submitit's numbering is the machine's


def _task_gpus():
    """Run inside a submitit task: pin as study.train does and report what the task would see."""
    import os

    devices.pin_visible_gpus(devices.current_slot())
    return os.environ["CUDA_VISIBLE_DEVICES"]


def test_a_real_local_submitit_job_pins_each_task_to_the_users_gpu(tmp_path, monkeypatch):
    import submitit

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    monkeypatch.setenv(devices.VISIBLE_ENV, "")
    remember_visible_gpus()  # as study.train's main does before Hydra starts the launcher
    assert devices.os.environ[devices.VISIBLE_ENV] == "2,3"
    executor = submitit.AutoExecutor(folder=tmp_path, cluster="local")
    executor.update_parameters(timeout_min=5, tasks_per_node=2, gpus_per_node=2)
    module = sys.modules[__name__]
    cloudpickle.register_pickle_by_value(module)  # pytest imports this file under a name the job cannot import
    try:
        job = executor.submit(_task_gpus)
    finally:
        cloudpickle.unregister_pickle_by_value(module)
    assert sorted(job.results()) == ["2", "3"]


def test_gpu_presets_ask_for_cuda():
    assert expand_argv(["-m", "hydra/launcher=gpus"]) == ["-m", "hydra/launcher=gpus", "device=cuda"]
    assert expand_argv(["hydra/launcher=gpus", "device=cpu"]) == ["hydra/launcher=gpus", "device=cpu"]
    assert expand_argv(["hydra/launcher=local"]) == ["hydra/launcher=local"]


# --- 4. no silent CPU run when a GPU was given --------------------------------------------------------------

def test_cuda_that_is_not_usable_is_one_clear_error():
    if torch.cuda.is_available():
        pytest.skip("a usable GPU is here")
    with pytest.raises(UserError, match="sees no CUDA GPU it can use; use device=cpu"):
        resolve_device("cuda")


def test_a_gpu_index_beyond_the_visible_ones_is_refused():
    check_gpu_index(1, 2)
    check_gpu_index(None, 1)
    with pytest.raises(UserError, match=r"device=cuda:2 but 2 GPU\(s\) are visible.*device=cuda:0..1"):
        check_gpu_index(2, 2)


def test_auto_warns_when_a_gpu_was_allocated_but_torch_cannot_use_it(monkeypatch, caplog):
    if torch.cuda.is_available():
        pytest.skip("a usable GPU is here")
    assert gpus_allocated({"SLURM_JOB_GPUS": "0"}) == "SLURM_JOB_GPUS=0"
    assert gpus_allocated({"CUDA_VISIBLE_DEVICES": ""}) == ""
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "5")
    with caplog.at_level(logging.WARNING, logger="study.train"):
        assert resolve_device("auto") == "cpu"
    assert "device=auto trains on the CPU: CUDA_VISIBLE_DEVICES=5" in caplog.text


# --- 5. fp32 on CUDA is IEEE fp32 ------------------------------------------------------------------------------

def test_fp32_on_cuda_turns_tf32_off_and_other_settings_leave_it():
    conv, matmul = torch.backends.cudnn.conv, torch.backends.cuda.matmul
    before = conv.fp32_precision, matmul.fp32_precision
    try:
        conv.fp32_precision, matmul.fp32_precision = "tf32", "tf32"
        strict_fp32("cuda", "bf16")
        strict_fp32("cpu", "fp32")
        assert (conv.fp32_precision, matmul.fp32_precision) == ("tf32", "tf32")
        strict_fp32("cuda", "fp32")
        assert (conv.fp32_precision, matmul.fp32_precision) == ("ieee", "ieee")
    finally:
        conv.fp32_precision, matmul.fp32_precision = before


# --- 6. a preempted task stops its workers instead of waiting for their runs ----------------------------------

PREEMPTED_TASK = """
import signal, sys
from pathlib import Path
from study.training.run import RunSpec, Setup
from study.spaces import NetShape, draw
from study.training.run import Budget
from study.training.runner import run_all

def preempted(signum, frame):  # what submitit's SIGUSR2 handler does after requeueing the job
    sys.exit(-1)

signal.signal(signal.SIGUSR2, preempted)
folder = Path(sys.argv[1])
budget = Budget(name="t", epochs=100000, batch_size=128, lr=0.01)
setup = Setup(space="nb201", objective="supervised", objective_options={"crop_padding": 2}, dataset="digits",
              dataset_options={"image_size": 8, "test_fraction": 0.5}, budget=budget,
              shape=NetShape(1, 8, 10, 4, 1), device="cpu", threads=1)
specs = [RunSpec(f"c{k}", cell.to_str(), "supervised", 0, folder / f"c{k}.json")
         for k, cell in enumerate(draw("nb201", 2, seed=3))]
run_all(specs, setup, workers=2, label="preempted")
"""


@pytest.mark.slow
def test_a_preempted_task_stops_its_workers_from_their_checkpoints(tmp_path):
    import os
    import signal
    import subprocess
    import time

    from tests.conftest import ROOT

    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-c", PREEMPTED_TASK, str(tmp_path)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 300
        while len(list(tmp_path.glob("*.ckpt"))) < 2 and proc.poll() is None:
            assert time.monotonic() < deadline, "no checkpoints appeared"
            time.sleep(0.05)
        proc.send_signal(signal.SIGUSR2)
        # 100,000 epochs: waiting for the runs would never end; stopping them takes seconds.
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode != 0
    assert not list(tmp_path.glob("*.json"))  # no run recorded as failed or complete
    assert len(list(tmp_path.glob("*.ckpt"))) == 2  # both resume from their last epoch when requeued
    assert not list(tmp_path.glob("*.claim")) and not list(tmp_path.glob(".*.tmp"))  # workers unwound cleanly


def test_rerun_commands_keep_device_and_precision(tmp_path):
    from omegaconf import OmegaConf

    from launch.rerun import overrides_for

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("train", overrides=["device=cuda", "precision=bf16", f"study_dir={tmp_path}"])
    overrides = overrides_for(OmegaConf.to_container(cfg, resolve=True))
    assert overrides is not None and "device=cuda" in overrides and "precision=bf16" in overrides


def test_workers_auto_never_oversubscribes_a_slurm_allocation_or_a_cgroup_quota(tmp_path):
    import os

    mine = len(os.sched_getaffinity(0))
    job = {"SLURM_JOB_ID": "7", "SLURM_CPUS_PER_TASK": "1"}  # SLURM set no affinity mask: all cores visible
    assert devices.cpu_count({}, tmp_path) == mine
    assert devices.cpu_count(job, tmp_path) == 1
    assert devices.cpu_count({"SLURM_CPUS_PER_TASK": "1"}, tmp_path) == mine  # a leftover outside any job
    (tmp_path / "cpu.max").write_text("150000 100000\n")  # cgroup v2: 1.5 CPUs are 1 whole one
    assert devices.cpu_count({}, tmp_path) == 1
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert devices.cpu_count({}, tmp_path) == mine
    (tmp_path / "cpu.max").unlink()
    (tmp_path / "cpu").mkdir()  # cgroup v1
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("100000\n")
    (tmp_path / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    assert devices.cpu_count({}, tmp_path) == 1


def test_a_slurm_job_of_one_cpu_runs_one_worker(monkeypatch):
    from study.commands.request import parse

    monkeypatch.setenv("SLURM_JOB_ID", "7")
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "1")
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        req = parse(compose("train", overrides=["device=cpu"]))
    assert req.workers == 1 and req.setup.threads == 1


def test_auto_threads_is_one_per_worker_unless_the_cores_are_a_slurm_jobs_own():
    from study.training.devices import auto_threads

    assert auto_threads(16, 1, env={}) == 1 and auto_threads(2, 2, env={}) == 1
    assert auto_threads(16, 4, env={"SLURM_JOB_ID": "7"}) == 4 and auto_threads(2, 4, env={"SLURM_JOB_ID": "7"}) == 1
