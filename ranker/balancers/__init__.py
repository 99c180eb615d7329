"""Loss balancers: per-task losses -> one training step, kept apart from architecture.

:data:`BALANCERS` maps the names a config file uses to the classes; build one
for a model's tasks with ``BALANCERS[name].build(task_names, **options)``.

Example:
    >>> b = BALANCERS["dwa"].build(["click", "like"], temperature=2.0)
    >>> b.current_weights()
    {'click': 1.0, 'like': 1.0}
"""

from __future__ import annotations

from ranker.balancers.base import BaseBalancer
from ranker.balancers.dwa import DWABalancer, dwa_weights
from ranker.balancers.gradnorm import GradNormBalancer
from ranker.balancers.pcgrad import PCGradBalancer, pcgrad
from ranker.balancers.pec import PECBalancer
from ranker.balancers.static import StaticBalancer, check_loss_weights
from ranker.balancers.uncertainty import UncertaintyBalancer

__all__ = [
    "BALANCERS",
    "BaseBalancer",
    "DWABalancer",
    "GradNormBalancer",
    "PCGradBalancer",
    "PECBalancer",
    "StaticBalancer",
    "UncertaintyBalancer",
    "check_loss_weights",
    "dwa_weights",
    "pcgrad",
]

BALANCERS: dict[str, type[BaseBalancer]] = {
    "static": StaticBalancer,
    "uncertainty": UncertaintyBalancer,
    "gradnorm": GradNormBalancer,
    "pcgrad": PCGradBalancer,
    "dwa": DWABalancer,
    "pec": PECBalancer,
}
"""Balancer name (as written in config files) -> class."""
