"""The config groups a command takes and the choices it accepts in each: what `--help` lists and validation checks.

Hydra's own `$APP_CONFIG_GROUPS` lists every folder of conf/ for every command, with the `base` schemas
(study/commands/settings.py) and conf/local.example among them, all of which a command refuses. `--help`
lists instead (`${command_groups:}` in conf/hydra/help/unnas.yaml) the groups in the command's own defaults,
each with the files of its folder that compose for that command (a recipe overriding a group the command
lacks does not) and that the command itself accepts (`@accepts_for(config_name)`: a search refuses a
training-free objective).
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any, Callable, Iterable

import yaml
from omegaconf import OmegaConf

from study.commands.confdir import conf_dir

Accepts = Callable[[str, str], bool]  # (group, choice) -> whether the command takes it
ACCEPTS: dict[str, Accepts] = {}  # config name -> its command's own refusals of a choice (accepts_for)


def accepts_for(config_name: str) -> Callable[[Accepts], Accepts]:
    """Register `accepts(group, choice)` as what the command of `config_name` takes: --help lists only those."""
    def register(accepts: Accepts) -> Accepts:
        ACCEPTS[config_name] = accepts
        return accepts
    return register


def group_options(group: str, conf: Path | None = None) -> list[str] | None:
    """The choices of one of our config groups, as written on the command line (`ladder/d8-c8-e4`); None for
    a key that is no group of ours (Hydra's own groups are Hydra's to check)."""
    folder = (conf or conf_dir()) / group
    if not folder.is_dir() or group.startswith("hydra"):
        return None
    return sorted(p.relative_to(folder).with_suffix("").as_posix() for p in folder.rglob("*.yaml"))


def overridden(group: str, choice: str, conf: Path | None = None) -> set[str]:
    """The groups a config file overrides (`- override /budget: paper`), through the configs it includes
    (`- paper`, `- eval/darts`: Hydra reads them from the group's folder): a command without one of them cannot
    compose it."""
    conf = conf or conf_dir()
    path = conf / group / f"{choice}.yaml"
    if not path.is_file():
        return set()  # a schema of the ConfigStore (`base`)
    defaults = (yaml.safe_load(path.read_text()) or {}).get("defaults") or []
    found: set[str] = set()
    for entry in defaults:
        key = next(iter(entry)) if isinstance(entry, dict) else entry
        if not isinstance(key, str) or key == "_self_":
            continue
        if key.startswith("override "):
            target = key.removeprefix("override ").strip()
            found.add(target[1:] if target.startswith("/") else f"{group}/{target}")
        elif not isinstance(entry, dict):  # another config: `/group/name`, or `name` within this group's folder
            other_group, _, name = key[1:].rpartition("/") if key.startswith("/") else (group, "", key)
            found |= overridden(other_group, name, conf)
    return found


def accepted(config_name: str, groups: Iterable[str], conf: Path | None = None) -> dict[str, list[str]]:
    """For each of the command's own groups, the choices that compose for it and that it accepts."""
    accepts = ACCEPTS.get(config_name, lambda group, choice: True)
    mine = set(groups)
    out = {}
    for group in sorted(mine):
        options = group_options(group, conf) or []
        out[group] = [c for c in options if overridden(group, c, conf) <= mine and accepts(group, c)]
    return out


def listing(config_name: str, groups: Iterable[str], conf: Path | None = None) -> str:
    """The lines `group: a, b, c` of --help; a subfolder's choices on a line of their own, written in full
    (`experiment: ladder/d8-c8-e4-b32, ...`), as the command line takes them."""
    lines = []
    for group, choices in accepted(config_name, groups, conf).items():
        by_folder: dict[str, list[str]] = defaultdict(list)
        for choice in choices:
            by_folder[choice.rpartition("/")[0]].append(choice)
        lines += [f"{group}: {', '.join(names)}" for _, names in sorted(by_folder.items())]
    return "\n".join(lines)


def own_groups(choices: Any) -> list[str]:
    """The command's config groups among the defaults list's choices (hydra.runtime.choices), Hydra's left out."""
    return [g for g in choices if not g.startswith("hydra/") and "@" not in g and group_options(g) is not None]


def _command_groups(_root_: Any) -> str:
    hydra = _root_.hydra
    return listing(hydra.job.config_name, own_groups(hydra.runtime.choices))


def register_resolver() -> None:
    """`${command_groups:}`: the config-groups block of --help for the config being composed."""
    if not OmegaConf.has_resolver("command_groups"):
        OmegaConf.register_new_resolver("command_groups", _command_groups)
