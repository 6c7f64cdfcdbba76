"""An error raised in a loader worker process reaches the trainer as its own one line, not torch's traceback."""

from __future__ import annotations

import pytest
import torch

from study.data import DataError, build_dataset
from study.objectives import create_objective
from tests.image_fixtures import write_jpeg_tree


@pytest.mark.parametrize("workers", [0, 1])
def test_a_folder_of_unreadable_images_is_one_line_from_a_worker(tmp_path, workers):
    write_jpeg_tree(tmp_path, truncated=False)
    for image in (tmp_path / "train").rglob("*.JPEG"):
        image.write_bytes(b"not a jpeg")
    data = build_dataset("imagenet", data_root=str(tmp_path), image_size=32, resize=36, loader_workers=workers)
    source = data.batches(create_objective("supervised", data).views(), 0)
    try:
        with pytest.raises(DataError) as e:
            list(source.train([torch.Generator()], 4, 0))
    finally:
        source.close()
    text = str(e.value)
    assert "\n" not in text and "Caught" not in text and "Traceback" not in text, text
    assert text.startswith("16 images in a row cannot be read") and "check the folder" in text
