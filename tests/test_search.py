"""The search loop: each optimiser moves only its own parameters, a seed fixes a search, a search resumed
from its checkpoint ends exactly where one run straight through does, and every trained objective
searches through its own head and loss."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from study.data import ImageData, build_dataset
from study.objectives import create_objective
from study.objectives.base import OBJECTIVES
from study.spaces import SPACES, NetShape, get_space
from study.training.methods import METHODS, create_method
from study.training.search import SearchState, halves, search
from study.training.searches import SearchBudget

SEARCHABLE = [name for name in SPACES.names() if callable(getattr(SPACES.get(name)(), "supernet", None))]

BUDGET = SearchBudget("t", epochs=3, batch_size=64, eval_images=128)
SHAPE = NetShape(c_in=1, image_size=8, n_classes=10, width=4, cells_per_stage=1)
TIMES = ("cpu_s", "wall_s", "train_cpu_s")


class Stop(Exception):
    """Raised from the epoch callback to interrupt a search right after an epoch was saved."""


@pytest.fixture(scope="module")
def data():
    return build_dataset("digits", image_size=8, test_fraction=0.7)  # 539 training images: 269 / 270


def _build(space: str, objective, seed: int, shape: NetShape = SHAPE):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        supernet = get_space(space).supernet(replace(shape, c_in=objective.c_in))
        return supernet, objective.build(supernet)


def _judge(space: str):
    return lambda alpha: {"cell": get_space(space).derive(alpha).to_str()}


def _run(data, method="darts", space="nb201", seed=0, budget=BUDGET, objective="supervised", **kw) -> tuple:
    torch.set_num_threads(1)
    obj = create_objective(objective, data, crop_padding=1)
    supernet, model = _build(space, obj, seed)
    state = search(supernet, model, obj, data, budget, create_method(method), seed, _judge(space), **kw)
    return state, model


def _same(a: list[dict], b: list[dict]) -> bool:
    strip = [[{k: v for k, v in e.items() if k not in TIMES} for e in h] for h in (a, b)]
    return strip[0] == strip[1]


def test_each_optimiser_moves_only_its_own_parameters(data):
    from torch.optim.optimizer import register_optimizer_step_post_hook, register_optimizer_step_pre_hook

    seen = {"adam": 0, "sgd": 0}
    snap: dict = {}

    def params(opt):
        return [p for g in opt.param_groups for p in g["params"]]

    def pre(opt, args, kwargs):
        mine = {id(p) for p in params(opt)}
        others = [p for p in snap["model"].parameters() if id(p) not in mine]
        if isinstance(opt, torch.optim.Adam):
            seen["adam"] += 1
            assert all(p.grad is not None for p in params(opt))
            # The architecture step left the weights' gradients as the last weight step made them.
            before = snap.get("grads", {})
            assert all(p.grad is before.get(id(p)) is None or torch.equal(p.grad, before[id(p)]) for p in others)
        else:
            seen["sgd"] += 1
            assert all(p.grad is None for p in others)  # alpha: no gradient from the weight step
        snap["before"] = {id(p): p.detach().clone() for p in others}

    def post(opt, args, kwargs):
        mine = {id(p) for p in params(opt)}
        assert all(torch.equal(p, snap["before"][id(p)]) for p in snap["model"].parameters() if id(p) not in mine)
        if isinstance(opt, torch.optim.SGD):
            # (GDAS: ops not sampled in the step have no gradient.)
            snap["grads"] = {id(p): None if p.grad is None else p.grad.clone() for p in params(opt)}

    obj = create_objective("rotation", data, crop_padding=1)
    supernet, model = _build("nb201", obj, 0)
    snap["model"] = model
    handles = [register_optimizer_step_pre_hook(pre), register_optimizer_step_post_hook(post)]
    try:
        search(supernet, model, obj, data, replace(BUDGET, epochs=1), create_method("gdas"), 0, _judge("nb201"))
    finally:
        for h in handles:
            h.remove()
    assert seen["adam"] == seen["sgd"] == 5  # 269 weight images in batches of 64: one step of each per batch


@pytest.mark.parametrize("method", METHODS.names())
def test_a_seed_fixes_the_search(data, method):
    small = replace(BUDGET, epochs=2)
    (a, model_a), (b, model_b) = _run(data, method, budget=small), _run(data, method, budget=small)
    assert _same(a.history, b.history)
    assert all(torch.equal(x, y) for x, y in zip(model_a.state_dict().values(), model_b.state_dict().values()))
    other, _ = _run(data, method, seed=1, budget=small)
    assert other.history[-1]["alpha"] != a.history[-1]["alpha"]


@pytest.mark.parametrize("method,space", [(m, s) for m in METHODS.names() for s in SEARCHABLE])
def test_a_search_resumed_from_its_checkpoint_ends_as_one_run_straight_through(data, tmp_path, method, space):
    from study.training.checkpoint import Checkpointer
    from study.training.search_run import restore, save

    straight, straight_model = _run(data, method, space)
    ident = {"seed": 0, "identity": "x"}
    first = Checkpointer(tmp_path / "s.ckpt", ident)

    def save_then_stop(model, state):
        save(first, model, state)
        if state.epoch == 1:
            raise Stop

    with pytest.raises(Stop):
        _run(data, method, space, on_epoch=save_then_stop)
    # A new process builds the supernet afresh (here from another seed): weights and alpha come from the file.
    obj = create_objective("supervised", data, crop_padding=1)
    supernet, model = _build(space, obj, seed=99)
    second = Checkpointer(tmp_path / "s.ckpt", ident)
    start, _ = restore(second, model)
    assert isinstance(start, SearchState) and start.epoch == 1 and second.resumes == [1]
    resumed = search(supernet, model, obj, data, BUDGET, create_method(method), 0, _judge(space), start=start)
    assert _same(resumed.history, straight.history)
    assert all(torch.equal(x, y) for x, y in zip(model.state_dict().values(), straight_model.state_dict().values()))


def test_warm_up_epochs_keep_alpha_frozen_and_gdas_anneals_its_temperature(data):
    state, model = _run(data, "gdas", budget=replace(BUDGET, warmup_epochs=1))
    first, last = state.history[0], state.history[-1]
    assert first["arch_loss"] is None and last["arch_loss"] is not None
    assert (first["tau"], state.history[1]["tau"], last["tau"]) == (10.0, pytest.approx(5.05), pytest.approx(0.1))
    obj = create_objective("supervised", data, crop_padding=1)
    initial, _ = _build("nb201", obj, 0)
    assert first["alpha"]["cell"] == torch.softmax(initial.alphas["cell"].detach(), -1).tolist()  # not moved in warm-up
    assert last["alpha"] != first["alpha"]


@pytest.fixture(scope="module")
def colour():
    """64 random RGB images of 16 px in 4 classes: enough for every objective's batch transform."""
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (96, 3, 16, 16), dtype=torch.uint8, generator=g)
    y = torch.randint(0, 4, (96,), generator=g)
    return ImageData("rgb", x[:64], y[:64], x[64:], y[64:], 4, torch.full((3,), 0.5), torch.full((3,), 0.25))


