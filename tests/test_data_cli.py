"""The real commands on colour datasets: refusals before any training, and a tiny image-folder study."""

from __future__ import annotations

import json

import pytest

from tests.image_fixtures import write_tiny_folder
from tests.test_cli import assert_refused, files_under


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    root = tmp_path_factory.mktemp("photos")
    write_tiny_folder(root, {"train": 6, "test": 3})
    return root


@pytest.fixture(scope="module")
def sampled(tmp_path_factory):
    from tests.conftest import run_cli as cli

    study = tmp_path_factory.mktemp("study") / "s"
    done = cli("study.sample", "n=1", "dataset=imagefolder", "dataset.n_classes=2", f"study_dir={study}")
    assert done.returncode == 0, done.stderr
    return study


@pytest.mark.parametrize("args,words", [
    (["objective=colorization"], ["colorization", "colour", "dataset=cifar10"]),  # digits are grayscale
    (["dataset=imagefolder", "dataset.n_classes=2"], ["data_root=PATH", "train/<class>"]),
    (["dataset=imagefolder", "data_root=/nonexistent/photos"], ["/nonexistent/photos", "not a folder"]),
    (["dataset=imagefolder", "data_root={photos}"], ["2 class folders", "dataset.n_classes=2"]),
    (["dataset=cifar10", "dataset.download=false"], ["data_root=PATH", "download"]),
    (["objective=jigsaw", "objective.grid=7"], ["grid", "auto, 2 or 3"]),
])
def test_train_refuses_before_training(cli, sampled, photos, args, words):
    before = files_under(sampled)
    args = [a.format(photos=photos) for a in args]
    assert_refused(cli("study.train", *args, f"study_dir={sampled}"), *words)
    assert files_under(sampled) == before


def test_colour_objectives_train_on_an_image_folder_with_the_cache_in_the_study(cli, sampled, photos):
    args = ("dataset=imagefolder", "dataset.n_classes=2", f"data_root={photos}", "budget=tiny", f"study_dir={sampled}")
    done = cli("study.train", "-m", "objective=colorization,jigsaw", *args)
    assert done.returncode == 0, done.stderr
    records = [json.loads(p.read_text()) for p in sorted((sampled / "runs").rglob("*.json"))]
    assert sorted(r["objective"] for r in records) == ["colorization", "jigsaw"]
    assert all(r["status"] == "complete" and r["dataset"] == "imagefolder" for r in records), records
    assert len(list((sampled / "cache").glob("imagefolder-*.pt"))) == 1  # next to the study, not in the photos
    assert not any(p.suffix == ".pt" for p in photos.rglob("*"))
    assert "using the cache" in done.stderr + done.stdout  # the second job reused the first one's decoding
