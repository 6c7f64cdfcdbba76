"""The floors of the code (commands > training > objectives > spaces | data | store): nothing imports upward,
sideways or in a circle."""

from __future__ import annotations

import ast

from tests.conftest import ROOT

# Higher numbers sit on top; a module may import its own package or anything on a lower floor.
FLOORS = {"base": 0, "spaces": 1, "data": 1, "store": 1, "objectives": 2, "training": 3, "commands": 4,
          "launch": 5, "analysis": 5}
ENTRY = {"study.train", "study.sample", "study.search"}  # the command modules users run stay at the top of study/
BASE = {"study", "study.errors", "study.registry", "study.files", "study.shell"}


def _modules() -> dict[str, ast.Module]:
    found = {}
    for top in ("study", "launch", "analysis"):
        for path in sorted((ROOT / top).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = ast.parse(path.read_text())
    return found


def _package(module: str) -> str:
    if module in ENTRY:
        return "commands"
    if module in BASE:
        return "base"
    parts = module.split(".")
    return parts[1] if parts[0] == "study" else parts[0]


def _imports(tree: ast.Module, known: set[str]) -> set[str]:
    """Every module of ours that `tree` imports, at module level or inside functions."""
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{a.name}" for a in node.names] + [node.module]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        for name in names:
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name:
                out.add(name)
                break
    return out


def test_every_module_belongs_to_a_floor():
    assert {_package(m) for m in _modules()} <= set(FLOORS)


def test_nothing_imports_upward_or_sideways():
    modules = _modules()
    wrong = []
    for name, tree in modules.items():
        here = _package(name)
        for target in _imports(tree, set(modules)):
            there = _package(target)
            if there != here and FLOORS[there] >= FLOORS[here]:
                wrong.append(f"{name} ({here}) imports {target} ({there})")
    assert not wrong, "\n".join(wrong)


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each a circle of imports."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    # A package's __init__ re-exports its modules; an edge to the package is an edge to the module it names.
    return {name: {t for t in _imports(tree, set(modules)) if t != name} for name, tree in modules.items()}


def test_cycle_finder_finds_a_circle_and_nothing_else():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_module_imports_itself_back_through_others():
    # Lazy imports inside functions count: a circle is a circle whether or not Python trips over it.
    circles = _cycles(_graph())
    assert not circles, circles


def _private_uses(name: str, tree: ast.Module, known: set[str]) -> list[str]:
    """`from ours import _x` and `ours._x` in module `name`, for modules of ours other than itself."""
    found, aliases = [], {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for a in node.names:
                full = f"{node.module}.{a.name}"
                if full in known:  # `from study.training import workers`: a module bound to a name
                    aliases[a.asname or a.name] = full
                elif node.module in known and node.module != name and a.name.startswith("_") \
                        and not a.name.startswith("__"):
                    found.append(f"{name} imports {node.module}.{a.name}")
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name in known and a.asname:
                    aliases[a.asname] = a.name
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases \
                and node.attr.startswith("_") and not node.attr.startswith("__") and aliases[node.value.id] != name:
            found.append(f"{name} uses {aliases[node.value.id]}.{node.attr}")
    return found


def test_the_private_name_finder_finds_both_forms():
    tree = ast.parse("from study.training import workers\nfrom study.store.records import _GUARD\nworkers._init()\n")
    known = {"study.training.workers", "study.store.records", "study.training"}
    assert _private_uses("study.x", tree, known) == ["study.x imports study.store.records._GUARD",
                                                     "study.x uses study.training.workers._init"]


def test_no_module_uses_another_modules_private_names():
    modules = _modules()
    found = [use for name, tree in modules.items() for use in _private_uses(name, tree, set(modules))]
    assert not found, "\n".join(found)


# Imports of our own modules inside functions (start-up speed, optional parts): a ceiling, not a target.
FUNCTION_LEVEL_IMPORTS = 40


def test_function_level_imports_of_our_modules_stay_few():
    lazy = []
    for name, tree in _modules().items():
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for inner in ast.walk(node):
                    if isinstance(inner, ast.ImportFrom) and inner.level == 0 and inner.module and \
                            inner.module.split(".")[0] in ("study", "analysis", "launch"):
                        lazy.append(f"{name}: {inner.module}")
    assert len(lazy) <= FUNCTION_LEVEL_IMPORTS, f"{len(lazy)} function-level imports:\n" + "\n".join(sorted(lazy))
