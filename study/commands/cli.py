"""Hydra entry points that fail like command-line tools should.

Before Hydra starts (and before it writes anything), every override on the command line is parsed, every
config-group choice checked, and every value of every sweep composed and checked by the app's own
`check` function. A mistake prints one line on stderr naming the problem and the fix, and exits with
status 2. The same happens for a UserError raised while the app runs.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Callable

from omegaconf import DictConfig

from study.errors import UserError
from study.registry import unknown

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"
# Hydra's flags that pick another config, rerun a job or complete a shell leave validation to Hydra. Those that
# only change what Hydra prints (--cfg job, --package ...) take a value; the overrides around them are checked.
_HYDRA_OWNS = {"-cn", "--config-name", "-cp", "--config-path", "-cd", "--config-dir", "--experimental-rerun",
               "-sc", "--shell-completion"}
_FLAGS_WITH_VALUE = {"-c", "--cfg", "-p", "--package"}

Check = Callable[[DictConfig], None]
Task = Callable[[DictConfig], None]


def fail(message: str) -> None:
    """Print one line on stderr and exit with status 2."""
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def _group_options(group: str) -> list[str] | None:
    folder = CONF_DIR / group
    if not folder.is_dir() or group.startswith("hydra"):
        return None  # not one of ours (Hydra's own groups are checked by Hydra)
    return sorted(p.relative_to(folder).with_suffix("").as_posix() for p in folder.rglob("*.yaml"))


def _sweep_values(override) -> list[str]:
    if not override.is_sweep_override():
        return [override.get_value_element_as_str()]
    return list(override.sweep_string_iterator())


def _may_add(key: str) -> bool:
    # Keys that are open by design: per-objective budget overrides, and Hydra's own settings.
    return key.startswith(("budget.objectives.", "hydra.", "hydra/"))


def validate_argv(config_name: str, argv: list[str], check: Check) -> None:
    """Compose the config for every value on the command line and run `check` on each; exit 2 on error."""
    from hydra import compose, initialize_config_dir
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from study.store.records import StudyError

    if any(a.split("=")[0] in _HYDRA_OWNS or a.startswith(("--info", "-i")) or a in ("-h", "--help", "--hydra-help")
           for a in argv):
        return
    args = overrides_in(argv)
    try:
        overrides = OverridesParser.create().parse_overrides(args)
    except HydraException as e:
        fail(f"cannot parse the command line ({str(e).splitlines()[0]}); write overrides as key=value")
    multirun = any(a in ("-m", "--multirun") for a in argv)
    printing = any(a in ("-c", "--cfg") for a in argv)
    base: list[str] = []
    for o in overrides:
        if o.is_sweep_override() and not multirun:
            module = config_name_to_module(config_name)
            fail(f"{o.input_line} is a list of values: add -m to run one job per value "
                 f"(python -m {module} -m {o.input_line} ...)")
        values = _sweep_values(o)
        options = _group_options(o.key_or_group)
        if options is not None and not o.is_delete():
            for v in values:
                if v not in options:
                    fail(unknown(o.key_or_group, v, options))
        if (o.is_add() or o.is_force_add()) and options is None and not _may_add(o.key_or_group):
            fail(f"unknown setting {o.key_or_group!r}: {config_name_to_module(config_name)} has no such key; "
                 f"drop '{o.input_line}' (see `python -m {config_name_to_module(config_name)} --help`)")
        prefix = o.get_key_element()
        base.append(f"{prefix}={values[0]}" if values else o.input_line)
    variants = [base]
    for k, o in enumerate(overrides):
        if o.is_sweep_override():
            prefix = o.get_key_element()
            variants += [base[:k] + [f"{prefix}={v}"] + base[k + 1:] for v in _sweep_values(o)[1:]]
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        for overrides_now in variants:
            try:
                cfg = compose(config_name, overrides=overrides_now)
            except (HydraException, OmegaConfBaseException) as e:
                fail(f"{str(e).splitlines()[0]} (see `python -m {config_name_to_module(config_name)} --help`)")
            try:
                check(cfg)
            except StudyError as e:
                if not printing:  # `--cfg job` only prints the config: it needs no sample yet
                    fail(str(e))
            except UserError as e:
                fail(str(e))


def overrides_in(argv: list[str]) -> list[str]:
    """The key=value overrides of a command line: argv without Hydra's flags and their values."""
    args, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a in _FLAGS_WITH_VALUE:
            skip = True  # `--cfg job`: the next word is the flag's value
        elif not a.startswith("-"):
            args.append(a)
    return args


def config_name_to_module(config_name: str) -> str:
    """Module that serves a config (train -> study.train, correlate -> analysis.correlate)."""
    return "analysis.correlate" if config_name == "correlate" else f"study.{config_name}"


def hydra_entry(config_name: str, task: Task, check: Check) -> Callable[[], None]:
    """A `main()` that validates argv, then runs `task` under Hydra, turning UserError into exit 2."""
    import hydra

    def guarded(cfg: DictConfig) -> None:
        try:
            check(cfg)
            task(cfg)
        except UserError as e:
            logging.getLogger(config_name_to_module(config_name)).debug("user error", exc_info=True)
            fail(str(e))

    def main() -> None:
        validate_argv(config_name, sys.argv[1:], check)
        hydra.main(config_path=str(CONF_DIR), config_name=config_name, version_base="1.3")(guarded)()

    return main
