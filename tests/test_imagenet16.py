"""ImageNet16-120 from NAS-Bench-201's pickles: the first 120 classes, labels from 0, refusals in one line."""

from __future__ import annotations

import numpy as np
import pytest

from study.data import DataError, build_dataset, preflight
from tests.image_fixtures import write_tiny_imagenet16


def test_the_first_120_classes_are_kept_with_labels_from_0(tmp_path):
    written = write_tiny_imagenet16(tmp_path)
    data = build_dataset("imagenet16", data_root=str(tmp_path), mean=[122.68, 116.66, 104.01],
                         std=[63.22, 61.26, 65.09])
    keep = written["train_y"] <= 120
    assert data.n_classes == 120 and data.image_size == 16 and data.channels == 3
    assert np.array_equal(data.train_x.numpy(), written["train_x"][keep])
    assert np.array_equal(data.train_y.numpy(), written["train_y"][keep] - 1)
    assert set(data.train_y.tolist()) <= {0, 1, 118, 119}
    assert np.array_equal(data.test_y.numpy(), written["test_y"][written["test_y"] <= 120] - 1)
    assert data.mean.tolist() == pytest.approx([122.68 / 255, 116.66 / 255, 104.01 / 255])


def test_missing_files_and_mismatched_class_counts_are_refused(tmp_path):
    with pytest.raises(DataError, match="needs data_root=PATH"):
        preflight("imagenet16", {}, 120)
    write_tiny_imagenet16(tmp_path)
    (tmp_path / "train_data_batch_7").unlink()
    with pytest.raises(DataError, match="lacks 1 of the ImageNet16 pickles, e.g. train_data_batch_7"):
        preflight("imagenet16", {"data_root": str(tmp_path)}, 120)
    write_tiny_imagenet16(tmp_path)
    with pytest.raises(DataError, match="dataset.classes=120 but dataset.n_classes=10"):
        preflight("imagenet16", {"data_root": str(tmp_path), "classes": 120}, 10)
    (tmp_path / "val_data").write_bytes(b"not a pickle")
    with pytest.raises(DataError, match="cannot read .*val_data"):
        build_dataset("imagenet16", data_root=str(tmp_path))


def test_an_nb201_cell_trains_on_it_through_the_train_command(cli, tmp_path):
    write_tiny_imagenet16(tmp_path / "data", per_file=8)
    study = tmp_path / "study"
    assert cli("study.sample", "n=1", "dataset=imagenet16", f"study_dir={study}").returncode == 0
    done = cli("study.train", "dataset=imagenet16", "budget=tiny", "workers=1", "threads=1",
               f"data_root={tmp_path / 'data'}", f"study_dir={study}")
    assert done.returncode == 0, done.stderr
    assert "imagenet16" in done.stderr + done.stdout
