"""When a search has stopped improving beyond the estimator's noise, from its round summaries.

Once a strategy's spread reaches its floor it keeps sampling the same neighbourhood: each
round's best estimate scatters around a plateau, and no further round beats the best so far
by more than the estimator's own interval. :class:`ConvergenceRule` finds the first round
where that has held for ``patience`` rounds; it reads only stored :class:`RoundSummary`
fields, so a finished study's history says where a converged run would have stopped.

Example:
    >>> from tuner.study import RoundSummary
    >>> def r(g, v):
    ...     return RoundSummary(g, 8, v, v - 0.1, v + 0.1, g, {}, {})
    >>> rule = ConvergenceRule(patience=2)
    >>> rule.stop(r(g, v) for g, v in enumerate([1.0, 1.5, 1.55, 1.52])).round
    3
    >>> rule.stop(r(g, v) for g, v in enumerate([1.0, 1.5, 1.7, 1.9])) is None
    True
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import optuna

from tuner.study._attrs import SearchSpec
from tuner.study._history import RoundSummary, completed_rounds, history

if TYPE_CHECKING:
    from tuner.study._loop import Evaluate

__all__ = ["ConvergenceRule", "Stop", "run_until_converged"]


@dataclass(frozen=True)
class Stop:
    """Where and why the rule stops.

    Args:
        round: the last round a converged run runs (0-based).
        reference: the round whose best estimate the later ones failed to beat.
        value: that round's best estimate.
        half_width: half the width of its 95% interval (the estimator's noise).
        patience: rounds without an improvement beyond ``half_width``.
    """

    round: int
    reference: int
    value: float
    half_width: float
    patience: int

    def reason(self) -> str:
        """Why it stopped, for people (e.g. on stderr after "converged after round N: ")."""
        return (f"no round in the last {self.patience} "
                f"beat round {self.reference}'s best estimate {self.value:.5g} by more than "
                f"half its 95% interval ({self.half_width:.3g})")


@dataclass(frozen=True)
class ConvergenceRule:
    """Stop when ``patience`` rounds in a row beat the best round so far by no more than
    half the width of that round's 95% interval.

    The reference is the round with the highest best estimate before the window; a round
    that beats it beyond the half-width becomes the new reference and restarts the count.
    Rounds whose trials all failed (NaN best) count as not improving.

    Args:
        patience: rounds without an improvement beyond the noise before stopping (>= 1).
    """

    patience: int = 3

    def __post_init__(self) -> None:
        if self.patience < 1:
            raise ValueError(f"patience is {self.patience}; need >= 1")

    def stop(self, rounds: Iterable[RoundSummary]) -> Stop | None:
        """The first round after which a converged run stops, or None (not yet).

        Args:
            rounds: complete rounds, in order (a partial last round would stop early).
        """
        ref: RoundSummary | None = None
        quiet = 0
        for r in rounds:
            if ref is None:
                if math.isfinite(r.best_value):
                    ref = r
                continue
            half = (ref.best_high - ref.best_low) / 2
            if not math.isfinite(half):
                half = 0.0
            if math.isfinite(r.best_value) and r.best_value > ref.best_value + half:
                ref, quiet = r, 0
                continue
            quiet += 1
            if quiet >= self.patience:
                return Stop(r.round, ref.round, ref.best_value, half, self.patience)
        return None


def run_until_converged(study: optuna.Study, search: SearchSpec, evaluate: Evaluate,
                        cap: int, rule: ConvergenceRule, progress: bool = True,
                        on_round: Callable[[RoundSummary], None] | None = None,
                        ) -> tuple[list[RoundSummary], Stop | None]:
    """Run rounds one at a time until ``rule`` stops or the study has ``cap`` complete
    rounds; a study that has already converged runs none.

    Returns:
        The summaries of the rounds this call completed, and the rule's stop (None when
        the cap came first).
    """
    # here, not at the top: search history reads the rule and runs no rounds
    from tuner.study._loop import run_rounds

    out: list[RoundSummary] = []
    while True:
        done = completed_rounds(study, search.population)
        stop = rule.stop(history(study, search)[:done])
        if stop is not None or done >= cap:
            return out, stop
        out += run_rounds(study, search, evaluate, rounds=1, progress=progress,
                          on_round=on_round)
