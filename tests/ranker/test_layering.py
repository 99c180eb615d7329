"""ranker/ must not import simulator/ or tuner/ (they meet only in tuner through arrays)."""

from __future__ import annotations

import ast
from pathlib import Path

RANKER = Path(__file__).resolve().parents[2] / "ranker"


def test_ranker_imports_neither_simulator_nor_tuner() -> None:
    files = sorted(RANKER.rglob("*.py"))
    assert files
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            for name in names:
                root = name.split(".")[0]
                assert root not in {"simulator", "tuner"}, f"{path} imports {name}"
