"""Atomic records and skipping finished runs."""

from __future__ import annotations

import json
import os

import pytest

from study.errors import UserError
from study.records import StudyError, read_cells, read_record, write_json_atomic
from study.runner import Setup, plan
from study.trainer import Budget


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
    b = Budget(name="tiny", epochs=1, width=4, cells_per_stage=1, batch_size=8, lr=0.1, **budget)
    return Setup(space="nb201", objective="supervised", objective_options={}, dataset="digits",
                 dataset_options={}, budget=b, device="cpu", threads=1)


CELLS = [
    {"arch": "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"},
    {"arch": "|skip_connect~0|+|none~0|skip_connect~1|+|avg_pool_3x3~0|none~1|none~2|"},
]


@pytest.fixture
def cells():
    from study.space import NB201Cell, cell_id

    return [{"id": cell_id(NB201Cell.from_str(c["arch"]).canonical()), "arch": c["arch"]} for c in CELLS]


def test_plan_skips_complete_and_retries_failed(tmp_path, cells):
    todo, done = plan(tmp_path, cells, _setup(), seed=0)
    assert done == 0 and [s.cell_id for s in todo] == [c["id"] for c in cells]
    write_json_atomic(todo[0].path, {"status": "complete", "cell_id": cells[0]["id"]})
    write_json_atomic(todo[1].path, {"status": "failed", "cell_id": cells[1]["id"], "reason": "x"})
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
    (tmp_path / "cells.jsonl").write_text('{"id": 1, "arch": "x"}\nnot json\n')
    with pytest.raises(StudyError, match=":2:"):
        read_cells(tmp_path)
