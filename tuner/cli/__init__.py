"""The ``fusiontune`` command line.

``fusiontune demo`` runs the whole loop on the embedded synthetic world;
``fusiontune search run|history|export|pareto|compare`` work on a study in a database;
``fusiontune ranker train|evaluate|score`` run the multi-task ranker from a TOML file.
Exit codes: 0 success, 1 a user error (one-line message, no traceback),
2 a usage error (click's), 130 interrupted.

Importing this package imports click only: each command's module is imported when the
command is looked up (see :class:`tuner.cli._main.LazyGroup`).
"""

from __future__ import annotations

from tuner.cli._main import main

__all__ = ["main"]
