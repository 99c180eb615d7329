"""Winning fusion weights as a JSON file a serving system can read.

The file is a serving contract: ``fusion`` writes the formula out with every parameter
(clip bounds, transform, constants, the pinned task), so a scorer in another language
reproduces the ranking without Python. ``weights.schema.json`` beside this module is its
JSON Schema and ``weights.vectors.json`` a table of scores in, fused scores and order out,
to check such a scorer against. Example of the file::

    {"schema_version": "1.0", "formula": "multiplicative",
     "fusion": {"formula": "multiplicative", "score": "sum_k w_k * log(max(p_k, clip_low))",
                "same_order_as": "prod_k max(p_k, clip_low) ** w_k", "transform": "log",
                "clip_low": 1e-07, "clip_high": null, "pinned": "click"},
     "tasks": ["click", "like"], "weights": {"click": 1.0, "like": 0.42},
     "objective": {"value": 0.031, "low": 0.027, "high": 0.035, "split": "holdout"},
     "pick": "strategy", "study_name": "s1", "trial_number": null,
     "data_fingerprint": "...", "model_fingerprint": "...",
     "created_at": "2026-01-01T00:00:00+00:00", "extra": {}}

Readers take older files (without ``schema_version``: the format before it; pick
``"cem_mean"``: ``"strategy"``) and files of a newer minor version, whose unknown fields
they ignore; a newer major version is refused.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from simulator.files import atomic_write
from simulator.fusion import make_fusion

__all__ = [
    "CONTROL_PICK",
    "FILE_PICKS",
    "LEGACY_PICKS",
    "PICKS",
    "SCHEMA_VERSION",
    "SPLITS",
    "ExportedWeights",
    "utc_now_iso",
]

SCHEMA_VERSION = "1.0"
"""``major.minor`` of the file written: a new minor adds fields (older readers ignore
them), a new major changes the meaning of existing ones."""

PICKS = ("strategy", "best_trial", "trial")
"""How the exported vector was chosen: the study strategy's own pick (CEM: its final mean,
denoised; Optuna's samplers: their best trial), the best single trial, or trial N."""
CONTROL_PICK = "control"
"""The pick of a file holding the control weights, exported because the search's pick did
not beat them on held-out requests."""
FILE_PICKS = (*PICKS, CONTROL_PICK)
"""The picks a file may record."""
LEGACY_PICKS = {"cem_mean": "strategy"}
"""Pick names of files written before strategies were pluggable, read as their new name."""
SPLITS = ("holdout", "search")
"""Which logs the reported objective was measured on."""

