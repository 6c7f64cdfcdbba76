"""Where the Hydra configs are: the copy shipped inside the installed package, else the clone's top-level conf/."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

SOURCE_CONF = Path(__file__).resolve().parents[2] / "conf"  # a clone (and an editable install of it)


def conf_dir() -> Path:
    """The config folder: study/conf of an installed wheel (setup.py copies conf/ there), else the clone's conf/."""
    shipped = Path(str(resources.files("study") / "conf"))
    if (shipped / "common.yaml").is_file():
        return shipped
    return SOURCE_CONF


def user_conf_dir(cwd: Path | None = None) -> Path | None:
    """Site values outside a clone: `./conf/local/` of the working directory, when the package's configs
    are not the clone's own (there conf/local/ sits inside conf/ and Hydra finds it as it is)."""
    folder = (cwd or Path.cwd()) / "conf"
    if conf_dir() == SOURCE_CONF or not (folder / "local").is_dir():
        return None
    return folder


def user_overrides(cwd: Path | None = None) -> list[str]:
    """The override that adds `./conf/` (site values in ./conf/local/) to Hydra's search path beside an
    installed package: `hydra/launcher=slurm` then reads ./conf/local/slurm.yaml as in a clone. Empty otherwise."""
    folder = user_conf_dir(cwd)
    return [] if folder is None else [f"hydra.searchpath=['file://{folder.resolve().as_posix()}']"]
