"""Winning fusion weights as a JSON file a serving system can read.

Example of the file::

    {"formula": "multiplicative", "tasks": ["click", "like"],
     "weights": {"click": 1.0, "like": 0.42},
     "objective": {"value": 0.031, "low": 0.027, "high": 0.035, "split": "holdout"},
     "pick": "cem_mean", "study_name": "s1", "trial_number": null,
     "data_fingerprint": "...", "model_fingerprint": "...",
     "created_at": "2026-01-01T00:00:00+00:00", "extra": {}}
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from simulator.files import atomic_write

__all__ = ["LEGACY_PICKS", "PICKS", "SPLITS", "ExportedWeights", "utc_now_iso"]

PICKS = ("strategy", "best_trial", "trial")
"""How the exported vector was chosen: the study strategy's own pick (CEM: its final mean,
denoised; Optuna's samplers: their best trial), the best single trial, or trial N."""
LEGACY_PICKS = {"cem_mean": "strategy"}
"""Pick names of files written before strategies were pluggable, read as their new name."""
SPLITS = ("holdout", "search")
"""Which logs the reported objective was measured on."""

_KEYS = (
    "formula",
    "tasks",
    "weights",
    "objective",
    "pick",
    "study_name",
    "trial_number",
    "data_fingerprint",
    "model_fingerprint",
    "created_at",
    "extra",
)
_OBJECTIVE_KEYS = ("value", "low", "high", "split")


def utc_now_iso() -> str:
    """Current time, ISO-8601 in UTC (``+00:00``)."""
    return datetime.now(UTC).isoformat()


