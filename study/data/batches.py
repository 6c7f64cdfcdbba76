"""Where a trainer's uint8 batches come from: one interface that every dataset provides.

A `BatchSource` hands out training batches in a seeded epoch order, the batches that recompute BN
statistics, and the test set in order; objectives turn them into inputs on the device. Two kinds:

- `InMemoryBatches` (the datasets held whole as uint8 tensors on the device: digits, CIFAR-10, image folders):
  each model draws its epoch order with `torch.randperm` from its own generator and indexes the device
  tensors, exactly as the trainer always did, so K models stacked side by side each get their own order.
- `study.data.loader.StreamBatches` (datasets too large for memory, e.g. ImageNet): worker processes decode
  and cut images, the order comes from the run's seed and the epoch, and an epoch can start at any step
  (mid-epoch resume). One model at a time.

A search draws its own batches, by index from two fixed parts of the training images (`at`): both kinds
serve them, the stream through its loader workers, which cut each image as a training image would be.

Every batch is per model: lists of K image tensors (B, C, H, W) uint8 and K label tensors (B,).
"""

from __future__ import annotations

from typing import Any, Iterable, Iterator

import torch

Batch = tuple[list[torch.Tensor], list[torch.Tensor]]  # each model's images (B, C, H, W) uint8 and labels (B,)

# Datasets whose training epoch drops its last partial batch, as unnas' train loader does (pycls/datasets/
# loader.py, drop_last=True): the paper's CIFAR-10 and every streamed (ImageNet-layout) dataset. The small
# CPU datasets keep every image, since their batches are a large share of a tiny training set.
DROPS_LAST = frozenset({"cifar10"})


def train_steps(n_images: int, batch_size: int, drop_last: bool) -> int:
    """Training steps per epoch: full batches only with `drop_last` (but at least one), else ceil(n / b)."""
    if drop_last:
        return max(1, n_images // batch_size)
    return -(-n_images // batch_size)


class BatchSource:
    """The batches one training draws (see the module doc); `streams` says whether a loader decodes them."""

    streams: bool = False
    resumes_mid_epoch: bool = False  # whether `train` can start an epoch at a later step

    @property
    def device(self) -> torch.device:
        """Where batches are delivered."""
        raise NotImplementedError

    def steps(self, batch_size: int) -> int:
        """Training steps per epoch."""
        raise NotImplementedError

    def train(self, gens: list[torch.Generator], batch_size: int, epoch: int, start: int = 0) -> Iterator[Batch]:
        """The epoch's training batches from step `start` on, each model in its own seeded order."""
        raise NotImplementedError

    def bn(self, gens: list[torch.Generator], n_samples: int, batch_size: int, epoch: int) -> Iterator[Batch]:
        """`n_samples` random training images per model (the training view), for precise BN statistics."""
        raise NotImplementedError

    def test(self, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The test set in order: images (B, C, H, W) uint8 and labels (B,), the same for every model."""
        raise NotImplementedError

    def train_count(self) -> int:
        """How many training images there are."""
        raise NotImplementedError

    def at(self, batches: Iterable[torch.Tensor], key: tuple[int, ...], test_view: bool = False,
           ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The training images of each index batch (B,) of `batches` in turn, as (B, C, H, W) uint8 and labels
        (B,) on the device: how a search draws from its two fixed parts. `batches` is read lazily, ahead of
        the batches handed out. A streamed image is cut by the training view (its random crop drawn from the
        source's seed, `key` and the batch's place in `batches`) or, with `test_view`, by the test view;
        in-memory images come whole (the objective augments them)."""
        raise NotImplementedError

    def close(self) -> None:
        """Release what the source holds (loader workers); the in-memory source holds nothing."""


class InMemoryBatches(BatchSource):
    """Batches indexed out of uint8 tensors on the device (the data of an `ImageData`)."""

    def __init__(self, data: Any) -> None:  # an ImageData (study/data/base.py, which imports this module)
        self.data = data

    def train_count(self) -> int:
        return self.data.train_x.shape[0]

    def at(self, batches: Iterable[torch.Tensor], key: tuple[int, ...], test_view: bool = False,
           ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for idx in batches:
            yield self.data.train_x[idx], self.data.train_y[idx]

    @property
    def device(self) -> torch.device:
        return self.data.train_x.device

    def steps(self, batch_size: int) -> int:
        return train_steps(self.data.train_x.shape[0], batch_size, self.data.name in DROPS_LAST)

    def train(self, gens: list[torch.Generator], batch_size: int, epoch: int, start: int = 0) -> Iterator[Batch]:
        if start:
            raise ValueError("an in-memory epoch restarts from its beginning (its order is drawn when it starts)")
        x, y = self.data.train_x, self.data.train_y
        # Every order is drawn before the first batch is augmented: each generator's stream is what it always was.
        orders = [torch.randperm(x.shape[0], generator=g, device=x.device) for g in gens]
        for first in range(0, self.steps(batch_size) * batch_size, batch_size):
            idx = [order[first:first + batch_size] for order in orders]
            yield [x[i] for i in idx], [y[i] for i in idx]

    def bn(self, gens: list[torch.Generator], n_samples: int, batch_size: int, epoch: int) -> Iterator[Batch]:
        x, y = self.data.train_x, self.data.train_y
        picks = [torch.randperm(x.shape[0], generator=g, device=x.device)[:n_samples] for g in gens]
        for first in range(0, len(picks[0]), batch_size):
            idx = [p[first:first + batch_size] for p in picks]
            yield [x[i] for i in idx], [y[i] for i in idx]

    def test(self, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        x, y = self.data.test_x, self.data.test_y
        for first in range(0, x.shape[0], batch_size):
            yield x[first:first + batch_size], y[first:first + batch_size]
