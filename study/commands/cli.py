"""Hydra entry points that fail like command-line tools should.

Before Hydra starts (and before it writes anything), the command line is parsed once (study/commands/argv.py),
every config-group choice checked, and every value of every sweep composed, parsed into the app's typed
request and checked by the app's own `check` function. A mistake prints one line on stderr naming the problem and the fix, and exits with
status 2. The same happens for a UserError raised while the app runs.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from typing import Any, Callable, NoReturn

from omegaconf import DictConfig

from study.commands import settings  # noqa: F401  (registers the config schemas before anything composes)
from study.commands.argv import CommandLine
from study.commands.confdir import conf_dir, user_overrides
from study.commands.groups import group_options, register_resolver
from study.errors import Failed, UserError
from study.registry import unknown
from study.store.records import StudyError

CONF_DIR = conf_dir()
register_resolver()  # ${command_groups:}: the groups and choices --help lists (study/commands/groups.py)
# Hydra's flags that pick another config, rerun a job, complete a shell or print help leave validation to Hydra.
_HYDRA_OWNS = {"-cn", "--config-name", "-cp", "--config-path", "-cd", "--config-dir", "--experimental-rerun",
               "-sc", "--shell-completion", "-h", "--help", "--hydra-help", "-i", "--info"}

Parse = Callable[[DictConfig], Any]  # the config -> the command's typed request (UserError if invalid)
Check = Callable[[Any], None]  # refuse a request before anything runs
Task = Callable[[Any], None]  # run a request


def fail(message: str) -> NoReturn:
    """Print one line on stderr and exit with status 2."""
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def _sweep_values(override: Any) -> list[str]:
    if not override.is_sweep_override():
        return [override.get_value_element_as_str()]
    return list(override.sweep_string_iterator())


def _may_add(key: str) -> bool:
    # Keys that are open by design: per-objective budget overrides, and Hydra's own settings.
    return key.startswith(("budget.objectives.", "search_budget.objectives.", "hydra.", "hydra/"))


_TYPES = {"Integer": "an integer", "Float": "a number", "Boolean": "true or false"}


def composition_error(e: Exception) -> str:
    """One line for a config that does not compose. A value of the wrong type (the schema's check) reads
    `budget.lr must be a number, got 'fast'`; anything else is Hydra's first line plus the cause it wraps."""
    import re

    first = str(e).splitlines()[0] if str(e) else type(e).__name__
    cause = e.__cause__ or e.__context__
    if cause is None or not str(cause).strip():
        return first
    text = str(cause)
    key = next((ln.split(":", 1)[1].strip() for ln in text.splitlines() if ln.strip().startswith("full_key:")), "")
    line = text.splitlines()[0]
    wrong = re.match(r"Value '(.*)' of type '\w+' could not be converted to (\w+)", line)
    if key and wrong and wrong.group(2) in _TYPES:
        return f"{key} must be {_TYPES[wrong.group(2)]}, got {wrong.group(1)!r}"
    not_bool = re.match(r"Value '(.*)' is not a valid bool", line)
    if key and not_bool:
        return f"{key} must be true or false, got {not_bool.group(1)!r}"
    return f"{first}: {(key + ': ') if key else ''}{text.splitlines()[0]}"


def validate(config_name: str, line: CommandLine, parse: Parse, check: Check) -> None:
    """Compose the config for every value on the command line, parse and check each; exit 2 on error."""
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf.errors import GrammarParseError, InterpolationResolutionError, OmegaConfBaseException

    if any(f.split("=")[0] in _HYDRA_OWNS for f in line.flags):
        return
    module = config_name_to_module(config_name)
    printing = any(f in ("-c", "--cfg") for f in line.flags)
    overrides = line.overrides
    base: list[str] = []
    for o in overrides:
        if o.is_sweep_override() and not line.multirun:
            fail(f"{o.input_line} is a list of values: add -m to run one job per value "
                 f"(python -m {module} -m {o.input_line} ...)")
        values = _sweep_values(o)
        options = group_options(o.key_or_group, CONF_DIR)
        if options is not None and not o.is_delete():
            for v in values:
                if v not in options:
                    fail(unknown(o.key_or_group, v, options))
        if (o.is_add() or o.is_force_add()) and options is None and not _may_add(o.key_or_group):
            fail(f"unknown setting {o.key_or_group!r}: {module} has no such key; "
                 f"drop '{o.input_line}' (see `python -m {module} --help`)")
        base.append(f"{o.get_key_element()}={values[0]}" if values and not o.is_delete() else o.input_line)
    variants = [base]
    for k, o in enumerate(overrides):
        if o.is_sweep_override():
            variants += [base[:k] + [f"{o.get_key_element()}={v}"] + base[k + 1:] for v in _sweep_values(o)[1:]]
    if line.set_aside:  # a dry run's dropped launcher settings, composed as the real run would compose them
        variants.append([o for o in base if not o.startswith("hydra/launcher=")]
                        + [o.input_line for o in line.set_aside])
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        _check_hydra_groups([*overrides, *line.set_aside])
        for overrides_now in variants:
            try:
                cfg = compose(config_name, overrides=[*overrides_now, *user_overrides()])
            except (HydraException, OmegaConfBaseException) as e:
                fail(_unknown_key(config_name, overrides_now, e)
                     or f"{composition_error(e)} (see `python -m {module} --help`)")
            try:
                check(parse(cfg))
            except (InterpolationResolutionError, GrammarParseError) as e:  # an app reading its config directly
                fail(settings.interpolation_problem(e))
            except StudyError as e:
                if not printing:  # `--cfg job` only prints the config: it needs no sample yet
                    fail(str(e))
            except UserError as e:
                fail(str(e))


def _check_hydra_groups(overrides: list[Any]) -> None:
    """Hydra's own config groups (hydra/launcher=...): an unknown choice names the choices."""
    from hydra.core.global_hydra import GlobalHydra

    loader = GlobalHydra.instance().config_loader()
    for o in overrides:
        if o.key_or_group.startswith("hydra/") and not o.is_delete():
            options = loader.get_group_options(o.key_or_group)
            for v in _sweep_values(o):
                if options and v not in options:
                    fail(unknown(o.key_or_group, v, options))


def _unknown_key(config_name: str, overrides: list[str], e: Exception) -> str | None:
    """For `key=value` where the config has no `key`: one line naming the nearest keys and how to list them all."""
    import difflib
    import re

    from hydra import compose
    from omegaconf import OmegaConf

    found = re.match(r"Could not override '([^']+)'", str(e))
    if not found:
        return None
    key = found.group(1)
    module = config_name_to_module(config_name)
    others = [o for o in overrides if o.split("=", 1)[0].lstrip("+~") != key]
    try:
        keys = _leaf_keys(OmegaConf.to_container(compose(config_name, overrides=others), resolve=False))
    except Exception:  # the rest of the line does not compose either: Hydra's own message says why
        return None
    # Compare the last part among the keys of the same parent: `budget.` alone would make every budget key close.
    parent, _, leaf = key.rpartition(".")
    siblings = {k.rpartition(".")[2]: k for k in keys if k.rpartition(".")[0] == parent}
    close = [siblings[m] for m in difflib.get_close_matches(leaf, list(siblings), n=2, cutoff=0.75)]
    hint = f"did you mean {' or '.join(close)}? " if close else ""
    return (f"unknown setting {key!r}: {module} has no such key; {hint}see every setting with "
            f"`python -m {module} --cfg job`")


def _leaf_keys(node: Any, prefix: str = "") -> list[str]:
    if not isinstance(node, dict):
        return [prefix]
    return [k for key, value in node.items() for k in _leaf_keys(value, f"{prefix}{key}" if not prefix
                                                                  else f"{prefix}.{key}")]


def config_name_to_module(config_name: str) -> str:
    """Module that serves a config (train -> study.train, correlate -> analysis.correlate)."""
    return {"correlate": "analysis.correlate", "paper": "analysis.paper"}.get(config_name, f"study.{config_name}")


def hydra_entry(config_name: str, parse: Parse, check: Check, task: Task) -> Callable[..., None]:
    """A `main(line=None)` that validates the command line (parsed once, from sys.argv unless given), then
    runs `task(parse(cfg))` under Hydra after `check`, turning UserError into one line and exit 2."""
    import hydra

    def guarded(cfg: DictConfig) -> None:
        if os.environ.get("SUBMITIT_EXECUTOR") and signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
            # A local job's task inherits Ctrl-C ignored from its controller (study/commands/cluster.py): the
            # task itself answers it, stopping its workers and keeping what is finished.
            signal.signal(signal.SIGINT, signal.default_int_handler)
        try:
            request = parse(cfg)
            check(request)
            task(request)
        except UserError as e:
            logging.getLogger(config_name_to_module(config_name)).debug("user error", exc_info=True)
            fail(str(e))
        except Failed as e:  # not the input's fault: status 1, still one line
            print(f"error: {e}", file=sys.stderr)
            sys.exit(1)
        except KeyboardInterrupt as e:
            if not os.environ.get("SUBMITIT_EXECUTOR"):
                raise  # a plain run: the command's entry says how to go on (study/commands/entry.py)
            # A job of a submitit launcher, stopped by its launcher (Ctrl-C's SIGINT, forwarded): one line in
            # its log rather than a traceback through submitit's frames.
            signum = getattr(e, "signum", signal.SIGINT)
            progress = getattr(e, "progress", None)
            done = f"{progress.done} {getattr(progress.kind, 'nouns', 'jobs')} finished, " if progress is not None else ""
            print(f"interrupted by {signal.Signals(signum).name}: {done}finished runs and each run's last epoch "
                  "are kept; rerunning the sweep resumes", file=sys.stderr)
            sys.exit(128 + signum)

    def main(line: CommandLine | None = None) -> None:
        if line is None:
            try:
                line = CommandLine.parse(sys.argv[1:])
            except UserError as e:
                fail(str(e))
        validate(config_name, line, parse, check)
        sys.argv[1:] = [*line.argv(), *user_overrides()]
        hydra.main(config_path=str(CONF_DIR), config_name=config_name, version_base="1.3")(guarded)()

    return main
