"""The ``fusiontune`` command line.

``fusiontune demo`` runs the whole loop on the embedded synthetic world;
``fusiontune search run|history|export|pareto|compare`` work on a study in a database;
``fusiontune ranker train|evaluate|score`` run the multi-task ranker from a TOML file.
Exit codes: 0 success, 1 a user error (one-line message, no traceback),
2 a usage error (click's), 130 interrupted.
"""

from __future__ import annotations

from tuner.cli._compare import search_compare
from tuner.cli._main import main
from tuner.cli._pareto import search_pareto
from tuner.cli._ranker import ranker
from tuner.cli._search import search
from tuner.cli._world import world

main.add_command(search)
main.add_command(ranker)
main.add_command(world)
search.add_command(search_pareto)
search.add_command(search_compare)

__all__ = ["main"]
