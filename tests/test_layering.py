"""Layers and import cycles.

ranker/ (torch) and simulator/ (numpy) never import each other or tuner/; and no
package has an import cycle among its own modules, deferred imports (inside
functions) included: a late import that dodges a cycle at load time is still one.
"""

from __future__ import annotations

import ast
from collections import deque
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = {"ranker": {"simulator", "tuner"}, "simulator": {"ranker", "tuner"}}
PACKAGES = ("ranker", "simulator", "tuner")


def imported_roots(source: str, filename: str = "<string>") -> set[str]:
    """Top-level package names a module imports (absolute imports, anywhere in the file)."""
    roots: set[str] = set()
    for node in ast.walk(ast.parse(source, filename=filename)):
        if isinstance(node, ast.Import):
            roots.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_does_not_import_forbidden_layers(package: str) -> None:
    files = sorted((ROOT / package).rglob("*.py"))
    assert files, f"no sources found under {package}/"
    breaches = [
        f"{path.relative_to(ROOT)} imports {root}"
        for path in files
        for root in imported_roots(path.read_text(), str(path)) & FORBIDDEN[package]
    ]
    assert not breaches, breaches


def test_the_walker_sees_nested_and_lazy_imports() -> None:
    source = "def f():\n    from tuner.study import run_rounds\n    import simulator.logs\n"
    assert {"tuner", "simulator"} <= imported_roots(source)


# -- import cycles -----------------------------------------------------------------------


