"""Rebuild the `study.train` command that trains the missing runs of a group, from one of its records.

A record holds the resolved config of its run. The command names the config-group choices (objective,
budget, dataset, space) and adds an override for every value that differs from those presets, then is
checked: composing it must give the same run identity as the record, or no command is offered.
`python -m launch.status` prints these commands; this module is not a command itself.
"""

from __future__ import annotations

import re
import shlex
import sys
from typing import Any

from study.commands.cli import CONF_DIR
from study.errors import UserError
from study.shell import hydra_value
from study.store.records import identity_hash
from study.commands.request import parse

SECTIONS = ("objective", "budget", "dataset", "space")


def _leaves(node: Any, prefix: str) -> dict[str, Any]:
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for key, value in node.items():
            out.update(_leaves(value, f"{prefix}.{key}"))
        return out
    return {prefix: node}


def value_text(value: Any) -> str:
    """A value as Hydra's override grammar reads it back (strings that look like numbers are quoted)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, list):
        return "[" + ",".join(value_text(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{k}:{value_text(v)}" for k, v in value.items()) + "}"
    return hydra_value(value)  # the real characters, quoted for Hydra when they need it


def overrides_for(config: dict[str, Any]) -> list[str] | None:
    """Overrides that reproduce the identity of the run whose resolved config is `config`, or None."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    target = _identity_of(config)
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            defaults = OmegaConf.to_container(compose("train"), resolve=True)
            base = [f"{s}={config[s]['name']}" for s in SECTIONS  # objective always; others unless default
                    if s == "objective" or config[s]["name"] != defaults[s]["name"]]
            base.append(f"study_dir={value_text(config['study_dir'])}")
            # Device and precision are part of a run's identity off (cpu, fp32): keep what the record chose.
            base += [f"{key}={value_text(config[key])}" for key in ("device", "precision")
                     if config.get(key) is not None and config[key] != defaults.get(key)]
            preset = OmegaConf.to_container(compose("train", overrides=base), resolve=True)
            extra = []
            for section in SECTIONS:
                have = _leaves(preset.get(section, {}), section)
                for key, value in _leaves(config[section], section).items():
                    if key not in have:
                        extra.append(f"+{key}={value_text(value)}")
                    elif have[key] != value:
                        extra.append(f"{key}={value_text(value)}")
            if target is None or _identity(compose("train", overrides=base + extra)) != target:
                return None
            for item in list(extra):  # drop what does not change the identity (another objective's budget)
                fewer = [e for e in extra if e != item]
                if _identity(compose("train", overrides=base + fewer)) == target:
                    extra = fewer
    except Exception:  # a preset renamed or removed since the record was written: no command to offer
        return None
    # Not part of the identity today, but a run resumed at another precision would not be the same run.
    precision = config.get("precision")
    if precision not in (None, defaults.get("precision")) and not any(o.startswith("precision=") for o in base + extra):
        extra.append(f"precision={value_text(precision)}")
    return base + extra


def _identity(cfg: Any) -> str | None:
    from omegaconf import OmegaConf

    return _identity_of(OmegaConf.to_container(cfg, resolve=True))


def _identity_of(config: dict[str, Any]) -> str | None:
    from omegaconf import OmegaConf

    try:
        cfg = OmegaConf.create({**config, "device": "cpu"})  # the identity does not depend on the device
        return identity_hash(parse(cfg).setup.identity())
    except (UserError, KeyError, TypeError, ValueError):
        return None


def cell_list(ids: list[str]) -> str:
    """`cells=[...]` for the given ids (ids that would read as numbers are quoted)."""
    return "cells=[" + ",".join(f'"{c}"' if re.fullmatch(r"[0-9e.+_-]+", c) else c for c in ids) + "]"


def command(overrides: list[str], seeds: list[int], missing: list[str], all_missing: bool) -> str:
    """The shell command that trains `missing` for `seeds` with the given overrides."""
    args = ["python", "-m", "study.train", "-m", *overrides, "seed=" + ",".join(str(s) for s in seeds)]
    if not all_missing:
        args.append(cell_list(missing))
    return shlex.join(args)


def main() -> None:
    """`python -m launch.rerun` is not a command: say which one prints the rerun commands, exit 2."""
    print("error: launch.rerun is not a command; `python -m launch.status study_dir=PATH` prints the command "
          "that trains what a study is missing", file=sys.stderr)
    sys.exit(2)


if __name__ == "__main__":
    main()
