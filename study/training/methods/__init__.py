"""Search methods by name: how a search mixes a supernet's edges. One file here per method, registered by
`@METHODS.register(name)`, plus its conf/method/<name>.yaml; importing this package imports every file, and
the tests parametrised over `METHODS` cover a new one without being edited.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from study.errors import UserError
from study.registry import Registry, import_members
from study.spaces.modules import Mix

Alphas = nn.ParameterDict


class Method:
    """How a search mixes a supernet's edges: in training steps, and when it scores the supernet."""

    name: ClassVar[str] = ""

    def mixes(self, alphas: Alphas, epoch: int, epochs: int, gen: torch.Generator) -> dict[str, Mix]:
        """The mix of each kind of cell for one training forward pass (differentiable in alpha)."""
        raise NotImplementedError

    def eval_mixes(self, alphas: Alphas) -> dict[str, Mix]:
        """The mix the supernet is scored with."""
        raise NotImplementedError

    def facts(self, epoch: int, epochs: int) -> dict[str, float]:
        """What a record notes about the method in `epoch` (GDAS: its temperature)."""
        return {}


METHODS: Registry[type[Method]] = Registry("method", UserError)


def create_method(name: str, **options: Any) -> Method:
    """Method `name` with its options; UserError for an unknown name or option."""
    cls = METHODS.get(name)
    try:
        return cls(**options)
    except TypeError as e:
        raise UserError(f"method {name!r}: {e}; its options are in conf/method/{name}.yaml") from None


import_members(__name__, __path__)  # every method file registers itself
