"""Tier 1: the modules of `llmkit.testing` import one another without a cycle.

Every import counts, also one inside a function (the usual way to hide a cycle): the
graph is read from the source, never from `sys.modules`.
"""

from __future__ import annotations

import ast
from pathlib import Path

import llmkit.testing

PACKAGE = "llmkit.testing"
ROOT = Path(llmkit.testing.__file__).parent


def modules() -> dict[str, Path]:
    found = {f"{PACKAGE}.{path.stem}": path for path in ROOT.glob("*.py")}
    found[PACKAGE] = found.pop(f"{PACKAGE}.__init__")
    return found


def imports(path: Path, known: dict[str, Path]) -> set[str]:
    """The modules of the package that ``path`` imports, anywhere in it."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module is not None:
            for alias in node.names:  # `from pkg import module` imports the module
                name = f"{node.module}.{alias.name}"
                found.add(name if name in known else node.module)
    return found & known.keys()


def cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` (its modules in order), or None."""
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> list[str] | None:
        if module in path:
            return [*path[path.index(module) :], module]
        if module in done:
            return None
        for target in sorted(graph[module]):
            found = visit(target, [*path, module])
            if found is not None:
                return found
        done.add(module)
        return None

    for module in sorted(graph):
        found = visit(module, [])
        if found is not None:
            return found
    return None


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert cycle({"a": {"b"}, "b": set()}) is None


def test_the_server_modules_import_one_another_without_a_cycle() -> None:
    known = modules()
    graph = {name: imports(path, known) - {name} for name, path in known.items()}
    # The package imports its modules; none of them imports the package back.
    assert not [name for name, targets in graph.items() if PACKAGE in targets]
    assert cycle(graph) is None
