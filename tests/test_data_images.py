"""CIFAR-10 (torchvision's format) and image folders: real loaders on tiny fixtures, the cache, clear errors."""

from __future__ import annotations

import logging
import os

import numpy as np
import pytest
import torch

from study.data.cifar import read_cifar_batches
from study.data import DataError, build_dataset, list_datasets
from study.data import preflight
from study.data.base import channel_stats_chunked
from tests.image_fixtures import write_tiny_cifar, write_tiny_folder


@pytest.fixture(scope="module")
def cifar_copy(tmp_path_factory):
    root = tmp_path_factory.mktemp("cifar")
    return root, write_tiny_cifar(root)


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "photos"
    return root, write_tiny_folder(root)


def test_registry_has_the_real_datasets():
    assert {"cifar10", "imagefolder", "digits"} <= set(list_datasets())


def test_cifar10_reads_the_pickle_batches_with_a_warning(cifar_copy, caplog):
    root, written = cifar_copy
    with caplog.at_level(logging.WARNING, logger="study.data.cifar"):
        data = build_dataset("cifar10", data_root=str(root), download=False,
                             mean=[125.3, 123.0, 113.9], std=[63.0, 62.1, 66.7])
    assert "differ from the official release" in caplog.text  # the fixture fails torchvision's md5 check
    for key in ("train_x", "train_y", "test_x", "test_y"):
        assert torch.equal(getattr(data, key), torch.from_numpy(written[key])), key
    assert data.train_x.dtype == torch.uint8 and data.train_x.shape == (40, 3, 32, 32) and data.n_classes == 10
    torch.testing.assert_close(data.mean * 255, torch.tensor([125.3, 123.0, 113.9]))
    # data_root may also name the batches folder itself
    again = build_dataset("cifar10", data_root=str(root / "cifar-10-batches-py"), download=False)
    assert again.fingerprint == data.fingerprint


def test_our_cifar_reader_equals_torchvisions(cifar_copy):
    """torchvision's own reader, told to skip only its md5 check, decodes the same pixels and labels."""
    from torchvision.datasets import CIFAR10

    class Unchecked(CIFAR10):
        def _check_integrity(self) -> bool:
            return True

        def _load_meta(self) -> None:
            self.classes = []

    root, _ = cifar_copy
    for train, names in ((True, [f"data_batch_{i}" for i in range(1, 6)]), (False, ["test_batch"])):
        theirs = Unchecked(str(root), train=train, download=False)
        x, y = read_cifar_batches(root / "cifar-10-batches-py", names)
        assert torch.equal(x, torch.from_numpy(theirs.data).permute(0, 3, 1, 2))  # theirs is (N, H, W, C)
        assert y.tolist() == theirs.targets


def test_cifar10_subsets_are_fixed_and_stats_stay(cifar_copy):
    root, written = cifar_copy
    a = build_dataset("cifar10", data_root=str(root), download=False, train_subset=10, test_subset=5)
    b = build_dataset("cifar10", data_root=str(root), download=False, train_subset=10, test_subset=5)
    assert a.train_x.shape[0] == 10 and a.test_x.shape[0] == 5 and torch.equal(a.train_x, b.train_x)
    full = torch.from_numpy(written["train_x"])
    assert all(any(torch.equal(img, f) for f in full) for img in a.train_x)
    torch.testing.assert_close(a.mean, channel_stats_chunked(full)[0])  # statistics of the full training set


def test_cifar10_downsamples_once_to_a_smaller_image_size(cifar_copy):
    root, written = cifar_copy
    small = build_dataset("cifar10", data_root=str(root), download=False, image_size=16)
    full = torch.from_numpy(written["train_x"])
    assert small.train_x.shape == (full.shape[0], 3, 16, 16) and small.train_x.dtype == torch.uint8
    # a 2x2 box of equal pixels stays that colour: downsampling averages neighbours, it does not shift them
    flat = torch.full((1, 3, 32, 32), 77, dtype=torch.uint8)
    from study.data.cifar import _downsample
    assert torch.equal(_downsample(flat, 16), torch.full((1, 3, 16, 16), 77, dtype=torch.uint8))
    means = full.float().mean(dim=(2, 3))
    torch.testing.assert_close(small.train_x.float().mean(dim=(2, 3)), means, atol=1.0, rtol=0)
    with pytest.raises(DataError, match="image_size must be an integer from 8 to 32"):
        build_dataset("cifar10", data_root=str(root), download=False, image_size=64)


