"""A value holding `${...}` on the command line: one line saying how to escape it, and nothing written."""

from __future__ import annotations

import pytest

from tests.test_bad_input import assert_refused


@pytest.mark.parametrize("module, args", [
    ("study.sample", ["n=2"]), ("study.train", ["budget=tiny"]), ("analysis.correlate", []),
    ("study.search", ["search_budget=tiny"]),
])
def test_an_unknown_interpolation_in_study_dir_is_one_line(inline, tmp_path, module, args):
    study = tmp_path / "a${oops}b"
    assert_refused(inline(module, *args, f"study_dir={study}"), ["study_dir", "oops", "without '${'"])
    assert list(tmp_path.iterdir()) == []  # no study folder, no logs/


@pytest.mark.parametrize("module, key, args", [("study.sample", "study_dir", []), ("analysis.correlate", "out", []),
                                               ("analysis.paper", "out", ["truth=unnas:/nowhere"])])
def test_an_escaped_dollar_brace_is_refused_before_hydra_makes_its_log_folder(cli, tmp_path, module, key, args):
    """Escaped, `${` passes the command line, but Hydra resolves its log folder's name again and fails after
    creating it: refused in one line, and nothing is written."""
    done = cli(module, *args, f"{key}={tmp_path}/a\\${{oops}}b")
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "holds '${'" in done.stderr and key in done.stderr
    assert list(tmp_path.iterdir()) == []


def test_a_resolver_in_study_dir_still_works(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("STUDY_PARENT", str(tmp_path))
    done = cli("study.sample", "n=2", "study_dir=${oc.env:STUDY_PARENT}/s")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "s" / "cells.jsonl").is_file()
