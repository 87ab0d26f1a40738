"""Issue 19: the package layout shows the design: a few packages named for what they hold, no import cycles."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import REPO

PACKAGE = REPO / "resattn"


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, known: set[str]) -> set[str]:
    """The resattn modules ``path`` imports, at module level or inside functions (both run when it is used)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # ``from resattn.x import y``: y is a module (resattn.x.y) or a name in resattn.x
            names = [f"{node.module}.{alias.name}" for alias in node.names if f"{node.module}.{alias.name}" in known] or [node.module]
        else:
            continue
        for name in names:
            while name and name not in known:  # ``import resattn.a.b`` names resattn.a.b, a module of the package
                name = name.rpartition(".")[0]
            if name.startswith("resattn"):
                found.add(name)
    return found


def import_graph() -> dict[str, set[str]]:
    """Module -> the package modules it imports (a package's ``__init__`` is the package's name)."""
    files = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {name: imported_modules(path, set(files)) - {name} for name, path in files.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan): each holds an import cycle."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for succ in sorted(graph[node]):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_package_has_no_import_cycles() -> None:
    graph = import_graph()
    assert "resattn.training.fit" in graph and "resattn.training.module" in graph["resattn.training.fit"]  # the graph is read
    assert cycles(graph) == []


def test_the_cycle_search_finds_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]


def test_the_package_root_holds_the_commands_and_few_modules() -> None:
    modules = sorted(p.stem for p in PACKAGE.glob("*.py") if p.name != "__init__.py")
    assert len(modules) <= 8, modules
    names = [p.stem for p in PACKAGE.rglob("*.py") if p.stem != "__init__" and p.parent.name != "schema"]
    assert sorted({n for n in names if names.count(n) > 1}) == [], "one module name, one meaning"
