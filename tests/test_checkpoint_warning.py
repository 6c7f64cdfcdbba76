"""A checkpoint a weights-only load refuses: one warning line of ours, never torch's advice to load it unsafely."""

from __future__ import annotations

import logging
import pathlib

import torch

from study.training.checkpoint import Checkpointer


def test_a_checkpoint_holding_other_objects_is_one_line_without_torchs_advice(tmp_path, caplog):
    path = tmp_path / "c.ckpt"
    torch.save({"format": 1, "model": {}, "odd": pathlib.PurePosixPath("x")}, path)  # a global weights-only refuses
    saver = Checkpointer(path, {"cell_id": "c", "seed": 0, "identity": "x"})
    with caplog.at_level(logging.WARNING, logger="study.training.checkpoint"):
        assert saver.load(torch.nn.Linear(2, 2), "cpu") is None
    (record,) = [r for r in caplog.records if str(path) in r.getMessage()]
    text = record.getMessage()
    assert "\n" not in text and "weights_only" not in text and "torch.load" not in text, text
    assert "from scratch" in text and path.exists()  # the file is left for the user to look at
