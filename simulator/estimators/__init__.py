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
``slot_ips``              slot-wise IPS: ``pi(item at its logged slot) / pscore``
                          (item-position model: a slot's label depends on its
                          item and slot only; OBP's ``SlateIndependentIPS``)
``slot_snips``            self-normalized ``slot_ips`` (consistent)
``slot_dr``               DM + ``slot_ips`` correction (item-position model or
                          reward model right)
========================  =====================================================

What each needs of the log (``MissingColumnsError`` names it and the estimators
that would work; a ragged log is fine for every one):

=====================================================  ============================
estimators                                             columns
=====================================================  ============================
``dm``                                                 none (a reward model)
``slot_ips``, ``slot_snips``, ``slot_dr``              ``pscore`` (shown rows), or
                                                       ``pscore_<k>``
``ips``, ``iips``, ``snips``, ``dr``, ``sndr``,        ``pscore_0..pscore_<K-1>``
``clipped_ips``, ``switch``, ``switch_dr``,
``pooled_dr``, ``pi``
``rips``                                               ``prefix_pscore``
=====================================================  ============================

The reward-model estimators (``dm``, the DR family, ``switch``) also need a
reward model; ``pi`` needs an epsilon-greedy logger; ``rips`` needs each
request's shown slots to be its first ones (a prefix).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from simulator.estimators._base import (
    REGISTRY,
    BaseEstimator,
    MissingColumnsError,
    RequestTerms,
    SlateFeedback,
)
from simulator.estimators._clipped_ips import ClippedIPS
from simulator.estimators._dm import DirectMethod
from simulator.estimators._dr import DoublyRobust
from simulator.estimators._estimate import Estimate
from simulator.estimators._ips import IPS
from simulator.estimators._pi import PseudoInverse
from simulator.estimators._pooled_dr import PooledDR
from simulator.estimators._rips import RIPS
from simulator.estimators._slot_dr import SlotDR
from simulator.estimators._slot_ips import SlotIPS
from simulator.estimators._slot_snips import SlotSNIPS
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
    "MissingColumnsError",
    "PseudoInverse",
    "RequestTerms",
    "SlateFeedback",
    "SlotDR",
    "SlotIPS",
    "SlotSNIPS",
    "Switch",
    "SwitchDR",
    "hyperparameters",
    "make_estimator",
]

ESTIMATORS: dict[str, type[BaseEstimator]] = REGISTRY  # _base reads it without this import
ESTIMATORS.update({
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
    "slot_ips": SlotIPS,
    "slot_snips": SlotSNIPS,
    "slot_dr": SlotDR,
})


def hyperparameters(name: str) -> tuple[str, ...]:
    """The hyperparameters (dataclass fields) of the estimator ``name``, e.g. ``("clip",)``.

    Raises:
        ValueError: for an unknown name, listing the valid ones.

    Example:
        >>> hyperparameters("switch"), hyperparameters("snips")
        (('tau',), ())
    """
    if name not in ESTIMATORS:
        raise ValueError(f"unknown estimator {name!r}; valid: {sorted(ESTIMATORS)}")
    return tuple(f.name for f in dataclasses.fields(ESTIMATORS[name]))  # type: ignore[arg-type]


def make_estimator(name: str, params: Mapping[str, float] | None = None) -> BaseEstimator:
    """The estimator of a name, with default settings or the hyperparameters ``params``.

    Args:
        name: a key of :data:`ESTIMATORS`.
        params: hyperparameter -> value (``{"clip": 50.0}``); each must be a field of the
            estimator's class, and the class checks its value.

    Raises:
        ValueError: for an unknown name or parameter, listing the valid ones, or a bad value.

    Example:
        >>> make_estimator("clipped_ips", {"clip": 50.0}).clip
        50.0
    """
    valid = hyperparameters(name)
    params = dict(params or {})
    unknown = sorted(k for k in params if k not in valid)
    if unknown:
        raise ValueError(f"estimator {name!r} has no parameter(s) {unknown}; valid: "
                         f"{list(valid) if valid else 'none (it has no hyperparameters)'}")
    return ESTIMATORS[name](**params)
