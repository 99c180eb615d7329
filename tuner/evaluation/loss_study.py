"""What marks a loss-weight study, without importing the ranker (and so torch).

The commands that only read a study (``search history``, ``compare``, ``--help``) ask
:func:`is_loss_study`; the loss-weight machinery itself lives in
:mod:`tuner.evaluation.loss_objective`, imported by the commands that train.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["LOSS_SEARCH", "SPACES", "is_loss_study"]

LOSS_SEARCH = "loss_search"
"""Key of a loss-weight study's settings (the stored search file)."""

SPACES = ("fusion", "loss", "joint")
"""What a search searches: fusion weights, loss weights, or loss weights with inner fusion."""


def is_loss_study(settings: Mapping[str, Any]) -> bool:
    """Whether a study's stored settings are those of a loss or joint search.

    Example:
        >>> is_loss_study({"loss_search": {}}), is_loss_study({"logs": "l.parquet"})
        (True, False)
    """
    return LOSS_SEARCH in settings
