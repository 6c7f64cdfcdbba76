"""Typed values from a Hydra config, checked at the boundary; below this module nothing reads a DictConfig."""

from __future__ import annotations

import dataclasses
import re
import typing
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import GrammarParseError, InterpolationResolutionError

from study.errors import UserError
from study.store.claims import ClaimSettings
from study.spaces import SPACES
from study.spaces import NetShape
from study.training.loggers import LOGGERS, LoggerSettings
from study.training.run import Budget
from study.training.searches import SearchBudget
from study.training.run import SUMMARIES, is_summary

if TYPE_CHECKING:
    from study.store.claims import ClaimSettings
    from study.spaces import NetShape
    from study.training.run import Budget


def _get(cfg: DictConfig, key: str) -> Any:
    try:
        return OmegaConf.select(cfg, key, default=None)
    except (InterpolationResolutionError, GrammarParseError) as e:
        raise UserError(interpolation_problem(e, key)) from None


def interpolation_problem(e: Exception, key: str = "") -> str:
    """One line for a value whose `${...}` names no setting or resolver (OmegaConf's error has three lines)."""
    key = getattr(e, "full_key", None) or key or "a setting"
    first = str(e).splitlines()[0] if str(e) else type(e).__name__
    return (f"{key}: {first}; `${{...}}` in a value names another setting or a resolver (e.g. "
            "${oc.env:HOME}): write the value without '${'")


def literal_folder(value: str, key: str) -> str:
    """`value`, refused when it still holds '${' once resolved: Hydra names its log folder after it and would
    read the '${' as an interpolation when it starts (after creating the folder)."""
    if "${" in value:
        raise UserError(f"{key} {value!r} holds '${{', which Hydra reads as an interpolation when it names the "
                        f"log folder; choose a {key} without '${{'")
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
    literal_folder(value, "study_dir")
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

    heartbeat = number(cfg, "claims.heartbeat_s", "claims.heartbeat_s", strict=True)
    stale = number(cfg, "claims.stale_after_s", "claims.stale_after_s", strict=True)
    if heartbeat >= stale:
        raise UserError(f"claims.heartbeat_s ({heartbeat:g}) must be shorter than claims.stale_after_s "
                        f"({stale:g}), or live runs would look stale; e.g. claims.heartbeat_s=30")
    return ClaimSettings(heartbeat, stale)


def logger_settings(cfg: DictConfig) -> LoggerSettings:
    """The per-epoch logger of a train or search config (`logger=csv`, ...); `none` for a config without one
    (a record's, written before there were loggers)."""
    values = _get(cfg, "logger")
    values = OmegaConf.to_container(values, resolve=True) if isinstance(values, DictConfig) else {}
    name = values.pop("name", None) or "none"
    if name != "none":
        LOGGERS.get(name)  # unknown name -> one line naming the choices
    return LoggerSettings(name, study_dir(cfg), values)


def space_name(cfg: DictConfig) -> str:
    """The configured space's registry name."""

    name = _get(cfg, "space.name")
    SPACES.get(name)  # raises a UserError naming the choices
    return name


def net_shape(cfg: DictConfig, budget: dict[str, Any] | None = None) -> "NetShape":
    """The network's shape: input and classes from `dataset`, width and depth from `budget` (or cfg.budget)."""

    sizes = budget if budget is not None else {k: _get(cfg, f"budget.{k}") for k in SHAPE_KEYS}
    return NetShape(c_in=_get(cfg, "dataset.channels"), image_size=_get(cfg, "dataset.image_size"),
                    n_classes=_get(cfg, "dataset.n_classes"), **{k: sizes[k] for k in SHAPE_KEYS if sizes.get(k) is not None})


# Budget settings for the user, a NetShape in code: each with its type and the value when neither the budget
# nor the space's `shapes:` entry gives one (stem and depth: the CIFAR skeleton, the space's own depth rule).
SHAPE_KEYS = ("width", "cells_per_stage", "stem", "depth")
_SHAPE_FALLBACKS = {"width": (int, 8), "cells_per_stage": (int, 1), "stem": (str, "cifar"), "depth": (int, 0)}


