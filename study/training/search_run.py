"""One search from start to record: build the supernet under the objective's head, resume it from its
per-epoch checkpoint, search, judge the cell found after every epoch, write the record.

The checkpoint lies next to the record (`seed<k>.ckpt`), is written atomically after every epoch with
the machinery of study/training/checkpoint.py, and is deleted once the record is written.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch import nn

from study.spaces import cell_id, searchable
from study.spaces.modules import count_params
from study.store.records import identity_hash, write_record
from study.training.checkpoint import Checkpointer, mismatch, save_atomic
from study.training.search import SearchState, create_method, search
from study.training.searches import SearchSetup, SearchSpec, search_record

log = logging.getLogger(__name__)

FORMAT = 1
MEDIAN_OF = 25  # cells sampled to pick the median-size cell whose training epoch a search is compared with


@dataclass
class SearchCheckpointer(Checkpointer):
    """A search's per-epoch state: weights with alpha, both optimisers, the generator, the history."""

    extra: dict[str, Any] = field(default_factory=dict)  # once-measured facts a resumed search keeps

    def load_search(self, model: nn.Module) -> SearchState | None:
        """The saved state (weights and alpha loaded into `model`), or None to start from scratch."""
        if not self.path.exists():
            return None
        try:
            saved = torch.load(self.path, map_location=self.device, weights_only=True)
            if saved.get("format") != FORMAT or saved.get("identity") != self.identity or "arch_opt" not in saved:
                log.warning("ignoring checkpoint %s: it belongs to another search or format", self.path)
                return None
            problem = mismatch(model.state_dict(), saved["model"])
            if problem:
                log.warning("ignoring checkpoint %s: written by a different supernet (%s)", self.path, problem)
                return None
            model.load_state_dict(saved["model"])
        except Exception as e:  # unreadable: searching from scratch is safe
            log.warning("ignoring unreadable checkpoint %s (%s: %s)", self.path, type(e).__name__, e)
            return None
        state = SearchState(int(saved["epoch"]), list(saved["history"]), saved["weight_opt"], saved["arch_opt"],
                            self._generator_state(saved))
        self.resumes = list(saved["resumes"]) + [state.epoch]
        self.rng_restarts = list(saved.get("rng_restarts", [])) + ([state.epoch] if state.generator is None else [])
        self.wall_before, self.cpu_before = float(saved["wall_s"]), float(saved["cpu_s"])
        self.extra = dict(saved.get("extra") or {})
        log.info("resuming search %s from epoch %d", self.path, state.epoch)
        return state

    def save_search(self, model: nn.Module, state: SearchState) -> None:
        """Write the state after an epoch atomically."""
        save_atomic(self.path, {
            "format": FORMAT, "identity": self.identity, "epoch": state.epoch, "model": model.state_dict(),
            "device_type": torch.device(self.device).type, "rng_restarts": self.rng_restarts,
            "weight_opt": state.weight_opt, "arch_opt": state.arch_opt, "generator": state.generator,
            "history": state.history, "resumes": self.resumes, "wall_s": self.wall_s(), "cpu_s": self.cpu_s(),
            "extra": self.extra, "config": self.config,
        })


def cell_epoch_cpu_s(setup: SearchSetup, objective: Any, data: Any, steps: int = 8) -> float:
    """CPU seconds of one training epoch of the space's median-size cell at this search's data and batch,
    from `steps` timed SGD steps (after two untimed ones): the unit a search's cost is counted in."""
    space = searchable(setup.space)
    cells = space.sample(MEDIAN_OF, 0)
    cells.sort(key=lambda c: space.complexity(c, setup.shape)[0])
    shape = replace(setup.shape, c_in=objective.c_in)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = objective.build(space.build(cells[len(cells) // 2], shape)).to(setup.device)
    opt = torch.optim.SGD(net.parameters(), lr=1e-3, momentum=0.9)
    gen = torch.Generator(device=data.train_x.device).manual_seed(0)
    n, bs = data.train_x.shape[0], setup.budget.batch_size
    spent = 0.0
    for step in range(2 + steps):
        c0 = time.process_time()
        idx = torch.randint(0, n, (min(bs, n),), generator=gen, device=data.train_x.device)
        inputs, targets = objective.train_batch(data.train_x[idx], data.train_y[idx], gen)
        loss = objective.loss(net(inputs), targets)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        loss.item()  # wait for the device
        spent += (time.process_time() - c0) if step >= 2 else 0.0
    return spent / steps * math.ceil(n / bs)


def execute(spec: SearchSpec, setup: SearchSetup, data: Any, progress: Any = None) -> dict[str, Any]:
    """Run one search (resuming it if a checkpoint says so) and write its record; returns the record."""
    from study.objectives import create_objective
    from study.training.checkpoint import path_for

    space = searchable(setup.space)
    objective = create_objective(setup.objective, data, **setup.objective_options)
    method = create_method(setup.method, **setup.method_options)
    with torch.random.fork_rng(devices=[]):  # the seed fixes weights and alpha without touching global state
        torch.manual_seed(spec.seed)
        supernet = space.supernet(replace(setup.shape, c_in=objective.c_in))
        model = objective.build(supernet).to(setup.device)
    ckpt = SearchCheckpointer(path_for(spec.path), {"seed": spec.seed, "identity": identity_hash(setup.identity())},
                              setup.config, device=setup.device)
    start = ckpt.load_search(model)
    ckpt.extra["command"] = list(setup.command)  # what `launch.status` offers to resume it with
    if "cell_epoch_cpu_s" not in ckpt.extra:
        ckpt.extra["cell_epoch_cpu_s"] = cell_epoch_cpu_s(setup, objective, data)
    ckpt.start_clock()
    truth = getattr(space, "truth", None)

    def judge(alpha: dict[str, list[list[float]]]) -> dict[str, Any]:
        cell = space.derive(alpha)
        return {"cell": cell.to_str(), "cell_id": cell_id(cell.canonical()),
                "truth": truth(cell) if callable(truth) else None}

    def on_epoch(net: nn.Module, state: SearchState) -> None:
        ckpt.save_search(net, state)
        if progress is not None:
            progress.epoch(spec, state.history[-1], start.epoch if start else 0)

    state = search(supernet, model, objective, data, setup.budget, method, spec.seed, judge, start, on_epoch,
                   setup.precision)
    last = state.history[-1]
    cell = space.parse(last["cell"])
    rec = search_record(
        spec, setup, "complete", cell_id=last["cell_id"], arch=last["cell"], canonical=cell.canonical(),
        truth=last["truth"], alpha=last["alpha"], alpha_layout={k: list(v) for k, v in supernet.layout.items()},
        supernet_acc=last["supernet_acc"], epochs=len(state.history), history=state.history,
        cpu_s=ckpt.cpu_s(), wall_s=ckpt.wall_s(), cell_epoch_cpu_s=ckpt.extra["cell_epoch_cpu_s"],
        supernet_params=count_params(model) - sum(a.numel() for a in supernet.alphas.values()),
        cell_params=space.complexity(cell, setup.shape)[0], resumes=ckpt.resumes,
        resumed_from_epoch=ckpt.resumes[-1] if ckpt.resumes else None, rng_restarts=ckpt.rng_restarts,
        device=setup.device, dataset_fingerprint=getattr(data, "fingerprint", None),
    )
    write_record(spec.path, rec)
    ckpt.discard()
    from study.training.found import write_found

    write_found(spec.path.parents[4])  # <study_dir>/searches/<method>/<objective>/<tag>/seed<k>.json
    return rec
