"""Parity with the unnas code (issue 32): each test pins one fact of how unnas trains, read from its code,
and fails on what this project did before.

unnas paths are of facebookresearch/unnas; docs/paper.md lists what still differs and why.
"""

from __future__ import annotations

import hashlib
import math

import numpy as np
import pytest
import torch
from torch import nn

from study.data import ImageData
from study.data.augment import REC709, random_crop, random_grayscale
from study.data.batches import InMemoryBatches
from study.objectives import create_objective
from study.objectives.colorization import PixelClassifier
from study.objectives.jigsaw import normalize_tiles
from study.objectives.permutations import UNNAS_FILE, all_permutations, unnas_permutations
from study.objectives.supervised import smoothed_cross_entropy
from study.training.trainer import cosine_lr, precise_bn


def cifar_like(name: str = "cifar10", n: int = 10, size: int = 32, seed: int = 0) -> ImageData:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=gen)
    y = torch.arange(n) % 10
    mean = torch.tensor([125.3, 123.0, 113.9]) / 255
    std = torch.tensor([63.0, 62.1, 66.7]) / 255
    return ImageData(name, x, y, x, y, 10, mean, std)


# -- item 4: CIFAR crop (pycls/datasets/prepare.py prepare_im; transforms.py random_crop) -------------------

def test_cifar_crop_pads_after_normalising_so_the_border_is_the_mean_colour():
    data = cifar_like()
    objective = create_objective("supervised", data)
    x, _ = objective.train_batch(data.train_x, data.train_y, torch.Generator().manual_seed(1))
    # A crop that starts at offset 0 shows 4 padded rows: in normalised units the mean colour is exactly 0.
    top_rows = x[:, :, :4, :]
    shifted = (top_rows == 0).all(dim=(1, 2, 3))
    assert shifted.any(), "some image of 10 is cropped at the top offset 0 (p = 1 - (7/8)^10)"
    # Before: black padding of the uint8 image, normalised to -mean/std, never 0.
    black = ((0 - data.mean) / data.std)[None, :, None, None]
    assert not torch.isclose(top_rows, black.expand_as(top_rows)).all(dim=(1, 2, 3)).any()


