"""Layers: ranker/ (torch) and simulator/ (numpy) never import each other or tuner/."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = {"ranker": {"simulator", "tuner"}, "simulator": {"ranker", "tuner"}}


def imported_roots(source: str, filename: str = "<string>") -> set[str]:
    """Top-level package names a module imports (absolute imports, anywhere in the file)."""
    roots = set()
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
