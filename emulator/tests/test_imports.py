"""The emulator package's own imports form no cycle (issue 24).

Read from the source with ``ast``, not by importing: imports inside functions
count too (a cycle through them works only as long as nobody calls the
function at import time, and it hides which module is below which).
"""

from __future__ import annotations

import ast
from pathlib import Path

from conftest import EMULATOR_DIR

PACKAGE = "snapferry_emulator"
PACKAGE_DIR = EMULATOR_DIR / PACKAGE


def _module_name(path: Path) -> str:
    """``snapferry_emulator.rds`` for rds.py, ``snapferry_emulator`` for __init__.py."""
    parts = [PACKAGE, *path.relative_to(PACKAGE_DIR).with_suffix("").parts]
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _read_package() -> dict[str, tuple[Path, str]]:
    """Every module of the package: dotted name -> (file, source)."""
    return {_module_name(p): (p, p.read_text()) for p in sorted(PACKAGE_DIR.rglob("*.py"))}


def _targets(node: ast.AST, module: str, is_package: bool, modules: set[str]) -> list[str]:
    """The package's modules that one import statement imports."""
    found = []
    if isinstance(node, ast.Import):
        for alias in node.names:
            # import snapferry_emulator.x.y imports x.y (and the packages above it)
            if alias.name in modules:
                found.append(alias.name)
    elif isinstance(node, ast.ImportFrom):
        if node.level:
            # from . / .. / .x: relative to the module's own package
            package = module if is_package else module.rpartition(".")[0]
            base_parts = package.split(".")
            base_parts = base_parts[: len(base_parts) - (node.level - 1)]
            base = ".".join([*base_parts, *([node.module] if node.module else [])])
        else:
            base = node.module or ""
        for alias in node.names:
            # from base import name: name is a module itself, or a name in base
            if f"{base}.{alias.name}" in modules:
                found.append(f"{base}.{alias.name}")
            elif base in modules:
                found.append(base)
    return found


def import_graph(sources: dict[str, tuple[Path, str]]) -> dict[str, dict[str, str]]:
    """module -> {imported module -> where ("file.py:line")}, every import, at
    module level or inside a function or class."""
    modules = set(sources)
    graph: dict[str, dict[str, str]] = {name: {} for name in modules}
    for name, (path, source) in sources.items():
        is_package = path.name == "__init__.py"
        for node in ast.walk(ast.parse(source, filename=str(path))):
            for target in _targets(node, name, is_package, modules):
                if target != name:
                    graph[name].setdefault(target, f"{path.name}:{node.lineno}")
    return graph


def find_cycle(graph: dict[str, dict[str, str]]) -> list[str] | None:
    """One cycle as [a, b, ..., a], or None (depth-first search)."""
    done: set[str] = set()
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        if node in path:
            return path[path.index(node) :] + [node]
        if node in done:
            return None
        path.append(node)
        for target in sorted(graph[node]):
            cycle = visit(target)
            if cycle is not None:
                return cycle
        path.pop()
        done.add(node)
        return None

    for start in sorted(graph):
        cycle = visit(start)
        if cycle is not None:
            return cycle
    return None


def describe(graph: dict[str, dict[str, str]], cycle: list[str]) -> str:
    """``a -> b (a.py:3) -> a (b.py:9)``: each step with the import that makes it."""
    short = [name.removeprefix(PACKAGE + ".") for name in cycle]
    steps = [short[0]] + [f"{short[i + 1]} ({graph[cycle[i]][cycle[i + 1]]})" for i in range(len(cycle) - 1)]
    return " -> ".join(steps)


def test_package_imports_have_no_cycle() -> None:
    graph = import_graph(_read_package())
    cycle = find_cycle(graph)
    assert cycle is None, f"import cycle in {PACKAGE}: {describe(graph, cycle)}"


def test_graph_sees_every_import_form() -> None:
    # Without this, a parser that saw no import at all would pass the test above.
    graph = import_graph(_read_package())
    app, server = graph[f"{PACKAGE}.app"], graph[f"{PACKAGE}.server"]
    assert f"{PACKAGE}.rds" in app, "from .rds import x inside a function (app.py)"
    assert f"{PACKAGE}.authz" in app, "from . import x at module level (app.py)"
    assert f"{PACKAGE}.state" in server, "from .state import x at module level (server.py)"


def test_cycle_found_through_every_import_form(tmp_path: Path) -> None:
    # A made-up package with the cycle a -> b -> c -> d -> a, one import form
    # per step, at module level and inside functions; the rest checks resolution.
    files = {
        "__init__.py": "",
        "a.py": "def f():\n    from . import b\n",
        "b.py": "from .c import thing\n",
        "c.py": "import snapferry_emulator.d\n",
        "d.py": "def g():\n    from snapferry_emulator.a import f\n",
        "e.py": "from snapferry_emulator import e2\n",
        "e2.py": "def h():\n    from .. import e\n",  # level 2 from a top-level module: outside the package, ignored
        "sub/__init__.py": "from . import inner\n",
        "sub/inner.py": "from .. import e\n",
    }
    sources = {}
    for rel, text in files.items():
        path = PACKAGE_DIR / rel
        sources[_module_name(path)] = (path, text)
    graph = import_graph(sources)
    assert find_cycle(graph) == [f"{PACKAGE}.{m}" for m in ("a", "b", "c", "d", "a")]
    assert describe(graph, find_cycle(graph)) == "a -> b (a.py:2) -> c (b.py:1) -> d (c.py:1) -> a (d.py:2)"
    assert graph[f"{PACKAGE}.e2"] == {}
    assert graph[f"{PACKAGE}.sub"] == {f"{PACKAGE}.sub.inner": "__init__.py:1"}
    assert graph[f"{PACKAGE}.sub.inner"] == {f"{PACKAGE}.e": "inner.py:1"}
    del graph[f"{PACKAGE}.d"][f"{PACKAGE}.a"]
    assert find_cycle(graph) is None
