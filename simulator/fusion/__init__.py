"""Fusion formulas: per-task scores -> one ranking score.

``FUSIONS`` maps the names used in config files and the CLI to classes.
"""

from __future__ import annotations

from simulator.fusion._additive import AdditiveFusion
from simulator.fusion._base import BaseFusion, WeightError
from simulator.fusion._multiplicative import MultiplicativeFusion
from simulator.fusion._rank import RankFusion

__all__ = [
    "FUSIONS",
    "AdditiveFusion",
    "BaseFusion",
    "MultiplicativeFusion",
    "RankFusion",
    "WeightError",
    "make_fusion",
]

FUSIONS: dict[str, type[BaseFusion]] = {
    "multiplicative": MultiplicativeFusion,
    "additive": AdditiveFusion,
    "rank": RankFusion,
}


def make_fusion(name: str) -> BaseFusion:
    """The fusion formula of a name, with default settings.

    Raises:
        ValueError: for an unknown name, listing the valid ones.
    """
    if name not in FUSIONS:
        raise ValueError(f"unknown fusion formula {name!r}; valid: {sorted(FUSIONS)}")
    return FUSIONS[name]()