_V0_KEYS = (
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
_KEYS = ("schema_version", "formula", "fusion", *_V0_KEYS[1:])
_OBJECTIVE_KEYS = ("value", "low", "high", "split")
_VERSION = re.compile(r"(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)")


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
        pick: one of ``FILE_PICKS``; ``"trial"``/``"best_trial"`` need ``trial_number``,
            ``"strategy"`` and ``"control"`` have none (``"cem_mean"`` reads as ``"strategy"``).
        study_name: the study it came from.
        trial_number: the trial, for a trial pick.
        data_fingerprint: fingerprint of the logs it was tuned on.
        model_fingerprint: fingerprint of the ranker whose scores it fuses.
        created_at: ISO-8601 time in UTC.
        extra: other JSON-able facts, e.g. per-task metrics.
        fusion: the formula written out (:meth:`simulator.fusion.BaseFusion.describe`) with
            ``"pinned"``, the task whose weight the search held at 1 (None: none); empty:
            the formula's defaults, no pinned task.

    Example:
        >>> e = ExportedWeights("multiplicative", ("click", "like"), (1.0, 0.5),
        ...     {"value": 1.0, "low": 0.9, "high": 1.1, "split": "holdout"}, "cem_mean",
        ...     "s1", None, "d0", "m0", "2026-01-01T00:00:00+00:00")
        >>> ExportedWeights.from_json(e.to_json()) == e
        True
        >>> e.fusion["clip_low"], e.pick
        (1e-07, 'strategy')
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
    fusion: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "tasks", tuple(self.tasks))
        object.__setattr__(self, "weights", tuple(float(w) for w in self.weights))
        object.__setattr__(self, "objective", dict(self.objective))
        object.__setattr__(self, "extra", dict(self.extra))
        self._validate()
        self._validate_fusion()

    @property
    def weight_map(self) -> dict[str, float]:
        """``{task: weight}``."""
        return dict(zip(self.tasks, self.weights, strict=True))

    def to_dict(self) -> dict[str, Any]:
        """The JSON object (weights keyed by task)."""
        return {
            "schema_version": SCHEMA_VERSION,
            "formula": self.formula,
            "fusion": dict(self.fusion),
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
        """Parse and validate :meth:`to_json` output; errors name the field at fault.

        Also reads files without ``schema_version`` (the format before it) and of a
        newer minor version (their unknown fields are ignored); a newer major version
        is refused, naming the versions this reader takes.
        """
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise ValueError(f"exported weights: not valid JSON: {err}") from err
        if not isinstance(data, dict):
            raise ValueError("exported weights: expected a JSON object at the top level")
        keys = _KEYS if "schema_version" in data else _V0_KEYS
        if "schema_version" in data and _newer_minor(data["schema_version"]):
            data = {k: v for k, v in data.items() if k in keys}
            if isinstance(data.get("objective"), dict):
                data["objective"] = {k: v for k, v in data["objective"].items()
                                     if k in _OBJECTIVE_KEYS}
        unknown = sorted(set(data) - set(keys))
        missing = [k for k in keys if k not in data]
        if unknown or missing:
            raise ValueError(
                f"exported weights: unknown fields {unknown}, missing fields {missing}; "
                f"valid fields: {list(keys)}"
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
        for key in ("objective", "extra", "fusion"):
            if not isinstance(data.get(key, {}), dict):
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
            fusion=data.get("fusion", {}),
        )

    def write(self, path: str | os.PathLike[str], *, overwrite: bool = True) -> Path:
        """Write atomically (temporary file in the same folder, then ``os.replace``).

        The file's mode is ``0666`` less the umask (``0644`` under umask ``022``).

        Raises:
            FileExistsError: ``path`` exists and ``overwrite`` is false.
        """
        path = Path(path)
        if not overwrite and path.exists():
            raise FileExistsError(f"exported weights file {str(path)!r} exists; it is not "
                                  "overwritten")
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
        if self.pick not in FILE_PICKS:
            raise ValueError(f"exported weights: field 'pick' is {self.pick!r}; valid: "
                             f"{FILE_PICKS}")
        tn = self.trial_number
        numbered = self.pick in ("trial", "best_trial")
        if not numbered and tn is not None:
            raise ValueError("exported weights: field 'trial_number' must be null for pick "
                             f"{self.pick!r}")
        if numbered and (isinstance(tn, bool) or not isinstance(tn, int)):
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

    def _validate_fusion(self) -> None:
        fusion = self.fusion
        if not fusion:  # the format before schema_version: the formula's defaults
            try:
                fusion = {**make_fusion(self.formula).describe(), "pinned": None}
            except ValueError as err:
                raise ValueError(f"exported weights: field 'formula': {err}") from None
            object.__setattr__(self, "fusion", fusion)
        if fusion.get("formula") != self.formula:
            raise ValueError(f"exported weights: field 'fusion.formula' is "
                             f"{fusion.get('formula')!r}; it must equal field 'formula' "
                             f"{self.formula!r}")
        if not isinstance(fusion.get("score"), str):
            raise ValueError("exported weights: field 'fusion.score' must be the formula's "
                             "expression, a string")
        pinned = fusion.get("pinned")
        if pinned is not None and pinned not in self.tasks:
            raise ValueError(f"exported weights: field 'fusion.pinned' is {pinned!r}; valid: "
                             f"null or one of {list(self.tasks)}")
        try:
            json.dumps(fusion, allow_nan=False)
        except (TypeError, ValueError) as err:
            raise ValueError(f"exported weights: field 'fusion' is not JSON-able: {err}") from err

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


def _newer_minor(version: Any) -> bool:
    """Whether a file's ``schema_version`` is a newer minor of this one; refuse others."""
    major, minor = (int(x) for x in SCHEMA_VERSION.split("."))
    match = _VERSION.fullmatch(version) if isinstance(version, str) else None
    if match is None or int(match[1]) != major:
        raise ValueError(
            f"exported weights: field 'schema_version' is {version!r}; this fusiontune reads "
            f"versions {major}.0 to {major}.x (newer minors' unknown fields ignored) and files "
            "without schema_version; a newer major needs a newer fusiontune"
        )
    return int(match[2]) > minor


def _number(x: Any, name: str) -> float:
    if isinstance(x, bool) or not isinstance(x, int | float) or not math.isfinite(x):
        raise ValueError(f"exported weights: field {name!r} is {x!r}; need a finite number")
    return float(x)
