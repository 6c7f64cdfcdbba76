"""The search command's config groups compose with the real conf/, and its typed request reads them."""

from __future__ import annotations

import pytest

from omegaconf import OmegaConf

from study.commands.search_request import parse
from study.training.methods import METHODS
from tests.test_config import CONF_DIR, GROUPS, compose_cfg
from tests.test_search import SEARCHABLE

SEARCH_GROUPS = {g: sorted(p.stem for p in (CONF_DIR / g).glob("*.yaml")) for g in ("method", "search_budget")}
def test_every_method_has_its_config_and_every_config_its_method():
    assert SEARCH_GROUPS["method"] == sorted(METHODS.names())


SEARCH_EXPERIMENTS = sorted(p.stem for p in (CONF_DIR / "experiment" / "search").glob("*.yaml"))


@pytest.mark.parametrize("group,option", [(g, o) for g, opts in {**GROUPS, **SEARCH_GROUPS}.items() for o in opts
                                          if g != "budget"])  # the train budget; a search has its own
def test_every_option_composes_into_search(group, option, tmp_path):
    cfg = compose_cfg("search", [f"{group}={option}", f"study_dir={tmp_path}"])
    assert cfg[group].name == option  # registry key == config stem == name


@pytest.mark.parametrize("space", SEARCHABLE)
@pytest.mark.parametrize("experiment", SEARCH_EXPERIMENTS)
@pytest.mark.parametrize("method", SEARCH_GROUPS["method"])
def test_every_search_recipe_parses_for_every_method_and_searchable_space(experiment, method, space, tmp_path):
    req = parse(compose_cfg("search", [f"experiment=search/{experiment}", f"method={method}", f"space={space}",
                                       f"study_dir={tmp_path}"]))
    budget, shape = req.setup.budget, req.setup.shape
    assert budget.name == experiment and req.setup.method == method and "paper_epochs" not in req.setup.method_options
    if experiment == "paper":
        paper_epochs = OmegaConf.load(CONF_DIR / "method" / f"{method}.yaml").paper_epochs
        assert budget.epochs == paper_epochs and budget.batch_size == 64
        assert (shape.width, shape.cells_per_stage) == ((16, 5) if space == "nb201" else (16, 2))  # unnas: 8 cells
        assert (budget.lr, budget.lr_min, budget.arch_lr, budget.arch_beta1, budget.arch_weight_decay) == (
            0.025, 0.001, 3e-4, 0.5, 1e-3) and budget.grad_clip == 5 and budget.portion == 0.5
        assert shape.image_size == 32 and req.setup.dataset_options["train_subset"] == 0
    else:
        assert shape.image_size == 16 and req.setup.dataset_options["train_subset"] == 10000
        assert (shape.width, shape.cells_per_stage) == ((8, 1) if space == "nb201" else (4, 1))


def test_gdas_options_reach_the_method_and_change_the_search_identity(tmp_path):
    base = parse(compose_cfg("search", ["method=gdas", f"study_dir={tmp_path}"])).setup
    hotter = parse(compose_cfg("search", ["method=gdas", "method.tau_max=5", f"study_dir={tmp_path}"])).setup
    assert base.method_options == {"tau_max": 10.0, "tau_min": 0.1} and hotter.method_options["tau_max"] == 5
    assert base.tag() != hotter.tag() and base.tag().startswith("digits-cpu-")


@pytest.mark.parametrize("argv,expected", [
    (["-m", "seed=0,1,2"], ["seed=[0,1,2]"]),  # one job, its seeds side by side
    (["-m", "seed=0,1,2", "hydra/launcher=slurm"], ["seed=0,1,2", "hydra/launcher=slurm"]),  # an array task each
    (["-m", "seed=0,1", "hydra/launcher=gpus"], ["seed=[0,1]", "hydra/launcher=gpus", "device=cuda"]),
    (["seed=3"], ["seed=3"]),
])
def test_a_seed_sweep_is_one_job_unless_slurm_runs_each_seed(argv, expected, caplog):
    from study.commands.argv import CommandLine
    from study.search import seeds_together

    assert seeds_together(CommandLine.parse(argv)).argv() == [a for a in argv if a == "-m"] + expected
    seeds = next(a for a in argv if a.startswith("seed=")).removeprefix("seed=")
    said = [f"seed={seeds} with -m: the {seeds.count(',') + 1} seeds search in one job, side by side (as "
            f"seed=[{seeds}]), not one job per seed; with hydra/launcher=slurm each seed is an array task of its own"]
    assert [r.getMessage() for r in caplog.records] == (said if f"seed=[{seeds}]" in expected else [])


@pytest.mark.parametrize("objective,batch,lr,arch_lr", [("supervised", 64, 0.1, 3e-4), ("colorization", 64, 0.1, 3e-4),
                                                        ("rotation", 32, 0.05, 1.5e-4), ("jigsaw", 32, 0.05, 1.5e-4)])
def test_the_unnas_search_budget_is_unnas_search_phase(objective, batch, lr, arch_lr, tmp_path):
    """configs/search_based/search_phase/imagenet/{cls,col,rot,jig}.yaml of facebookresearch/unnas."""
    req = parse(compose_cfg("search", ["space=darts", "search_budget=unnas", f"objective={objective}",
                                       f"study_dir={tmp_path}"]))
    b, shape = req.setup.budget, req.setup.shape
    assert (b.batch_size, b.lr, b.arch_lr) == (batch, lr, arch_lr)
    assert (b.epochs, b.warmup_epochs, b.lr_min, b.momentum, b.nesterov, b.weight_decay) == (2, 1, 0.0, 0.9, False, 3e-5)
    assert (b.arch_beta1, b.arch_beta2, b.arch_weight_decay, b.portion, b.grad_clip) == (0.5, 0.999, 1e-3, 0.5, 5.0)
    assert b.grad_clip_alpha and (shape.width, shape.cells_per_stage, shape.stem) == (16, 2, "imagenet")


def test_the_alpha_clip_enters_the_identity_only_when_set(tmp_path):
    base = parse(compose_cfg("search", [f"study_dir={tmp_path}"])).setup
    clipped = parse(compose_cfg("search", ["search_budget.grad_clip_alpha=true", f"study_dir={tmp_path}"])).setup
    assert "grad_clip_alpha" not in base.identity()["budget"] and clipped.identity()["budget"]["grad_clip_alpha"]
    assert base.tag() != clipped.tag()
