"""What would waste a GPU, checked on a CPU: dtypes under autocast, per-device tables, in-place hashing."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch

from study.data import augment
from study.objectives import color
from study.objectives.color import BinLookup, ab_to_bin, bin_lookup, rgb_to_lab
from study.data import ImageData, fingerprint
from study.spaces.nb201.network import BoxPool, Trunk
from study.objectives import create_objective
from study.objectives.colorization import PixelClassifier
from study.spaces import draw


def _old_fingerprint(*arrays: torch.Tensor) -> str:
    """The fingerprint as records made before hashing in place (a full host copy per tensor)."""
    h = hashlib.sha1()
    for a in arrays:
        h.update(str(tuple(a.shape)).encode())
        h.update(a.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def test_fingerprint_is_unchanged_by_hashing_in_place():
    gen = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (5, 3, 4, 4), generator=gen, dtype=torch.uint8)
    labels = torch.randint(0, 10, (5,), generator=gen)
    cases = [(images, labels), (images[:, :, ::2],), (images.permute(0, 2, 3, 1),), (labels > 4,),
             (torch.zeros(0, 3, dtype=torch.uint8),), (torch.tensor(7),), (torch.rand(3, 2, generator=gen),)]
    for arrays in cases:
        assert fingerprint(*arrays) == _old_fingerprint(*arrays)


def test_box_pool_keeps_the_compute_dtype_under_autocast():
    pool = BoxPool(4, 3, padding=1)
    x = torch.randn(2, 4, 6, 6)
    reference = torch.nn.AvgPool2d(3, 1, 1, count_include_pad=False)(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert pool(x.bfloat16()).dtype == torch.bfloat16  # was fp32: the scale stayed fp32
        assert pool(x).dtype == torch.bfloat16  # the conv ran in bf16: so does the result
    out = pool(x)
    assert out.dtype == torch.float32 and torch.allclose(out, reference, atol=1e-6)


def test_colorization_logits_are_fp32_under_autocast():
    # 313 interpolated bf16 logits per pixel tie often; accuracy takes their argmax.
    cell = draw("nb201", 1, seed=3)[0]
    model = PixelClassifier(Trunk(cell, 1, 4, 1), 313)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert model(torch.randn(2, 1, 8, 8)).dtype == torch.float32


def _srgb_sample() -> torch.Tensor:
    """A 48-level grid of the sRGB cube plus random colours, as uint8 images (1, 3, N, 1)."""
    levels = torch.linspace(0, 255, 48).round().to(torch.uint8)
    r, g, b = torch.meshgrid(levels, levels, levels, indexing="ij")
    grid = torch.stack([r.reshape(-1), g.reshape(-1), b.reshape(-1)])
    rand = torch.randint(0, 256, (3, 50_000), generator=torch.Generator().manual_seed(1), dtype=torch.uint8)
    return torch.cat([grid, rand], dim=1)[None, :, :, None]


def test_bin_lookup_equals_the_exact_nearest_bin_on_srgb_colours():
    lab = rgb_to_lab(_srgb_sample().float() / 255.0)
    assert torch.equal(BinLookup("cpu")(lab[:, 1:]), ab_to_bin(lab[:, 1:]))


def test_bin_lookup_is_built_once_per_device_and_colorization_targets_are_unchanged():
    assert bin_lookup("cpu") is bin_lookup("cpu")
    x = torch.randint(0, 256, (4, 3, 8, 8), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    data = ImageData("t", x, torch.zeros(4, dtype=torch.long), x, torch.zeros(4, dtype=torch.long), 10,
                     torch.zeros(3), torch.ones(3))
    objective = create_objective("colorization", data)
    assert objective.lookup is bin_lookup("cpu")
    lightness, targets = objective.test_batch(x, data.test_y, torch.Generator())
    lab = rgb_to_lab(x.float() / 255.0)
    assert torch.equal(targets, ab_to_bin(lab[:, 1:], objective.bins))


def test_colour_and_luma_constants_are_built_once_per_device():
    rgb = torch.rand(2, 3, 4, 4)
    rgb_to_lab(rgb)
    hits = color._constant.cache_info().hits
    rgb_to_lab(rgb)
    assert color._constant.cache_info().hits >= hits + 2  # the matrix and the white point
    assert augment._luma_weights(augment.REC601, torch.device("cpu"), torch.float32) is augment._luma_weights(
        augment.REC601, torch.device("cpu"), torch.float32)
    x = torch.rand(3, 3, 4, 4) * 255
    gray = augment.random_grayscale(x, torch.Generator().manual_seed(0), 1.0)
    expected = (x * torch.tensor([0.299, 0.587, 0.114])[None, :, None, None]).sum(1, keepdim=True).expand_as(x)
    assert torch.equal(gray, expected)


def test_imagefolder_cache_is_memory_mapped(tmp_path):
    from study.data.imagefolder import _read_cache

    blob = {"fingerprint": "f", "train_x": torch.arange(1000, dtype=torch.uint8)}
    path = tmp_path / "c.pt"
    torch.save(blob, path)
    loaded = _read_cache(path, "f")
    assert torch.equal(loaded["train_x"], blob["train_x"])
    maps = Path("/proc/self/maps")
    if not maps.exists():
        pytest.skip("no /proc/self/maps to see mappings in")
    assert str(path) in maps.read_text()  # mapped, not read into this process's memory
