"""Base of the fusion formulas: per-task scores -> one ranking score."""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

__all__ = ["BaseFusion", "WeightError"]


class WeightError(ValueError):
    """A fusion weight vector is unusable; the message says what is valid."""


class BaseFusion(abc.ABC):
    """A fusion formula that is linear in its weights after a per-task transform.

    Every formula of the project has the form ``score = sum_k w_k * F_k(scores)``
    for a transform ``F`` applied once per score table, so a whole population of
    weight vectors is fused with one matrix product.

    Subclasses set ``name`` and ``allows_negative`` and implement ``transform`` and
    ``describe``.
    """

    name: ClassVar[str]
    allows_negative: ClassVar[bool] = False

    @abc.abstractmethod
    def transform(self, scores: np.ndarray) -> np.ndarray:
        """Per-task features to be weighted.

        Args:
            scores: ``[R, N, T]`` per-task scores of ``N`` candidates in ``R`` requests.

        Returns:
            ``[R, N, T]`` float32 array ``F(scores)``.
        """

    @abc.abstractmethod
    def describe(self) -> dict[str, Any]:
        """The formula and every parameter of it, as JSON-able values.

        What a scorer in another language needs to reproduce the ranking without
        Python: ``formula`` (``name``), ``score`` (the expression ranked, highest
        first) and the formula's own settings (clip bounds, transform, constants),
        taken from the same attributes :meth:`transform` uses.
        """

    def prepare(self, scores: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
        """:meth:`transform` of a score table whose requests may be ragged.

        Args:
            scores: ``[R, N, T]`` per-task scores; on padding anything (ignored).
            valid: ``[R, N]`` bool, False on padding; None: every row is a candidate
                (then this is :meth:`transform` exactly).

        Returns:
            ``[R, N, T]`` float32: a request's candidates transformed as if it had no
            padding (a rank-based transform ranks padding after them), padding 0.
        """
        if valid is None:
            return self.transform(scores)
        lowest = np.where(valid[..., None], scores, -np.inf)
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            out = self.transform(lowest)
        return np.where(valid[..., None], out, 0.0).astype(np.float32)

    def fuse(self, transformed: np.ndarray, weights: np.ndarray,
             valid: np.ndarray | None = None) -> np.ndarray:
        """Fused ranking scores of a population of weight vectors.

        Args:
            transformed: ``[R, N, T]`` output of :meth:`transform` (or :meth:`prepare`).
            weights: ``[P, T]`` weight vectors, or ``[P, R, T]``: one row per request
                (personalised policies).
            valid: ``[R, N]`` bool, False on the padding of ragged requests, which gets
                the score ``-inf`` (no policy shows it); None: every row is a candidate.

        Returns:
            ``[P, R, N]`` fused scores.
        """
        import torch  # here: 'fusiontune --help' and history never load it

        # torch's einsum is 2x numpy's here, and zero-copy both ways
        x = torch.from_numpy(np.ascontiguousarray(transformed))
        w = torch.from_numpy(np.ascontiguousarray(weights, dtype=transformed.dtype))
        fused = torch.einsum("rnt,prt->prn" if w.ndim == 3 else "rnt,pt->prn", x, w)
        if valid is not None:
            fused.masked_fill_(torch.from_numpy(~np.asarray(valid, dtype=bool))[None],
                               float("-inf"))
        return fused.numpy()

    def validate_weights(self, weights: np.ndarray, tasks: Sequence[str]) -> np.ndarray:
        """Check a weight vector ``[T]`` or population ``[P, T]``; return it as ``[P, T]``.

        Raises:
            WeightError: wrong length, non-finite or (where the formula forbids it)
                negative weights; the message names the task and what is valid.
        """
        w = np.asarray(weights, dtype=np.float64)
        if w.ndim == 1:
            w = w[None, :]
        if w.ndim != 2 or w.shape[1] != len(tasks):
            raise WeightError(
                f"{self.name} fusion needs {len(tasks)} weights, one per task "
                f"{list(tasks)}; got shape {np.asarray(weights).shape}"
            )
        bad = ~np.isfinite(w)
        if bad.any():
            p, t = np.argwhere(bad)[0]
            raise WeightError(f"weight of task {tasks[t]!r} is {w[p, t]}; weights must be finite")
        if not self.allows_negative and (w < 0).any():
            p, t = np.argwhere(w < 0)[0]
            raise WeightError(
                f"weight of task {tasks[t]!r} is {w[p, t]}; {self.name} fusion needs weights >= 0"
            )
        if (np.abs(w).sum(axis=1) == 0).any():
            raise WeightError("all weights are zero; at least one task must have weight != 0")
        return w
