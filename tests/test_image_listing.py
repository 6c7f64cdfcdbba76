"""Listing image folders (imagefolder, imagestream, imagenet): symlinks followed once, a loop refused in one line."""

from __future__ import annotations

import os

import pytest

from study.data import DataError, build_dataset
from study.data.listing import image_files
from tests.image_fixtures import write_jpeg_tree, write_tiny_folder

BUILDERS = {
    "imagefolder": (lambda root: write_tiny_folder(root, {"train": 3, "test": 2}), "train/cat",
                    lambda root: build_dataset("imagefolder", data_root=str(root), image_size=8)),
    "imagestream": (lambda root: write_jpeg_tree(root, test_split="test", truncated=False), "train/n01",
                    lambda root: build_dataset("imagestream", data_root=str(root), image_size=32, resize=36,
                                               loader_workers=0)),
}


@pytest.mark.parametrize("name", sorted(BUILDERS))
@pytest.mark.parametrize("target", ["parent", "root", "itself"])
def test_a_symlink_loop_is_refused_in_one_line(tmp_path, name, target):
    write, cls, build = BUILDERS[name]
    root = tmp_path / "data"
    write(root)
    link = root / cls / "sub" / ("loop.png" if target == "itself" else "loop")
    link.parent.mkdir()
    os.symlink({"parent": "..", "root": root, "itself": link.name}[target], link)
    with pytest.raises(DataError, match="is a symlink loop") as e:
        build(root)
    assert "\n" not in str(e.value) and str(link) in str(e.value) and str(e.value).startswith(name)


def test_a_link_to_a_folder_elsewhere_is_followed_once(tmp_path):
    (tmp_path / "elsewhere" / "deep").mkdir(parents=True)
    for rel in ("a.png", "deep/b.JPG", "deep/notes.txt", ".hidden.png"):
        (tmp_path / "elsewhere" / rel).write_bytes(b"x")
    folder = tmp_path / "cls"
    folder.mkdir()
    (folder / "z.png").write_bytes(b"x")
    os.symlink(tmp_path / "elsewhere", folder / "linked")
    os.symlink(tmp_path / "elsewhere", folder / "again")  # the same folder twice is no loop: both are listed
    got = [rel for rel, _ in image_files(folder, "test")]
    assert got == ["again/a.png", "again/deep/b.JPG", "linked/a.png", "linked/deep/b.JPG", "z.png"]


def test_an_unreadable_folder_is_one_line(tmp_path):
    folder = tmp_path / "cls"
    folder.mkdir()
    os.symlink(tmp_path / "gone", folder / "dangling.png")  # a broken link named like an image
    with pytest.raises(DataError, match=r"test: cannot read .*dangling\.png") as e:
        image_files(folder, "test", stat=True)
    assert "\n" not in str(e.value)
