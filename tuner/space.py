"""The fusion-weight search space, with one task's weight pinned to 1.

Ranking by ``sum_k w_k log p_k`` (or ``prod_k p_k ** w_k``) does not change when every
weight is multiplied by the same positive number, so one weight carries no information: it
is pinned to 1.0 and the search runs over the others (``dim = T - 1``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from optuna.distributions import FloatDistribution

__all__ = ["FusionSpace"]


@dataclass(frozen=True)
class FusionSpace:
    """Box ``[low, high]^dim`` over the weights of every task but the pinned one.

    Args:
        tasks: task names in the order of the full weight vector, e.g. ``("click", "like")``.
        pinned: the task whose weight is fixed at 1.0.
        low: lower bound of every free weight.
        high: upper bound of every free weight.
        prefix: prefix of the Optuna parameter names (``"w_"``: fusion weights;
            a loss-weight search uses ``"loss_"``).

    Example:
        >>> space = FusionSpace(("click", "like", "follow"), pinned="click")
        >>> space.param_names
        ('w_like', 'w_follow')
        >>> space.to_weights({"w_like": 0.5, "w_follow": 2.0}).tolist()
        [1.0, 0.5, 2.0]
    """

    tasks: tuple[str, ...]
    pinned: str
    low: float = 0.0
    high: float = 4.0
    prefix: str = "w_"

    def __post_init__(self) -> None:
        tasks = tuple(self.tasks)
        object.__setattr__(self, "tasks", tasks)
        if len(tasks) < 2:
            raise ValueError(
                f"FusionSpace.tasks has {len(tasks)} task(s) {list(tasks)}; "
                "fusion needs at least 2 tasks"
            )
        dupes = sorted({t for t in tasks if tasks.count(t) > 1})
        if dupes:
            raise ValueError(f"FusionSpace.tasks repeats {dupes}; each task must appear once")
        if self.pinned not in tasks:
            raise ValueError(
                f"FusionSpace.pinned {self.pinned!r} is not a task; valid: {list(tasks)}"
            )
        if not (np.isfinite(self.low) and np.isfinite(self.high)) or self.low >= self.high:
            raise ValueError(
                f"FusionSpace bounds low={self.low} high={self.high} are invalid; "
                "need finite low < high"
            )

    @property
    def free_tasks(self) -> tuple[str, ...]:
        """Tasks whose weights are searched, in ``tasks`` order (all but ``pinned``)."""
        return tuple(t for t in self.tasks if t != self.pinned)

    @property
    def dim(self) -> int:
        """Number of searched weights, ``len(tasks) - 1``."""
        return len(self.tasks) - 1

    @property
    def param_names(self) -> tuple[str, ...]:
        """Optuna parameter names, ``"<prefix><task>"`` for each free task."""
        return tuple(f"{self.prefix}{t}" for t in self.free_tasks)

    def distributions(self) -> dict[str, FloatDistribution]:
        """One ``FloatDistribution(low, high)`` per parameter name."""
        return {name: FloatDistribution(self.low, self.high) for name in self.param_names}

    def to_params(self, x: np.ndarray) -> dict[str, float]:
        """Map one point ``x [dim]`` to ``{param_name: value}``."""
        x = np.asarray(x, dtype=np.float64)
        self._check_width(x.reshape(1, -1), "x")
        return {name: float(v) for name, v in zip(self.param_names, x, strict=True)}

    def from_params(self, params: Mapping[str, float]) -> np.ndarray:
        """Map ``{param_name: value}`` to a point ``x [dim]``; missing names are an error."""
        missing = [n for n in self.param_names if n not in params]
        if missing:
            raise KeyError(f"params lack {missing}; the space needs {list(self.param_names)}")
        return np.array([float(params[n]) for n in self.param_names], dtype=np.float64)

    def to_weights(self, params: Mapping[str, float]) -> np.ndarray:
        """Full weight vector ``w [T]`` in ``tasks`` order, pinned task = 1.0."""
        return self.matrix_to_weights(self.from_params(params)[None, :])[0]

    def matrix_to_weights(self, X: np.ndarray) -> np.ndarray:
        """Map points ``X [M, dim]`` to full weight vectors ``W [M, T]`` (pinned column = 1)."""
        X = np.asarray(X, dtype=np.float64)
        self._check_width(X, "X")
        W = np.ones((X.shape[0], len(self.tasks)), dtype=np.float64)
        free = [i for i, t in enumerate(self.tasks) if t != self.pinned]
        W[:, free] = X
        return W

    def from_weights(self, w: np.ndarray) -> np.ndarray:
        """Project a full weight vector ``w [T]`` to a point ``x [dim]``.

        The vector is rescaled so that the pinned weight is 1 (same ranking), then the
        pinned entry is dropped. A vector already of length ``dim`` is returned as is.
        """
        w = np.asarray(w, dtype=np.float64).reshape(-1)
        if w.shape[0] == self.dim:
            return w.copy()
        if w.shape[0] != len(self.tasks):
            raise ValueError(
                f"weight vector has {w.shape[0]} entries; need {len(self.tasks)} "
                f"(tasks {list(self.tasks)}) or {self.dim} (free tasks {list(self.free_tasks)})"
            )
        scale = w[self.tasks.index(self.pinned)]
        if not (np.isfinite(scale) and scale > 0):
            raise ValueError(
                f"weight of pinned task {self.pinned!r} is {scale}; it must be positive "
                "to rescale the vector"
            )
        return np.array([w[i] / scale for i, t in enumerate(self.tasks) if t != self.pinned])

    def clip(self, X: np.ndarray) -> np.ndarray:
        """Clip points ``X [..., dim]`` into the box ``[low, high]``."""
        return np.clip(np.asarray(X, dtype=np.float64), self.low, self.high)

    def contains(self, X: np.ndarray) -> bool:
        """Whether every point of ``X [..., dim]`` is finite and inside the box."""
        X = np.asarray(X, dtype=np.float64)
        return bool(np.all(np.isfinite(X))) and bool(np.array_equal(X, self.clip(X)))

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form, inverse of :meth:`from_dict` (``prefix`` only when not ``"w_"``,
        so the spaces stored by studies made before it existed still compare equal)."""
        out: dict[str, Any] = {
            "tasks": list(self.tasks),
            "pinned": self.pinned,
            "low": float(self.low),
            "high": float(self.high),
        }
        if self.prefix != "w_":
            out["prefix"] = self.prefix
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FusionSpace:
        """Build from :meth:`to_dict` output."""
        return cls(
            tasks=tuple(data["tasks"]),
            pinned=str(data["pinned"]),
            low=float(data["low"]),
            high=float(data["high"]),
            prefix=str(data.get("prefix", "w_")),
        )

    def _check_width(self, X: np.ndarray, what: str) -> None:
        if X.ndim != 2 or X.shape[1] != self.dim:
            raise ValueError(
                f"{what} has shape {X.shape}; need [M, {self.dim}] "
                f"(free tasks {list(self.free_tasks)})"
            )
