"""A command line parsed once, by Hydra's own override parser, and the conveniences of `study.train`.

`CommandLine.parse(argv)` splits Hydra's flags (`-m`, `--cfg job`, ...) from the `key=value` overrides and
parses the overrides with Hydra's grammar, once; everything that reads or rewrites the command line
before Hydra starts (validation, the sweep conveniences, the cluster preflight, the summary afterwards)
works on that value. The conveniences of `study.train`, applied before Hydra sees the command line:

- `shards=N` with `-m` and no `shard=`: sweeps `shard=0,...,N-1` (Hydra cannot sweep over a range read
  from another key), so `objective=a,b seed=0,1 shards=16` submits 2 x 16 tasks (2 x 2 x 16 with `fuse=1`);
  more shards than cells to train are capped at the cells.
- `cell=3,17` (one job training those cells, not one job per cell): becomes `cells=['3','17']`.
- `seed=0,1,2` with `-m`: becomes `seed=[0,1,2]`, one job training the seeds side by side (`fuse`), unless
  `fuse=1` asks for one job per seed; a line on stderr says so (`note_one_job`).
- `dry_run=true` with `-m`: runs the sweep with Hydra's basic launcher in this process, so the plan is
  printed here and nothing is submitted (settings of the launcher given, `hydra.launcher.*`, are dropped).
- a GPU launcher preset (`hydra/launcher=gpus`) without `device=`: adds `device=cuda`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Any, Union

from study.errors import UserError
from study.store.cells import read_cells

log = logging.getLogger(__name__)

MULTIRUN = ("-m", "--multirun")
FLAGS_WITH_VALUE = {"-c", "--cfg", "-p", "--package", "-cn", "--config-name", "-cp", "--config-path", "-cd",
                    "--config-dir", "--experimental-rerun", "-sc", "--shell-completion"}
# `--info` takes an optional topic: `--info defaults` is one flag, `--info key=value` is `--info all key=value`.
INFO_FLAGS = {"-i", "--info"}
INFO_TOPICS = {"all", "config", "defaults", "defaults-tree", "plugins", "searchpath"}
GPU_PRESETS = ("gpus",)  # launcher presets that exist to train on GPUs

Item = Union[str, Any]  # a flag (str) or a parsed Hydra Override, in command-line order


def _quote_hint(arg: str) -> str:
    """How to write `arg` so Hydra's grammar accepts it: the value in quotes, the whole word quoted again
    for the shell."""
    key, _, value = arg.partition("=")
    return f"\"{key}='{value}'\""


@dataclass(frozen=True)
class CommandLine:
    """Flags and overrides of one command line, in their order; overrides parsed by Hydra's grammar.

    `set_aside`: the launcher settings a dry run dropped (it runs with the basic launcher); validation still
    composes them, so a dry run refuses what the real run would.
    """

    items: tuple[Item, ...]
    set_aside: tuple[Any, ...] = ()

    @classmethod
    def parse(cls, argv: list[str]) -> "CommandLine":
        """Parse `argv` once; a word Hydra's grammar refuses is a UserError saying how to write it."""
        from hydra.core.override_parser.overrides_parser import OverridesParser
        from hydra.errors import HydraException

        parser = OverridesParser.create()
        items: list[Item] = []
        takes_value = False
        for arg in argv:
            after_info = bool(items) and isinstance(items[-1], str) and items[-1] in INFO_FLAGS
            if after_info and arg not in INFO_TOPICS:
                items.append("all")  # what a bare --info means; Hydra would take the next word for its topic
            topic = after_info and arg in INFO_TOPICS
            if takes_value or topic or arg.startswith("-"):
                items.append(arg)
                takes_value = not takes_value and not topic and arg in FLAGS_WITH_VALUE
                continue
            try:
                items.append(parser.parse_override(arg))
            except HydraException as e:
                reason = str(e).splitlines()[0]
                if "=" in arg and (any(c.isspace() for c in arg) or not arg.isascii()):
                    raise UserError(f"cannot parse {arg!r} ({reason}); quote a value holding spaces or other "
                                    f"characters, e.g. {_quote_hint(arg)}") from None
                before = items[-1] if items and not isinstance(items[-1], str) else None
                if "=" not in arg and before is not None:  # the shell split a value at a space
                    joined = f"{before.input_line} {arg}"
                    raise UserError(f"cannot parse {arg!r}: it looks like the rest of {before.input_line!r}, split "
                                    f"at a space by the shell; quote a value holding spaces, e.g. "
                                    f"{_quote_hint(joined)}") from None
                raise UserError(f"cannot parse {arg!r} on the command line ({reason}); write overrides as "
                                "key=value") from None
        if items and isinstance(items[-1], str) and items[-1] in INFO_FLAGS:
            items.append("all")
        return cls(tuple(items))

    @property
    def overrides(self) -> list[Any]:
        """The parsed overrides (Hydra `Override` objects)."""
        return [i for i in self.items if not isinstance(i, str)]

    @property
    def flags(self) -> list[str]:
        """Hydra's flags and their values."""
        return [i for i in self.items if isinstance(i, str)]

    @property
    def multirun(self) -> bool:
        """Whether `-m` asks for one job per value of each sweep."""
        return any(f in MULTIRUN for f in self.flags)

    def override(self, key: str) -> Any | None:
        """The last override of `key` (without +/~ prefixes), or None."""
        found = [o for o in self.overrides if o.key_or_group == key]
        return found[-1] if found else None

    def value(self, key: str) -> str | None:
        """The value of `key` as written on the command line (a sweep: its first value), or None."""
        o = self.override(key)
        if o is None or o.is_delete():
            return None
        if o.is_sweep_override():
            return next(iter(o.sweep_string_iterator()), None)
        return o.get_value_element_as_str()

    def is_true(self, key: str) -> bool:
        """Whether `key=true` is given."""
        return (self.value(key) or "").strip().lower() == "true"

    def argv(self) -> list[str]:
        """The command line as words again (what Hydra reads)."""
        return [i if isinstance(i, str) else i.input_line for i in self.items]

    def with_items(self, items: list[Item]) -> "CommandLine":
        """A copy holding `items`; strings of the form key=value are parsed like the rest."""
        return CommandLine.parse([i if isinstance(i, str) else i.input_line for i in items])