@dataclass(frozen=True)
class ExportedWeights:
    """A fusion weight vector chosen by a search, with where it came from.

    Args:
        formula: fusion formula name, e.g. ``"multiplicative"``.
        tasks: task names.
        weights: one finite weight per task, same order.
        objective: ``{"value", "low", "high"}`` (finite) and ``"split"`` (one of ``SPLITS``).
        pick: one of ``PICKS``; ``"trial"``/``"best_trial"`` need ``trial_number``,
            ``"cem_mean"`` has none.
        study_name: the study it came from.
        trial_number: the trial, for a trial pick.
        data_fingerprint: fingerprint of the logs it was tuned on.
        model_fingerprint: fingerprint of the ranker whose scores it fuses.
        created_at: ISO-8601 time in UTC.
        extra: other JSON-able facts, e.g. per-task metrics.

    Example:
        >>> e = ExportedWeights("multiplicative", ("click", "like"), (1.0, 0.5),
        ...     {"value": 1.0, "low": 0.9, "high": 1.1, "split": "holdout"}, "cem_mean",
        ...     "s1", None, "d0", "m0", "2026-01-01T00:00:00+00:00")
        >>> ExportedWeights.from_json(e.to_json()) == e
        True
    """

    formula: str
    tasks: tuple[str, ...]
    weights: tuple[float, ...]
    objective: dict[str, Any]
    pick: str
    study_name: str
    trial_number: int | None
    data_fingerprint: str
    model_fingerprint: str
    created_at: str = field(default_factory=utc_now_iso)
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "tasks", tuple(self.tasks))
        object.__setattr__(self, "weights", tuple(float(w) for w in self.weights))
        object.__setattr__(self, "objective", dict(self.objective))
        object.__setattr__(self, "extra", dict(self.extra))
        self._validate()

    @property
    def weight_map(self) -> dict[str, float]:
        """``{task: weight}``."""
        return dict(zip(self.tasks, self.weights, strict=True))

    def to_dict(self) -> dict[str, Any]:
        """The JSON object (weights keyed by task)."""
        return {
            "formula": self.formula,
            "tasks": list(self.tasks),
            "weights": self.weight_map,
            "objective": dict(self.objective),
            "pick": self.pick,
            "study_name": self.study_name,
            "trial_number": self.trial_number,
            "data_fingerprint": self.data_fingerprint,
            "model_fingerprint": self.model_fingerprint,
            "created_at": self.created_at,
            "extra": dict(self.extra),
        }

    def to_json(self) -> str:
        """Strict JSON text (no NaN)."""
        return json.dumps(self.to_dict(), indent=2, allow_nan=False) + "\n"

    @classmethod
    def from_json(cls, text: str) -> ExportedWeights:
        """Parse and validate :meth:`to_json` output; errors name the field at fault."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise ValueError(f"exported weights: not valid JSON: {err}") from err
        if not isinstance(data, dict):
            raise ValueError("exported weights: expected a JSON object at the top level")
        unknown = sorted(set(data) - set(_KEYS))
        missing = [k for k in _KEYS if k not in data]
        if unknown or missing:
            raise ValueError(
                f"exported weights: unknown fields {unknown}, missing fields {missing}; "
                f"valid fields: {list(_KEYS)}"
            )
        tasks, weights = data["tasks"], data["weights"]
        if not isinstance(tasks, list) or not all(isinstance(t, str) for t in tasks):
            raise ValueError("exported weights: field 'tasks' must be a list of task names")
        if not isinstance(weights, dict):
            raise ValueError("exported weights: field 'weights' must be an object {task: w}")
        if set(weights) != set(tasks) or len(weights) != len(tasks):
            raise ValueError(
                f"exported weights: field 'weights' has tasks {sorted(weights)}; field "
                f"'tasks' has {sorted(tasks)}; they must agree"
            )
        for key in ("objective", "extra"):
            if not isinstance(data[key], dict):
                raise ValueError(f"exported weights: field {key!r} must be an object")
        return cls(
            formula=data["formula"],
            tasks=tuple(tasks),
            weights=tuple(_number(weights[t], f"weights.{t}") for t in tasks),
            objective=data["objective"],
            pick=data["pick"],
            study_name=data["study_name"],
            trial_number=data["trial_number"],
            data_fingerprint=data["data_fingerprint"],
            model_fingerprint=data["model_fingerprint"],
            created_at=data["created_at"],
            extra=data["extra"],
        )

    def write(self, path: str | os.PathLike[str]) -> Path:
        """Write atomically (temporary file in the same folder, then ``os.replace``)."""
        path = Path(path)
        text = self.to_json()
        return atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))

    @classmethod
    def read(cls, path: str | os.PathLike[str]) -> ExportedWeights:
        """Read and validate a file written by :meth:`write`."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"exported weights file {str(path)!r} does not exist")
        try:
            return cls.from_json(path.read_text(encoding="utf-8"))
        except ValueError as err:
            raise ValueError(f"{path}: {err}") from err

    def _validate(self) -> None:
        for name in ("formula", "pick", "study_name", "data_fingerprint", "model_fingerprint"):
            if not isinstance(getattr(self, name), str):
                raise ValueError(f"exported weights: field {name!r} must be a string")
        if not self.formula:
            raise ValueError("exported weights: field 'formula' is empty")
        if not self.tasks or len(set(self.tasks)) != len(self.tasks):
            raise ValueError(
                f"exported weights: field 'tasks' {list(self.tasks)} must be non-empty and unique"
            )
        if len(self.weights) != len(self.tasks):
            raise ValueError(
                f"exported weights: field 'weights' has {len(self.weights)} values for "
                f"{len(self.tasks)} tasks"
            )
        for t, w in zip(self.tasks, self.weights, strict=True):
            if not math.isfinite(w):
                raise ValueError(f"exported weights: field 'weights' has {w} for task {t!r}")
        self._validate_objective()
        if self.pick in LEGACY_PICKS:
            object.__setattr__(self, "pick", LEGACY_PICKS[self.pick])
        if self.pick not in PICKS:
            raise ValueError(f"exported weights: field 'pick' is {self.pick!r}; valid: {PICKS}")
        tn = self.trial_number
        if self.pick == "strategy" and tn is not None:
            raise ValueError("exported weights: field 'trial_number' must be null for pick "
                             "'strategy'")
        if self.pick != "strategy" and (isinstance(tn, bool) or not isinstance(tn, int)):
            raise ValueError(
                f"exported weights: field 'trial_number' must be an integer for pick "
                f"{self.pick!r}, got {tn!r}"
            )
        try:
            created = datetime.fromisoformat(self.created_at)
        except (TypeError, ValueError) as err:
            raise ValueError(
                f"exported weights: field 'created_at' {self.created_at!r} is not ISO-8601"
            ) from err
        offset = created.utcoffset()
        if offset is None or offset.total_seconds() != 0:
            raise ValueError(
                f"exported weights: field 'created_at' {self.created_at!r} must be in UTC (+00:00)"
            )
        try:
            json.dumps(self.extra, allow_nan=False)
        except (TypeError, ValueError) as err:
            raise ValueError(f"exported weights: field 'extra' is not JSON-able: {err}") from err

    def _validate_objective(self) -> None:
        obj = self.objective
        if set(obj) != set(_OBJECTIVE_KEYS):
            raise ValueError(
                f"exported weights: field 'objective' has keys {sorted(obj)}; "
                f"need exactly {list(_OBJECTIVE_KEYS)}"
            )
        for key in ("value", "low", "high"):
            obj[key] = _number(obj[key], f"objective.{key}")
        if obj["low"] > obj["high"]:
            raise ValueError(
                f"exported weights: field 'objective' has low {obj['low']} > high {obj['high']}"
            )
        if obj["split"] not in SPLITS:
            raise ValueError(
                f"exported weights: field 'objective.split' is {obj['split']!r}; valid: {SPLITS}"
            )


def _number(x: Any, name: str) -> float:
    if isinstance(x, bool) or not isinstance(x, int | float) or not math.isfinite(x):
        raise ValueError(f"exported weights: field {name!r} is {x!r}; need a finite number")
    return float(x)
