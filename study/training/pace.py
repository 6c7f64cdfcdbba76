"""How fast a training goes, honestly: training images per second, and how long it waited for its data.

The trainer times every `next()` on its batch source apart from the rest of the step. Waiting is what a
loader that cannot keep up costs (decoding in worker processes, study/data/loader.py); in-memory batches
are indexed on the device and wait for nothing. On a GPU the host runs ahead of the device until the
launch queue fills, so a device that is the bottleneck shows as time in the step, a starving one as
time waiting. One warning per training when waiting exceeds `STARVED` of the time.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, TypeVar

log = logging.getLogger(__name__)

PROGRESS_S = 60.0  # seconds between progress lines within a streamed epoch
STARVED = 0.2  # share of training time spent waiting for batches above which a training says so
MIN_STEPS = 20  # steps before a share is worth judging (the first batches wait for workers to start)
T = TypeVar("T")


@dataclass
class Pace:
    """Images, seconds and seconds waiting for batches, over one epoch (or since `start`)."""

    images: int = 0
    steps: int = 0
    seconds: float = 0.0
    waiting: float = 0.0
    _t0: float = field(default=0.0, repr=False)

    def start(self) -> None:
        """Count from now, from zero."""
        self.images, self.steps, self.seconds, self.waiting = 0, 0, 0.0, 0.0
        self._t0 = time.perf_counter()

    def timed(self, batches: Iterable[T]) -> Iterator[T]:
        """The batches, with the time each took to arrive counted as waiting."""
        it = iter(batches)
        while True:
            t = time.perf_counter()
            try:
                item = next(it)
            except StopIteration:
                return
            self.waiting += time.perf_counter() - t
            yield item

    def step(self, images: int) -> None:
        """One step of `images` training images done."""
        self.images += images
        self.steps += 1
        self.seconds = time.perf_counter() - self._t0

    @property
    def rate(self) -> float:
        """Training images per second so far (0 before the first step)."""
        return self.images / self.seconds if self.seconds > 0 else 0.0

    @property
    def wait_share(self) -> float:
        """Share of the time spent waiting for batches."""
        return min(1.0, self.waiting / self.seconds) if self.seconds > 0 else 0.0

    def starving(self) -> bool:
        """Whether enough steps were timed and the loader kept the training waiting more than `STARVED`."""
        return self.steps >= MIN_STEPS and self.wait_share > STARVED


class Watch:
    """Within a streamed epoch: mid-epoch saves every `checkpoint_s` seconds, a progress line every `PROGRESS_S`,
    and the one warning of a loader that starves the training."""

    def __init__(self, streams: bool, workers: Any, seed: int, progress: Callable[[str], None] | None,
                 checkpoint_s: float) -> None:
        self.streams, self.workers, self.seed = streams, workers, seed
        self.progress, self.checkpoint_s, self.warned = progress, checkpoint_s, False

    def judge(self, pace: Pace) -> None:
        """Warn once per training when the loader kept it waiting more than `STARVED` of the time."""
        if self.warned or not self.streams or not pace.starving():
            return
        self.warned = True
        log.warning("seed %d: training waited for data %.0f%% of the time (%.0f images/s with %s loader worker(s)): "
                    "the loader cannot keep up; give it more workers (dataset.loader_workers) or more cores per "
                    "training", self.seed, 100 * pace.wait_share, pace.rate, self.workers)

    def hook(self, label: str, steps: int, pace: Pace,
             save: Callable[[int, Any], None]) -> Callable[[int, Any], None]:
        """The per-step callback of one epoch of `steps` steps: `save(step, loss_sum)` when a save is due."""
        last = {"save": time.perf_counter(), "line": time.perf_counter()}

        def on_step(step: int, loss_sum: Any) -> None:
            now = time.perf_counter()
            if self.checkpoint_s > 0 and now - last["save"] >= self.checkpoint_s and step < steps:
                last["save"] = now
                save(step, loss_sum)
            if now - last["line"] >= PROGRESS_S:
                last["line"] = now
                self.judge(pace)
                if self.progress is not None:
                    self.progress(f"{label}: step {step}/{steps}, {pace.rate:.0f} images/s, waiting for data "
                                  f"{100 * pace.wait_share:.0f}% of the time")
        return on_step
