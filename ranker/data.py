"""Typed data at the ranker's boundary, and its conversion to validated tensors.

Callers hand the ranker plain numpy arrays keyed by feature and task name
(:class:`RankerData`); :func:`encode_features` and :func:`encode_labels` check
them against the model's specs and build the tensors the model eats.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from ranker.features import CategoricalFeature, FeatureSpec, NumericFeature, SequenceFeature
from ranker.tasks import TaskSpec

__all__ = ["RankerData", "encode_features", "encode_labels"]


def _n_rows(
    arrays: Mapping[str, np.ndarray], kind: str, n: int | None, max_ndim: int = 1
) -> int | None:
    for name, arr in arrays.items():
        arr = np.asarray(arr)
        if not 1 <= arr.ndim <= max_ndim:
            expected = "a 1-D array" if max_ndim == 1 else "a 1-D or [n, L] array"
            raise ValueError(f"{kind} {name!r}: expected {expected}, got shape {arr.shape}")
        if n is None:
            n = len(arr)
        elif len(arr) != n:
            raise ValueError(f"{kind} {name!r} has {len(arr)} rows, other arrays have {n}")
    return n


@dataclass(frozen=True)
class RankerData:
    """Rows for the ranker: arrays of ``n`` rows, keyed by name.

    Args:
        features: Feature name -> ``[n]`` array (int ids or numbers), or ``[n, L]``
            int ids for a sequence feature.
        labels: Task name -> ``[n]`` labels in ``[0, 1]``; may be empty for scoring.

    Example:
        >>> d = RankerData({"x": np.zeros(3)}, {"click": np.array([0, 1, 0])})
        >>> d.n_rows, d.take(np.array([1])).labels["click"]
        (3, array([1]))
    """

    features: Mapping[str, np.ndarray]
    labels: Mapping[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.features:
            raise ValueError("RankerData has no features; pass feature name -> array")
        n = _n_rows(self.features, "feature", None, max_ndim=2)
        _n_rows(self.labels, "label", n)

    @property
    def n_rows(self) -> int:
        """Number of rows ``n``."""
        return len(next(iter(self.features.values())))

    def take(self, rows: np.ndarray) -> RankerData:
        """A new RankerData with the given rows (indices or boolean mask).

        Args:
            rows: ``[m]`` int indices or ``[n]`` bool mask.
        """
        return RankerData(
            {k: np.asarray(v)[rows] for k, v in self.features.items()},
            {k: np.asarray(v)[rows] for k, v in self.labels.items()},
        )


def encode_features(
    features: Mapping[str, np.ndarray], specs: Sequence[FeatureSpec]
) -> tuple[Tensor, Tensor]:
    """Check feature arrays against the model's specs and stack them into tensors.

    Args:
        features: Feature name -> ``[n]`` array (``[n, L]`` for a sequence feature);
            exactly the spec's names.
        specs: The model's feature specs.

    Returns:
        ``ids`` ``[n, n_cat + sum(L_s)]`` int64 (categoricals in spec order, then each
        sequence's ``L_s`` columns, as :class:`~ranker.features.FeatureEmbedding`
        reads them) and ``numeric`` ``[n, n_num]`` float32.

    Raises:
        ValueError: Unknown or missing feature, wrong shape, float ids, non-finite numbers.

    Example:
        >>> cat, num = encode_features({"x": np.ones(2)}, [NumericFeature("x")])
        >>> cat.shape, num.shape
        (torch.Size([2, 0]), torch.Size([2, 1]))
    """
    names = [s.name for s in specs]
    unknown = sorted(set(features) - set(names))
    if unknown:
        raise ValueError(f"unknown feature(s) {unknown} in data; the model's features: {names}")
    missing = [n for n in names if n not in features]
    if missing:
        raise ValueError(f"missing feature(s) {missing} in data; the model's features: {names}")
    n = _n_rows(features, "feature", None, max_ndim=2) or 0
    cat_cols: list[np.ndarray] = []
    seq_blocks: list[np.ndarray] = []
    num_cols: list[np.ndarray] = []
    for spec in specs:
        arr = np.asarray(features[spec.name])
        if isinstance(spec, SequenceFeature):
            if arr.shape != (n, spec.length):
                raise ValueError(
                    f"sequence feature {spec.name!r} has shape {arr.shape}; expected "
                    f"{(n, spec.length)} (pad shorter sequences with -1)"
                )
            if not np.issubdtype(arr.dtype, np.integer):
                raise ValueError(
                    f"sequence feature {spec.name!r} has dtype {arr.dtype}; valid: integer ids "
                    "(negative ids are padding)"
                )
            seq_blocks.append(arr.astype(np.int64, copy=False))
            continue
        if arr.ndim != 1:
            raise ValueError(
                f"feature {spec.name!r} has shape {arr.shape}; a {type(spec).__name__} takes "
                "a 1-D array (multi-valued ids need a SequenceFeature)"
            )
        if isinstance(spec, CategoricalFeature):
            if not (np.issubdtype(arr.dtype, np.integer) or arr.dtype == np.bool_):
                raise ValueError(
                    f"categorical feature {spec.name!r} has dtype {arr.dtype}; "
                    "valid: integer ids (out-of-range ids map to the OOV row)"
                )
            cat_cols.append(arr.astype(np.int64, copy=False))
        elif isinstance(spec, NumericFeature):
            if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
                raise ValueError(
                    f"numeric feature {spec.name!r} has non-numeric dtype {arr.dtype}"
                )
            arr32 = arr.astype(np.float32, copy=False)
            if not np.isfinite(arr32).all():
                bad = int(np.flatnonzero(~np.isfinite(arr32))[0])
                raise ValueError(
                    f"numeric feature {spec.name!r} has a non-finite value at row {bad}; "
                    "impute missing values before training or scoring"
                )
            num_cols.append(arr32)
    blocks = ([np.stack(cat_cols, axis=1)] if cat_cols else []) + seq_blocks
    cat = (
        torch.from_numpy(np.ascontiguousarray(np.concatenate(blocks, axis=1)))
        if blocks
        else torch.zeros(n, 0, dtype=torch.long)
    )
    num = torch.from_numpy(np.stack(num_cols, axis=1)) if num_cols else torch.zeros(n, 0)
    return cat, num  # [n, n_cat + sum(L_s)], [n, n_num]


def encode_labels(
    labels: Mapping[str, np.ndarray], tasks: Sequence[TaskSpec]
) -> dict[str, Tensor]:
    """Check label arrays against the tasks and convert them to float32 tensors.

    Labels must lie in ``[0, 1]``; a task that is another's sample space (the
    ``x`` of ``"after:x"``) must be exactly 0/1.

    Args:
        labels: Task name -> ``[n]`` labels; exactly the task names.
        tasks: The model's tasks.

    Returns:
        Task name -> ``[n]`` float32 tensor.

    Example:
        >>> encode_labels({"click": np.array([0, 1])}, [TaskSpec("click")])["click"]
        tensor([0., 1.])
    """
    names = [t.name for t in tasks]
    unknown = sorted(set(labels) - set(names))
    if unknown:
        raise ValueError(f"unknown label(s) {unknown} in data; the model's tasks: {names}")
    missing = [n for n in names if n not in labels]
    if missing:
        raise ValueError(
            f"missing label(s) {missing} in data; training and evaluation need a label "
            f"for every task: {names}"
        )
    parents = {t.parent for t in tasks if t.parent is not None}
    out: dict[str, Tensor] = {}
    for name in names:
        arr = np.asarray(labels[name])
        if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
            raise ValueError(f"label {name!r} has non-numeric dtype {arr.dtype}")
        y = arr.astype(np.float32, copy=False)
        bad = ~((y >= 0) & (y <= 1))
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise ValueError(
                f"label {name!r} has value {arr[row].item()!r} at row {row}; valid: [0, 1]"
            )
        if name in parents:
            nonbin = (y != 0) & (y != 1)
            if nonbin.any():
                row = int(np.flatnonzero(nonbin)[0])
                raise ValueError(
                    f"label {name!r} defines a sample space ('after:{name}') so must be 0 or 1, "
                    f"got {arr[row].item()!r} at row {row}"
                )
        out[name] = torch.from_numpy(np.ascontiguousarray(y))
    return out
