"""study.sample cells=...: cells from a file or a shipped list, every line checked, nothing replaced silently;
the paper's cells shipped per space and rebuilt byte for byte from a unnas checkout."""

from __future__ import annotations

import gzip
import json
import logging
from pathlib import Path

import pytest
import yaml

from study.spaces import get_space
from study.spaces.darts.cell import DartsCell
from study.spaces.lists import named_lists, read_list, resolve
from study.spaces.nb101.cell import NB101Cell
from study.spaces.unnas import OUT, encode, read_checkout, rebuild
from study.store.cells import read_cells
from study.errors import UserError
from tests.test_bad_input import assert_refused

V2 = ("normal=sep_conv_3x3~0,sep_conv_3x3~1|sep_conv_3x3~0,sep_conv_3x3~1|sep_conv_3x3~1,skip_connect~0|"
      "skip_connect~0,dil_conv_3x3~2;reduce=max_pool_3x3~0,max_pool_3x3~1|skip_connect~2,max_pool_3x3~1|"
      "max_pool_3x3~0,skip_connect~2|skip_connect~2,max_pool_3x3~1")
V2_GENOTYPE = DartsCell.from_str(V2).to_genotype()
# DARTS-V2 with node 0's two edges swapped: the same canonical cell.
V2_SWAPPED = V2.replace("normal=sep_conv_3x3~0,sep_conv_3x3~1|", "normal=sep_conv_3x3~1,sep_conv_3x3~0|", 1)
ALL_SKIP = ("normal=" + "|".join(["skip_connect~0,skip_connect~1"] * 4) + ";reduce="
            + "|".join(["max_pool_3x3~0,max_pool_3x3~1"] * 4))
INCEPTION = ("0111010|0000001|0000001|0000100|0000001|0000001|0000000:"
             "input,conv1x1-bn-relu,conv3x3-bn-relu,conv3x3-bn-relu,conv3x3-bn-relu,maxpool3x3,output")


def sample(study: Path, *overrides: str) -> None:
    """study.sample's check and task, in process, on the real config."""
    from hydra import compose, initialize_config_dir

    from study import sample as app
    from study.commands.cli import CONF_DIR

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("sample", overrides=[f"study_dir={study}", "budget=tiny", *overrides])
    app.check(app.parse(cfg))
    app.task(app.parse(cfg))


def test_a_text_list_takes_both_darts_forms_skips_comments_and_keeps_repeats_once(tmp_path, caplog):
    path = tmp_path / "cells.txt"
    path.write_text(f"# DARTS-V2 and an all-skip cell\n{V2_GENOTYPE}\n\n{ALL_SKIP}\n{V2_SWAPPED}\n")
    with caplog.at_level(logging.WARNING):
        sample(tmp_path / "s", "space=darts", f"cells={path}")
    rows = read_cells(tmp_path / "s")
    assert [r["arch"] for r in rows] == [V2, ALL_SKIP]  # the genotype is stored in the string form
    assert "line 5 repeats line 2" in caplog.text and "kept once" in caplog.text
    meta = json.loads((tmp_path / "s" / "study.json").read_text())["sample"]
    assert meta["cells"] == str(path.resolve()) and meta["n"] == 2 and "seed" not in meta


def test_a_json_lines_list_keeps_its_id_as_name_and_its_other_columns(tmp_path):
    path = tmp_path / "cells.jsonl"
    lines = [{"arch": INCEPTION, "id": "inception", "source": "paper"},
             {"arch": "011|001|000:input,conv3x3-bn-relu,output", "id": "tiny", "params": -1}]
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    sample(tmp_path / "s", "space=nb101", f"cells={path}")
    rows = read_cells(tmp_path / "s")
    assert [r["name"] for r in rows] == ["inception", "tiny"] and rows[0]["source"] == "paper"
    assert rows[0]["id"] != "inception" and rows[1]["params"] > 0  # the study's id and sizes are its own
    assert rows[0]["nb101_hash"] == NB101Cell.from_str(INCEPTION).canonical()


