"""The package's modules import one way: no import cycles (counting the imports made
only for type checking), so every module can be read, tested and replaced from the
bottom up (docs/architecture.md, "Layers")."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "appliance"


def import_graph() -> dict[str, set[str]]:
    """Module -> the package modules it imports (relative imports, any depth)."""
    graph: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        parts = ["appliance", *path.relative_to(PACKAGE).with_suffix("").parts]
        is_package = parts[-1] == "__init__"
        name = ".".join(parts[:-1] if is_package else parts)
        package = parts[:-1]
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level:
                base = package[: len(package) - (node.level - 1)]
                target = ".".join([*base, *([node.module] if node.module else [])])
                if node.module is None:  # from . import x: the modules x
                    deps |= {f"{target}.{alias.name}" for alias in node.names}
                else:
                    deps.add(target)
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
    assert "appliance.signaling" in graph and "appliance.http" in graph["appliance.api"]
    assert cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert ["a", "b", "c", "a"] in cycles(graph)
    assert not [c for c in cycles(graph) if c[0] == "d"]
