"""Streaming image folders (ImageNet's layout): listing, refusals, loader determinism, mid-epoch resume, pace.

Every test reads a tiny generated JPEG tree (tests/image_fixtures.py: three classes, images of five sizes and
aspect ratios, one truncated file); the end-to-end run of the four paper objectives is tests/test_stream_e2e.py.
"""

from __future__ import annotations

import logging
from dataclasses import replace

import numpy as np
import pytest
import torch

from study.data import DataError, build_dataset, preflight
from study.data.loader import StreamBatches
from study.objectives import create_objective
from study.spaces import NetShape, get_space
from study.training import pace as pace_module
from study.training.checkpoint import Checkpointer
from study.training.run import Budget
from study.training.pace import Pace, Watch
from study.training.trainer import train, train_epoch
from tests.image_fixtures import write_jpeg_tree
from tests.test_bad_input import assert_refused, invoke, study  # noqa: F401  (fixtures)

SMALL = {"image_size": 32, "resize": 36, "loader_workers": 0}
SHAPE = NetShape(c_in=3, image_size=32, n_classes=3, width=4, cells_per_stage=1, stem="imagenet")
BUDGET = Budget("t", epochs=2, batch_size=4, lr=0.05, precise_bn=8, eval_batch_size=5)


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("imagenet")
    write_jpeg_tree(root)
    return root


@pytest.fixture(scope="module")
def data(tree):
    return build_dataset("imagenet", data_root=str(tree), **SMALL)


def _model(objective, seed=0):
    space = get_space("nb101")
    cell = space.sample(1, seed=0)[0]
    torch.manual_seed(seed)
    return objective.build(space.build(cell, replace(SHAPE, c_in=objective.c_in)))


def test_the_listing_holds_names_and_labels_not_images(data, tree):
    assert data.n_classes == 3 and data.classes == ["n01", "n02", "n03"]
    assert len(data.train) == 18 and len(data.test) == 6
    assert data.train.files.dtype.kind == "S" and data.train.labels.tolist() == [0] * 6 + [1] * 6 + [2] * 6
    assert data.train.files[0] == b"n01/n01_0000.JPEG"
    again = build_dataset("imagenet", data_root=str(tree), **SMALL)
    assert again.fingerprint == data.fingerprint and len(data.fingerprint) == 16
    sub = build_dataset("imagenet", data_root=str(tree), **SMALL, train_subset=5)
    assert len(sub.train) == 5 and sub.fingerprint != data.fingerprint
    assert set(sub.train.files.tolist()) <= set(data.train.files.tolist())


