"""Atomic records and skipping finished runs."""

from __future__ import annotations

import json
import os
import stat

import pytest

from study.errors import UserError
from study.store.cells import read_cells
from study.store.records import (StudyError, WriteError, content_checksum, identity_hash, quarantine, read_record,
                                 write_json_atomic, write_record)
from study.training.runner import plan
from study.training.run import Setup
from study.spaces import NetShape
from study.training.run import Budget

TINY = NetShape(c_in=1, image_size=8, n_classes=10, width=4, cells_per_stage=1)


def test_atomic_write_replaces_whole_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "a" / "r.json"
    write_json_atomic(path, {"status": "complete", "cell_id": "x", "v": 1})
    write_json_atomic(path, {"status": "complete", "cell_id": "x", "v": 2})
    assert json.loads(path.read_text())["v"] == 2
    assert os.listdir(path.parent) == ["r.json"]


def test_failed_write_keeps_the_previous_record(tmp_path):
    path = tmp_path / "r.json"
    write_json_atomic(path, {"status": "complete", "cell_id": "x"})
    with pytest.raises(TypeError):
        write_json_atomic(path, {"status": "complete", "cell_id": object()})  # not JSON-serialisable
    assert read_record(path) == {"status": "complete", "cell_id": "x"}
    assert os.listdir(tmp_path) == ["r.json"]


def test_unreadable_records_are_ignored_with_a_warning(tmp_path, caplog):
    bad = tmp_path / "bad.json"
    bad.write_text('{"status": "compl')
    assert read_record(bad) is None
    assert "bad.json" in caplog.text


def _setup(**budget) -> Setup:
    b = Budget(name="tiny", epochs=1, batch_size=8, lr=0.1, **budget)
    return Setup(space="nb201", objective="supervised", objective_options={}, dataset="digits",
                 dataset_options={}, budget=b, shape=TINY, device="cpu", threads=1)


CELLS = [
    {"arch": "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"},
    {"arch": "|skip_connect~0|+|none~0|skip_connect~1|+|avg_pool_3x3~0|none~1|none~2|"},
]


@pytest.fixture
def cells():
    from study.spaces import cell_id
    from study.spaces.nb201 import NB201Cell

    return [{"id": cell_id(NB201Cell.from_str(c["arch"]).canonical()), "arch": c["arch"]} for c in CELLS]


def test_plan_skips_complete_and_retries_failed(tmp_path, cells):
    todo, done = plan(tmp_path, cells, _setup(), seed=0)
    assert done == 0 and [s.cell_id for s in todo] == [c["id"] for c in cells]
    ident = identity_hash(_setup().identity())
    write_record(todo[0].path, {"status": "complete", "cell_id": cells[0]["id"], "identity": ident, "test_acc_best": 0.5})
    write_record(todo[1].path, {"status": "failed", "cell_id": cells[1]["id"], "identity": ident, "reason": "x"})
    again, done = plan(tmp_path, cells, _setup(), seed=0)
    assert done == 1 and [s.cell_id for s in again] == [cells[1]["id"]]
    # another seed or another budget setting is a different run, with its own record path
    assert plan(tmp_path, cells, _setup(), seed=1)[1] == 0
    other, done = plan(tmp_path, cells, _setup(weight_decay=0.0), seed=0)
    assert done == 0 and other[0].path != todo[0].path


def test_hand_edited_cells_file_is_refused(tmp_path, cells):
    cells[0]["arch"] = CELLS[1]["arch"]
    with pytest.raises(UserError, match="does not match"):
        plan(tmp_path, cells, _setup(), seed=0)


def test_read_cells_errors_name_the_fix(tmp_path):
    with pytest.raises(StudyError, match="study.sample"):
        read_cells(tmp_path)
    (tmp_path / "cells.jsonl").write_text('{"id": "a", "arch": "x"}\nnot json\n')
    with pytest.raises(StudyError, match=":2:"):
        read_cells(tmp_path)


def test_a_complete_record_of_another_identity_is_not_a_skip(tmp_path, cells):
    todo, _ = plan(tmp_path, cells, _setup(), seed=0)
    write_record(todo[0].path, {"status": "complete", "cell_id": cells[0]["id"], "identity": "0ther1d",
                                "test_acc_best": 0.5})
    assert plan(tmp_path, cells, _setup(), seed=0)[1] == 0


def test_records_carry_a_checksum_that_read_record_verifies(tmp_path, caplog):
    path = tmp_path / "r.json"
    rec = {"status": "complete", "cell_id": "x", "test_acc_best": 0.25, "history": {"test_acc": [0.1, 0.25]}}
    write_record(path, rec)
    on_disk = json.loads(path.read_text())
    assert on_disk["checksum"] == content_checksum(on_disk) and read_record(path) == on_disk
    assert {k: v for k, v in on_disk.items() if k not in ("checksum", "record_format")} == rec
    # one digit changed by hand (or by bit rot): still valid JSON, but the checksum gives it away
    path.write_text(path.read_text().replace("0.25", "0.95", 1))
    assert read_record(path) is None and "checksum mismatch" in caplog.text and "r.json" in caplog.text


@pytest.mark.parametrize("content", ["", '{"status": "compl', "[1, 2]", '{"cell_id": "x"}', "\udcff",
                                     '{"status": "complete", "cell_id": "x", "checksum": "0"}'])
def test_corrupted_records_are_moved_aside_with_a_warning(tmp_path, caplog, content):
    path = tmp_path / "c.json"
    path.write_bytes(content.encode("utf-8", "surrogateescape"))
    assert read_record(path) is None and path.exists()  # readers (analysis) only warn
    assert read_record(path, quarantine_bad=True) is None
    aside = list(tmp_path.glob("c.json.corrupt-*"))
    assert not path.exists() and len(aside) == 1 and aside[0].read_bytes() == content.encode("utf-8", "surrogateescape")
    assert "c.json" in caplog.text and "moved corrupted" in caplog.text


def test_records_without_checksum_are_still_accepted(tmp_path):
    path = tmp_path / "old.json"
    write_json_atomic(path, {"status": "complete", "cell_id": "x", "test_acc_best": 0.5})
    assert read_record(path) == {"status": "complete", "cell_id": "x", "test_acc_best": 0.5}


def test_quarantine_never_overwrites_an_earlier_corrupt_copy(tmp_path):
    for k in range(3):
        (tmp_path / "c.json").write_text(f"bad {k}")
        quarantine(tmp_path / "c.json", "test")
    assert sorted(p.read_text() for p in tmp_path.glob("c.json.corrupt-*")) == ["bad 0", "bad 1", "bad 2"]


def test_write_into_a_file_path_is_a_one_line_error(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(WriteError, match="cannot write .*f/r.json.*rerun"):
        write_json_atomic(tmp_path / "f" / "r.json", {"a": 1})


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_written_files_follow_the_umask(tmp_path, umask, mode):
    from study.store.records import write_atomic, write_json_atomic, write_record

    old = os.umask(umask)
    try:
        write_atomic(tmp_path / "report.md", "text")
        write_json_atomic(tmp_path / "study.json", {"a": 1})
        write_record(tmp_path / "runs" / "r.json", {"cell_id": "c", "status": "complete"})
    finally:
        os.umask(old)
    for name in ("report.md", "study.json", "runs/r.json"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == mode, name


def test_checkpoints_follow_the_umask(tmp_path):
    from study.training.checkpoint import save_atomic

    old = os.umask(0o002)
    try:
        save_atomic(tmp_path / "c.ckpt", {"x": 1})
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "c.ckpt").stat().st_mode) == 0o664
