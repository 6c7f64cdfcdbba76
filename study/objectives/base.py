"""The objective interface and its registry."""

from __future__ import annotations

import inspect

from study.errors import UserError
from study.registry import Registry

from typing import Any, ClassVar

import torch
from torch import nn

from study.data import ImageData
from study.data.views import ResizedCrop, ShortSideCrop, View
from study.spaces.base import Backbone
from study.spaces.modules import PooledLinear
from study.data.augment import lighting, normalize


UNNAS_CROP = frozenset({"cifar10"})  # in-memory datasets cropped as the paper's CIFAR-10 runs are


class ObjectiveError(UserError):
    """An objective that cannot run as configured (unknown name, incompatible dataset)."""


class Objective:
    """A training task on images: builds its network around a trunk and turns uint8 batches into inputs.

    Subclasses set `name`, implement `train_batch` and `test_batch`, and may override `build`.
    `inputs_per_image` says how many network inputs one image becomes (4 for rotation), which the
    trainer uses to report throughput in images.

    Data comes whole and small (in-memory datasets: the objective crops on the device with `crop_padding`)
    or streamed (study/data/stream.py: loader workers cut each image by the objective's `stream_views`,
    the paper's ImageNet crops, and training adds the dataset's PCA lighting on the device). This class is
    the one place that tells them apart; subclasses read `image_size`, `crop_padding` and `normalize`.
    """

    name: ClassVar[str] = ""
    needs_color: ClassVar[bool] = False
    inputs_per_image: ClassVar[int] = 1
    trains: ClassVar[bool] = True  # False: a training-free score (study/objectives/zero_cost.py), no trainer
    uses_labels: ClassVar[bool] = False  # reads the dataset's labels (supervised, snip, grad_norm)
    score_dtype: ClassVar[str] = "float32"  # what a training-free score is computed in (records say it)

    @classmethod
    def chance(cls, options: dict[str, Any], dataset: dict[str, Any]) -> float | None:
        """Test accuracy of guessing, for the objective's options and dataset settings (as a record's config
        stores them); None where guessing has no single accuracy (per-pixel colours, in-batch views)."""
        return None

    @classmethod
    def kind(cls) -> str:
        """What the analysis tables call it: `objective`, `training-free` or `training-free, labels`."""
        if cls.trains:
            return "objective"
        return "training-free, labels" if cls.uses_labels else "training-free"

    def __init__(self, data: ImageData, crop_padding: int = 4) -> None:
        if self.needs_color and data.channels != 3:
            raise ObjectiveError(
                f"objective {self.name!r} needs colour images but dataset {data.name!r} has "
                f"{data.channels} channel(s); pick an RGB dataset (e.g. dataset=cifar10)"
            )
        self.data = data
        self.crop_padding = 0 if data.streams else crop_padding  # streamed images arrive cropped

    def views(self) -> tuple[View, View] | None:
        """How loader workers cut each image for training and for testing; None for in-memory data."""
        return self.stream_views() if self.data.streams else None

    def stream_views(self) -> tuple[View, View]:
        """The paper's ImageNet crops: RandomResizedCrop to image_size in training; resize + centre crop in testing."""
        size = self.data.image_size
        return ResizedCrop(size), ShortSideCrop(self.data.resize, size)

    @property
    def image_size(self) -> int:
        """Side of the images the objective receives (the crop of its views for streamed data)."""
        views = self.views()
        return self.data.image_size if views is None else views[0].size

    @property
    def n_classes(self) -> int:
        """Number of output classes of the head."""
        return self.data.n_classes

    @property
    def c_in(self) -> int:
        """Number of input channels the trunk sees."""
        return self.data.channels

    def build(self, trunk: Backbone) -> nn.Module:
        """The trainable network: the trunk plus this objective's head."""

        return nn.Sequential(trunk, PooledLinear(trunk.c_out, self.n_classes))

    def train_batch(
        self, images: torch.Tensor, labels: torch.Tensor, gen: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Augmented training inputs and targets from a uint8 batch (B, C, H, W)."""
        raise NotImplementedError

    def test_batch(
        self, images: torch.Tensor, labels: torch.Tensor, gen: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Deterministic test inputs and targets; `gen` is seeded identically for every evaluation."""
        raise NotImplementedError

    def crop_and_flip(self, images: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """Normalised training images, randomly padded-cropped and flipped (supervised and rotation).

        CIFAR-10 as unnas does it (pycls/datasets/prepare.py prepare_im): normalise, flip, pad the normalised
        image (a mean-colour border), crop at offsets 0..7. Other in-memory data keep torchvision's order, as
        NAS-Bench-201 trains ImageNet16: black padding, offsets 0..2p, flip, normalise. Streamed data arrive
        cropped (padding 0): flip, then PCA lighting within `normalize`.
        """
        from study.data.augment import random_crop, random_flip

        if self.data.name in UNNAS_CROP:
            return random_crop(random_flip(self.normalize(images, gen), gen), self.crop_padding, gen, flush=False)
        return self.normalize(random_flip(random_crop(images, self.crop_padding, gen), gen), gen)

    def normalize(self, images: torch.Tensor, gen: torch.Generator | None = None) -> torch.Tensor:
        """uint8 (or float 0..255) images to standardised floats with the dataset's statistics; with a training
        generator and a dataset that asks for it (ImageNet), AlexNet's PCA lighting noise first."""

        if gen is None or self.data.lighting <= 0:
            return normalize(images, self.data.mean, self.data.std)
        x = lighting(images.float() / 255.0, gen, self.data.lighting)  # (B, 3, H, W) in [0, 1] units
        return (x - self.data.mean[None, :, None, None]) / self.data.std[None, :, None, None]

    @staticmethod
    def loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy; works for (N, K) and per-pixel (N, K, H, W) logits."""
        return nn.functional.cross_entropy(logits, targets)

    @staticmethod
    def correct(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Number of top-1 hits (a 0-d tensor, so callers can sum without syncing)."""
        return (logits.argmax(1) == targets).sum()


OBJECTIVES: Registry[type[Objective]] = Registry("objective", ObjectiveError)


def register_objective(cls: type[Objective]) -> type[Objective]:
    """Class decorator: register an objective under its `name`."""
    if not cls.name:
        raise TypeError(f"{cls.__name__} needs a non-empty name")
    return OBJECTIVES.register(cls.name)(cls)


def list_objectives() -> list[str]:
    """Names of the registered objectives."""
    return OBJECTIVES.names()


def objective_class(name: str) -> type[Objective]:
    """The class registered as `name`."""
    return OBJECTIVES.get(name)


def create_objective(name: str, data: ImageData, **options: object) -> Objective:
    """Build objective `name` for `data`; refuses objectives the dataset cannot serve, and unknown options."""
    cls = objective_class(name)
    known = inspect.signature(cls.__init__).parameters
    unknown = sorted(k for k in options if k not in known)
    if unknown and not any(p.kind is p.VAR_KEYWORD for p in known.values()):
        # e.g. experiment=eval/<config> (supervised with `auxiliary`) combined with objective=rotation
        raise ObjectiveError(f"objective {name!r} has no option {', '.join(unknown)}; its options: "
                             f"{', '.join(k for k in known if k not in ('self', 'data')) or 'none'}")
    return cls(data, **options)
