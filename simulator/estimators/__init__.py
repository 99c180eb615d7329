"""Off-policy estimators of a ranking policy's value from logged slates.

``ESTIMATORS`` maps the names used in config files and the CLI to classes.

========================  =====================================================
name                      estimator (and when it is unbiased)
========================  =====================================================
``dm``                    direct method (reward model right)
``ips``, ``iips``         PBM-IPS: per-candidate exposure ratio. ``iips`` is an
                          alias: our IPS *is* the independent-item IPS, pooled
                          over slots with the examination curve (position-based
                          model; OBP's ``SlateIndependentIPS`` uses one ratio
                          per slot and only needs item-position independence)
``clipped_ips``           PBM-IPS with weights cut at ``clip`` (biased down)
``snips``                 self-normalized PBM-IPS (consistent)
``dr``                    doubly robust (PBM or reward model right)
``sndr``                  self-normalized DR (consistent)
``switch``                IPS where ``w <= tau``, DM elsewhere
``switch_dr``             DM + DR correction where ``w <= tau``
``rips``                  reward-interaction IPS: slate-prefix ratios (label in
                          slot k depends on slots 0..k only: cascades)
``pi``                    pseudo-inverse (additive slate rewards;
                          epsilon-greedy logger)
``pooled_dr``             DR on a reward model calibrated on the log, each
                          vector's correction shrunk towards the population's
                          (consistent; orders a population with less noise)
========================  =====================================================
"""

from __future__ import annotations

from simulator.estimators._base import BaseEstimator, RequestTerms, SlateFeedback
from simulator.estimators._clipped_ips import ClippedIPS
from simulator.estimators._dm import DirectMethod
from simulator.estimators._dr import DoublyRobust
from simulator.estimators._estimate import Estimate
from simulator.estimators._ips import IPS
from simulator.estimators._pi import PseudoInverse
from simulator.estimators._pooled_dr import PooledDR
from simulator.estimators._rips import RIPS
from simulator.estimators._sndr import SNDR
from simulator.estimators._snips import SNIPS
from simulator.estimators._switch import Switch
from simulator.estimators._switch_dr import SwitchDR

__all__ = [
    "ESTIMATORS",
    "IPS",
    "PooledDR",
    "RIPS",
    "SNDR",
    "SNIPS",
    "BaseEstimator",
    "ClippedIPS",
    "DirectMethod",
    "DoublyRobust",
    "Estimate",
    "PseudoInverse",
    "RequestTerms",
    "SlateFeedback",
    "Switch",
    "SwitchDR",
    "make_estimator",
]

ESTIMATORS: dict[str, type[BaseEstimator]] = {
    "dm": DirectMethod,
    "ips": IPS,
    "snips": SNIPS,
    "dr": DoublyRobust,
    "iips": IPS,  # alias: IPS is the independent-item IPS under the position-based model
    "clipped_ips": ClippedIPS,
    "sndr": SNDR,
    "switch": Switch,
    "switch_dr": SwitchDR,
    "rips": RIPS,
    "pi": PseudoInverse,
    "pooled_dr": PooledDR,
}


def make_estimator(name: str) -> BaseEstimator:
    """The estimator of a name, with default settings.

    Raises:
        ValueError: for an unknown name, listing the valid ones.
    """
    if name not in ESTIMATORS:
        raise ValueError(f"unknown estimator {name!r}; valid: {sorted(ESTIMATORS)}")
    return ESTIMATORS[name]()
