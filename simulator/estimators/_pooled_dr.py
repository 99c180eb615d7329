"""Doubly robust with a calibrated reward model, its corrections pooled over the population."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from simulator.estimators._base import (
    BaseEstimator,
    RequestTerms,
    SlateFeedback,
    expose,
    feedback_label_moments,
    importance_weights,
    weight_moments,
)
from simulator.estimators._calibration import calibrate

__all__ = ["PooledDR"]


@dataclass(frozen=True)
class PooledDR(BaseEstimator):
    """DR on a log-calibrated reward model, with its per-vector corrections shrunk.

    For every vector ``p`` of a population, with ``q`` the reward model calibrated on
    the log itself (cross-fitted, :mod:`~simulator.estimators._calibration`):

    ``DM_p = mean_r sum_n e_p q``  and  ``C_p = mean_r sum_{n shown} w_p (y - ex[slot] q)``

    (``w_p = e_p / e_0``); ``DM_p + C_p`` is doubly robust. The correction carries
    all the label noise, and most of it is *shared* by the vectors of a population
    (they show many of the same candidates). So the correction is split into its
    population mean ``C_bar`` (kept whole: it fixes the model's level and moves no
    vector against another) and each vector's deviation ``C_p - C_bar``, shrunk
    towards 0 by a positive-part James-Stein factor per task (with ``prior="linear"``,
    what is left after a least-squares line in the direct method's ``DM_p - DM_bar``),

    ``lambda_t = max(0, 1 - sum_p v_pt / sum_p (C_pt - C_bar_t)^2)``,

    ``v_pt`` the squared standard error of the deviation (its per-request spread over
    ``R``). The estimate is

    ``V_p = DM_p + C_bar + lambda (C_p - C_bar)``.

    Where the deviations are no larger than their noise (the calibrated model ranks
    the vectors as the labels do), ``lambda`` is near 0 and the vectors are ordered by
    the model, without label noise; where the model is wrong for some vectors the
    deviations outgrow their noise and ``lambda -> 1`` (plain DR). As ``R`` grows the
    noise ``v`` falls as ``1 / R``, so ``lambda -> 1`` unless every deviation is 0:
    consistent either way. Intervals: each vector's per-request terms are DR's moved by
    a constant (its pooling shift), so every interval resamples DR's spread around the
    pooled estimate: the pooling moves estimates, it does not claim to narrow them (a
    lift's interval is DR's lift's width too).

    With fewer than ``min_population`` vectors (an A/B pair) ``lambda`` is 1: plain DR
    on the calibrated model. An estimate depends on the population it was made in
    (through ``C_bar`` and ``lambda``), not on how the log is cut into chunks: the
    calibration is fitted once per log (:meth:`prepare`) and the pooling is done on
    the joined terms (:meth:`finish`). Called through :meth:`terms` alone (no
    replay), it is DR on whatever reward model the feedback holds.

    Args:
        shrinkage: a fixed ``lambda`` in ``[0, 1]`` instead of the data's (1: DR on the
            calibrated model; 0: its direct method shifted by ``C_bar``); None (default)
            estimates it.
        calibrate: refit the reward model on the log (else use it as given).
        folds: request folds of the cross-fitted calibration (>= 2).
        min_population: fewest vectors to pool over (>= 3).
        prior: what the deviations are shrunk towards: ``"mean"`` (0, the default) or
            ``"linear"`` (a least-squares line in the direct method's deviations).

    Example:
        >>> est = PooledDR()
        >>> est.name
        'pooled_dr'
    """

    name: ClassVar[str] = "pooled_dr"
    needs_reward_model: ClassVar[bool] = True

    shrinkage: float | None = None
    calibrate: bool = True
    folds: int = 2
    min_population: int = 3
    prior: str = "mean"

    def __post_init__(self) -> None:
        if self.shrinkage is not None and not 0.0 <= self.shrinkage <= 1.0:
            raise ValueError(f"shrinkage must be None or in [0, 1], got {self.shrinkage}")
        if self.folds < 2:
            raise ValueError(f"folds must be >= 2, got {self.folds}")
        if self.prior not in ("linear", "mean"):
            raise ValueError(f"prior must be 'linear' or 'mean', got {self.prior!r}")
        if self.min_population < 3:
            raise ValueError(f"min_population must be >= 3, got {self.min_population}")

    def prepare(self, feedback: SlateFeedback) -> SlateFeedback:
        """The log with its reward model calibrated on its labels (cross-fitted)."""
        self.check_columns(feedback)
        if not self.calibrate:
            return feedback
        if feedback.reward_model is None:
            raise ValueError(f"the {self.name} estimator needs a reward model (per-task "
                             "predictions for every candidate); none was given")
        model = calibrate(feedback.rewards, feedback.shown, feedback.slot_examination,
                          feedback.reward_model, self.folds)
        return dataclasses.replace(feedback, reward_model=model)

    def terms(self, feedback: SlateFeedback, exposure: np.ndarray) -> RequestTerms:
        """DR's terms: the direct method as ``offset``, the correction as ``numerator``."""
        self._check(feedback, exposure)
        assert feedback.reward_model is not None
        w = importance_weights(feedback, exposure)
        q = feedback.reward_model
        residual = feedback.rewards - feedback.slot_examination[..., None] * q
        return RequestTerms(expose(w, residual), None, None, *weight_moments(w),
                            offset=expose(exposure, q), **feedback_label_moments(w, feedback))

    def pooling(self, terms: RequestTerms) -> tuple[np.ndarray, np.ndarray]:
        """The prior's slope ``beta [T]`` and the shrinkage ``lambda [T]`` of each task.

        ``beta`` is the least-squares slope of the corrections' deviations ``C_p - C_bar``
        on the direct method's ``DM_p - DM_bar`` over the population (0 with the
        ``"mean"`` prior); ``lambda`` shrinks what the prior leaves.
        """
        p, r, t = terms.numerator.shape
        if p < self.min_population or r < 2:
            return np.zeros(t), np.ones(t)
        c = terms.numerator
        dev = c - c.mean(axis=0, dtype=np.float64)[None].astype(c.dtype)  # [P, R, T]
        mean = dev.mean(axis=1, dtype=np.float64)  # [P, T]
        beta = np.zeros(t)
        if self.prior == "linear" and terms.offset is not None:
            dm = terms.offset.mean(axis=1, dtype=np.float64)  # [P, T]
            x = dm - dm.mean(axis=0)
            with np.errstate(invalid="ignore", divide="ignore"):
                beta = np.where((x ** 2).sum(axis=0) > 0,
                                (x * mean).sum(axis=0) / (x ** 2).sum(axis=0), 0.0)
            mean = mean - beta * x
        if self.shrinkage is not None:
            return beta, np.full(t, float(self.shrinkage))
        noise = dev.var(axis=1, ddof=1, dtype=np.float64) / r  # [P, T]
        spread, total = (mean ** 2).sum(axis=0), noise.sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            lam = np.where(spread > 0, np.clip(1.0 - total / spread, 0.0, 1.0), 1.0)
        return beta, lam

    def finish(self, terms: RequestTerms) -> RequestTerms:
        """The population's terms with each correction pulled towards the population's.

        Each vector's per-request corrections are moved by one constant, its pooling
        shift ``(1 - lambda) (C_p - C_bar)``: the point estimate is the pooled one, and
        the per-request spread, which every interval resamples, stays DR's.
        """
        beta, lam = self.pooling(terms)
        if (lam == 1.0).all():
            return terms
        c = terms.numerator
        dev = c.mean(axis=1, dtype=np.float64)  # [P, T]
        dev = dev - dev.mean(axis=0)
        if terms.offset is not None:  # what the prior explains is kept
            dm = terms.offset.mean(axis=1, dtype=np.float64)
            dev = dev - beta * (dm - dm.mean(axis=0))
        shift = (1.0 - lam) * dev  # [P, T]
        return dataclasses.replace(terms, numerator=c - shift.astype(c.dtype)[:, None, :])
