"""Bad input through the real command line (subprocesses): one line on stderr, exit 2, nothing written.

The full table of mistakes runs in-process in tests/test_bad_input.py; these check that the same answers
reach a user's terminal from `python -m ...`, with nothing else printed.
"""

from __future__ import annotations

import json

import pytest


def files_under(path):
    return sorted(str(p.relative_to(path)) for p in path.rglob("*")) if path.exists() else []


def assert_refused(done, *words):
    assert done.returncode == 2, (done.returncode, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    assert "Traceback" not in done.stderr
    for w in words:
        assert w in lines[0], (w, lines[0])


@pytest.mark.parametrize("args,words", [
    (["n=0"], ["n must be a positive integer"]),
    (["n=abc"], ["n must be an integer", "abc"]),
    (["budget=huge"], ["unknown budget", "default", "paper", "tiny"]),
    (["n=3", "n=[bad"], ["parse"]),
])
def test_sample_refuses_bad_input(cli, tmp_path, args, words):
    study = tmp_path / "s"
    assert_refused(cli("study.sample", *args, f"study_dir={study}"), *words)
    assert not study.exists()


def test_train_and_correlate_before_sampling(cli, tmp_path):
    study = tmp_path / "s"
    assert_refused(cli("study.train", f"study_dir={study}"), "study.sample")
    assert_refused(cli("analysis.correlate", f"study_dir={study}"), "study.sample")
    assert not study.exists()


def test_study_dir_that_is_a_file(cli, tmp_path):
    f = tmp_path / "file"
    f.write_text("keep me")
    for module in ("study.sample", "study.train", "analysis.correlate"):
        assert_refused(cli(module, f"study_dir={f}"), "is a file")
    assert f.read_text() == "keep me"


@pytest.fixture
def sampled(cli, tmp_path):
    study = tmp_path / "s"
    assert cli("study.sample", "n=2", f"study_dir={study}").returncode == 0
    return study


@pytest.mark.parametrize("args,words", [
    (["-m", "objective=rotation,nope"], ["unknown objective", "nope"]),
    (["budget.lr=fast"], ["budget.lr must be a number", "fast"]),
    (["dataset.test_fraction=2"], ["dataset.test_fraction"]),  # torch's own warning must not leak out
])
def test_train_refuses_bad_input_and_writes_nothing(cli, sampled, args, words):
    before = files_under(sampled)
    assert_refused(cli("study.train", *args, f"study_dir={sampled}"), *words)
    assert files_under(sampled) == before


def test_hand_edited_cells_file_is_refused_before_anything_is_written(cli, sampled):
    path = sampled / "cells.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    rows[0]["arch"] = rows[0]["arch"].replace("~0|", "~7|", 1)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    before = files_under(sampled)
    assert_refused(cli("study.train", f"study_dir={sampled}"), "cells.jsonl", "re-sample")
    assert files_under(sampled) == before


def test_correlate_without_complete_records(cli, sampled):
    before = files_under(sampled)
    assert_refused(cli("analysis.correlate", f"study_dir={sampled}"), "no complete run records", "study.train")
    assert_refused(cli("analysis.correlate", "metric=worst", f"study_dir={sampled}"), "metric")
    assert files_under(sampled) == before


def test_resampling_a_study_with_runs_needs_force(cli, tiny_study):
    cells = (tiny_study / "cells.jsonl").read_text()
    assert_refused(cli("study.sample", "n=4", "seed=9", f"study_dir={tiny_study}"), "force=true", "seed")
    assert (tiny_study / "cells.jsonl").read_text() == cells
    same = cli("study.sample", "n=4", f"study_dir={tiny_study}")
    assert same.returncode == 0 and (tiny_study / "cells.jsonl").read_text() == cells


def test_cfg_job_prints_the_composed_config_and_still_checks_overrides(cli, sampled):
    before = files_under(sampled)
    shown = cli("study.train", "--cfg", "job", "budget.epochs=7", "objective=rotation", f"study_dir={sampled}")
    assert shown.returncode == 0, shown.stderr
    assert "epochs: 7" in shown.stdout and "name: rotation" in shown.stdout
    package = cli("study.train", "-p", "budget", "--cfg", "job", "budget=paper", f"study_dir={sampled}")
    assert package.returncode == 0 and package.stdout.startswith("# @package budget")
    assert "width: ${oc.select:space.shapes.${budget.name}.width,16}" in package.stdout  # a space may resize it
    resolved = cli("study.train", "-p", "budget", "--cfg", "job", "--resolve", "budget=paper", f"study_dir={sampled}")
    assert resolved.returncode == 0 and "width: 16\ncells_per_stage: 5\n" in resolved.stdout
    assert_refused(cli("study.train", "--cfg", "job", "budget.epochs=0", f"study_dir={sampled}"), "budget.epochs")
    assert_refused(cli("study.sample", "-c", "job", "n=0", f"study_dir={sampled}"), "n must be")
    assert files_under(sampled) == before  # printing a config trains and writes nothing


def test_logs_are_filed_under_the_command_name(tiny_study):
    assert {p.name for p in (tiny_study / "logs").iterdir()} == {"sample", "train-multirun"}
