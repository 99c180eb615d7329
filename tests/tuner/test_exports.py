"""The lazy re-exports of ``tuner.storage`` and ``tuner.study`` (:mod:`tuner._exports`):
every public name resolves to its module's object, and the list mypy reads (the imports
under ``if TYPE_CHECKING:``) is the list that runs."""

from __future__ import annotations

import ast
import importlib
import inspect

import pytest

from tuner._exports import lazy_exports

PACKAGES = ("tuner.storage", "tuner.study")


def _type_checking_imports(package: str) -> dict[str, set[str]]:
    """Module (relative) -> names imported under ``if TYPE_CHECKING:`` in the package."""
    tree = ast.parse(inspect.getsource(importlib.import_module(package)))
    out: dict[str, set[str]] = {}
    for node in tree.body:
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            for imp in node.body:
                assert isinstance(imp, ast.ImportFrom) and imp.module, ast.dump(imp)
                module = imp.module.removeprefix(package + ".")
                out.setdefault(module, set()).update(a.name for a in imp.names)
    return out


@pytest.mark.parametrize("package", PACKAGES)
def test_the_lists_agree_and_every_name_resolves(package: str) -> None:
    pkg = importlib.import_module(package)
    modules = {m: set(names) for m, names in pkg._MODULES.items()}
    assert modules == _type_checking_imports(package)
    assert set(pkg.__all__) == set().union(*modules.values())
    for module, names in modules.items():
        source = importlib.import_module(f"{package}.{module}")
        for name in names:
            assert getattr(pkg, name) is getattr(source, name), (package, name)
    assert set(pkg.__all__) <= set(dir(pkg))


@pytest.mark.parametrize("package", PACKAGES)
def test_an_unknown_name_is_an_attribute_error(package: str) -> None:
    pkg = importlib.import_module(package)
    with pytest.raises(AttributeError, match=f"module '{package}' has no attribute 'nope'"):
        pkg.nope  # noqa: B018
    with pytest.raises(ImportError, match="nope"):
        exec(f"from {package} import nope", {})


def test_a_name_listed_twice_is_refused() -> None:
    with pytest.raises(ValueError, match="listed under two modules"):
        lazy_exports("json", {"decoder": ("JSONDecodeError",), "x": ("JSONDecodeError",)})
