"""Batched image augmentation on tensors: every op takes a whole batch and an explicit generator.

No per-image Python: random offsets and flips are drawn for the batch at once and applied by indexing,
so the same code runs on CPU and GPU where the data lives.
"""

from __future__ import annotations

import functools

import torch


def random_crop(x: torch.Tensor, padding: int, gen: torch.Generator, flush: bool = True) -> torch.Tensor:
    """Zero-pad by `padding` pixels and crop back to the input size at a random offset per image.

    Offsets 0..2p (torchvision's RandomCrop, NAS-Bench-201's); `flush=False`: 0..2p-1, as unnas draws them
    (pycls/datasets/transforms.py random_crop, `randint(0, h - size)`), so the crop never ends at the far border.
    """
    if padding <= 0:
        return x
    b, c, h, w = x.shape
    span = 2 * padding + 1 if flush else 2 * padding
    padded = torch.nn.functional.pad(x, (padding, padding, padding, padding))  # (B, C, H+2p, W+2p)
    oy = torch.randint(0, span, (b,), generator=gen, device=x.device)
    ox = torch.randint(0, span, (b,), generator=gen, device=x.device)
    rows = (oy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]  # (B, 1, H, 1)
    cols = (ox[:, None] + torch.arange(w, device=x.device))[:, None, None, :]  # (B, 1, 1, W)
    batch = torch.arange(b, device=x.device)[:, None, None, None]
    chan = torch.arange(c, device=x.device)[None, :, None, None]
    return padded[batch, chan, rows, cols]  # (B, C, H, W)


def random_flip(x: torch.Tensor, gen: torch.Generator, p: float = 0.5) -> torch.Tensor:
    """Flip each image horizontally with probability `p`."""
    flip = torch.rand(x.shape[0], generator=gen, device=x.device) < p
    return torch.where(flip[:, None, None, None], x.flip(3), x)


REC601 = (0.299, 0.587, 0.114)  # ITU-R 601 luma (torchvision's Grayscale)
REC709 = (0.2125, 0.7154, 0.0721)  # skimage.color.rgb2gray, which unnas' jigsaw uses


def random_grayscale(x: torch.Tensor, gen: torch.Generator, p: float,
                     weights: tuple[float, float, float] = REC601) -> torch.Tensor:
    """Replace each RGB image by its luma (`weights` of R, G, B, repeated over channels) with probability `p`."""
    if x.shape[1] != 3 or p <= 0:
        return x
    w = _luma_weights(weights, x.device, x.dtype)
    gray = (x * w[None, :, None, None]).sum(1, keepdim=True).expand_as(x)
    pick = torch.rand(x.shape[0], generator=gen, device=x.device) < p
    return torch.where(pick[:, None, None, None], gray, x)


@functools.lru_cache(maxsize=None)
def _luma_weights(weights: tuple[float, float, float], device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    # Built once per device: torch.tensor on a GPU copies from the host and waits, once per batch otherwise.
    with torch.inference_mode(False):
        return torch.tensor(weights, device=device, dtype=dtype)


def rotations(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """All four rotations (0, 90, 180, 270 degrees) of every image, with labels 0..3.

    Returns inputs (4B, C, H, W) ordered rotation-major and labels (4B,).
    """
    b = x.shape[0]
    rotated = torch.cat([torch.rot90(x, k, dims=(2, 3)) for k in range(4)])  # (4B, C, H, W)
    labels = torch.arange(4, device=x.device).repeat_interleave(b)  # (4B,)
    return rotated, labels


def normalize(x_uint8: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """uint8 images to float, scaled to [0, 1] and standardised per channel."""
    return (x_uint8.float().div_(255.0) - mean[None, :, None, None]) / std[None, :, None, None]


# AlexNet's PCA lighting on ImageNet (Krizhevsky et al. 2012; the values of fb.resnet.torch and unnas'
# pycls/datasets/imagenet.py): eigenvalues and eigenvectors (columns) of the RGB covariance in [0, 1] units.
IMAGENET_EIGVAL = (0.2175, 0.0188, 0.0045)
IMAGENET_EIGVEC = ((-0.5675, 0.7192, 0.4009),
                   (-0.5808, -0.0045, -0.8140),
                   (-0.5836, -0.6948, 0.4203))


def lighting(x: torch.Tensor, gen: torch.Generator, std: float) -> torch.Tensor:
    """Add AlexNet's PCA lighting noise to RGB images in [0, 1] units (B, 3, H, W): per image one colour offset
    V @ (alpha * eigval), alpha ~ N(0, std^2) per component, the same for every pixel."""
    alpha = torch.randn((x.shape[0], 3), generator=gen, device=x.device) * std  # (B, 3)
    eigval = _lighting_constant(IMAGENET_EIGVAL, x.device)  # (3,)
    eigvec = _lighting_constant(IMAGENET_EIGVEC, x.device)  # (3, 3): row c = channel c, column j = component j
    offset = (alpha * eigval) @ eigvec.T  # (B, 3): offset[b, c] = sum_j V[c, j] alpha[b, j] eigval[j]
    return x + offset[:, :, None, None].to(x.dtype)


@functools.lru_cache(maxsize=None)
def _lighting_constant(values: tuple, device: torch.device) -> torch.Tensor:
    with torch.inference_mode(False):  # built once per device, usable whatever mode first asked for it
        return torch.tensor(values, dtype=torch.float32, device=device)