def _schema(recipe: type, group: str, shapes: str, shape_keys: tuple[str, ...], summary: bool) -> tuple[type, type]:
    """The schema every conf/<group>/*.yaml composes (`defaults: [base]`), and the schema of one objective's
    overrides: the recipe dataclass's fields with its defaults (Budget, SearchBudget), plus the network's
    width and depth and per-objective overrides of any of them.

    Derived from the recipe, so a default lives in one place; OmegaConf checks every value's type when the
    config is composed (`budget.epochs=abc` is refused before anything runs).
    """
    hints = typing.get_type_hints(recipe)
    fields_, overrides = [], []
    for f in dataclasses.fields(recipe):
        default = MISSING if f.default is dataclasses.MISSING else f.default
        fields_.append((f.name, hints[f.name], dataclasses.field(default=default)))
        if f.name != "name":
            overrides.append((f.name, typing.Optional[hints[f.name]], dataclasses.field(default=None)))
    for key in shape_keys:
        kind, fallback = _SHAPE_FALLBACKS[key]
        # A space may size its network per budget (conf/space/<name>.yaml `shapes:`); else the budget's number.
        fields_.append((key, kind, dataclasses.field(default=f"${{oc.select:space.{shapes}.${{{group}.name}}.{key},{fallback}}}")))
        overrides.append((key, typing.Optional[kind], dataclasses.field(default=None)))
    # Per-objective overrides stay an open map in the schema (Hydra's `+budget.objectives.rotation.lr=...`
    # adds an empty node first, which a typed value would refuse); `recipe_for` checks each against this.
    fields_.append(("objectives", typing.Dict[str, typing.Any], dataclasses.field(default_factory=dict)))
    if summary:
        # The summary of a run the analysis reads by default (metric=auto): measured per budget, not a training
        # setting, so it is not part of the Budget (nor of a run's identity).
        fields_.append(("summary", str, dataclasses.field(default="best")))
    name = "".join(part.title() for part in group.split("_"))
    return dataclasses.make_dataclass(f"{name}Schema", fields_), dataclasses.make_dataclass(f"{name}Override", overrides)


def _register(group: str, recipe: type, shapes: str, shape_keys: tuple[str, ...], summary: bool) -> type:
    schema, override = _schema(recipe, group, shapes, shape_keys, summary)
    ConfigStore.instance().store(group=group, name="base", node=schema)
    return override


def _recipes() -> dict[str, tuple[type, type, tuple[str, ...]]]:
    """Per config group: the recipe class, its override schema and the shape keys it sizes."""

    # Supernets have no depth setting (DARTS' 3k + 2 cells); a space sizes them under `search_shapes:`.
    search_keys = ("width", "cells_per_stage", "stem")
    return {"budget": (Budget, _register("budget", Budget, "shapes", SHAPE_KEYS, True), SHAPE_KEYS),
            "search_budget": (SearchBudget, _register("search_budget", SearchBudget, "search_shapes", search_keys,
                                                      False), search_keys)}


_RECIPES = _recipes()


def recipe_for(cfg: DictConfig, group: str, objective: str) -> tuple[Any, "NetShape"]:
    """The recipe of config group `group` (budget, search_budget) and the network shape for `objective`: the
    group's values with that objective's overrides applied (a typo under any objective is refused)."""
    from omegaconf.errors import OmegaConfBaseException

    recipe, override, shape_keys = _RECIPES[group]
    values = OmegaConf.to_container(cfg[group], resolve=True)
    values.pop("summary", None)
    per_objective = values.pop("objectives") or {}
    if not isinstance(per_objective, dict):
        raise UserError(f"{group}.objectives must map objective names to settings, e.g. "
                        f"{group}.objectives.rotation.lr=0.025")
    known = [f.name for f in dataclasses.fields(override)]
    for name, over in per_objective.items():
        try:
            checked = OmegaConf.merge(OmegaConf.structured(override), over or {})
        except OmegaConfBaseException as e:
            detail = str(e).splitlines()[0]
            unknown_key = re.match(r"Key '(.*)' not in", detail)
            if unknown_key:
                raise UserError(f"unknown {group} setting {unknown_key.group(1)!r} in {group}.objectives.{name}; "
                                f"known: {', '.join(sorted(known))}") from None
            raise UserError(f"{group}.objectives.{name}: {detail}; e.g. {group}.objectives.{name}.lr=0.025") from None
        per_objective[name] = OmegaConf.to_container(checked)
    over = per_objective.get(objective) or {}
    values.update({k: v for k, v in over.items() if v is not None})
    shape = net_shape(cfg, {k: values.pop(k) for k in shape_keys})
    try:
        return recipe(**values), shape
    except ValueError as e:
        raise UserError(str(e)) from None


def check_summary(cfg: DictConfig) -> None:
    """Refuse a `budget.summary` that names no run summary (the summary is the analysis', not the Budget's)."""

    summary = OmegaConf.select(cfg, "budget.summary", default="best")
    if not is_summary(summary):
        raise UserError(f"budget.summary {summary!r} is not a run summary; use one of: {', '.join(SUMMARIES)}, tse-E")


def budget_for(cfg: DictConfig, objective: str) -> tuple["Budget", "NetShape"]:
    """The optimiser recipe and network shape trained for `objective`: the budget with its overrides applied."""
    check_summary(cfg)
    return recipe_for(cfg, "budget", objective)


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


def search_budget(cfg: DictConfig, objective: str) -> tuple[Any, "NetShape"]:
    """The search budget and the supernet's shape of a composed search config, for `objective`."""
    return recipe_for(cfg, "search_budget", objective)
