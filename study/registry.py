"""One name-to-thing registry for spaces, datasets and objectives, and the one "choose one of" message.

Every registry refuses an unknown name the same way: one line naming the kind, the bad name and the
choices, raised as the registry's own UserError subclass so callers can tell whose name was wrong.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Callable, Generic, Iterable, TypeVar

from study.errors import UserError

T = TypeVar("T")


def unknown(kind: str, name: object, choices: Iterable[str]) -> str:
    """The message for a name that is not among `choices`: "unknown <kind> '<name>'; choose one of: ..."."""
    return f"unknown {kind} {name!r}; choose one of: {', '.join(sorted(choices))}"


class Registry(Generic[T]):
    """Things of one kind by name: `@REG.register("name")` adds one, `REG.get(name)` finds it."""

    def __init__(self, kind: str, error: type[UserError] = UserError) -> None:
        self.kind = kind
        self.error = error
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator that registers its target under `name` (a module reloaded re-registers, latest wins)."""

        def wrap(item: T) -> T:
            self._items[name] = item
            return item

        return wrap

    def get(self, name: str) -> T:
        """The thing registered as `name`; the registry's error naming the choices otherwise."""
        if not isinstance(name, str) or name not in self._items:
            raise self.error(unknown(self.kind, name, self._items))
        return self._items[name]

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items


def import_members(package: str, path: Iterable[str], packages_only: bool = False) -> None:
    """Import every module and subpackage of `package` (its `__path__`), so each registers itself
    (`packages_only`: the subpackages alone, for registries whose entries are folders).

    The one way entries join a registry: a new space folder, dataset file or objective file registers by
    being there, with no list of imports to keep.
    """
    for member in pkgutil.iter_modules(list(path)):
        if packages_only and not member.ispkg:
            continue
        importlib.import_module(f"{package}.{member.name}")
