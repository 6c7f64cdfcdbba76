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


def _searchpath() -> str:
    # conf/common.yaml's hydra.searchpath: the working directory's conf/ when it holds site values for an
    # installed package; otherwise the package's own folder again, which adds nothing.
    return (user_conf_dir() or conf_dir()).as_posix()


def register() -> None:
    """Register the `unnas_user_conf` resolver that conf/common.yaml's hydra.searchpath reads (once per process)."""
    from omegaconf import OmegaConf

    if not OmegaConf.has_resolver("unnas_user_conf"):
        OmegaConf.register_new_resolver("unnas_user_conf", _searchpath)
