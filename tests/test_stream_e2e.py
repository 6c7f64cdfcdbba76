"""The paper's ImageNet recipe end to end on a tiny JPEG tree: the real commands, all four paper objectives.

The recipe is experiment=imagenet/nb101 (the NAS-Bench-101 ImageNet network, batch 32, lr 0.0125 ...) with
its sizes shrunk so it runs in seconds: 32-pixel crops, width 4, one module per stack, one epoch.
"""

from __future__ import annotations

import json

from study.store.records import iter_records
from tests.image_fixtures import write_jpeg_tree

SHRINK = ["dataset.n_classes=3", "dataset.image_size=32", "dataset.resize=36", "budget.width=4",
          "budget.cells_per_stage=1"]
TRAIN = ["budget.epochs=1", "budget.batch_size=4", "budget.precise_bn=8", "budget.eval_batch_size=5",
         "workers=1", "threads=1", "dataset.loader_workers=1"]


def test_four_objectives_train_on_a_streamed_folder_with_a_truncated_jpeg(cli, tmp_path):
    tree, study = tmp_path / "imagenet", tmp_path / "study"
    write_jpeg_tree(tree)
    done = cli("study.sample", "experiment=imagenet/nb101", "n=1", f"study_dir={study}", *SHRINK)
    assert done.returncode == 0, done.stderr
    done = cli("study.train", "-m", "experiment=imagenet/nb101", "objective=supervised,rotation,colorization,jigsaw",
               f"study_dir={study}", f"data_root={tree}", *SHRINK, *TRAIN)
    assert done.returncode == 0, done.stderr
    records = {r["objective"]: r for _, r in iter_records(study)}
    assert sorted(records) == ["colorization", "jigsaw", "rotation", "supervised"]
    for rec in records.values():
        assert rec["status"] == "complete" and rec["epochs"] == 1 and rec["dataset"] == "imagenet"
        assert rec["unreadable_images"] == 1 and rec["images_per_s"] > 0 and 0 <= rec["loader_wait"] <= 1
        assert rec["net"]["stem"] == "imagenet" and rec["budget"] == "imagenet"
        assert rec["config"]["budget"]["lr"] == 0.0125 and rec["config"]["budget"]["weight_decay"] == 5e-5
        assert len(rec["dataset_fingerprint"]) == 16
    assert records["rotation"]["test_acc_best"] in {k / 24 for k in range(25)}  # 6 test images x 4 rotations
    log = done.stdout + done.stderr
    assert "n01/n01_0001.JPEG" in log and "images/s" in log
    cells = [json.loads(line) for line in (study / "cells.jsonl").read_text().splitlines()]
    assert len(cells) == 1