def _offsets(out: torch.Tensor, size: int) -> set[int]:
    """The crop offsets used: output pixel (p, p) shows image pixel (oy, ox), each image pixel 1 + its index."""
    values = out[:, 0, 4, 4].long() - 1  # padding 4 here; offsets 0..8 keep (4, 4) inside the image
    return set((values // size).tolist()) | set((values % size).tolist())


def test_cifar_crop_offsets_are_0_to_7_as_unnas_randint():
    x = (torch.arange(32 * 32, dtype=torch.float32) + 1).reshape(1, 1, 32, 32).repeat(2000, 1, 1, 1)
    assert _offsets(random_crop(x, 4, torch.Generator().manual_seed(0), flush=False), 32) == set(range(8))
    assert _offsets(random_crop(x, 4, torch.Generator().manual_seed(0)), 32) == set(range(9))  # before


def test_other_in_memory_datasets_keep_torchvision_crop_order_black_border_and_offsets():
    data = cifar_like("imagenet16", n=200, size=16)
    data.train_x[:] = 128
    objective = create_objective("supervised", data, crop_padding=2)
    x, _ = objective.train_batch(data.train_x, data.train_y, torch.Generator().manual_seed(0))
    black = ((0 - data.mean) / data.std)[None, :, None, None]
    assert torch.isclose(x[:, :, :1, :], black.expand(200, 3, 1, 16)).all(dim=(1, 2, 3)).any()


# -- item 5: precise BN, total variance (pycls/core/net.py compute_precise_bn_stats) -------------------------

class _Identity:
    name = "identity"

    def train_batch(self, images, labels, gen):
        return images.float(), labels

    def views(self):
        return None


def test_precise_bn_keeps_the_total_variance_of_a_fixed_batch_sequence():
    # Two batches of 4 one-channel images: batch means 0 and 10, each batch with unbiased variance 4/3.
    a = torch.tensor([-1.0, 1.0, -1.0, 1.0])
    b = a + 10.0
    images = torch.cat([a, b]).reshape(8, 1, 1, 1).to(torch.uint8 if False else torch.float32)

    class Source(InMemoryBatches):
        def bn(self, gens, n_samples, batch_size, epoch):
            yield [images[:4]], [torch.zeros(4)]
            yield [images[4:]], [torch.zeros(4)]

    model = nn.BatchNorm2d(1)
    precise_bn(model, _Identity(), Source(None), 8, 4, [torch.Generator()], precision="fp32")
    batch_var = 4 / 3  # torch keeps the unbiased variance of each batch
    assert model.running_mean.item() == pytest.approx(5.0)
    # E[var_b + mean_b^2] - mean^2 = 4/3 + (0 + 100) / 2 - 25 = 4/3 + 25; the average of batch variances is 4/3.
    assert model.running_var.item() == pytest.approx(batch_var + 25.0)
    assert model.momentum == 0.1


# -- item 6: the permutation file (pycls/datasets/files/hamming_perms_1000_patches_9_max.npy) ----------------

def test_the_shipped_permutations_are_unnas_file_byte_for_byte():
    digest = hashlib.sha256(UNNAS_FILE.read_bytes()).hexdigest()
    assert digest == "ef3f379371d144e80877c43fcf22901d2db7eace3e85882a1006e9549d27e6f5"
    table = unnas_permutations()
    assert table.shape == (1000, 9)
    assert table[0].tolist() == [8, 1, 6, 3, 5, 0, 4, 2, 7] and table[1].tolist() == [0, 2, 1, 4, 3, 5, 6, 7, 8]
    assert table[2].tolist() == [1, 0, 2, 5, 4, 3, 7, 8, 6]


def test_imagenet_jigsaw_classes_are_the_file_rows_placed_as_unnas_places_tiles():
    data = cifar_like("imagenet", n=2, size=96)
    objective = create_objective("jigsaw", data)  # 3x3 grid, permutations=1000
    assert objective.n_classes == 1000
    np.testing.assert_array_equal(objective.table, unnas_permutations())
    # unnas prepare_jig: tiles[perm[3 * i + j]] = tile (i, j). Tiles labelled by their grid position:
    positions = torch.arange(9).float()
    for c in (0, 1, 2, 999):
        slots = positions[objective.perms[c]]
        expected = torch.empty(9)
        expected[torch.from_numpy(unnas_permutations()[c])] = positions
        assert torch.equal(slots, expected)


def test_cifar_jigsaw_classes_are_the_24_permutations_in_unnas_order():
    data = cifar_like()
    objective = create_objective("jigsaw", data)
    np.testing.assert_array_equal(objective.table, all_permutations(4))  # = unnas' permutations_24.npy
    assert objective.table[1].tolist() == [0, 1, 3, 2]


# -- item 7: colorization upsampling (pycls/models/common.py Classifier) ----------------------------------

def test_colorization_upsamples_with_aligned_corners():
    class Trunk(nn.Module):
        c_out = 1

        def forward(self, x):
            return torch.tensor([[0.0, 1.0], [2.0, 3.0]]).reshape(1, 1, 2, 2).expand(x.shape[0], 1, 2, 2)

    head = PixelClassifier(Trunk(), 1)
    nn.init.ones_(head.head.weight)
    nn.init.zeros_(head.head.bias)
    out = head(torch.zeros(1, 1, 4, 4))[0, 0]
    # Aligned corners: the corners keep the coarse values exactly (not so with align_corners=False: 0.0 -> 0.0
    # but the next pixel is 0.25 there, 1/3 here).
    assert out[0, 0].item() == 0.0 and out[-1, -1].item() == pytest.approx(3.0)
    assert out[0, 1].item() == pytest.approx(1 / 3)


# -- item 10: greyscale and tile statistics (pycls/datasets/prepare.py prepare_jig) --------------------------

def test_jigsaw_greyscale_uses_skimage_rgb2gray_weights():
    x = torch.tensor([255.0, 0.0, 0.0]).reshape(1, 3, 1, 1)
    grey = random_grayscale(x, torch.Generator(), 1.0, REC709)
    assert grey[0, :, 0, 0].tolist() == pytest.approx([0.2125 * 255] * 3)  # rgb2gray(red) * 255; Rec. 601: 0.299


def test_tiles_are_normalised_by_the_population_std_as_np_std():
    tiles = torch.tensor([1.0, 3.0]).reshape(1, 1, 1, 1, 2)
    out = normalize_tiles(tiles)
    assert out.flatten().tolist() == pytest.approx([-1.0, 1.0])  # np.std: 1; the unbiased std gives +-0.707


def test_the_last_partial_cifar_batch_is_dropped():
    data = cifar_like(n=10)
    batches = list(InMemoryBatches(data).train([torch.Generator().manual_seed(0)], 4, 0))
    assert [b[0][0].shape[0] for b in batches] == [4, 4]  # unnas' train loader: drop_last=True
    small = list(InMemoryBatches(cifar_like("digits", n=10)).train([torch.Generator()], 4, 0))
    assert [b[0][0].shape[0] for b in small] == [4, 4, 2]  # the small CPU datasets keep every image


# -- item 2: the evaluation phase's loss and schedule (pycls/core/builders.py, optimizer.py) -------------------

def test_label_smoothing_is_unnas_eps_over_k_minus_1():
    logits = torch.tensor([[2.0, 0.0, -1.0]])
    logp = logits.log_softmax(-1)[0]
    expected = -(0.9 * logp[0] + 0.05 * logp[1] + 0.05 * logp[2])
    assert smoothed_cross_entropy(logits, torch.tensor([0]), 0.1).item() == pytest.approx(expected.item())
    torch_form = nn.functional.cross_entropy(logits, torch.tensor([0]), label_smoothing=0.1)
    assert torch_form.item() != pytest.approx(expected.item())


def test_warm_up_scales_the_cosine_lr_linearly_from_a_tenth():
    lrs = [cosine_lr(0.5, e, 250, 5) for e in range(7)]
    for e in range(5):
        factor = 0.1 * (1 - e / 5) + e / 5
        assert lrs[e] == pytest.approx(0.25 * (1 + math.cos(math.pi * e / 250)) * factor)
    assert lrs[5] == pytest.approx(cosine_lr(0.5, 5, 250)) and lrs[0] == pytest.approx(0.05)


def test_supervised_with_auxiliary_adds_0_4_of_the_auxiliary_loss_in_training_only():
    from study.spaces import NetShape, get_space

    data = cifar_like(n=4, size=32)
    objective = create_objective("supervised", data, auxiliary=0.4, label_smoothing=0.1)
    space = get_space("darts")
    cell = space.parse("normal=" + "|".join(["sep_conv_3x3~0,skip_connect~1"] * 4) + ";reduce="
                       + "|".join(["max_pool_3x3~0,max_pool_3x3~1"] * 4))
    model = objective.build(space.build(cell, NetShape(3, 32, 10, 4, 1, "cifar", 5)))
    x = objective.normalize(data.train_x)
    main, aux = model.train()(x)
    loss = objective.loss((main, aux), data.train_y)
    parts = smoothed_cross_entropy(main, data.train_y, 0.1) + 0.4 * smoothed_cross_entropy(aux, data.train_y, 0.1)
    assert loss.item() == pytest.approx(parts.item())
    assert model.eval()(x).shape == (4, 10)


# -- item 3: fp32 for the paper recipes ------------------------------------------------------------------

@pytest.mark.parametrize("experiment", ["paper-darts", "paper-nb101", "imagenet/darts", "imagenet/nb101", "eval/darts",
                                        "eval/imagenet_rot"])
def test_paper_recipes_train_in_fp32_on_a_gpu_unless_asked(experiment):
    from hydra import compose, initialize_config_dir

    from study.commands.cli import CONF_DIR
    from study.training.devices import resolve_precision

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("train", overrides=[f"experiment={experiment}"])
        asked = compose("train", overrides=[f"experiment={experiment}", "precision=bf16"])
    assert cfg.precision == "fp32" and resolve_precision(cfg.precision, "cuda") == "fp32"
    assert asked.precision == "bf16"


# -- item 8: the random experiment (figs/fig5.py) ----------------------------------------------------------

def _fig5_by_hand(proxy: dict, target: dict, n: int = 500) -> list[float]:
    """fig5.py's loop, written out: seed 2, m doubling below n, ceil(n/m) draws of m sorted keys each."""
    np.random.seed(2)
    keys, means, m = sorted(proxy), [], 1
    while m < n:
        picks = []
        for _ in range(int(np.ceil(n / m))):
            drawn = np.random.choice(keys, m, replace=False)
            best, best_value = None, 0
            for k in drawn:
                if proxy[k] > best_value:
                    best, best_value = k, proxy[k]
            picks.append(target[best])
        means.append(np.mean(picks))
        m *= 2
    return means


def test_fig5_draws_ceil_500_over_m_trials_with_seed_2_as_unnas():
    import pandas as pd

    from analysis.selection import unnas_random_experiment

    rng = np.random.default_rng(0)
    keys = [f"cell-{i:03d}" for i in rng.permutation(520)]
    target = pd.Series(rng.uniform(0.5, 0.9, 520), index=keys).sort_index()
    proxy = (target + rng.normal(0, 0.05, 520)).clip(0.01)
    curve = unnas_random_experiment(proxy, target)
    assert curve["size"].tolist() == [1, 2, 4, 8, 16, 32, 64, 128, 256]
    assert curve["trials"].tolist() == [500, 250, 125, 63, 32, 16, 8, 4, 2]  # before: 1,000 per size
    expected = _fig5_by_hand(proxy.to_dict(), target.to_dict())
    np.testing.assert_allclose(curve["mean"].to_numpy(), expected, rtol=0, atol=1e-12)


def test_the_paper_command_draws_each_column_on_its_own_cells(tmp_path):
    import pandas as pd

    from analysis.paper import fig5_curves

    rng = np.random.default_rng(1)
    table = pd.DataFrame({"ref": rng.uniform(size=40), "a": rng.uniform(size=40), "b": rng.uniform(size=40)},
                         index=[f"k{i:02d}" for i in range(40)])
    table.loc[table.index[:10], "b"] = np.nan  # b's own set is 30 cells; a keeps all 40
    curves = fig5_curves(table, "ref", ["a", "b"], "nb201")
    a = curves[curves["objective"] == "a"]
    assert a["size"].max() == 32 and curves[curves["objective"] == "b"]["size"].max() == 16


# -- item 9: truth=unnas as figs/fig234.py reads the summaries ---------------------------------------------

def _write(root, dataset: str, task: str, seed: str, jobs: list[tuple[object, float]]) -> None:
    import json

    folder = root / "summaries" / "nas_bench" / dataset / task / seed
    folder.mkdir(parents=True)
    summaries = [{"job_id": job, "min_test_top1": [50.0, error]} for job, error in jobs]
    (folder / "sweep_summary.json").write_text(json.dumps({"job_summaries": summaries}))


def _ids(n: int) -> list[int]:
    from analysis.unnas import paper_cells

    return [int(i) for i in list(paper_cells("nb101"))[:n]]


def test_unnas_truth_reads_seeds_1_2_3_and_averages_every_entry(tmp_path):
    from analysis.unnas import paper_cells, read_summaries

    a, b = _ids(2)
    _write(tmp_path, "cifar10", "rot", "1", [(a, 10.0), (a, 20.0), (b, 30.0)])  # a listed twice in one file
    _write(tmp_path, "cifar10", "rot", "2", [(a, 30.0), (b, 30.0)])
    _write(tmp_path, "cifar10", "rot", "3", [(a, 40.0), (b, 30.0)])
    _write(tmp_path, "cifar10", "rot", "4", [(a, 90.0), (b, 90.0)])  # not a seed the paper reads
    table = read_summaries(tmp_path, "nb101")
    key = paper_cells("nb101")[str(a)]
    # fig234.py: np.mean of [10, 20, 30, 40] = 25 -> 75% (before: seed means incl. seed 4, duplicates last-wins)
    assert table.loc[key, "unnas-cifar10-rot"] == pytest.approx(0.75)
    assert table.loc[paper_cells("nb101")[str(b)], "unnas-cifar10-rot"] == pytest.approx(0.70)


def test_unnas_truth_with_no_known_job_id_is_one_clear_error(tmp_path):
    from analysis.truth import TruthError
    from analysis.unnas import read_summaries

    _write(tmp_path, "imagenet", "cls", "1", [(5, 10.0), (6, 20.0)])  # IDs that are not the paper's
    with pytest.raises(TruthError, match="none of its 2 job_id"):
        read_summaries(tmp_path, "nb101")


def test_unnas_truth_compares_only_cells_common_to_every_file(tmp_path):
    from analysis.unnas import read

    a, b, c = _ids(3)
    _write(tmp_path, "imagenet", "cls", "1", [(a, 10.0), (b, 20.0), (c, 30.0)])
    _write(tmp_path, "imagenet", "rot", "1", [(a, 10.0), (b, 20.0)])
    truth = read(tmp_path, "nb101")
    assert truth.common and truth.table["unnas-imagenet-cls"].notna().sum() == 3
    assert truth.table.notna().all(axis=1).sum() == 2  # what analysis.correlate keeps


def test_an_eval_recipe_with_another_objective_is_refused_in_one_line():
    from study.objectives import ObjectiveError

    with pytest.raises(ObjectiveError, match="'rotation' has no option auxiliary, label_smoothing"):
        create_objective("rotation", cifar_like(), auxiliary=0.4, label_smoothing=0.1)