def seed_list(o: Any) -> list[str]:
    """The seeds of a comma-separated integer sweep (`0,1,2`), else []."""
    if o is None or not o.is_sweep_override() or str(o.value_type) != "ValueType.SIMPLE_CHOICE_SWEEP":
        return []
    values = list(o.value().list)
    return [str(v) for v in values] if all(isinstance(v, int) and not isinstance(v, bool) for v in values) else []


def note_one_job(seeds: list[str], verb: str, apart: str) -> None:
    """Say that `-m seed=0,1,2` runs as one job (Hydra would have made one per seed), and how to get that."""
    if len(seeds) > 1:  # before Hydra configures logging: a warning is what reaches stderr, as the bare message
        log.warning("seed=%s with -m: the %d seeds %s in one job, side by side (as seed=[%s]), not one job per seed; %s",
                    ",".join(seeds), len(seeds), verb, ",".join(seeds), apart)


def _quoted(value: Any) -> str:
    text = str(value).strip().strip("'\"")
    return "'" + text.replace("'", "\\'") + "'"


def chosen_cells(line: CommandLine, default_study_dir: str) -> int | None:
    """How many cells a train command line chooses (`cells=`/`cell=` or the whole sample); None if unknown."""
    from pathlib import Path

    cell = line.override("cell")
    if cell is not None:
        values = list(cell.value().list) if cell.is_sweep_override() else [cell.value()]
        return len([v for v in values if str(v).strip()])
    cells = line.override("cells")
    if cells is not None and isinstance(cells.value(), list):
        return len({str(v).strip() for v in cells.value()})
    study_dir = line.override("study_dir")
    if study_dir is not None and (study_dir.is_sweep_override() or "$" in str(study_dir.value())):
        return None  # a sweep over studies or an interpolation: let each job find its own cells
    try:
        return len(read_cells(Path(str(study_dir.value()) if study_dir else default_study_dir).expanduser()))
    except UserError:
        return None  # the command's own check reports a missing or damaged sample


