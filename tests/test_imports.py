"""The package's modules import one way: no import cycles (counting the imports made
only for type checking), so every module can be read, tested and replaced from the
bottom up (docs/architecture.md, "Layers")."""

from __future__ import annotations

import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "appliance"
IMPORT = re.compile(r"^[ \t]*from (\.+)([\w.]*) import (\([^)]*\)|.*)$", re.M)


def import_graph() -> dict[str, set[str]]:
    """Module -> the package modules it imports (relative imports, any depth).

    Read with a regular expression, not ``ast``: CPython 3.11.7's AST validator can
    fail spuriously in a process that hit a deep recursion before (gh-106905)."""
    graph: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        parts = ["appliance", *path.relative_to(PACKAGE).with_suffix("").parts]
        is_package = parts[-1] == "__init__"
        name = ".".join(parts[:-1] if is_package else parts)
        package = parts[:-1]
        deps: set[str] = set()
        for dots, module, names in IMPORT.findall(path.read_text()):
            base = package[: len(package) - (len(dots) - 1)]
            target = ".".join([*base, *([module] if module else [])])
            if module:
                deps.add(target)
            else:  # from . import x, y: the modules x and y
                words = re.findall(r"\w+", names.split("#")[0])
                deps |= {f"{target}.{w}" for w in words if w != "as"}
        graph[name] = deps
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    found: list[list[str]] = []
    for start in sorted(graph):
        stack = [(start, [start])]
        while stack:
            node, path = stack.pop()
            for dep in sorted(graph.get(node, ())):
                if dep == start:
                    found.append([*path, dep])
                elif dep not in path and dep in graph:
                    stack.append((dep, [*path, dep]))
    return found


def test_no_import_cycles() -> None:
    graph = import_graph()
    assert "appliance.signaling" in graph and "appliance.http.sessions" in graph["appliance.api"]
    assert cycles(graph) == []


def test_the_import_scan_sees_every_kind_of_relative_import() -> None:
    graph = import_graph()
    assert "appliance.appkeys" in graph["appliance.http.bodies"]  # from ..appkeys import ...
    assert "appliance.http.jsonerrors" in graph["appliance.http.security"]  # from .jsonerrors
    assert "appliance.api" in graph["appliance.app"]  # from . import api
    assert "appliance.signaling" in graph["appliance.appkeys"]  # only for type checking
    assert "appliance.errors" in graph["appliance.media.peer"]  # from ..errors import


def test_the_cycle_finder_finds_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert ["a", "b", "c", "a"] in cycles(graph)
    assert not [c for c in cycles(graph) if c[0] == "d"]