@pytest.mark.parametrize("name", [n for n in OBJECTIVES.names() if OBJECTIVES.get(n).trains])
def test_every_trained_objective_searches_through_its_own_head_and_loss(colour, name):
    torch.set_num_threads(1)
    obj = create_objective(name, colour, crop_padding=2)
    shape = NetShape(c_in=3, image_size=16, n_classes=4, width=4, cells_per_stage=1)
    supernet, model = _build("nb201", obj, 0, shape)
    budget = SearchBudget("t", epochs=1, batch_size=16)
    state = search(supernet, model, obj, colour, budget, create_method("darts"), 0, _judge("nb201"))
    entry = state.history[0]
    assert 0 <= entry["supernet_acc"] <= 1 and entry["arch_loss"] > 0 and entry["weight_loss"] > 0
    assert entry["alpha"]["cell"] != torch.softmax(_build("nb201", obj, 0, shape)[0].alphas["cell"].detach(), -1).tolist()


def test_both_parts_hold_every_class_even_when_the_images_come_class_by_class():
    labels = torch.arange(10).repeat_interleave(100)  # a folder dataset: class 0's images first, then class 1's
    weights, arch = halves(len(labels), 0.5, torch.device("cpu"))
    assert len(weights) == len(arch) == 500 and not set(weights.tolist()) & set(arch.tolist())
    assert set(labels[weights].tolist()) == set(labels[arch].tolist()) == set(range(10))
    again = halves(len(labels), 0.5, torch.device("cpu"))
    assert torch.equal(again[0], weights)  # fixed: every search sees the same parts


def test_scoring_the_supernet_changes_no_state(data):
    from study.training.search import halves, score

    obj = create_objective("supervised", data, crop_padding=1)
    supernet, model = _build("nb201", obj, 0)
    model.train()
    obj_part = halves(data.train_x.shape[0], 0.5, torch.device("cpu"))[1]
    model(obj.train_batch(data.train_x[:64], data.train_y[:64], torch.Generator().manual_seed(0))[0])  # some stats
    before = {k: v.clone() for k, v in model.state_dict().items()}
    for method in METHODS.names():
        acc = score(supernet, model, obj, data.batches(), obj_part, BUDGET, create_method(method), 0)
        assert 0 <= acc <= 1 and model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