@pytest.mark.parametrize("text, line, words", [
    (f"{V2}\nnormal=bad\n{V2}\n", 2, ["normal=<nodes>;reduce=<nodes>"]),
    (f"{V2}\n{V2.replace('sep_conv_3x3', 'conv_9x9', 1)}\n", 2, ["unknown operation 'conv_9x9'"]),
    (f'{{"arch": "{V2}"}}\n{{"id": "x"}}\n', 2, ['"arch" string']),
    (f'{{"arch": "{V2}"}}\nnot json\n', 2, ["not a JSON object"]),
    (f"# header\n\n{V2}\n{V2}\nnormal=x\nnormal=y\n", 5, ["(1 more bad line(s) after it)"]),
])
def test_a_bad_line_is_named_by_its_number_and_nothing_is_written(inline, tmp_path, text, line, words):
    path = tmp_path / "cells.txt"
    path.write_text(text)
    done = inline("study.sample", "space=darts", f"cells={path}", f"study_dir={tmp_path / 's'}")
    assert_refused(done, [f"line {line}:", *words, "fix or remove the line"])
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize("args, words", [
    (["cells=unnas_typo"], ["no such file", "shipped: unnas"]),
    (["cells=unnas", "n=501"], ["n=501 is more than the 500", "n<=500"]),
    (["cells=unnas", "space=nb201"], ["no list of that name ships with space 'nb201'"]),
])
def test_a_list_that_cannot_be_taken_is_refused_in_one_line(inline, tmp_path, args, words):
    assert_refused(inline("study.sample", "space=darts", *args, f"study_dir={tmp_path / 's'}"), words)


def test_cells_not_drawn_with_these_arguments_are_never_replaced_silently(inline, tmp_path):
    study = tmp_path / "s"
    study.mkdir()
    hand = json.dumps({"id": "x", "arch": V2}) + "\n"
    (study / "cells.jsonl").write_text(hand)  # hand-written: no study.json
    assert_refused(inline("study.sample", "space=darts", "n=3", f"study_dir={study}"),
                   ["not drawn by study.sample", "force=true"])
    assert (study / "cells.jsonl").read_text() == hand
    sample(study, "space=darts", "cells=unnas", "n=4", "force=true")
    listed = (study / "cells.jsonl").read_text()
    for args, differ in ((["n=4"], "cells"), (["cells=unnas", "n=5"], "n")):  # another sample, runs or not
        done = inline("study.sample", "space=darts", "budget=tiny", *args, f"study_dir={study}")
        assert_refused(done, ["different sample", differ, "force=true"])
        assert (study / "cells.jsonl").read_text() == listed
    sample(study, "space=darts", "cells=unnas", "n=4")  # the same arguments: nothing to do
    assert (study / "cells.jsonl").read_text() == listed


def test_a_changed_list_file_is_a_different_sample(tmp_path):
    path = tmp_path / "cells.txt"
    path.write_text(f"{V2}\n")
    sample(tmp_path / "s", "space=darts", f"cells={path}")
    path.write_text(f"{V2}\n{ALL_SKIP}\n")
    with pytest.raises(UserError, match="different sample.*cells_sha256"):
        sample(tmp_path / "s", "space=darts", f"cells={path}")


@pytest.mark.parametrize("space, first, last", [("darts", "00004", "02771"), ("nb101", "000907", "423150")])
def test_the_papers_500_cells_ship_per_space_with_their_ids(tmp_path, space, first, last):
    assert set(named_lists(space)) == ({"unnas", "unnas-searched"} if space == "darts" else {"unnas"})
    listed = read_list(get_space(space), named_lists(space)["unnas"])
    ids = [e.extra["paper_id"] for e in listed]
    assert len(listed) == 500 and len({e.cell.canonical() for e in listed}) == 500
    assert ids == sorted(ids) and ids[0] == first and ids[-1] == last
    assert not any(e.cell.is_degenerate() for e in listed)
    assert (OUT[space].parent / "NOTICE.md").read_text().count("MIT License") == 1
    # The shipped bytes are what the rebuild writes for these cells: reproducible without a timestamp.
    assert encode({e.extra["paper_id"]: e.cell.to_str() for e in listed}) == OUT[space].read_bytes()
    sample(tmp_path / "s", f"space={space}", "cells=unnas", "n=20")
    rows = read_cells(tmp_path / "s")
    assert [r["paper_id"] for r in rows] == ids[:20] and len({r["id"] for r in rows}) == 20