def test_cifar10_without_copy_or_download_names_both_options(tmp_path):
    with pytest.raises(DataError, match="data_root=PATH.*download") as e:
        build_dataset("cifar10", data_root=str(tmp_path / "none"), download=False)
    assert "\n" not in str(e.value)
    with pytest.raises(DataError, match="data_root=PATH.*download"):
        preflight("cifar10", {"cache_dir": str(tmp_path), "download": False}, 10)


def test_cifar10_corrupt_batch_is_one_clear_error(tmp_path):
    write_tiny_cifar(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").write_bytes(b"not a pickle")
    with pytest.raises(DataError, match="data_batch_3"):
        build_dataset("cifar10", data_root=str(tmp_path), download=False)


def test_channel_stats_chunked_equals_direct():
    x = torch.randint(0, 256, (37, 3, 5, 5), dtype=torch.uint8)
    mean, std = channel_stats_chunked(x, chunk=8)
    f = x.float() / 255
    torch.testing.assert_close(mean, f.mean(dim=(0, 2, 3)))
    torch.testing.assert_close(std, f.std(dim=(0, 2, 3)))


def test_imagefolder_decodes_exactly_with_labels_by_sorted_class(folder, tmp_path):
    root, images = folder
    data = build_dataset("imagefolder", data_root=str(root), cache_dir=str(tmp_path / "cache"), image_size=32)
    assert data.meta["classes"] == ["cat", "dog"] and data.n_classes == 2 and data.channels == 3
    assert data.train_x.shape == (24, 3, 32, 32) and data.test_x.shape == (8, 3, 32, 32)
    assert data.train_y.tolist() == [0] * 12 + [1] * 12
    torch.testing.assert_close(data.train_x[13], torch.from_numpy(images["train/dog/001.png"]).permute(2, 0, 1))
    torch.testing.assert_close(data.mean, channel_stats_chunked(data.train_x)[0])


def test_imagefolder_cache_reused_then_rebuilt_when_the_folder_changes(folder, tmp_path):
    from PIL import Image

    root, images = folder
    cache = tmp_path / "cache"
    os.chmod(root, 0o555)  # the user's folder may be read-only: the cache goes to cache_dir
    try:
        first = build_dataset("imagefolder", data_root=str(root), cache_dir=str(cache))
        files = list(cache.glob("imagefolder-*.pt"))
        assert first.meta["cache"] == "built" and len(files) == 1
        stamp = files[0].stat().st_mtime_ns
        second = build_dataset("imagefolder", data_root=str(root), cache_dir=str(cache))
        assert second.meta["cache"] == "hit" and files[0].stat().st_mtime_ns == stamp
        assert second.fingerprint == first.fingerprint
    finally:
        os.chmod(root, 0o755)
    # A changed image (new content, new mtime) and an added one: rebuilt, with the new pixels.
    new = np.zeros((32, 32, 3), dtype=np.uint8)
    Image.fromarray(new).save(root / "train" / "cat" / "000.png")
    Image.fromarray(new).save(root / "train" / "dog" / "zzz.png")
    third = build_dataset("imagefolder", data_root=str(root), cache_dir=str(cache))
    assert third.meta["cache"] == "built" and third.train_x.shape[0] == 25
    assert int(third.train_x[0].sum()) == 0 and int(third.train_x[-1].sum()) == 0
    assert build_dataset("imagefolder", data_root=str(root), cache_dir=str(cache)).meta["cache"] == "hit"


def test_imagefolder_resizes_and_centre_crops_other_sizes(tmp_path):
    from PIL import Image

    root = tmp_path / "f"
    write_tiny_folder(root, {"train": 2, "test": 1}, size=16)
    wide = np.zeros((16, 48, 3), dtype=np.uint8)
    wide[:, 16:32] = 200  # the centre third is bright: after cropping to a square only it is left
    Image.fromarray(wide).save(root / "train" / "cat" / "wide.jpg", quality=100)
    Image.fromarray(np.full((40, 40), 90, dtype=np.uint8)).save(root / "test" / "dog" / "gray.png")  # 1 channel
    data = build_dataset("imagefolder", data_root=str(root), image_size=8, cache_dir=None)
    assert data.train_x.shape[1:] == (3, 8, 8)
    wide_img = data.train_x[2].int()  # cat: 000.png, 001.png, wide.jpg
    assert (wide_img[:, 1:-1, 1:-1] - 200).abs().max() <= 3  # the dark sides were cropped away
    assert torch.equal(data.test_x[-1], torch.full((3, 8, 8), 90, dtype=torch.uint8))  # gray -> RGB


@pytest.mark.parametrize("layout,words", [
    (None, ["needs data_root=PATH"]),
    ("missing", ["is not a folder"]),
    ("no_test", ["no test/ folder"]),
    ("no_classes", ["no class folders"]),
    ("empty_class", ["holds no images"]),
    ("extra_test_class", ["train/ lacks"]),
    ("bad_image", ["cannot decode", "broken.jpg"]),
])
def test_imagefolder_layout_errors(tmp_path, layout, words):
    root = tmp_path / "f"
    if layout not in (None, "missing"):
        write_tiny_folder(root, {"train": 1, "test": 1}, size=8)
    if layout == "no_test":
        for p in (root / "test").rglob("*.png"):
            p.unlink()
        for d in sorted((root / "test").glob("*")):
            d.rmdir()
        (root / "test").rmdir()
    elif layout == "no_classes":
        for p in (root / "train").rglob("*.png"):
            p.unlink()
        for d in (root / "train").glob("*"):
            d.rmdir()
    elif layout == "empty_class":
        (root / "train" / "emu").mkdir()
    elif layout == "extra_test_class":
        (root / "test" / "emu").mkdir()
    elif layout == "bad_image":
        (root / "train" / "cat" / "broken.jpg").write_bytes(b"\xff\xd8 not really")
    with pytest.raises(DataError) as e:
        build_dataset("imagefolder", data_root=None if layout is None else str(root), image_size=8)
    message = str(e.value)
    assert "\n" not in message and all(w in message for w in words), message


def test_preflight_checks_the_class_count(folder):
    root, _ = folder
    preflight("imagefolder", {"data_root": str(root)}, 2)
    with pytest.raises(DataError, match="dataset.n_classes=2"):
        preflight("imagefolder", {"data_root": str(root)}, 10)


def test_a_dataset_is_one_registration_with_its_own_preflight():
    from study.data import DATASETS, register_dataset

    seen = []

    @register_dataset("_probe", preflight=lambda options, n: seen.append((options, n)))
    def probe(size: int = 1):
        raise AssertionError("the preflight must not build")

    try:
        preflight("_probe", {"size": 2}, 7)
        assert seen == [({"size": 2}, 7)]
        with pytest.raises(DataError, match="dataset _probe: .*sizes.*dataset.\\* settings"):
            preflight("_probe", {"sizes": 2}, 7)  # a typo is refused before the dataset's own check
        with pytest.raises(DataError, match="unknown dataset 'nope'; choose one of: .*_probe"):
            build_dataset("nope")
    finally:
        DATASETS._items.pop("_probe")


@pytest.mark.parametrize("option, value", [("train_subset", -5), ("test_subset", "abc"), ("train_subset", 2.5)])
def test_imagefolder_refuses_a_bad_subset_before_decoding(folder, tmp_path, option, value):
    from study.data import DataError

    root, _ = folder
    cache = tmp_path / "cache"
    with pytest.raises(DataError, match=f"dataset.{option} must be a non-negative integer"):
        build_dataset("imagefolder", data_root=str(root), cache_dir=str(cache), **{option: value})
    assert not cache.exists()  # nothing was decoded (the cache is written right after decoding)
