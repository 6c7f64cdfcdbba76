"""Reading one image file into RGB pixels and cutting it, in a loader worker: PIL (the default) or TorchCodec.

- `pil`: PIL (libjpeg-turbo) decodes every format PIL knows; the view resamples the cut region with PIL's
  bilinear filter; batches are channels-last (as decoded) and the device puts channels first.
- `torchcodec` (opt-in, `pip install torchcodec`; `dataset.decoder=torchcodec`): TorchCodec decodes JPEG,
  PNG, WebP, GIF, AVIF and HEIC straight into (3, H, W) tensors and torch resamples the cut (bilinear,
  antialiased, the region rounded to whole pixels); about a third faster per worker than PIL on 500 x 375
  JPEGs (benchmarks/results/stream.md). Files it cannot decode are tried with PIL before they count as
  unreadable. torchvision.io decodes as fast, but is deprecated in favour of TorchCodec.

The two differ in resampling details, so the decoder is part of a run's identity (a dataset setting).
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import numpy as np
import torch

from study.data.base import DataError

DECODERS = ("pil", "torchcodec")


def pil_errors() -> tuple[type[BaseException], ...]:
    """What PIL raises for truncated, corrupt or foreign files (UnidentifiedImageError is an OSError)."""
    from PIL import Image

    return (OSError, ValueError, SyntaxError, EOFError, IndexError, struct.error, Image.DecompressionBombError)


def read_pil(path: Path) -> Any:
    """The file as an RGB PIL image (loaded, file closed)."""
    from PIL import Image

    with Image.open(path) as image:
        if image.mode == "RGB":  # most JPEGs: load in place (convert would copy the whole image)
            image.load()
            return image
        return image.convert("RGB")  # grayscale, CMYK, palette, alpha


class PilDecoder:
    """PIL decodes; views cut PIL images; batches come channels-last (B, S, S, 3)."""

    name = "pil"
    channels_last = True

    def __init__(self) -> None:
        self.errors = pil_errors()

    def read(self, path: Path) -> Any:
        """The file's pixels (an RGB PIL image)."""
        return read_pil(path)

    def cut(self, image: Any, view: Any, rng: np.random.Generator) -> np.ndarray:
        """The view's (S, S, 3) uint8 cut."""
        return view.cut(image, rng)

    def batch(self, n: int, size: int) -> np.ndarray:
        """An empty batch of `n` cuts."""
        return np.empty((n, size, size, 3), dtype=np.uint8)  # (B, S, S, 3)


class TorchCodecDecoder:
    """TorchCodec decodes into (3, H, W) tensors, PIL where it cannot; views cut tensors; batches (B, 3, S, S)."""

    name = "torchcodec"
    channels_last = False

    def __init__(self) -> None:
        from torchcodec.decoders import ImageReadMode, decode_image

        self._decode, self._mode = decode_image, ImageReadMode.RGB
        self.errors = (*pil_errors(), RuntimeError)

    def read(self, path: Path) -> torch.Tensor:
        """The file's pixels (3, H, W) uint8."""
        data = torch.frombuffer(bytearray(path.read_bytes()), dtype=torch.uint8)
        try:
            return self._decode(data, mode=self._mode)
        except RuntimeError:  # a format TorchCodec lacks (BMP, TIFF), or a broken file: PIL has the last word
            return torch.from_numpy(np.array(read_pil(path))).permute(2, 0, 1)  # a copy: PIL's buffer is read-only

    def cut(self, image: torch.Tensor, view: Any, rng: np.random.Generator) -> torch.Tensor:
        """The view's (3, S, S) uint8 cut."""
        return view.cut_tensor(image, rng)

    def batch(self, n: int, size: int) -> torch.Tensor:
        """An empty batch of `n` cuts."""
        return torch.empty((n, 3, size, size), dtype=torch.uint8)  # (B, 3, S, S)


def check_decoder(name: Any) -> None:
    """DataError unless `name` is a decoder this machine can use (an import, no decoding)."""
    if name not in DECODERS:
        raise DataError(f"dataset.decoder must be one of {', '.join(DECODERS)}, got {name!r}")
    if name == "torchcodec":
        try:
            import torchcodec.decoders  # noqa: F401
        except ImportError as e:  # also a TorchCodec built for another torch (a missing symbol)
            raise DataError(f"dataset.decoder=torchcodec but TorchCodec cannot be imported ({e}); install it "
                            "(pip install torchcodec) or use dataset.decoder=pil") from None


def make_decoder(name: str) -> PilDecoder | TorchCodecDecoder:
    """The decoder called `name` (checked with `check_decoder`)."""
    check_decoder(name)
    return TorchCodecDecoder() if name == "torchcodec" else PilDecoder()
