"""The digits shipped with the package (study/data/digits.npz) are scikit-learn's, and studies see the same data."""

from __future__ import annotations

import subprocess
import sys
import tomllib

import numpy as np
import pytest
from hydra import compose, initialize_config_dir

from study.commands import request
from study.commands.cli import CONF_DIR
from study.data import build_dataset
from study.data.digits import load
from tests.conftest import ROOT

# Fingerprints of the digits as built from sklearn.datasets.load_digits() (main at ce32ebb), recorded in every
# run record as dataset_fingerprint: a study trained before the data moved into the package stays one study.
FINGERPRINTS_BEFORE = {
    (8, 0.2, 0): "4c4496b7a2a53150",  # conf/dataset/digits.yaml: the default study's data
    (16, 0.2, 0): "a843f385a7189415",
    (8, 0.3, 1): "ed5ee23e0762865e",
}


def test_the_shipped_arrays_are_scikit_learns_exactly():
    datasets = pytest.importorskip("sklearn.datasets")
    raw = datasets.load_digits()
    images, targets = load()
    assert (images.dtype, images.shape, targets.dtype, targets.shape) == (np.uint8, (1797, 8, 8), np.uint8, (1797,))
    assert np.array_equal(images, raw.images) and np.array_equal(targets, raw.target)


@pytest.mark.parametrize("image_size, test_fraction, split_seed", list(FINGERPRINTS_BEFORE))
def test_the_data_fingerprint_is_unchanged(image_size, test_fraction, split_seed):
    data = build_dataset("digits", image_size=image_size, test_fraction=test_fraction, split_seed=split_seed)
    assert data.fingerprint == FINGERPRINTS_BEFORE[(image_size, test_fraction, split_seed)]


def test_the_default_study_trains_on_the_same_data_under_the_same_identity():
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        setup = request.parse(compose("train", overrides=["study_dir=/tmp/x"])).setup
    assert setup.identity_hash() == "464f2457"  # tests/test_jobs.py HASHES_BEFORE, the default train command
    assert build_dataset(setup.dataset, **setup.dataset_options).fingerprint == FINGERPRINTS_BEFORE[(8, 0.2, 0)]


def test_building_the_digits_imports_no_scikit_learn():
    code = ("import sys; from study.data import build_dataset; build_dataset('digits', image_size=8); "
            "print(sorted(m for m in ('sklearn', 'joblib', 'pandas') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.split() == ["[]"], done.stderr[-2000:]


def test_scikit_learn_is_no_dependency_and_the_wheel_ships_the_digits():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert not any(d.startswith("scikit-learn") for d in project["project"]["dependencies"])
    shipped = project["tool"]["setuptools"]["package-data"]["study"]
    assert {"data/digits.npz", "data/digits.LICENSE"} <= set(shipped)
