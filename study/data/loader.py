"""Batches of a streaming dataset: loader worker processes read, decode and cut images; the trainer gets uint8 batches.

One torch DataLoader per training, its workers kept for the whole training, serves every batch: training,
precise BN and test. The main process hands out batch *plans* (split, view, the listing entries, the seed
key of each image's cut); a worker returns the batch as uint8 with its labels (decoders: study/data/decoders.py),
pinned when the device is a GPU, and the source copies it to the device without waiting. Everything after the cut (flip,
lighting, colour, rotations, tiles) is the objective's, on the device, as for in-memory data.

Determinism: epoch e's order is a permutation from numpy's PCG64 seeded with (seed, e, 0), and the batch that
starts at place p of that order is cut with a generator seeded with (seed, e, 0, p), its images in turn;
precise BN's images likewise with (seed, e, 1). Nothing depends on which worker cuts a batch or how many
workers there are, and an epoch that starts at step k (a resumed run) gives the batches from k on exactly
as an uninterrupted epoch does. A search's batches by index (`at`) are cut from (seed, key, 2, p), p the batch's
first place in the pass. The test set goes in listing order through the test view, which draws nothing.

An image that cannot be read or decoded is replaced by the next one of the listing (whose label comes with
it), so batches keep their size; the source logs each such file once and counts it, and more than the
dataset's `max_unreadable` stop the training with a DataError.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np
import torch

from study.data.base import DataError
from study.data.batches import Batch, BatchSource, train_steps
from study.data.decoders import make_decoder

log = logging.getLogger(__name__)

TRAIN, TEST = 0, 1  # views and splits by index in a plan
ORDER, BN, BY_INDEX = 0, 1, 2  # which random stream of an epoch a plan's key belongs to (BY_INDEX: `at`)
MAX_TRIES = 16  # neighbours tried in place of an unreadable image before the folder is declared unusable
PREFETCH = 4  # batches each worker prepares ahead


@dataclass(frozen=True)
class Plan:
    """One batch for a worker: which split and view, which listing entries, and the keys of their cuts."""

    split: int
    view: int
    key: tuple[int, ...]  # seed key prefix: the batch's cuts draw from a generator seeded with key + (positions[0],)
    positions: np.ndarray  # (B,) places of the images in their epoch order
    indices: np.ndarray  # (B,) listing entries


class PlanSampler(torch.utils.data.Sampler):
    """The plans of the pass the source is running (set before each pass; the loader iterates them)."""

    def __init__(self) -> None:
        self.plans: Iterable[Plan] = ()

    def __iter__(self) -> Iterator[Plan]:
        return iter(self.plans)


@dataclass(frozen=True)
class WorkerError:
    """A DataError of a loader worker, handed back as a batch: torch re-raises a worker's exception with its
    whole traceback in the message, which would reach the one-line error, the progress lines and the records."""

    message: str


class Decoder(torch.utils.data.Dataset):
    """What a loader worker does with one plan: read, decode (RGB) and cut each image, stack them."""

    def __init__(self, folders: tuple[Path, Path], listings: tuple[Any, Any], views: tuple[Any, Any],
                 decoder: str = "pil") -> None:
        # listings: the splits' `study.data.stream.Listing`s (that module imports this one)
        self.folders, self.listings, self.views = folders, listings, views
        self.decoder = make_decoder(decoder)

    def __len__(self) -> int:  # plans come from the sampler; the loader never asks
        return 0

    def __getitem__(self, plan: Plan) -> tuple[torch.Tensor, torch.Tensor, list[tuple[str, str]], bool] | WorkerError:
        try:
            return self._batch(plan)
        except DataError as e:
            return WorkerError(str(e))

    def _batch(self, plan: Plan) -> tuple[torch.Tensor, torch.Tensor, list[tuple[str, str]], bool]:
        view, listing, decoder = self.views[plan.view], self.listings[plan.split], self.decoder
        # PIL's batches stay channels-last, as decoded, and the device puts channels first (a strided copy
        # here costs about a third of a resize per image); TorchCodec's come channels-first.
        out = decoder.batch(len(plan.indices), view.size)
        used = np.empty(len(plan.indices), dtype=np.int64)
        bad: list[tuple[str, str]] = []
        # One generator per batch, keyed by the batch's first place in the epoch order, drawn image by image:
        # the same cuts whichever worker makes the batch (a generator per image costs 60 us to seed).
        rng = np.random.default_rng((*plan.key, int(plan.positions[0])))
        for k, index in enumerate(plan.indices.tolist()):
            for attempt in range(MAX_TRIES):
                j = (index + attempt) % len(listing)
                try:
                    image = decoder.read(self.folders[plan.split] / listing.files[j].decode())
                except decoder.errors as e:
                    bad.append((listing.files[j].decode(), f"{type(e).__name__}: {e}"))
                    continue
                out[k] = decoder.cut(image, view, rng)
                used[k] = j
                break
            else:
                raise DataError(f"{MAX_TRIES} images in a row cannot be read in {self.folders[plan.split]}, e.g. "
                                f"{bad[-1][0]} ({bad[-1][1]}); check the folder")
        labels = torch.from_numpy(listing.labels[used].astype(np.int64))
        return torch.as_tensor(out), labels, bad, decoder.channels_last


class StreamBatches(BatchSource):
    """The batch source of a `StreamData` for one training (see the module doc); one model at a time."""

    streams = True
    resumes_mid_epoch = True

    def __init__(self, data: Any, views: tuple[Any, Any], seed: int) -> None:  # data: a StreamData
        if views is None:
            raise ValueError("a streaming dataset needs the objective's views (how workers cut each image)")
        self.data, self.views = data, views
        self.seed = seed % (1 << 64)  # numpy's seed keys take non-negative integers
        self.sampler = PlanSampler()
        self.unreadable: dict[str, str] = {}  # relative path -> why, over this source's life
        self._loader: torch.utils.data.DataLoader | None = None

    @property
    def device(self) -> torch.device:
        return self.data.device

    @property
    def workers(self) -> int:
        """Loader worker processes (0: decoding in the training process)."""
        return self.data.loader_workers

    def loader(self) -> torch.utils.data.DataLoader:
        """The DataLoader, started at the first batch and kept (with its workers) until `close`."""
        if self._loader is None:
            data = self.data
            folders = (data.root / "train", data.root / data.test_split)
            decoder = Decoder(folders, (data.train, data.test), self.views, data.decoder)
            workers = self.workers
            self._loader = torch.utils.data.DataLoader(
                decoder, batch_size=None, sampler=self.sampler, num_workers=workers,
                pin_memory=data.device.type == "cuda", persistent_workers=workers > 0,
                prefetch_factor=PREFETCH if workers > 0 else None)
        return self._loader

    def steps(self, batch_size: int) -> int:
        return train_steps(len(self.data.train), batch_size, drop_last=True)  # unnas' ImageNet loader drops it

    def _plans(self, split: int, view: int, key: tuple[int, ...], order: np.ndarray, batch_size: int,
               start: int = 0) -> Iterator[Plan]:
        for first in range(start * batch_size, len(order), batch_size):
            positions = np.arange(first, min(first + batch_size, len(order)))
            yield Plan(split, view, key, positions, order[positions])

    def _run(self, plans: Iterator[Plan]) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        self.sampler.plans = plans
        device = self.data.device
        for batch in self.loader():
            if isinstance(batch, WorkerError):
                raise DataError(batch.message)
            images, labels, bad, channels_last = batch
            if bad:
                self._note(bad)
            images = images.to(device, non_blocking=True)
            if channels_last:
                images = images.permute(0, 3, 1, 2).contiguous()  # (B, 3, S, S)
            yield images, labels.to(device, non_blocking=True)

    def _note(self, bad: list[tuple[str, str]]) -> None:
        """Log each unreadable file once; refuse to go on past `max_unreadable` of them."""
        for rel, why in bad:
            if rel in self.unreadable:
                continue
            self.unreadable[rel] = why
            count = len(self.unreadable)
            if count <= 10 or count % 100 == 0:
                log.warning("%s: skipped an unreadable image, %s (%s); the next image of the folder took its place "
                            "(%d unreadable so far)", self.data.name, rel, why, count)
        if len(self.unreadable) > self.data.max_unreadable:
            rel, why = next(iter(self.unreadable.items()))
            raise DataError(f"{self.data.name}: {len(self.unreadable)} images cannot be read (more than "
                            f"dataset.max_unreadable={self.data.max_unreadable}), e.g. {rel} ({why}); "
                            "fix or remove them, or raise dataset.max_unreadable")

    def _model(self, gens: list[torch.Generator]) -> None:
        if len(gens) != 1:
            raise ValueError(f"a streaming dataset trains one model at a time, got {len(gens)} side by side")

    def train(self, gens: list[torch.Generator], batch_size: int, epoch: int, start: int = 0) -> Iterator[Batch]:
        self._model(gens)
        key = (self.seed, epoch, ORDER)
        order = np.random.default_rng(key).permutation(len(self.data.train))
        order = order[: self.steps(batch_size) * batch_size]  # the last partial batch is dropped
        for images, labels in self._run(self._plans(TRAIN, TRAIN, key, order, batch_size, start)):
            yield [images], [labels]

    def bn(self, gens: list[torch.Generator], n_samples: int, batch_size: int, epoch: int) -> Iterator[Batch]:
        self._model(gens)
        key = (self.seed, epoch, BN)
        picks = np.random.default_rng(key).permutation(len(self.data.train))[:n_samples]
        for images, labels in self._run(self._plans(TRAIN, TRAIN, key, picks, batch_size)):
            yield [images], [labels]

    def train_count(self) -> int:
        return len(self.data.train)

    def at(self, batches: Iterable[torch.Tensor], key: tuple[int, ...], test_view: bool = False,
           ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        def plans() -> Iterator[Plan]:
            place = 0  # the batch's first place in this pass keys its cuts, as an epoch's order does
            for idx in batches:
                indices = idx.cpu().numpy().astype(np.int64)
                yield Plan(TRAIN, TEST if test_view else TRAIN, (self.seed, *key, BY_INDEX),
                           np.arange(place, place + len(indices)), indices)
                place += len(indices)

        yield from self._run(plans())

    def test(self, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = np.arange(len(self.data.test))
        yield from self._run(self._plans(TEST, TEST, (self.seed,), order, batch_size))

    def close(self) -> None:
        # End the worker processes now: a pass stopped by an exception may keep the loader's iterator alive
        # (in the traceback's frames) long after the training is over. torch has no public call for this.
        iterator = getattr(self._loader, "_iterator", None)
        shutdown = getattr(iterator, "_shutdown_workers", None)
        if shutdown is not None:
            shutdown()
        self._loader = None
