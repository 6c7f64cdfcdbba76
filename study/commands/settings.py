"""Typed values from a Hydra config, checked at the boundary; below this module nothing reads a DictConfig."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig, OmegaConf

from study.errors import UserError

if TYPE_CHECKING:
    from study.store.claims import ClaimSettings
    from study.spaces import NetShape


def _get(cfg: DictConfig, key: str) -> Any:
    value = OmegaConf.select(cfg, key, default=None)
    return value


def integer(cfg: DictConfig, key: str, name: str) -> int:
    """An integer setting (`n=abc` or `n=1.5` is refused)."""
    value = _get(cfg, key)
    if isinstance(value, bool) or not isinstance(value, int):
        raise UserError(f"{name} must be an integer, got {value!r}; e.g. {name}=3")
    return value


def seeds(cfg: DictConfig) -> list[int]:
    """`seed=3` or `seed=[0,1,2]`: the training seeds of one job, distinct, in the order given."""
    value = _get(cfg, "seed")
    values = list(value) if OmegaConf.is_list(value) else [value]
    if not values or any(isinstance(v, bool) or not isinstance(v, int) for v in values):
        raise UserError(f"seed must be an integer or a list of integers, got {value!r}; e.g. seed=0 or seed=[0,1,2]")
    if len(set(values)) != len(values):
        raise UserError(f"seed lists {values} with repeats; name each seed once, e.g. seed=[0,1,2]")
    return values


def positive_int(cfg: DictConfig, key: str, name: str) -> int:
    """An integer setting of at least 1."""
    value = integer(cfg, key, name)
    if value < 1:
        raise UserError(f"{name} must be a positive integer, got {value}; e.g. {name}=3")
    return value


def non_negative_int(cfg: DictConfig, key: str, name: str) -> int:
    """An integer setting of at least 0."""
    value = integer(cfg, key, name)
    if value < 0:
        raise UserError(f"{name} must not be negative, got {value}; e.g. {name}=0")
    return value


def number(cfg: DictConfig, key: str, name: str, minimum: float = 0.0, strict: bool = False) -> float:
    """A real number setting above (or at) `minimum`."""
    value = _get(cfg, key)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise UserError(f"{name} must be a number, got {value!r}")
    if value < minimum or (strict and value == minimum):
        raise UserError(f"{name} must be {'>' if strict else '>='} {minimum:g}, got {value}")
    return float(value)


def boolean(cfg: DictConfig, key: str) -> bool:
    """A true/false setting."""
    value = _get(cfg, key)
    if not isinstance(value, bool):
        raise UserError(f"{key} must be true or false, got {value!r}")
    return value


def study_dir(cfg: DictConfig) -> Path:
    """The study folder; refuses a path that is a file."""
    value = _get(cfg, "study_dir")
    if not isinstance(value, str) or not value:
        raise UserError(f"study_dir must be a folder path, got {value!r}")
    path = Path(value).expanduser()
    if path.exists() and not path.is_dir():
        raise UserError(f"study_dir {value!r} is a file, not a folder; point study_dir at a folder")
    for parent in path.absolute().parents:
        if parent.exists():
            if not parent.is_dir():
                raise UserError(f"study_dir {value!r} lies under {str(parent)!r}, which is a file; "
                                "point study_dir at a folder")
            break
    return path


def claim_settings(cfg: DictConfig) -> "ClaimSettings":
    """Heartbeat and staleness of the claims that keep concurrent train commands apart."""
    from study.store.claims import ClaimSettings

    heartbeat = number(cfg, "claims.heartbeat_s", "claims.heartbeat_s", strict=True)
    stale = number(cfg, "claims.stale_after_s", "claims.stale_after_s", strict=True)
    if heartbeat >= stale:
        raise UserError(f"claims.heartbeat_s ({heartbeat:g}) must be shorter than claims.stale_after_s "
                        f"({stale:g}), or live runs would look stale; e.g. claims.heartbeat_s=30")
    return ClaimSettings(heartbeat, stale)


def space_name(cfg: DictConfig) -> str:
    """The configured space's registry name."""
    from study.spaces import SPACES

    name = _get(cfg, "space.name")
    SPACES.get(name)  # raises a UserError naming the choices
    return name


def net_shape(cfg: DictConfig, budget: dict[str, Any] | None = None) -> "NetShape":
    """The network's shape: input and classes from `dataset`, width and depth from `budget` (or cfg.budget).

    `budget` holds width and cells_per_stage when the caller has merged per-objective overrides already.
    """
    from study.spaces import NetShape

    c_in = positive_int(cfg, "dataset.channels", "dataset.channels")
    image_size = positive_int(cfg, "dataset.image_size", "dataset.image_size")
    n_classes = positive_int(cfg, "dataset.n_classes", "dataset.n_classes")
    sizes = {}
    for key in ("width", "cells_per_stage"):
        if budget is None:
            sizes[key] = positive_int(cfg, f"budget.{key}", f"budget.{key}")
            continue
        value = budget.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise UserError(f"budget.{key} must be a positive integer, got {value!r}; e.g. budget.{key}=3")
        sizes[key] = value
    return NetShape(c_in=c_in, image_size=image_size, n_classes=n_classes, **sizes)


def auto_int(cfg: DictConfig, key: str, default: int) -> int:
    """A positive integer or `auto` (-> default)."""
    value = _get(cfg, key)
    if value == "auto" or value is None:
        return default
    return positive_int(cfg, key, key)


def plain(cfg: DictConfig) -> dict:
    """The config as plain resolved Python values (for records), without Hydra's own node."""
    data = OmegaConf.to_container(cfg, resolve=True)
    data.pop("hydra", None)
    return data
