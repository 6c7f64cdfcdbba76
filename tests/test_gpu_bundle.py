"""The GPU check prepared on a CPU: the bundle it carries, its verdict on records, and a dry run of every step."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))

from gpu_bundle import ARCHIVES  # noqa: E402
from gpu_records import problems  # noqa: E402

pytestmark = pytest.mark.skipif(not any(a.is_file() for a in ARCHIVES), reason="no CIFAR-10 archive in ../shared")


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bundle")
    done = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_bundle.sh"), str(folder)], capture_output=True,
                          text=True, env={**os.environ, "PYTHON": sys.executable, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr
    return folder


def test_bundle_fits_and_imports_without_site_packages(bundle):
    size = sum(f.stat().st_size for f in bundle.rglob("*") if f.is_file())
    assert size < 60e6
    manifest = json.loads((bundle / "MANIFEST.json").read_text())
    assert (manifest["train_images"], manifest["test_images"]) == (10_000, 2_000)
    # -S: no site-packages, so only the bundle can provide them (torch is not needed for these).
    code = "import hydra, omegaconf, submitit, antlr4, yaml, cloudpickle; import hydra_plugins.hydra_submitit_launcher"
    done = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True,
                          env={"PYTHONPATH": str(bundle / "site"), "PATH": os.environ.get("PATH", "")})
    assert done.returncode == 0, done.stderr


def test_bundled_cifar_subset_reads_as_cifar10(bundle):
    from study.data import build_dataset

    data = build_dataset("cifar10", data_root=str(bundle / "data"), download=False)
    assert tuple(data.train_x.shape) == (10_000, 3, 32, 32) and tuple(data.test_x.shape) == (2_000, 3, 32, 32)
    assert data.train_y.bincount().tolist() == [1000] * 10


def test_verdict_names_every_problem_of_a_run():
    good = {"objective": "rotation", "cell_id": "c", "status": "complete", "device_type": "cuda",
            "history": {"train_loss": [1.3, 1.1]}, "test_acc_best": 0.4}
    assert problems(good, "cuda", learning=True) == []
    assert problems({**good, "status": "failed", "reason": "diverged at epoch 0"}, "cuda", True) == [
        "rotation cell c failed: diverged at epoch 0"]
    found = problems({**good, "device_type": "cpu", "history": {"train_loss": [1.3, 1.4]}, "test_acc_best": 0.25},
                     "cuda", learning=True)
    assert len(found) == 3 and "not cuda" in found[0] and "did not fall" in found[1] and "chance" in found[2]


@pytest.mark.slow
def test_gpu_check_dry_run_on_cpu_passes_every_step(bundle, tmp_path):
    env = {**os.environ, "PYTHON": sys.executable, "GPU_CHECK_DEVICE": "cpu", "GPU_BUNDLE": str(bundle),
           "GPU_CHECK_WORK": str(tmp_path / "work")}
    out = tmp_path / "out"
    done = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), str(out)], capture_output=True,
                          text=True, env=env, timeout=900)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert (out / "verdict.txt").read_text().startswith("GPU CHECK PASSED on cpu")
    runs = json.loads((out / "objectives.json").read_text())["runs"]
    assert sorted(r["objective"] for r in runs) == ["colorization", "jigsaw", "rotation", "supervised"]
    assert all(r["status"] == "complete" and r["device_type"] == "cpu" for r in runs)
    assert json.loads((out / "throughput_c8.json").read_text())["cells"]
    assert "cell-epochs per hour" in (out / "concurrency.txt").read_text()
    assert set(json.loads((out / "syncs.json").read_text())) == {"supervised", "rotation", "colorization", "jigsaw"}


def test_gpu_check_without_a_bundle_fails_loudly(tmp_path):
    env = {**os.environ, "PYTHON": sys.executable, "GPU_BUNDLE": str(tmp_path / "none")}
    done = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), str(tmp_path / "out")],
                          capture_output=True, text=True, env=env)
    assert done.returncode == 1 and done.stderr.startswith("GPU CHECK FAILED: no bundle at")