def module_sources(package_dir: Path) -> dict[str, tuple[str, bool]]:
    """Dotted module name -> (source, is a package ``__init__``) for every file of a package."""
    out = {}
    for path in sorted(package_dir.rglob("*.py")):
        parts = list(path.relative_to(package_dir.parent).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts.pop()
        out[".".join(parts)] = (path.read_text(), is_package)
    return out


def _is_type_checking(test: ast.expr) -> bool:
    """``TYPE_CHECKING`` or ``typing.TYPE_CHECKING``: the test of imports that never run."""
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _runtime_imports(tree: ast.AST) -> Iterable[ast.Import | ast.ImportFrom]:
    """Every import statement that can run: module level, in functions and classes, but
    not in the body of ``if TYPE_CHECKING:`` (its ``else:`` does run)."""
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        elif isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
        else:
            stack.extend(ast.iter_child_nodes(node))


def _known(name: str, modules: Mapping[str, object]) -> str | None:
    """The longest prefix of dotted ``name`` that is one of ``modules`` (None: outside)."""
    parts = name.split(".")
    for i in range(len(parts), 0, -1):
        prefix = ".".join(parts[:i])
        if prefix in modules:
            return prefix
    return None


def import_graph(modules: Mapping[str, tuple[str, bool]]) -> dict[str, set[str]]:
    """Module -> the modules among ``modules`` that its import statements load.

    ``import a.b.c`` and ``from a.b.c import x`` load ``a.b.c`` (a package: its
    ``__init__``); ``from a.b import c`` loads the submodule ``a.b.c`` if there is one,
    else ``a.b``. Relative imports are resolved against the importing module's package.
    The implicit loading of parent packages (``a`` and ``a.b`` for ``a.b.c``) is no
    edge: a package's ``__init__`` re-exporting its submodules would otherwise form a
    cycle with every submodule that imports a sibling, harmlessly, since Python puts
    the parent in ``sys.modules`` before it runs the child.
    """
    graph: dict[str, set[str]] = {}
    for name, (source, is_package) in modules.items():
        package = name if is_package else name.rpartition(".")[0]
        targets: set[str | None] = set()
        for node in _runtime_imports(ast.parse(source, filename=name)):
            if isinstance(node, ast.Import):
                targets.update(_known(alias.name, modules) for alias in node.names)
                continue
            if node.level:
                base_parts = package.split(".")
                base_parts = base_parts[: len(base_parts) - (node.level - 1)]
                base = ".".join(base_parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                targets.add(sub if sub in modules else _known(base, modules))
        graph[name] = {t for t in targets if t is not None}
    return graph


def _strongly_connected(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components (iterative), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                components.append(sorted(component))
    return components


def _shortest_cycle_through(
    start: str, graph: Mapping[str, set[str]], within: set[str]
) -> list[str]:
    """The shortest path ``start -> ... -> start`` using only nodes of ``within``."""
    parent: dict[str, str] = {}
    queue = deque([start])
    seen = {start}
    while queue:
        node = queue.popleft()
        for child in sorted(graph.get(node, ())):
            if child == start:
                path = [node]
                while path[-1] != start:
                    path.append(parent[path[-1]])
                return [*reversed(path), start]
            if child in within and child not in seen:
                seen.add(child)
                parent[child] = node
                queue.append(child)
    raise AssertionError(f"{start} is on no cycle")  # pragma: no cover - callers check


def find_cycles(graph: Mapping[str, set[str]]) -> list[str]:
    """Import cycles as readable chains ``"a -> b -> a"``, sorted.

    One shortest cycle through each module that is on any, each cycle once (rotated
    to start at its smallest module); enough to show every module's part in a tangle
    without listing the exponentially many cycles of a big one.
    """
    chains = set()
    for component in _strongly_connected(graph):
        members = set(component)
        if len(component) == 1 and component[0] not in graph.get(component[0], ()):
            continue
        for start in component:
            cycle = _shortest_cycle_through(start, graph, members)[:-1]
            k = cycle.index(min(cycle))
            cycle = cycle[k:] + cycle[:k]
            chains.add(" -> ".join([*cycle, cycle[0]]))
    return sorted(chains)


@pytest.mark.parametrize("package", PACKAGES)
def test_package_has_no_import_cycle(package: str) -> None:
    modules = module_sources(ROOT / package)
    assert modules, f"no sources found under {package}/"
    cycles = find_cycles(import_graph(modules))
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def _synthetic(tmp_path: Path, files: Mapping[str, str]) -> dict[str, tuple[str, bool]]:
    """:func:`module_sources` of a package written from ``{"pkg/x.py": source, ...}``."""
    for relative, source in files.items():
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_text(source)
    return module_sources(tmp_path / "pkg")


def test_the_cycle_finder_sees_a_deferred_cycle_through_a_package_init(
    tmp_path: Path,
) -> None:
    modules = _synthetic(tmp_path, {
        "pkg/__init__.py": "from pkg.train import fit\n",
        "pkg/train.py": "from pkg.heads import Towers\n",
        "pkg/heads/__init__.py": "from .base import Heads\n",
        "pkg/heads/base.py": "def losses():\n    from pkg import train\n",
        "pkg/heads/towers.py": "from . import base\n",
    })
    graph = import_graph(modules)
    assert graph["pkg"] == {"pkg.train"}
    assert graph["pkg.train"] == {"pkg.heads"}  # the package __init__, not a submodule
    assert graph["pkg.heads"] == {"pkg.heads.base"}
    assert graph["pkg.heads.base"] == {"pkg.train"}  # from pkg import <submodule>
    assert graph["pkg.heads.towers"] == {"pkg.heads.base"}
    assert find_cycles(graph) == ["pkg.heads -> pkg.heads.base -> pkg.train -> pkg.heads"]


def test_the_cycle_finder_passes_type_checking_imports_and_acyclic_graphs(
    tmp_path: Path,
) -> None:
    modules = _synthetic(tmp_path, {
        "pkg/__init__.py": "from pkg.a import f\nfrom pkg.b import g\n",
        "pkg/a.py": "import pkg.b\n",
        "pkg/b.py": "import typing\nif typing.TYPE_CHECKING:\n    from pkg.a import f\n",
    })
    assert find_cycles(import_graph(modules)) == []
    assert find_cycles({"a": {"a"}, "b": {"c"}, "c": {"b", "a"}}) == ["a -> a", "b -> c -> b"]
