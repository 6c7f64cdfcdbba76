"""The paper's searched genotypes and the DARTS-family baselines (unnas pycls/models/nas/genotypes.py) as a
shipped list, sampled by name, with unnas' parameter counts at their evaluation widths; and the evaluation
phase's recipe (experiment=eval/<config>) run end to end at tiny scale on a tiny image folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from study.spaces import NetShape, get_space
from study.spaces.lists import named_lists, read_list
from study.store.cells import read_cells
from study.store.records import iter_records
from tests.image_fixtures import write_jpeg_tree
from tests.test_cell_lists import sample

CONF = Path(__file__).resolve().parents[1] / "conf"

# Parameters of unnas' NetworkImageNet (pycls/models/nas/nas.py: 14 cells, 1,000 classes) at the width of each
# genotype's evaluation config (48 for the four baselines it has none for), without and with the auxiliary
# head: counted once by building unnas' own classes from a checkout of facebookresearch/unnas at 0ed0dbc.
UNNAS_PARAMS = {
    "UNNAS_IMAGENET_CLS": (44, 5254622, 6507206), "UNNAS_IMAGENET_ROT": (42, 5138083, 6386571),
    "UNNAS_IMAGENET_COL": (46, 4934845, 6191525), "UNNAS_IMAGENET_JIG": (42, 5183779, 6432267),
    "UNNAS_IMAGENET22K_CLS": (46, 5195849, 6452529), "UNNAS_IMAGENET22K_ROT": (42, 5002003, 6250491),
    "UNNAS_IMAGENET22K_COL": (42, 4987639, 6236127), "UNNAS_IMAGENET22K_JIG": (42, 5138083, 6386571),
    "UNNAS_CITYSCAPES_SEG": (44, 5129662, 6382246), "UNNAS_CITYSCAPES_ROT": (42, 5068279, 6316767),
    "UNNAS_CITYSCAPES_COL": (54, 5103649, 6376713), "UNNAS_CITYSCAPES_JIG": (44, 4958590, 6211174),
    "DARTS_V1": (48, 4510432, 5771208), "DARTS_V2": (48, 4718752, 5979528), "PDARTS": (48, 4944352, 6205128),
    "PCDARTS_C10": (48, 5270560, 6531336), "PCDARTS_IN1K": (48, 5342464, 6603240),
}
LISTED = read_list(get_space("darts"), named_lists("darts")["unnas-searched"])
BY_NAME = {entry.extra["name"]: entry for entry in LISTED}


def eval_shape(width: int) -> NetShape:
    return NetShape(c_in=3, image_size=224, n_classes=1000, width=width, cells_per_stage=4, stem="imagenet", depth=14)


def test_the_list_holds_the_17_genotypes_by_name_in_unnas_order():
    assert list(BY_NAME) == list(UNNAS_PARAMS)
    v2 = BY_NAME["DARTS_V2"]
    assert v2.cell.normal[3] == (("skip_connect", 0), ("dil_conv_3x3", 2))  # genotypes.py's edge order kept
    assert v2.extra["eval_width"] == 48 and v2.extra["eval_config"].endswith("eval_phase/cls/darts.yaml")
    assert BY_NAME["PDARTS"].extra["eval_width"] is None


@pytest.mark.parametrize("name", list(UNNAS_PARAMS))
def test_parameters_at_the_evaluation_width_equal_unnas_builder(name):
    from study.objectives.supervised import Supervised  # noqa: F401  (registers it)
    from study.spaces.darts.network import Backbone
    from study.spaces.modules import AuxiliaryHead, PooledLinear, count_params

    width, plain, with_aux = UNNAS_PARAMS[name]
    entry = BY_NAME[name]
    assert entry.extra["eval_width"] in (width, None)
    space = get_space("darts")
    assert space.complexity(entry.cell, eval_shape(width))[0] == plain
    trunk = Backbone(entry.cell, 3, width, 4, "imagenet", 14)
    head, aux = PooledLinear(trunk.c_out, 1000), AuxiliaryHead(trunk.aux_c_out, 1000, imagenet=True)
    assert count_params(trunk) + count_params(head) == plain
    assert count_params(trunk) + count_params(head) + count_params(aux) == with_aux


def test_any_study_samples_the_list_and_keeps_the_names(tmp_path):
    sample(tmp_path / "all", "space=darts", "cells=unnas-searched")
    rows = read_cells(tmp_path / "all")
    assert [r["name"] for r in rows] == list(UNNAS_PARAMS)
    sample(tmp_path / "one", "space=darts", "cells=unnas-searched:UNNAS_IMAGENET_ROT+DARTS_V2")
    rows = read_cells(tmp_path / "one")
    assert [r["name"] for r in rows] == ["UNNAS_IMAGENET_ROT", "DARTS_V2"] and rows[0]["eval_width"] == 42
    meta = json.loads((tmp_path / "one" / "study.json").read_text())["sample"]
    assert meta["cells"] == "unnas-searched:UNNAS_IMAGENET_ROT+DARTS_V2"


def test_an_unknown_name_is_refused_with_the_names_there_are(tmp_path):
    from study.errors import UserError

    with pytest.raises(UserError, match="no row named UNNAS_NOPE.*DARTS_V2"):
        sample(tmp_path / "s", "space=darts", "cells=unnas-searched:UNNAS_NOPE")


@pytest.mark.parametrize("path", sorted((CONF / "experiment" / "eval").glob("*.yaml")), ids=lambda p: p.stem)
def test_each_eval_recipe_trains_its_genotype_at_its_width(path):
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=[f"experiment=eval/{path.stem}"])
    name = str(cfg.sample_cells).split(":")[1]
    assert BY_NAME[name].extra["eval_config"].endswith(f"/{path.stem}.yaml")
    assert cfg.budget.width == BY_NAME[name].extra["eval_width"]
    assert (cfg.budget.depth, cfg.budget.stem, cfg.budget.epochs, cfg.budget.batch_size) == (14, "imagenet", 250, 1024)
    recipe = (cfg.budget.lr, cfg.budget.weight_decay, cfg.budget.warmup_epochs, cfg.budget.nesterov)
    assert recipe == (0.5, 3e-5, 5, True)
    assert cfg.objective.auxiliary == 0.4 and cfg.objective.label_smoothing == 0.1 and cfg.precision == "fp32"
    assert yaml.safe_load(path.read_text())  # plain YAML


SHRINK = ["dataset.n_classes=3", "dataset.image_size=64", "dataset.resize=72", "budget.width=4"]
TRAIN = ["budget.epochs=2", "budget.warmup_epochs=1", "budget.batch_size=4", "budget.eval_batch_size=5",
         "workers=1", "threads=1", "dataset.loader_workers=0"]


def test_the_evaluation_phase_trains_a_named_genotype_on_a_tiny_image_folder(cli, tmp_path):
    tree, study = tmp_path / "imagenet", tmp_path / "study"
    write_jpeg_tree(tree)
    done = cli("study.sample", "experiment=eval/imagenet_rot", f"study_dir={study}", *SHRINK)
    assert done.returncode == 0, done.stderr
    done = cli("study.train", "experiment=eval/imagenet_rot", f"study_dir={study}", f"data_root={tree}",
               *SHRINK, *TRAIN)
    assert done.returncode == 0, done.stderr
    (rec,) = [r for _, r in iter_records(study)]
    assert rec["status"] == "complete" and rec["epochs"] == 2 and rec["objective"] == "supervised"
    assert rec["net"]["depth"] == 14 and rec["net"]["stem"] == "imagenet" and rec["precision"] == "fp32"
    assert rec["config"]["objective"] == {"name": "supervised", "auxiliary": 0.4, "label_smoothing": 0.1}
    assert rec["config"]["budget"]["warmup_epochs"] == 1
    (row,) = read_cells(study)
    assert row["name"] == "UNNAS_IMAGENET_ROT" and row["arch"] == rec["arch"]


@pytest.mark.parametrize("imagenet,size", [(False, 8), (False, 16), (False, 3), (True, 7), (True, 14), (True, 4)])
def test_the_auxiliary_head_takes_any_map_size_and_the_papers_unchanged(imagenet, size):
    """8x8 (CIFAR at 32 px) and 7x7 (ImageNet at 224 px) are the paper's; others pool to the 2x2 it expects."""
    import torch

    from study.spaces.modules import AuxiliaryHead

    torch.manual_seed(0)
    head = AuxiliaryHead(16, 10, imagenet=imagenet).eval()
    x = torch.randn(2, 16, size, size)
    assert head(x).shape == (2, 10)
    if size in (7, 8):  # the paper's sizes: exactly pool, convs, linear
        ref = head.fc(head.features(head.pool(torch.relu(x))).flatten(1))
        assert torch.equal(head(x), ref)
