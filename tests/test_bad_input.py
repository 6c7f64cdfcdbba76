"""Every command-line mistake we could think of, for all three commands: one line on stderr naming the
problem and the fix, exit status 2, no traceback, nothing written.

The commands run in-process (their real `main`, argv and all) so the table stays fast; Hydra itself is
replaced by a tripwire, because a refused command must be refused before Hydra starts (Hydra's first act
is to create a log folder). tests/test_cli.py runs a few of the same mistakes as real subprocesses.
"""

from __future__ import annotations

import json

import pytest

from study.store.records import write_record

ARCH = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"


def files_under(path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


@pytest.fixture
def invoke(inline):
    """Run `python -m module args...` in this process; returns (exit status, stderr) (conftest's `inline`)."""
    return inline


def assert_refused(done: tuple[int, str], words: list[str]) -> None:
    code, err = done
    lines = err.strip().splitlines()
    assert code == 2, (code, err)
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    for w in words:
        assert w in lines[0], (w, lines[0])


@pytest.fixture
def study(tmp_path):
    """A folder with a sampled cells file (as study.sample writes it) and a file beside it."""
    from study.spaces import cell_id
    from study.spaces.nb201 import NB201Cell

    folder = tmp_path / "s"
    folder.mkdir()
    cells = [NB201Cell.from_str(ARCH), NB201Cell(("skip_connect",) * 6)]
    (folder / "cells.jsonl").write_text("".join(
        json.dumps({"id": cell_id(c.canonical()), "arch": c.to_str(), "params": 1, "flops": 1}) + "\n" for c in cells))
    (tmp_path / "file").write_text("not a folder")
    return folder


def fake_records(study, *variants: dict) -> None:
    """Complete run records as study.train writes them, one per (variant, cell)."""
    for k, variant in enumerate(variants):
        for cell in map(json.loads, (study / "cells.jsonl").read_text().splitlines()):
            rec = {"cell_id": cell["id"], "arch": cell["arch"], "objective": "supervised", "seed": 0, "space": "nb201",
                   "dataset": "digits", "budget": "tiny", "identity": f"id{k}", "status": "complete",
                   "test_acc_best": 0.5, "test_acc_final": 0.4, **variant}
            write_record(study / "runs" / f"v{k}" / f"{cell['id']}.json", rec)


SAMPLE = [
    (["n=0"], ["n must be a positive integer"]),
    (["n=-3"], ["n must be a positive integer"]),
    (["n=abc"], ["n must be an integer", "abc"]),
    (["n=2.5"], ["n must be an integer"]),
    (["n=true"], ["n must be an integer"]),
    (["n=99999"], ["n<=4929"]),
    (["space=nb999"], ["unknown space", "nb201"]),
    (["space.name=nb999"], ["unknown space", "nb201"]),
    (["dataset=mnist"], ["unknown dataset", "digits"]),
    (["budget=huge"], ["unknown budget", "default", "paper", "tiny"]),
    (["seed=x"], ["seed must be an integer"]),
    (["seed=1.5"], ["seed must be an integer"]),
    (["force=maybe"], ["force must be true or false"]),
    (["include_degenerate=2"], ["include_degenerate must be true or false"]),
    (["dataset.image_size=abc"], ["dataset.image_size must be a positive integer", "abc"]),
    (["budget.width=0"], ["budget.width must be a positive integer"]),
    (["nn=3"], ["unknown setting 'nn'", "python -m study.sample --cfg job"]),
    (["+nn=3"], ["unknown setting 'nn'", "drop '+nn=3'"]),
    (["n=3", "n=[bad"], ["parse"]),
    (["n=3,4"], ["n=3,4 is a list of values", "add -m"]),
    (["n3"], ["parse", "key=value"]),
    # a path with a space, unquoted: the shell made two words of it
    (["study_dir=/tmp/my", "studies"], ["split at a space", "quote", "\"study_dir='/tmp/my studies'\""]),
    (["study_dir=/tmp/für"], ["quote", "\"study_dir='/tmp/für'\""]),
    (["study_dir="], ["study_dir must be a folder path"]),
    (["study_dir=null"], ["study_dir must be a folder path"]),
    (["study_dir={file}"], ["is a file", "point study_dir at a folder"]),
    (["study_dir={file}/sub"], ["which is a file", "point study_dir at a folder"]),
]


@pytest.mark.parametrize("args,words", SAMPLE, ids=[" ".join(a) for a, _ in SAMPLE])
def test_sample(invoke, tmp_path, study, args, words):
    before = files_under(tmp_path)
    args = [a.format(file=tmp_path / "file") for a in args]
    if not any(a.startswith("study_dir=") for a in args):
        args.append(f"study_dir={tmp_path / 'new'}")
    assert_refused(invoke("study.sample", *args), words)
    assert files_under(tmp_path) == before and not (tmp_path / "new").exists()


TRAIN = [
    (["objective=colourisation"], ["unknown objective", "rotation", "supervised"]),
    (["objective=rotation,supervised"], ["objective=rotation,supervised is a list of values", "add -m",
                                         "python -m study.train -m objective=rotation,supervised"]),
    (["-m", "objective=rotation,nope"], ["unknown objective", "nope"]),
    (["dataset=mnist"], ["unknown dataset", "digits"]),
    (["budget=huge"], ["unknown budget", "tiny"]),
    (["seed=x"], ["seed must be an integer"]),
    (["-m", "seed=0,x"], ["seed must be an integer"]),
    (["budget.epochs=0"], ["budget.epochs must be a positive integer"]),
    (["budget.epochs=1.5"], ["budget.epochs must be an integer"]),
    (["budget.batch_size=0"], ["budget.batch_size must be a positive integer"]),
    (["budget.lr=fast"], ["budget.lr must be a number", "fast"]),
    (["budget.lr=-1"], ["budget.lr must be a finite positive number"]),
    (["budget.lr=inf"], ["budget.lr must be a finite positive number", "inf"]),
    (["budget.momentum=2"], ["budget.momentum must be in [0, 1)"]),
    (["budget.momentum=-0.5"], ["budget.momentum must be in [0, 1)"]),
    (["budget.momentum=0"], ["above 0 with nesterov"]),
    (["budget.nesterov=maybe"], ["budget.nesterov must be true or false"]),
    (["budget.precise_bn=-5"], ["budget.precise_bn"]),
    (["budget.foo=1"], ["budget.foo"]),
    (["+budget.foo=1"], ["unknown setting 'budget.foo'"]),
    (["+budget.objectives.rotation.foo=1"], ["unknown budget setting", "foo"]),
    (["+objective.foo=1"], ["unknown setting 'objective.foo'"]),
    (["workers=0"], ["workers must be a positive integer"]),
    (["workers=abc"], ["workers must be an integer"]),
    (["threads=0"], ["threads must be a positive integer"]),
    (["device=tpu9"], ["device", "device=cpu"]),
    (["device=cuda"], ["no CUDA GPU", "device=cpu"]),
    (["precision=fp16"], ["precision 'fp16'", "precision=auto"]),
    (["dataset.image_size=10"], ["image_size must be a multiple of 4"]),
    (["dataset.test_fraction=2"], ["0 training", "dataset.test_fraction"]),
    (["dataset.split_seed=x"], ["dataset digits", "dataset.* settings"]),
    (["dataset.crop_padding=-1"], ["dataset.crop_padding must not be negative"]),
    (["claims.heartbeat_s=0"], ["claims.heartbeat_s must be > 0"]),
    (["claims.heartbeat_s=900"], ["must be shorter than claims.stale_after_s"]),
    (["study_dir={tmp}/missing"], ["no sample", "study.sample"]),
    (["study_dir={tmp}/file"], ["is a file"]),
    (["study_dir={tmp}/file/sub"], ["which is a file"]),
    # an unknown key or launcher names the fix and the choices (not Hydra's "Could not override 'foo'")
    (["foo=1"], ["unknown setting 'foo'", "python -m study.train --cfg job"]),
    (["budget.epochz=3"], ["unknown setting 'budget.epochz'", "did you mean budget.epochs?"]),
    (["-m", "hydra/launcher=slrum"], ["unknown hydra/launcher 'slrum'", "local", "slurm"]),
    # jigsaw on 8-pixel digits: the fix is larger images (the grid already is 2x2)
    (["objective=jigsaw"], ["2x2 grid", "dataset.image_size=12 or more"]),
    (["objective=jigsaw", "objective.grid=3", "dataset.image_size=16"], ["dataset.image_size=18 or more",
                                                                          "objective.grid=2"]),
    # a batch larger than the data would be one step per epoch: 179 training images here
    (["budget.batch_size=500", "dataset.test_fraction=0.9"], ["batch size 500", "more than the 179 training images",
                                                              "budget.batch_size=179 or less"]),
]


@pytest.mark.parametrize("args,words", TRAIN, ids=[" ".join(a) for a, _ in TRAIN])
def test_train(invoke, tmp_path, study, args, words):
    before = files_under(tmp_path)
    args = [a.format(tmp=tmp_path) for a in args]
    if not any(a.startswith("study_dir=") for a in args):
        args.append(f"study_dir={study}")
    assert_refused(invoke("study.train", *args), words)
    assert files_under(tmp_path) == before


def _replace_first(old: str, new: str):
    return lambda text: text.replace(old, new, 1)


CELLS_EDITS = {
    "unknown op": (_replace_first("nor_conv_3x3", "conv_3x3"), ["unknown operation 'conv_3x3'", "re-sample"]),
    "bad source": (_replace_first("~0|", "~7|"), ["should be 'op~0'", "re-sample"]),
    "one node group": (_replace_first("|+|", "||"), ["expected 3 node groups", "re-sample"]),
    "id not its arch": (_replace_first('"id": "', '"id": "f'), ["does not match its arch", "re-sample"]),
    "arch not a string": (lambda t: t.replace(json.dumps(ARCH), "42", 1), ["must be a string", "re-sample"]),
    "not JSON": (lambda t: t + "{oops\n", [":3: not valid JSON", "re-sample"]),
    "no arch": (lambda t: t + '{"id": "x"}\n', [":3:", "'id' and 'arch'"]),
    "empty": (lambda t: "", ["holds no cells", "study.sample"]),
}


@pytest.mark.parametrize("edit", list(CELLS_EDITS))
def test_train_with_a_hand_edited_cells_file(invoke, study, edit):
    change, words = CELLS_EDITS[edit]
    path = study / "cells.jsonl"
    path.write_text(change(path.read_text()))
    before = files_under(study)
    assert_refused(invoke("study.train", f"study_dir={study}"), ["cells.jsonl", *words])
    assert files_under(study) == before


@pytest.mark.parametrize("module", ["study.train", "analysis.correlate"])
def test_unreadable_cells_file(invoke, study, module):
    (study / "cells.jsonl").write_bytes(b"\xff\xfe binary \x00\n")
    assert_refused(invoke(module, f"study_dir={study}"), ["cannot read", "not UTF-8", "re-sample"])
    (study / "cells.jsonl").unlink()
    (study / "cells.jsonl").mkdir()  # a folder where the file should be (root ignores permission bits)
    assert_refused(invoke(module, f"study_dir={study}"), ["cannot read", "Is a directory", "re-sample"])


CORRELATE = [
    (["metric=worst"], [], ["unknown metric 'worst'", "train_loss"]),
    (["merge=max"], [], ["merge must be mean or median"]),
    (["reference=nope"], [{}], ["reference=nope is no objective", "supervised"]),
    (["reference=rotation"], [{}], ["no complete 'rotation' runs", "objective=rotation", "reference=<objective>"]),
    (["dataset=mnist"], [{}], ["unknown dataset", "digits"]),
    (["budget=huge"], [{}], ["unknown budget"]),
    (["space=nb999"], [{}], ["unknown space"]),
    (["budget=paper"], [{}], ["no complete runs with budget=paper", "drop the budget= option"]),
    ([], [], ["no complete run records", "study.train"]),
    ([], [{}, {"budget": "default"}], ["several budgets (default, tiny)", "budget=<name>"]),
    ([], [{}, {"space": "nb101"}], ["several spaces (nb101, nb201)", "space=<name>"]),
    ([], [{"dataset_fingerprint": "aa"}, {"dataset_fingerprint": "bb"}], ["different data", "aa, bb"]),
    (["study_dir={tmp}/missing"], [], ["no sample", "study.sample"]),
    (["study_dir={tmp}/file"], [], ["is a file"]),
    (["out={tmp}/file"], [{}], ["out=", "is a file", "point out= at a folder"]),
]


@pytest.mark.parametrize("args,variants,words", CORRELATE, ids=[f"{' '.join(a)} {v}" for a, v, _ in CORRELATE])
def test_correlate(invoke, tmp_path, study, args, variants, words):
    fake_records(study, *variants)
    before = files_under(tmp_path)
    args = [a.format(tmp=tmp_path) for a in args]
    if not any(a.startswith("study_dir=") for a in args):
        args.append(f"study_dir={study}")
    assert_refused(invoke("analysis.correlate", *args), words)
    assert files_under(tmp_path) == before


def test_correlate_analyses_the_newest_settings_of_a_budget_and_names_what_it_left_out(study, caplog):
    """A budget value changed between trainings (budget.epochs=5 after the default): the runs of the settings
    trained last are the ones asked for; the older ones are left out with one line, not a refusal."""
    from analysis.load import load_runs
    from analysis.studies import newest_settings

    fake_records(study, {"finished_at": "2026-01-01T00:00:00+00:00"}, {"finished_at": "2026-02-01T00:00:00+00:00"})
    runs = load_runs(study)
    kept = newest_settings(runs[runs["status"] == "complete"], study)
    assert set(kept["identity"]) == {"id1"} and len(kept) == len(runs) // 2
    assert "leaving out" in caplog.text and "id0" in caplog.text


def test_correlate_takes_one_budget_when_told_which(study):
    from hydra import compose, initialize_config_dir

    from analysis import correlate
    from study.commands.cli import CONF_DIR

    fake_records(study, {}, {"budget": "default"})
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("correlate", overrides=[f"study_dir={study}", "budget=tiny"])
    correlate.check(correlate.parse(cfg))  # accepted: the user said how to merge
    assert correlate.parse(cfg).budget == "tiny"


def test_resampling_a_study_with_runs_needs_force_and_keeps_the_runs(invoke, tmp_path):
    from hydra import compose, initialize_config_dir

    from study import sample as app
    from study.commands.cli import CONF_DIR
    from study.spaces import NetShape
    from study.store.cells import read_cells
    from study.training.run import Budget, Setup
    from study.training.runner import plan

    study = tmp_path / "s"

    def sample(*overrides: str) -> None:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            cfg = compose("sample", overrides=[f"study_dir={study}", *overrides])
        app.check(app.parse(cfg))
        app.task(app.parse(cfg))

    sample("n=3")
    setup = Setup(space="nb201", objective="supervised", objective_options={}, dataset="digits", dataset_options={},
                  budget=Budget(name="tiny", epochs=1, batch_size=8, lr=0.1),
                  shape=NetShape(c_in=1, image_size=8, n_classes=10, width=4, cells_per_stage=1), device="cpu", threads=1)
    todo, _ = plan(study, read_cells(study), setup, 0)
    for spec in todo:
        write_record(spec.path, {"cell_id": spec.cell_id, "identity": spec.path.parent.parent.name.split("-")[-1],
                                 "status": "complete", "test_acc_best": 0.5})
    runs = files_under(study / "runs")
    cells = (study / "cells.jsonl").read_text()
    for args, differs in ((["seed=1"], "seed"), (["n=5"], "n"), (["include_degenerate=true"], "include_degenerate")):
        assert_refused(invoke("study.sample", *args, f"study_dir={study}"), ["different sample", differs, "force=true"])
    (study / "study.json").write_text("{")  # metadata lost or damaged next to trained runs: refuse as well
    assert_refused(invoke("study.sample", "n=3", f"study_dir={study}"), ["study.json unreadable", "force=true"])
    assert (study / "cells.jsonl").read_text() == cells and files_under(study / "runs") == runs

    sample("n=5", "force=true")  # the first 3 cells of seed 0 are a prefix of its first 5
    assert files_under(study / "runs") == runs
    todo, done = plan(study, read_cells(study), setup, 0)
    assert done == 3 and len(todo) == 2  # the old runs still count, matched by canonical id


TRUTH_FILES = {
    "missing": (None, ["does not exist"]),
    "no arch column": ("x,y\n1,2\n", ["no `arch` column"]),
    "text values": ("arch,acc\nA,high\n", ["non-numeric column(s) acc"]),
    "repeated arch": ("arch,acc\nA,1\nA,2\n", ["more than once"]),
    "matches no cell": ("arch,acc\nfoo,1\n", ["matches no cell", "as cells.jsonl does"]),
}


@pytest.mark.parametrize("case", list(TRUTH_FILES))
def test_correlate_truth_file(invoke, tmp_path, study, case):
    fake_records(study, {})
    text, words = TRUTH_FILES[case]
    path = tmp_path / "truth.csv"
    if text is not None:
        path.write_text(text)
    before = files_under(tmp_path)
    assert_refused(invoke("analysis.correlate", f"study_dir={study}", f"truth={path}"), ["truth file", *words])
    assert files_under(tmp_path) == before


def test_force_rewrites_a_damaged_or_edited_sample_and_keeps_runs(invoke, tmp_path):
    from hydra import compose, initialize_config_dir

    from study import sample as app
    from study.commands.cli import CONF_DIR
    from study.errors import UserError

    study = tmp_path / "s"

    def sample(*overrides: str) -> None:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            cfg = compose("sample", overrides=[f"study_dir={study}", "n=3", *overrides])
        app.check(app.parse(cfg))
        app.task(app.parse(cfg))

    sample()
    good = (study / "cells.jsonl").read_text()
    write_record(study / "runs" / "x" / "r.json", {"cell_id": "a", "status": "complete"})
    runs = files_under(study / "runs")
    for damaged in (good.replace("}", "", 1), good.replace('"params": ', '"params": 1', 1), good[: len(good) // 2]):
        (study / "cells.jsonl").write_text(damaged)
        with pytest.raises(UserError, match="damaged or edited.*force=true"):
            sample()  # study.json alone no longer says "nothing to do"
        assert (study / "cells.jsonl").read_text() == damaged
        sample("force=true")
        assert (study / "cells.jsonl").read_text() == good and files_under(study / "runs") == runs
    sample()  # intact: nothing to do, nothing rewritten
    assert (study / "cells.jsonl").read_text() == good


# ---- damaged study files: one line naming the repair, for every command that reads them ---------------


def _sample_in_process(study, *overrides: str) -> None:
    """`python -m study.sample` through its check and task (the invoke fixture stops at Hydra)."""
    from hydra import compose, initialize_config_dir

    from study import sample as app
    from study.commands.cli import CONF_DIR

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("sample", overrides=[f"study_dir={study}", *overrides])
    app.check(app.parse(cfg))
    app.task(app.parse(cfg))


def _pasted(line: str) -> list[str]:
    """The command between backticks in a message, split as a shell would."""
    import shlex

    return shlex.split(line.split("`")[1])


DAMAGED_STUDY_JSON = {"garbled": b"\xff\xfe\x00 not text", "a list": b"[1, 2]",
                      "sample not an object": b'{"sample": 3}'}


@pytest.mark.parametrize("damage", list(DAMAGED_STUDY_JSON))
def test_a_damaged_study_json_is_one_line_and_force_rewrites_it(invoke, tmp_path, damage):
    study = tmp_path / "s"
    _sample_in_process(study, "n=2")
    fake_records(study, {})
    cells = (study / "cells.jsonl").read_bytes()
    (study / "study.json").write_bytes(DAMAGED_STUDY_JSON[damage])
    code, err = invoke("analysis.correlate", f"study_dir={study}")
    assert_refused((code, err), ["study.json is damaged", "force=true"])
    assert _pasted(err)[3:] == ["n=2", "force=true", f"study_dir={study}"]  # this study, its size
    assert_refused(invoke("study.sample", "n=2", f"study_dir={study}"), ["study.json unreadable", "force=true"])
    _sample_in_process(study, "n=2", "force=true")  # the repair the message names
    assert json.loads((study / "study.json").read_text())["sample"]["n"] == 2
    assert (study / "cells.jsonl").read_bytes() == cells  # the same sample, rewritten as it was


CELLS_DAMAGE = {
    "a repeated line": (lambda lines: lines + [lines[0]], [":3:", "repeats line 1"]),
    "a number as id": (lambda lines: [lines[0].replace('"id": "', '"id": 7, "x": "', 1)] + lines[1:],
                       [":1:", "'id' must be a string"]),
}


@pytest.mark.parametrize("damage", list(CELLS_DAMAGE))
@pytest.mark.parametrize("module", ["study.train", "analysis.correlate", "launch.status"])
def test_a_damaged_cells_file_is_one_line_with_a_repair_that_names_the_study(invoke, study, module, damage):
    change, words = CELLS_DAMAGE[damage]
    path = study / "cells.jsonl"
    path.write_text("\n".join(change(path.read_text().splitlines())) + "\n")
    code, err = invoke(module, f"study_dir={study}")
    assert_refused((code, err), ["cells.jsonl", *words, "force=true"])
    # pasted as printed it rewrites this study's sample, at its size, not 500 cells into studies/default
    assert _pasted(err)[:3] == ["python", "-m", "study.sample"] and f"study_dir={study}" in _pasted(err)
    assert "n=2" in _pasted(err)


def test_sample_refuses_to_replace_a_sample_that_runs_are_training_from(invoke, tmp_path):
    from study.store.cells import read_cells

    study = tmp_path / "s"
    _sample_in_process(study, "n=3")
    cells = (study / "cells.jsonl").read_bytes()
    folder = study / "runs" / "supervised" / "digits-tiny-abc" / "seed0"
    folder.mkdir(parents=True)
    first = read_cells(study)[0]["id"]
    (folder / f"{first}.json.claim").write_text('{"host": "h", "pid": 1, "token": "t"}')  # in training, no record
    (folder / f"{first}.ckpt").write_bytes(b"epoch 3")
    assert_refused(invoke("study.sample", "n=6", "seed=1", f"study_dir={study}"),
                   ["different sample", "in training", "force=true"])
    assert (study / "cells.jsonl").read_bytes() == cells
    _sample_in_process(study, "n=6", "seed=1", "force=true")  # forced: replaced, the runs kept
    assert (folder / f"{first}.ckpt").exists() and len(read_cells(study)) == 6


def test_sample_into_a_read_only_folder_is_one_line(invoke, tmp_path):
    from tests.test_compare_out import read_only

    folder = tmp_path / "ro"
    folder.mkdir()
    with read_only(folder):
        assert_refused(invoke("study.sample", "n=2", f"study_dir={folder}/s"), ["is read-only", "study_dir="])
    assert list(folder.iterdir()) == []
