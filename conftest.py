"""Collection of the whole repository: doctests of ranker/, simulator/, tuner/ and tests/.

pyproject's addopts run every module's ``>>>`` examples (``--doctest-modules``).
Alembic revision scripts are not importable modules (they run inside alembic's
``context``), so they are not collected.
"""

from __future__ import annotations

collect_ignore_glob = ["tuner/storage/migrations/*"]