def _epoch(data, objective_name: str, seed: int, epoch: int, start: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    objective = create_objective(objective_name, data)
    source = data.batches(objective.views(), seed)
    try:
        return [(x[0].clone(), y[0].clone()) for x, y in source.train([torch.Generator()], 4, epoch, start)]
    finally:
        source.close()


def test_batches_depend_on_seed_and_epoch_not_on_the_workers(data):
    import multiprocessing

    inline = _epoch(data, "supervised", seed=3, epoch=1)
    two = _epoch(replace(data, loader_workers=2), "supervised", seed=3, epoch=1)
    assert not multiprocessing.active_children()  # closing the source ended its worker processes
    # 18 images in batches of 4: the last 2 are dropped, as unnas' train loader drops them (drop_last=True).
    assert len(inline) == 4 and [x.shape for x, _ in inline] == [(4, 3, 32, 32)] * 4
    assert all(x.dtype == torch.uint8 for x, _ in inline)
    for (a, la), (b, lb) in zip(inline, two):
        assert torch.equal(a, b) and torch.equal(la, lb)
    other_epoch = _epoch(data, "supervised", seed=3, epoch=2)
    assert not all(torch.equal(a, b) for (a, _), (b, _) in zip(inline, other_epoch))
    # An epoch started at step 2 gives what the full epoch gives from step 2 on (mid-epoch resume).
    later = _epoch(data, "supervised", seed=3, epoch=1, start=2)
    assert len(later) == 2 and all(torch.equal(a, b) for (a, _), (b, _) in zip(inline[2:], later))


def test_an_unreadable_image_is_replaced_by_its_neighbour_and_counted(data, caplog):
    objective = create_objective("supervised", data)
    source = data.batches(objective.views(), 0)
    with caplog.at_level(logging.WARNING, logger="study.data.loader"):
        for _ in range(2):  # two passes: logged once
            test = [y for _, y in source.test(3)]
            labels = torch.cat(test + [y[0] for _, y in source.train([torch.Generator()], 6, 0)])  # every image
    assert source.unreadable == {"n01/n01_0001.JPEG": source.unreadable["n01/n01_0001.JPEG"]}
    assert "OSError" in source.unreadable["n01/n01_0001.JPEG"]
    assert sum("n01/n01_0001.JPEG" in r.getMessage() for r in caplog.records) == 1
    # The truncated class-0 image's place went to the next one, class 0 too: 6 of each class still.
    assert torch.bincount(labels[6:], minlength=3).tolist() == [6, 6, 6]
    strict = data.batches(objective.views(), 0)
    strict.data = replace(data, max_unreadable=0)
    with pytest.raises(DataError, match=r"1 images cannot be read .*n01_0001.JPEG.*max_unreadable"):
        list(strict.train([torch.Generator()], 6, 0))


def test_k_models_side_by_side_are_refused_by_a_stream(data):
    source = StreamBatches(data, create_objective("supervised", data).views(), 0)
    with pytest.raises(ValueError, match="one model at a time"):
        next(source.train([torch.Generator(), torch.Generator()], 4, 0))


def _stream_search(data, objective_name: str, epochs: int = 2, init_seed: int = 0, weights=None, **kw):
    from study.training.methods import create_method
    from study.training.search import search
    from study.training.searches import SearchBudget

    torch.set_num_threads(1)
    objective = create_objective(objective_name, data)
    space = get_space("darts")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(init_seed)
        supernet = space.supernet(replace(SHAPE, width=2, cells_per_stage=2))  # unnas' ImageNet search network
        model = objective.build(supernet)
    if weights is not None:
        model.load_state_dict(weights)
    budget = SearchBudget("t", epochs=epochs, batch_size=4, warmup_epochs=1, eval_batch_size=3)
    state = search(supernet, model, objective, data, budget, create_method("darts"), 5,
                   lambda alpha: {"cell": space.derive(alpha).to_str()}, **kw)
    times = ("cpu_s", "wall_s", "train_cpu_s")
    return [{k: v for k, v in e.items() if k not in times} for e in state.history], model


@pytest.mark.parametrize("name", ["supervised", "rotation"])
def test_a_search_streams_its_two_parts_alike_whatever_the_loader_workers(data, name):
    """unnas' ImageNet search phase reads ImageNet from disk: its two fixed parts stream through the loader
    workers, each image cut as a training image, and the search does not depend on how many workers cut."""
    import multiprocessing

    inline, model_inline = _stream_search(data, name)
    two, model_two = _stream_search(replace(data, loader_workers=2), name)
    assert not multiprocessing.active_children()  # the search closed its source
    assert inline == two and inline[0]["arch_loss"] is None and inline[1]["arch_loss"] is not None
    assert all(torch.equal(a, b) for a, b in zip(model_inline.state_dict().values(), model_two.state_dict().values()))
    assert inline[1]["alpha"] != inline[0]["alpha"]  # the architecture moved in the second epoch


def test_a_streamed_search_resumed_after_an_epoch_ends_as_one_run_straight_through(data):
    straight, straight_model = _stream_search(data, "rotation", epochs=3)
    saved = []

    class Stop(Exception):
        pass

    def keep_then_stop(model, state):
        saved.append((state, {k: v.clone() for k, v in model.state_dict().items()}))
        if state.epoch == 2:
            raise Stop

    with pytest.raises(Stop):
        _stream_search(data, "rotation", epochs=3, on_epoch=keep_then_stop)
    start, weights = saved[-1]
    # Another start (weights and alpha come from the saved state): it ends where the straight search ends.
    resumed, model = _stream_search(data, "rotation", epochs=3, init_seed=99, weights=weights, start=start)
    assert resumed == straight
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), straight_model.state_dict().values()))


