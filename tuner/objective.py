"""The objective: a population of fusion weight vectors -> estimated business value.

It joins the score table and the simulator: the replay evaluates a whole CEM
generation in one vectorized pass and each weight vector becomes one
:class:`~tuner.study.TrialResult` (objective with its interval, ESS and the
per-task estimates).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from simulator.replay import OBJECTIVE, Replay
from tuner.study import TrialResult

__all__ = ["FusionObjective", "parse_objective"]


def parse_objective(text: str) -> dict[str, float]:
    """Parse ``"click=1,conversion=10,like=5"`` into task -> weight.

    Raises:
        ValueError: a malformed term, naming it and the expected form.
    """
    out: dict[str, float] = {}
    for term in filter(None, (t.strip() for t in text.split(","))):
        name, sep, weight = term.partition("=")
        try:
            if not sep or not name.strip():
                raise ValueError
            out[name.strip()] = float(weight)
        except ValueError:
            raise ValueError(
                f"objective term {term!r} is not <task>=<weight>, e.g. 'click=1,like=5'"
            ) from None
        if not np.isfinite(out[name.strip()]):
            raise ValueError(f"objective weight of {name.strip()!r} must be finite")
    if not out:
        raise ValueError("objective is empty; give <task>=<weight> terms, e.g. 'click=1'")
    return out


@dataclass(frozen=True)
class FusionObjective:
    """Callable ``W [M, S] -> list[TrialResult]`` over one replay.

    Args:
        replay: the replay of the search split of the log.
        objective: task -> weight of the business objective.

    Example:
        >>> obj = FusionObjective(replay, {"click": 1.0, "conversion": 10.0})  # doctest: +SKIP
        >>> results = obj(np.array([[1.0, 0.5], [1.0, 2.0]]))  # doctest: +SKIP
    """

    replay: Replay
    objective: Mapping[str, float] = field(default_factory=dict)

    def __call__(self, weights: np.ndarray) -> Sequence[TrialResult]:
        result = self.replay.evaluate(weights, self.objective)
        tasks = self.replay.feedback.tasks
        out = []
        for p in range(len(result)):
            metrics = {t: float(result.value[p, i]) for i, t in enumerate(tasks)}
            out.append(TrialResult.from_estimate(result.estimate(p, OBJECTIVE), metrics))
        return out
