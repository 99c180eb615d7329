"""Round summaries recorded in fusiontune's ``fusiontune_rounds`` table as rounds complete.

Apart from :mod:`tuner.study._history` because recording needs :class:`ProjectStore`
(SQLAlchemy's ORM) and reading a history does not.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from optuna.trial import FrozenTrial

from tuner.space import FusionSpace
from tuner.storage import ProjectStore, RoundRecord
from tuner.strategies import BaseStrategy
from tuner.study._history import RoundSummary, _summary

__all__ = ["record_round", "record_round_once"]


def _round_record(study_name: str, s: RoundSummary) -> RoundRecord:
    return RoundRecord(study_name, s.round, s.n_trials, s.best_value, s.best_low, s.best_high,
                       s.best_trial, s.mean, s.sigma, datetime.now(UTC))


def record_round(store: ProjectStore, study_name: str, s: RoundSummary) -> None:
    """Record (or replace) the summary of a round."""
    store.record_round(_round_record(study_name, s))


def record_round_once(store: ProjectStore, study_name: str, g: int,
                      members: Sequence[FrozenTrial], strategy: BaseStrategy,
                      space: FusionSpace) -> bool:
    """Record round ``g`` (told next to ``strategy``) unless recorded; True if this call
    did."""
    s = _summary(g, members, strategy, space)
    return store.record_round_once(_round_record(study_name, s))