@pytest.mark.parametrize("name", ["supervised", "jigsaw"])
def test_a_run_stopped_mid_epoch_resumes_bit_identically(data, tmp_path, name):
    torch.set_num_threads(1)
    objective = create_objective(name, data)
    straight_model = _model(objective)
    straight = train(straight_model, objective, data, BUDGET, seed=7)

    ident = {"cell_id": "c", "seed": 7, "identity": "x"}
    saver = Checkpointer(tmp_path / "c.ckpt", ident)
    saved = []

    class Stop(Exception):
        pass

    def save_then_stop(model, state):
        saver.save(model, state)
        saved.append((state.epoch, state.step))
        if (state.epoch, state.step) == (1, 2):  # within the second epoch, after its second step
            raise Stop

    with pytest.raises(Stop):  # checkpoint_s tiny: a mid-epoch state after every step
        train(_model(objective), objective, data, BUDGET, seed=7, on_state=save_then_stop, checkpoint_s=1e-9)
    # 4 steps per epoch (18 images, batch 4, the last partial batch dropped); the last step is the epoch's end.
    assert saved[:5] == [(0, 1), (0, 2), (0, 3), (1, 0), (1, 1)]
    loader = Checkpointer(tmp_path / "c.ckpt", ident)
    resumed_model = _model(objective, seed=99)
    start = loader.load(resumed_model, "cpu")
    assert (start.epoch, start.step) == (1, 2) and loader.resume_steps == [2]
    resumed = train(resumed_model, objective, data, BUDGET, seed=7, start=start)
    assert resumed.train_loss == straight.train_loss and resumed.test_acc == straight.test_acc
    for a, b in zip(straight_model.state_dict().values(), resumed_model.state_dict().values()):
        assert torch.equal(a, b)
    assert straight.unreadable == 1 and len(straight.images_per_s) == 2 and all(r > 0 for r in straight.images_per_s)


def test_a_starving_loader_says_so_once_and_progress_lines_report_the_pace(data, monkeypatch, caplog):
    from study.data import decoders

    monkeypatch.setattr(pace_module, "MIN_STEPS", 2)
    monkeypatch.setattr(pace_module, "PROGRESS_S", 0.0)
    read = decoders.PilDecoder.read

    def slow(self, path):
        import time

        time.sleep(0.05)  # a loader far slower than this tiny network's step
        return read(self, path)

    monkeypatch.setattr(decoders.PilDecoder, "read", slow)
    objective = create_objective("rotation", data)
    lines = []
    from study.training.trainer import fit

    with caplog.at_level(logging.WARNING, logger="study.training.pace"):
        history = fit(_model(objective), objective, data, replace(BUDGET, precise_bn=0), [0], [None], None, None,
                      lambda m, e: None, progress=lines.append)[0]
    warnings = [r.getMessage() for r in caplog.records if "waited for data" in r.getMessage()]
    assert len(warnings) == 1 and "dataset.loader_workers" in warnings[0] and "0 loader worker(s)" in warnings[0]
    assert all(w > 0.5 for w in history.loader_wait)
    assert lines and all("images/s" in line and "waiting for data" in line for line in lines)
    assert lines[0].startswith("epoch 1/2: step 1/4")  # 18 images in 4 full batches of 4


