"""The product's modules import one way: no module reaches, through any chain of imports,
back to itself.

The graph is read from the source with ``ast``, over every module of the ``outbox``
package (``producers/``, ``worker/``, ``cli/``, ``sandbox/``, as pyproject maps them).
Every import counts: at module level, inside a function, and under ``TYPE_CHECKING``; a
deferred import still says the importer stands on the imported module, and a cycle of
them is a knot a later move turns into an import error. ``from package import name``
counts as an import of the submodule when ``name`` is one. Importing a module also runs
its parent packages' ``__init__``; those implicit edges are not counted (``outbox`` itself
is the producers' package, so every worker module would otherwise reach it).
"""

from __future__ import annotations

import ast
import itertools
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
#: Each folder and the import name setuptools installs it under.
FOLDERS = {
    "producers": "outbox",
    "core": "outbox.core",
    "worker": "outbox.worker",
    "cli": "outbox.cli",
    "sandbox": "outbox.sandbox",
}


def modules() -> dict[str, tuple[Path, bool]]:
    """Every module's import name: its file, and whether it is a package."""
    found: dict[str, tuple[Path, bool]] = {}
    for folder, package in FOLDERS.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = list(path.relative_to(ROOT / folder).with_suffix("").parts)
            is_package = parts[-1] == "__init__"
            if is_package:
                parts = parts[:-1]
            found[".".join([package, *parts])] = (path, is_package)
    return found


def imports_of(name: str, path: Path, is_package: bool, known: set[str]) -> dict[str, int]:
    """The product modules ``name`` imports anywhere in its file, each with a line."""
    out: dict[str, int] = {}

    def add(target: str, line: int) -> None:
        if target in known and target != name:
            out.setdefault(target, line)

    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name if is_package else name.rpartition(".")[0]
                for _ in range(node.level - 1):
                    anchor = anchor.rpartition(".")[0]
                base = f"{anchor}.{base}" if base else anchor
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                add(submodule if submodule in known else base, node.lineno)
    return out


def import_graph() -> dict[str, dict[str, int]]:
    found = modules()
    known = set(found)
    return {name: imports_of(name, path, pkg, known) for name, (path, pkg) in found.items()}


def cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm,
    iterative), each given as one cycle through it, closed (first module again last)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, targets = work[-1]
            for target in targets:
                if target not in index:
                    index[target] = low[target] = len(index)
                    stack.append(target)
                    on_stack.add(target)
                    work.append((target, iter(sorted(graph[target]))))
                    break
                if target in on_stack:
                    low[node] = min(low[node], index[target])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = set()
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.add(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        components.append(component)
    return [_a_cycle(graph, component) for component in components]


def _a_cycle(graph: dict[str, dict[str, int]], component: set[str]) -> list[str]:
    """The shortest way from the component's first module back to itself."""
    start = min(component)
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for target in sorted(graph[node]):
                if target == start:
                    return [*paths[node], start]
                if target in component and target not in paths:
                    paths[target] = [*paths[node], target]
                    following.append(target)
        frontier = following
    raise AssertionError(f"no cycle through {start}")  # a component always has one


def _describe(graph: dict[str, dict[str, int]], cycle: list[str]) -> str:
    steps = [f"{a} (line {graph[a][b]})" for a, b in itertools.pairwise(cycle)]
    return " -> ".join([*steps, cycle[-1]])


def test_no_module_imports_itself_back() -> None:
    graph = import_graph()
    found = cycles(graph)
    assert not found, "imports that run back up:\n" + "\n".join(
        _describe(graph, cycle) for cycle in found
    )


def test_the_graph_sees_every_kind_of_import(tmp_path: Path) -> None:
    """The reader itself: module level, in a function, under ``TYPE_CHECKING``, relative
    and ``from package import submodule`` each make an edge; the cycle is found."""
    source = {
        "a": "from pkg.b import x\n",
        "b": "def f():\n    import pkg.c\n",
        "c": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from . import d\n",
        "d": "from pkg import a\n",
    }
    graph = {
        "pkg.a": {"pkg.b": 1},
        "pkg.b": {"pkg.c": 2},
        "pkg.c": {"pkg.d": 3},
        "pkg.d": {"pkg.a": 1},
    }
    known = {f"pkg.{name}" for name in source} | {"pkg"}
    for name, text in source.items():
        (tmp_path / f"{name}.py").write_text(text)
        assert (
            imports_of(f"pkg.{name}", tmp_path / f"{name}.py", False, known) == graph[f"pkg.{name}"]
        )
    assert cycles(graph) == [["pkg.a", "pkg.b", "pkg.c", "pkg.d", "pkg.a"]]
    assert cycles({"pkg.a": {"pkg.b": 1}, "pkg.b": {}}) == []
