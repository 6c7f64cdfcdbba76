"""A damaged study.json stops study.train and launch.status in one line, as docs/outputs.md says; nothing is lost."""

from __future__ import annotations

import pytest

from tests.test_bad_input import DAMAGED_STUDY_JSON, _sample_in_process, assert_refused, invoke  # noqa: F401

DAMAGE = {**DAMAGED_STUDY_JSON, "random bytes": bytes(range(256)) * 4, "[1]": b"[1]"}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
@pytest.mark.parametrize("module, args", [("study.train", ["budget=tiny"]), ("launch.status", [])])
def test_a_damaged_study_json_stops_the_command(invoke, tmp_path, damage, module, args):  # noqa: F811
    study = tmp_path / "s"
    _sample_in_process(study, "n=2")
    (study / "study.json").write_bytes(DAMAGE[damage])
    before = sorted(p.relative_to(study) for p in study.rglob("*"))
    assert_refused(invoke(module, *args, f"study_dir={study}"), [str(study / "study.json"), "is damaged",
                                                                  "study.sample", "force=true"])
    assert sorted(p.relative_to(study) for p in study.rglob("*")) == before  # no logs/, nothing replaced
    assert (study / "study.json").read_bytes() == DAMAGE[damage]