def test_in_memory_batches_are_counted_and_never_called_starving(caplog):
    digits = build_dataset("digits", image_size=8, test_fraction=0.5)
    objective = create_objective("supervised", digits, crop_padding=1)
    pace = Pace()
    model = _model_nb201(objective)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    train_epoch(model, objective, digits, opt, 64, [torch.Generator().manual_seed(0)], pace=pace)
    n = digits.train_x.shape[0]
    assert pace.images == n and pace.steps == -(-n // 64) and pace.rate > 0 and 0 <= pace.wait_share < 1
    pace.steps, pace.waiting = pace_module.MIN_STEPS, pace.seconds  # even a (hypothetical) full wait: not a loader
    with caplog.at_level(logging.WARNING):
        Watch(False, None, 0, None, 0.0).judge(pace)
        Watch(True, 2, 0, None, 0.0).judge(pace)
    assert len([r for r in caplog.records if "waited for data" in r.getMessage()]) == 1


def _model_nb201(objective):
    space = get_space("nb201")
    torch.manual_seed(0)
    return objective.build(space.build(space.sample(1, seed=0)[0], NetShape(1, 8, 10, 4, 1)))


LAYOUTS = {
    "no data_root": (lambda root: None, ["dataset=imagenet needs data_root=PATH", "val/<class>"]),
    "not a folder": (lambda root: root / "nope", ["is not a folder"]),
    "no val": (lambda root: _moved(root, "val", "valid"), ["has no val/ folder", "dataset.test_split"]),
    "flat val": (lambda root: _flat_val(root), ["holds 6 images directly", "val/<class>/"]),
    "other classes": (lambda root: _moved(root, "val/n03", "val/n09"), ["other classes than train/",
                                                                       "lacks 1 of train/'s (e.g. n03)", "n09"]),
}


def _moved(root, old, new):
    (root / old).rename(root / new)
    return root


def _flat_val(root):
    for image in list((root / "val").rglob("*.JPEG")):
        image.rename(root / "val" / image.name)
    for folder in (root / "val").iterdir():
        if folder.is_dir():
            folder.rmdir()
    return root


@pytest.mark.parametrize("case", list(LAYOUTS))
def test_a_bad_folder_is_refused_in_one_line_before_anything_runs(invoke, study, tmp_path, case):  # noqa: F811
    root = tmp_path / "imagenet"
    write_jpeg_tree(root, truncated=False)
    make, words = LAYOUTS[case]
    where = make(root)
    args = ["dataset=imagenet", "dataset.n_classes=3", "budget=tiny", f"study_dir={study}"]
    if where is not None:
        args.append(f"data_root={where}")
    assert_refused(invoke("study.train", *args), words)


def test_a_class_count_other_than_n_classes_is_refused(invoke, study, tmp_path):  # noqa: F811
    root = tmp_path / "imagenet"
    write_jpeg_tree(root, truncated=False)
    assert_refused(invoke("study.train", "dataset=imagenet", "budget=tiny", f"data_root={root}", f"study_dir={study}"),
                   ["has 3 class folders but dataset.n_classes=1000", "set dataset.n_classes=3"])
    assert_refused(invoke("study.train", "dataset=imagenet", "dataset.n_classes=3", "dataset.resize=100",
                          f"data_root={root}", f"study_dir={study}"),
                   ["dataset.resize (100) must be at least dataset.image_size (224)"])
    assert_refused(invoke("study.train", "dataset=imagenet", "dataset.n_classes=3", "objective=naswot",
                          f"data_root={root}", f"study_dir={study}"), ["naswot scores a batch of an in-memory dataset"])


def test_an_empty_class_is_refused_when_the_folder_is_listed(tmp_path):
    write_jpeg_tree(tmp_path, truncated=False)
    for image in (tmp_path / "train" / "n02").iterdir():
        image.unlink()
    preflight("imagenet", {"data_root": str(tmp_path)}, 3)  # names only: the preflight cannot tell
    with pytest.raises(DataError, match=r"n02 holds no images .* every class needs training images"):
        build_dataset("imagenet", data_root=str(tmp_path))


def test_loader_settings_do_not_change_a_runs_identity():
    from study.training.run import Setup

    def setup(**options):
        return Setup("nb201", "supervised", {}, "imagenet", {"data_root": "/x", **options}, BUDGET, SHAPE, "cpu", 1)

    assert setup(loader_workers=1).identity() == setup(loader_workers=15, max_unreadable=3).identity()
    assert setup(image_size=224).identity() != setup(image_size=192).identity()
    assert setup().identity()["budget"]["stem"] == "imagenet"


def test_views_reach_the_objectives_as_the_paper_crops(data):
    big = replace(data, image_size=224, resize=256)
    for name in ("supervised", "rotation", "colorization"):
        objective = create_objective(name, big)
        train_view, test_view = objective.views()
        assert (train_view.size, test_view.size, test_view.resize, test_view.random) == (224, 224, 256, False)
        assert type(train_view).__name__ == "ResizedCrop" and objective.crop_padding == 0
        assert objective.image_size == 224
    jigsaw = create_objective("jigsaw", big)
    train_view, test_view = jigsaw.views()
    assert (train_view.resize, train_view.size, train_view.random, test_view.size, test_view.random) == (
        256, 255, True, 255, False)
    assert (jigsaw.grid, jigsaw.cell, jigsaw.tile, jigsaw.n_classes) == (3, 85, 64, 1000)
    x = torch.randint(0, 256, (2, 3, 255, 255), dtype=torch.uint8)
    tiles, classes = jigsaw.train_batch(x, torch.zeros(2, dtype=torch.long), torch.Generator().manual_seed(0))
    assert tiles.shape == (2, 9, 3, 64, 64) and classes.shape == (2,)
    assert create_objective("colorization", big).lightness == pytest.approx((0.449, 0.226), abs=1e-3)
    digits = build_dataset("digits", image_size=8)
    assert create_objective("supervised", digits, crop_padding=1).views() is None


def test_listing_memory_is_a_few_dozen_bytes_per_image(data):
    per_image = (data.train.files.nbytes + data.train.labels.nbytes) / len(data.train)
    assert per_image < 40  # an in-memory 224 px copy would hold 150,528 bytes per image
    assert not hasattr(data, "train_x")
    assert isinstance(data.train.files, np.ndarray)


def _torchcodec() -> bool:
    try:
        import torchcodec.decoders  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.mark.skipif(not _torchcodec(), reason="TorchCodec is not installed (pip install torchcodec)")
def test_torchcodec_cuts_what_pil_cuts_and_skips_the_same_file(data):
    objective = create_objective("supervised", data)
    batches = {}
    for decoder in ("pil", "torchcodec"):
        source = replace(data, decoder=decoder).batches(objective.views(), 5)
        batches[decoder] = [(x[0].float(), y[0]) for x, y in source.train([torch.Generator()], 4, 0)]
        assert list(source.unreadable) == ["n01/n01_0001.JPEG"]
        source.close()
    for (a, la), (b, lb) in zip(batches["pil"], batches["torchcodec"]):
        assert torch.equal(la, lb) and a.shape == b.shape
        assert (a - b).abs().mean() < 8  # the same crops; resampling and whole-pixel boxes differ slightly


@pytest.mark.skipif(_torchcodec(), reason="TorchCodec is installed")
def test_torchcodec_asked_for_but_missing_is_refused_before_listing(tree):
    with pytest.raises(DataError, match="dataset.decoder=torchcodec but TorchCodec cannot be imported"):
        preflight("imagenet", {"data_root": str(tree), "decoder": "torchcodec"}, 3)
    with pytest.raises(DataError, match="dataset.decoder must be one of pil, torchcodec"):
        preflight("imagenet", {"data_root": str(tree), "decoder": "cv2"}, 3)
