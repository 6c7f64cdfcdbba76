"""Every command's --version and --help (study/commands/entry.py, each config's hydra.help), run as users do."""

from __future__ import annotations

import importlib

import pytest
from hydra import compose, initialize_config_dir
from hydra.errors import HydraException

import study
from study.commands import search_request
from study.commands.cli import CONF_DIR
from study.commands.entry import SCRIPTS
from study.commands.groups import group_options, overridden, own_groups
from study.errors import UserError

COMMANDS = sorted(SCRIPTS.items())  # console script -> module: every command, parametrised
HYDRA_APPS = [(s, m) for s, m in COMMANDS if m != "launch.status"]  # study.train's config is train.yaml, ...


def groups_block(help_text: str) -> dict[str, list[str]]:
    """The `== Config groups ==` block of --help: group -> every choice listed (a group may have several lines)."""
    block = help_text.split("== Config groups (group=option) ==\n", 1)[1].split("\n\n== Settings", 1)[0]
    listed: dict[str, list[str]] = {}
    for line in block.splitlines():
        group, _, choices = line.partition(": ")
        listed.setdefault(group, []).extend(choices.split(", "))
    return listed


def rendered_help(module: str) -> tuple[str, list[str]]:
    """The command's --help text as Hydra renders its template (in this process: no subprocess per command),
    and the config groups of its defaults list."""
    importlib.import_module(module)  # registers what the command accepts (hydra_entry)
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(module.rpartition(".")[2], return_hydra_config=True)
        return cfg.hydra.help.template, own_groups(cfg.hydra.runtime.choices)


@pytest.mark.parametrize("script, module", COMMANDS)
def test_version_is_this_tools_and_needs_no_study(cli, tmp_path, script, module):
    # Run where no study exists: the version is printed before any check could refuse the command.
    done = cli(module, "--version", f"study_dir={tmp_path / 'none'}", cwd=tmp_path)
    assert (done.returncode, done.stdout, done.stderr) == (0, f"unnas-study {study.__version__} ({module})\n", "")


@pytest.mark.parametrize("script, module", COMMANDS)
def test_help_describes_the_command(cli, tmp_path, script, module):
    done = cli(module, "--help", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    first = done.stdout.splitlines()[0]
    if module == "launch.status":  # not a Hydra app: its own usage line and the module's description
        assert first.startswith("usage: python -m launch.status") and "folder under" in done.stdout
        return
    assert first.startswith(f"{script} (python -m {module}): ") and len(first) > 80
    assert "Hydra" not in first and "== Settings (key=value) ==" in done.stdout
    assert groups_block(done.stdout) == groups_block(rendered_help(module)[0])  # what the test below checks


@pytest.mark.parametrize("script, module", HYDRA_APPS)
def test_help_lists_only_the_groups_and_choices_the_command_takes(script, module):
    """Not the `base` schemas, conf/local.example or another command's groups or recipes: every choice listed is
    one validation takes (a file of the group's folder) and composes for the command; a recipe left out does not.

    Composing is what costs (0.1 s a config): the plain groups' choices compose together, the k-th of each in
    one config, and recipes (whose defaults name other groups) one per set of groups they override, listed or
    not; tests/test_config.py and tests/test_search_config.py compose every recipe with its command.
    """
    text, own = rendered_help(module)
    listed, config = groups_block(text), module.rpartition(".")[2]
    assert sorted(listed) == sorted(own) and listed
    for group, choices in listed.items():
        assert "base" not in choices and set(choices) <= set(group_options(group, CONF_DIR)), (group, choices)
    plain = {g: c for g, c in listed.items() if not any(overridden(g, o) for o in group_options(g, CONF_DIR))}
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        for k in range(max(map(len, plain.values()), default=0)):
            compose(config, overrides=[f"{g}={c[k % len(c)]}" for g, c in plain.items()])
        for group in set(listed) - set(plain):
            kinds = {frozenset(overridden(group, o)): o for o in group_options(group, CONF_DIR)}
            for choice in kinds.values():
                if choice in listed[group]:
                    compose(config, overrides=[f"{group}={choice}"])
                else:
                    with pytest.raises(HydraException):
                        compose(config, overrides=[f"{group}={choice}"])


@pytest.mark.parametrize("group", ["objective", "space", "dataset"])
def test_search_help_hides_exactly_the_choices_the_search_refuses(group, tmp_path):
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        for choice in group_options(group, CONF_DIR):
            if not search_request.accepts(group, choice):
                cfg = compose("search", overrides=[f"{group}={choice}", f"study_dir={tmp_path}"])
                with pytest.raises(UserError):
                    search_request.check(search_request.parse(cfg))


@pytest.mark.parametrize("topic", ["defaults", "searchpath", None])
def test_info_takes_its_optional_topic(cli, tmp_path, topic):
    done = cli("study.train", "--info", *([topic] if topic else []), "budget=tiny", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert {"defaults": "Defaults List", "searchpath": "Config search path", None: "Config search path"}[topic] \
        in done.stdout
