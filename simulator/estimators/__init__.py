"""Off-policy estimators of a ranking policy's value from logged slates.

``ESTIMATORS`` maps the names used in config files and the CLI to classes.
"""

from __future__ import annotations

from simulator.estimators._base import BaseEstimator, RequestTerms, SlateFeedback
from simulator.estimators._dm import DirectMethod
from simulator.estimators._dr import DoublyRobust
from simulator.estimators._estimate import Estimate
from simulator.estimators._ips import IPS
from simulator.estimators._snips import SNIPS

__all__ = [
    "ESTIMATORS",
    "IPS",
    "SNIPS",
    "BaseEstimator",
    "DirectMethod",
    "DoublyRobust",
    "Estimate",
    "RequestTerms",
    "SlateFeedback",
    "make_estimator",
]

ESTIMATORS: dict[str, type[BaseEstimator]] = {
    "dm": DirectMethod,
    "ips": IPS,
    "snips": SNIPS,
    "dr": DoublyRobust,
}


def make_estimator(name: str) -> BaseEstimator:
    """The estimator of a name, with default settings.

    Raises:
        ValueError: for an unknown name, listing the valid ones.
    """
    if name not in ESTIMATORS:
        raise ValueError(f"unknown estimator {name!r}; valid: {sorted(ESTIMATORS)}")
    return ESTIMATORS[name]()