def test_the_first_darts_cell_is_the_genotype_of_the_papers_config_00004():
    # configs/sample_based/darts/cifar10/cls/00004.yaml, NAS.CUSTOM_GENOTYPE (normal, concat, reduce, concat).
    normal = [["avg_pool_3x3", 1], ["sep_conv_3x3", 1], ["sep_conv_5x5", 1], ["dil_conv_5x5", 1], ["none", 0],
              ["dil_conv_3x3", 2], ["dil_conv_3x3", 2], ["sep_conv_3x3", 1]]
    reduce = [["sep_conv_3x3", 0], ["dil_conv_3x3", 0], ["skip_connect", 0], ["dil_conv_3x3", 0], ["none", 1],
              ["dil_conv_5x5", 1], ["dil_conv_3x3", 4], ["skip_connect", 4]]
    first = read_list(get_space("darts"), resolve("darts", "unnas")[1])[0]
    assert first.extra == {"paper_id": "00004"} and first.cell == DartsCell.from_lists(normal, reduce)


def _checkout(root: Path, darts: dict[str, DartsCell], nb101: dict[str, NB101Cell]) -> Path:
    """A unnas checkout's sample-based configs for the given cells, in every dataset and task folder."""
    flat = lambda nodes: [[op, src] for node in nodes for op, src in node]  # noqa: E731
    for dataset in ("cifar10", "imagenet"):
        for task in ("cls", "rot", "col", "jig"):
            for pid, cell in darts.items():
                genotype = [flat(cell.normal), [2, 3, 4, 5], flat(cell.reduce), [2, 3, 4, 5]]
                path = root / "configs/sample_based/darts" / dataset / task / f"{pid}.yaml"
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(yaml.safe_dump({"NAS": {"GENOTYPE": "custom", "CUSTOM_GENOTYPE": genotype}}))
            for pid, cell in nb101.items():
                path = root / "configs/sample_based/nas_bench" / dataset / task / f"{pid}.yaml"
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(yaml.safe_dump({"NAS": {"MATRIX": [list(r) for r in cell.matrix],
                                                        "OPS": list(cell.ops)}}))
    return root


def test_the_rebuild_reads_every_folder_and_writes_identical_bytes_twice(tmp_path):
    darts = {"00004": DartsCell.from_str(V2), "00007": DartsCell.from_str(ALL_SKIP)}
    nb101 = {"000907": NB101Cell.from_str(INCEPTION)}
    root = _checkout(tmp_path / "unnas", darts, nb101)
    out = {"darts": tmp_path / "d.jsonl.gz", "nb101": tmp_path / "n.jsonl.gz"}
    assert rebuild(root, out) == {"darts": 2, "nb101": 1}
    first = {k: p.read_bytes() for k, p in out.items()}
    rebuild(root, out)
    assert {k: p.read_bytes() for k, p in out.items()} == first
    rows = [json.loads(x) for x in gzip.decompress(first["darts"]).decode().splitlines()]
    assert rows == [{"paper_id": "00004", "arch": V2}, {"paper_id": "00007", "arch": ALL_SKIP}]
    (root / "configs/sample_based/darts/imagenet/jig/00007.yaml").unlink()  # one folder names other cells
    with pytest.raises(UserError, match="imagenet/jig names other cells"):
        read_checkout(root, "darts")
