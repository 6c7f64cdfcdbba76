"""Per-epoch checkpoints of one run, so a preempted or timed-out job resumes instead of starting over.

A run's checkpoint lies next to its record (`<cell_id>.ckpt` beside `<cell_id>.json`). It is written
atomically after every epoch (a reader sees the previous checkpoint or the new one, never a partial
one, even when the job is killed mid-write) and deleted once the record is written. A run on a streaming
dataset also writes one every `checkpoint_s` seconds within an epoch (its `step` says how far the epoch
got), so a preempted ImageNet epoch resumes where it was, not from its beginning.
"""

from __future__ import annotations

import logging
import os
import pickle
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from study.files import file_mode
from study.store.records import NotOwner, may_write, write_error
from study.training.trainer import History, TrainState

log = logging.getLogger(__name__)

SUFFIX = ".ckpt"
FORMAT = 1


def path_for(record_path: Path) -> Path:
    """Where the checkpoint of the run whose record goes to `record_path` lives."""
    return Path(record_path).with_suffix(SUFFIX)


def save_atomic(path: Path, obj: Any) -> None:
    """`torch.save(obj)` to `path` atomically: readers see the old file or the new one, never a partial one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:  # from here on: a stop signal's SystemExit, even during the chmod, must not leave the file behind
        os.fchmod(fd, file_mode())  # follow the umask like every other file of the study, not mkstemp's 0600
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:  # also a SystemExit raised by a preemption signal mid-write
        Path(tmp).unlink(missing_ok=True)
        # torch.save reports a full disk as an OSError, or as a RuntimeError from its zip writer whose
        # cause is that OSError: either way the study cannot go on, and training it again would not help.
        cause = e if isinstance(e, OSError) else e.__context__
        if isinstance(cause, OSError):
            raise write_error(path, cause) from None
        raise


def mismatch(current: dict[str, torch.Tensor], saved: dict[str, Any]) -> str | None:
    """Why `saved` cannot be loaded into a model whose state dict is `current` (None if it can)."""
    missing, unexpected = sorted(set(current) - set(saved)), sorted(set(saved) - set(current))
    if missing or unexpected:
        return f"{len(missing)} missing and {len(unexpected)} unexpected tensors, e.g. {(missing + unexpected)[0]}"
    for key, tensor in current.items():
        if not isinstance(saved[key], torch.Tensor) or saved[key].shape != tensor.shape:
            return f"{key} has another shape"
    return None


@dataclass
class Checkpointer:
    """Saves one run's state after every epoch and restores it at the start of a later attempt."""

    path: Path
    identity: dict[str, Any]  # cell, seed and identity hash: a checkpoint of another run is never loaded
    config: dict[str, Any] = field(default_factory=dict)  # the run's config, for `launch.status` to read
    resumes: list[int] = field(default_factory=list)  # epochs at which earlier attempts were resumed
    resume_steps: list[int] = field(default_factory=list)  # the step within that epoch (0: at its start)
    device: str = "cpu"  # where this attempt trains: a generator state only fits a generator of its device type
    rng_restarts: list[int] = field(default_factory=list)  # epochs resumed with a fresh generator (see load)
    wall_before: float = 0.0  # seconds spent by earlier attempts
    cpu_before: float = 0.0  # CPU seconds spent by earlier attempts (this run's share of them)
    share: int = 1  # models training in this process together: each is charged 1/share of its CPU time
    _t0: float = field(default_factory=time.perf_counter)
    _c0: float = field(default_factory=time.process_time)

    def start_clock(self, share: int = 1) -> None:
        """Count wall and CPU time from now, charging this run 1/`share` of the process's CPU time."""
        self.share, self._t0, self._c0 = max(1, share), time.perf_counter(), time.process_time()

    def restore(self, model: nn.Module, needs: tuple[str, ...] = ()) -> dict[str, Any] | None:
        """The saved checkpoint with its weights loaded into `model` and the attempts' bookkeeping (resumes,
        random-stream restarts, time spent) taken over, or None to start from scratch: the one loader of runs
        and searches, which differ only in the state they keep beside it (`needs`: keys it must hold)."""
        if not self.path.exists():
            return None
        try:
            saved = torch.load(self.path, map_location=self.device, weights_only=True)
            if saved.get("format") != FORMAT or saved.get("identity") != self.identity or \
                    any(key not in saved for key in needs):
                log.warning("ignoring checkpoint %s: it belongs to another job or format", self.path)
                return None
            problem = mismatch(model.state_dict(), saved["model"])
            if problem:
                # Refused whole: load_state_dict copies the matching tensors before it raises, which would
                # leave a half-loaded network to train "from scratch".
                log.warning("ignoring checkpoint %s: written by a different network (%s)", self.path, problem)
                return None
            model.load_state_dict(saved["model"])
            saved["generator"] = self._generator_state(saved)
        except Exception as e:  # unreadable or from an incompatible model: starting from scratch is safe
            # Our words, one line: torch's refusal advises weights_only=False, which would run the file's code.
            why = ("it holds objects a weights-only load refuses" if isinstance(e, pickle.UnpicklingError)
                   else f"{type(e).__name__}: {(str(e).splitlines() or [''])[0][:200]}")
            log.warning("ignoring unreadable checkpoint %s (%s); this job starts from scratch", self.path, why)
            return None
        epoch = int(saved["epoch"])
        self.resumes = list(saved["resumes"]) + [epoch]
        self.rng_restarts = list(saved.get("rng_restarts", [])) + ([epoch] if saved["generator"] is None else [])
        self.wall_before = float(saved["wall_s"])
        self.cpu_before = float(saved.get("cpu_s", 0.0))  # absent in checkpoints of older code
        return saved

    def load(self, model: nn.Module, device: str) -> TrainState | None:
        """A run's saved state (weights loaded into `model`), or None to start from scratch."""
        saved = self.restore(model)
        if saved is None:
            return None
        h = saved["history"]
        history = History(list(h["train_loss"]), list(h["test_acc"]), list(h["epoch_s"]), list(h.get("test_loss", [])),
                          list(h.get("images_per_s", [])), list(h.get("loader_wait", [])), int(h.get("unreadable", 0)))
        step = int(saved.get("step", 0))  # absent in checkpoints written between epochs by older code
        if step and saved["generator"] is None:  # the rest of the epoch cannot be the one begun: start it over
            log.warning("resuming %s at the start of epoch %d (its random stream restarts)", self.path.stem,
                        saved["epoch"])
            step = 0
        state = TrainState(saved["epoch"], history, saved["optimizer"], saved["generator"], step,
                           saved.get("loss_sum") if step else None)
        self.resume_steps = list(saved.get("resume_steps", [0] * len(saved["resumes"]))) + [step]
        log.info("resuming %s from epoch %d%s", self.path.stem, state.epoch, f", step {step}" if step else "")
        return state

    def _generator_state(self, saved: dict[str, Any]) -> torch.Tensor | None:
        """The saved generator state if a generator on this device can take it, else None (start a fresh one).

        CPU and CUDA generators keep states of different sizes (5,056 vs 16 bytes), so a run moved to
        another device type cannot continue its random stream: it keeps its weights and optimiser state
        and draws from a generator seeded afresh, which the record says (`rng_restarts`).
        """
        here = torch.device(self.device).type
        there = saved.get("device_type")  # absent in checkpoints of older code
        state = saved["generator"].cpu()
        fits = state.numel() == torch.Generator(device=self.device).get_state().numel()
        if fits and there in (here, None):  # older checkpoints lack the field; the state's size tells
            return state
        log.warning("resuming %s on %s from a checkpoint written on %s: weights and optimiser resumed, "
                    "random stream started afresh from the seed", self.path.stem, here, there or "an unknown device")
        return None

    def save(self, model: nn.Module, state: TrainState) -> None:
        """Write the state after an epoch atomically."""
        self.save_state(model.state_dict(), state)

    def save_state(self, weights: dict[str, torch.Tensor], state: TrainState) -> None:
        """Write a run's state (after an epoch, or within one) atomically, the model given by its state dict."""
        h = state.history
        self.keep(weights, state.epoch, optimizer=state.optimizer, generator=state.generator, step=state.step,
                  loss_sum=None if state.loss_sum is None else state.loss_sum.detach().cpu(),
                  history={"train_loss": h.train_loss, "test_acc": h.test_acc, "epoch_s": h.epoch_s,
                           "test_loss": h.test_loss, "images_per_s": h.images_per_s, "loader_wait": h.loader_wait,
                           "unreadable": h.unreadable},
                  resume_steps=self.resume_steps)

    def keep(self, weights: dict[str, torch.Tensor], epoch: int, **state: Any) -> None:
        """Write weights, `epoch` and a job's own `state` atomically, with the attempts' bookkeeping: the one
        writer of runs and searches (`restore` reads it back). A process that no longer holds the job's claim
        writes nothing: the job is another process's now, its checkpoint too."""
        if not may_write(self.path.with_suffix(".json")):
            raise NotOwner(f"not saving {self.path.stem}'s checkpoint: this process no longer holds its claim")
        save_atomic(self.path, {
            "format": FORMAT, "identity": self.identity, "epoch": epoch, "model": weights,
            "device_type": torch.device(self.device).type, "rng_restarts": self.rng_restarts,
            "resumes": self.resumes, "wall_s": self.wall_s(), "cpu_s": self.cpu_s(), "config": self.config, **state,
        })

    def wall_s(self) -> float:
        """Seconds this run has trained over all its attempts so far."""
        return self.wall_before + time.perf_counter() - self._t0

    def cpu_s(self) -> float:
        """CPU seconds (all threads of this process) charged to this run over all its attempts so far."""
        return self.cpu_before + (time.process_time() - self._c0) / self.share

    def discard(self) -> None:
        """Delete the checkpoint (the record now holds the result)."""
        self.path.unlink(missing_ok=True)


def peek(path: Path) -> tuple[int | None, dict[str, Any] | None]:
    """Epochs completed and the run's config according to a checkpoint file (None, None if unreadable)."""
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
        return int(saved["epoch"]), saved.get("config") or None
    except Exception:  # a status report must not fail on a checkpoint being replaced right now
        return None, None
