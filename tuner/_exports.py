"""Public names of a package, each imported from its module on first use (PEP 562).

``tuner.storage`` and ``tuner.study`` re-export names from private modules, some of them
heavy (SQLAlchemy's ORM for :class:`~tuner.storage.ProjectStore`, Optuna's table models for
the trial writer). An ``__init__`` that imported them all would make every import of any
one of their modules pay for all of them, because Python runs a package's ``__init__``
before any of its modules: ``search history``, which only reads, would import the ORM. So
such a package lists where each name lives and imports it when it is first asked for
(``from tuner.storage import read_snapshot`` imports ``tuner.storage._trial_reader`` only).

The package also imports the same names under ``if TYPE_CHECKING:`` so that mypy sees each
name and its type; ``tests/tuner/test_exports.py`` checks that the two lists agree.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(package: str, modules: Mapping[str, Sequence[str]]
                 ) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """A package's module-level ``__getattr__`` and ``__dir__``.

    Args:
        package: the package's ``__name__``.
        modules: module (relative to ``package``, e.g. ``"_check"``) -> the public names
            it defines.

    Raises:
        ValueError: a name is listed under two modules.

    Example:
        >>> getattr_, _ = lazy_exports("json", {"decoder": ("JSONDecodeError",)})
        >>> getattr_("JSONDecodeError").__name__
        'JSONDecodeError'
    """
    where = {name: module for module, names in modules.items() for name in names}
    if len(where) != sum(map(len, modules.values())):
        raise ValueError(f"{package}: a public name is listed under two modules")

    def __getattr__(name: str) -> Any:
        module = where.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{module}"), name)
        setattr(sys.modules[package], name, value)  # later lookups skip this function
        return value

    def __dir__() -> list[str]:
        return sorted({*vars(sys.modules[package]), *where})

    return __getattr__, __dir__