def expand(line: CommandLine, n_cells: int | None = None) -> CommandLine:
    """`line` with `shards=N`, `cell=...`, seed sweeps, `dry_run=true` and GPU presets expanded (see above).

    `n_cells` (the number of cells the command chooses) caps `shards`: more shards than cells would submit
    tasks with nothing to train.
    """
    multirun, dry = line.multirun, line.is_true("dry_run")
    fuse_one = (line.value("fuse") or "").strip() == "1"
    out: list[Item] = []
    aside: list[Any] = []
    for item in line.items:
        key = None if isinstance(item, str) else item.key_or_group
        if key == "seed" and multirun and seed_list(item) and not fuse_one:
            out.append("seed=[" + ",".join(seed_list(item)) + "]")
            note_one_job(seed_list(item), "train", "fuse=1 gives one job per seed")
        elif key == "cell":
            values = list(item.value().list) if item.is_sweep_override() else [item.value()]
            out.append("cells=[" + ",".join(_quoted(v) for v in values if str(v).strip()) + "]")
        elif multirun and dry and key is not None and (key == "hydra/launcher" or key.startswith("hydra.launcher.")):
            aside.append(item)  # the basic launcher below has none of these settings; validation checks them
            continue
        else:
            out.append(item)
    launcher = line.value("hydra/launcher")
    if launcher in GPU_PRESETS and line.override("device") is None:
        out.append("device=cuda")  # a GPU preset never trains on the CPU by accident
    if multirun:
        shards = line.value("shards") or ""
        if shards.isdigit() and line.override("shard") is None:
            n = int(shards)
            if n_cells is not None and n > max(n_cells, 1):
                log.warning("shards=%s capped at %d: only %d cell(s) to train, more shards would be empty tasks",
                            shards, max(n_cells, 1), n_cells)
                n = max(n_cells, 1)
                out = [f"shards={n}" if not isinstance(i, str) and i.key_or_group == "shards" else i for i in out]
            if n > 1:
                out.append("shard=" + ",".join(str(k) for k in range(n)))
        if dry:
            out.append("hydra/launcher=basic")
    return replace(line.with_items(out), set_aside=tuple(aside))


def dry_run_here(line: CommandLine, items: list[Item]) -> list[Item]:
    """`items` for a `dry_run=true` sweep: the launcher choice and its settings replaced by Hydra's basic
    launcher, so the plan is printed in this process and nothing is submitted (as `expand` does)."""
    if not (line.multirun and line.is_true("dry_run")):
        return items
    kept = [i for i in items if isinstance(i, str) or not (i.key_or_group == "hydra/launcher"
                                                            or i.key_or_group.startswith("hydra.launcher."))]
    return kept + ["hydra/launcher=basic"]


def expand_argv(argv: list[str], n_cells: int | None = None) -> list[str]:
    """`expand` on words: argv in, argv out."""
    return expand(CommandLine.parse(argv), n_cells).argv()


def first_values(line: CommandLine) -> list[str]:
    """The overrides with each sweep cut to its first value: the config of the sweep's first job."""
    return [f"{o.get_key_element()}={next(iter(o.sweep_string_iterator()))}" if o.is_sweep_override()
            else o.input_line for o in line.overrides]


__all__ = ["CommandLine", "chosen_cells", "expand", "expand_argv", "first_values", "note_one_job"]
