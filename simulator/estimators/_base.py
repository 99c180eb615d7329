"""Base of the off-policy estimators and the arrays they share."""

from __future__ import annotations

import abc
import dataclasses
import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from simulator._log_checks import check_examination
from simulator.logs import LoggedTraffic

if TYPE_CHECKING:
    from simulator.policies import BasePolicy

__all__ = ["PREFIX_PSCORE", "SHOWN_PSCORE", "SLOT_PSCORES", "BaseEstimator",
           "MissingColumnsError", "RequestTerms", "SlateFeedback"]

SLOT_PSCORES = "pscore_<k>"
"""A log's every candidate's propensity of every slot (columns ``pscore_0..pscore_<K-1>``)."""
SHOWN_PSCORE = "pscore"
"""A log's propensity of each shown impression (column ``pscore``; derived from
``pscore_<k>`` when the log has those)."""
PREFIX_PSCORE = "prefix_pscore"
"""A log's logging probability of each logged slate prefix (column ``prefix_pscore``)."""
_SHARED_FIELDS = frozenset({"tasks", "examination"})
"""The fields of :class:`SlateFeedback` that are not per request (every other is ``[R, ...]``)."""

REGISTRY: dict[str, type[BaseEstimator]] = {}
"""Name -> estimator class, filled by :mod:`simulator.estimators` (its ``ESTIMATORS``);
here so that an estimator's refusal can list the others without importing the package."""

_COLUMN_TEXT = {
    SLOT_PSCORES: "pscore_0..pscore_<K-1> columns (every candidate's logging propensity of "
                  "every slot)",
    SHOWN_PSCORE: "pscore column (the propensity of each shown row)",
    PREFIX_PSCORE: "prefix_pscore column (the logging probability of each logged prefix)",
}


class MissingColumnsError(ValueError):
    """A log lacks what an estimator's formula needs; the one-line message names the
    columns and the estimators that would work with the log."""


@dataclass(frozen=True)
class SlateFeedback:
    """What estimators read from a log, precomputed once per log and task order.

    Args:
        tasks: task names, the order of the last axis of ``rewards``.
        rewards: ``[R, N, T]`` float32 observed labels (0 where not shown).
        shown: ``[R, N]`` bool.
        slot_examination: ``[R, N]`` float32 ``examination[position]``, 0 where not shown.
        logging_exposure: ``[R, N]`` float32 logging exposure
            ``e0 = sum_k examination_r[k] * pscore[k]`` over the slots the request
            shows (:attr:`request_examination`); None for a log with only the
            propensities of its shown rows (then the position-based IPS family refuses).
        examination: ``[K]`` examination curve of the position-based model.
        reward_model: ``[R, N, T]`` predicted ``E[label | examined]`` (e.g. the
            ranker's scores), needed by the direct method and doubly robust.
        positions: ``[R, N]`` int64 logged slot, ``-1`` where not shown (the
            slate-native estimators ``rips`` and ``pi`` need it).
        pscores: ``[R, N, K]`` the logging policy's slot marginals ``P(n in slot k)``
            (``pi`` needs them).
        prefix_pscore: ``[R, N]`` logging probability of the logged slate's prefix
            through the slot of each shown row (``rips`` needs it); ignored
            where not shown.
        valid: ``[R, N]`` bool candidate mask of a ragged log (padding False), or None
            (every row a candidate). The replay ranks padding below every candidate.
        logged_pscore: ``[R, N]`` float32 logging propensity of each shown impression
            (0 elsewhere): what the slot-wise estimators divide by.
        slot_shown: ``[R, K]`` bool, which slots each request shows, or None (every
            request shows every slot).

    Raises:
        ValueError: naming the array, for disagreeing shapes, a non-finite
            reward, a propensity or exposure of 0 on a shown candidate, or a
            propensity above 1.
    """

    tasks: tuple[str, ...]
    rewards: np.ndarray
    shown: np.ndarray
    slot_examination: np.ndarray
    logging_exposure: np.ndarray | None
    examination: np.ndarray
    reward_model: np.ndarray | None = None
    positions: np.ndarray | None = None
    pscores: np.ndarray | None = None
    prefix_pscore: np.ndarray | None = None
    valid: np.ndarray | None = None
    logged_pscore: np.ndarray | None = None
    slot_shown: np.ndarray | None = None

    def __post_init__(self) -> None:
        _validate_feedback(self)

    @functools.cached_property
    def request_examination(self) -> np.ndarray:
        """``[K]`` examination curve, or ``[R, K]`` when some request shows fewer slots:
        ``examination[k]`` where request ``r`` shows slot ``k``, else 0 (what a target
        policy's exposure is computed with: its user sees the slots the log's did)."""
        if self.slot_shown is None:
            return self.examination
        return (self.examination[None, :] * self.slot_shown).astype(self.examination.dtype)

    @property
    def columns(self) -> frozenset[str]:
        """What the log gives the estimators: :data:`SLOT_PSCORES`, :data:`SHOWN_PSCORE`,
        :data:`PREFIX_PSCORE`."""
        have = set()
        if self.logging_exposure is not None:
            have.add(SLOT_PSCORES)
        if self.logged_pscore is not None:
            have.add(SHOWN_PSCORE)
        if self.prefix_pscore is not None:
            have.add(PREFIX_PSCORE)
        return frozenset(have)

    @classmethod
    def from_traffic(
        cls,
        traffic: LoggedTraffic,
        tasks: Sequence[str] | None = None,
        examination: np.ndarray | None = None,
        reward_model: np.ndarray | None = None,
    ) -> SlateFeedback:
        """Build from a log; ``examination`` defaults to the one the log carries.

        Raises:
            ValueError: no examination curve, wrong shapes or an unknown task.
        """
        tasks = tuple(traffic.tasks if tasks is None else tasks)
        exam = traffic.examination if examination is None else np.asarray(examination, float)
        if exam is None:
            raise ValueError(
                "the position-based estimators need an examination curve: the log carries "
                "none, so pass examination=[...] with one value in (0, 1] per slot"
            )
        check_examination(exam, traffic.slate_size)
        r, n = traffic.item_ids.shape
        if reward_model is not None and reward_model.shape != (r, n, len(tasks)):
            raise ValueError(f"reward_model must have shape [R, N, T] = {(r, n, len(tasks))}, "
                             f"got {reward_model.shape}")
        shown = traffic.shown
        slot_exam = np.where(shown, exam[np.where(shown, traffic.positions, 0)], 0.0)
        seen = traffic.slot_shown
        slot_shown = None if seen.all() else seen
        # only the slots a request shows expose a candidate
        exposure = None if traffic.pscores is None else traffic.logging_exposure(exam)
        return cls(
            tasks=tasks,
            rewards=traffic.label_matrix(tasks).astype(np.float32),
            shown=shown,
            slot_examination=slot_exam.astype(np.float32),
            logging_exposure=None if exposure is None else exposure.astype(np.float32),
            examination=exam,
            reward_model=None if reward_model is None else reward_model.astype(np.float32),
            positions=traffic.positions,
            pscores=traffic.pscores,
            prefix_pscore=traffic.prefix_pscores,
            valid=traffic.valid,
            logged_pscore=np.nan_to_num(traffic.logged_propensity(), nan=0.0).astype(np.float32),
            slot_shown=slot_shown,
        )

    @property
    def n_requests(self) -> int:
        return int(self.rewards.shape[0])

    @functools.cached_property
    def n_shown(self) -> int:
        """How many candidates were shown (impressions)."""
        return int(self.shown.sum())

    @functools.cached_property
    def labelled(self) -> LabelledRows:
        """The impressions with a label (found once per feedback object)."""
        return LabelledRows.of(self.rewards)

    def chunk(self, start: int, stop: int) -> SlateFeedback:
        """The requests ``start:stop``."""
        return self._rows(slice(start, stop))

    def take(self, rows: np.ndarray) -> SlateFeedback:
        """The requests at row indices ``rows`` ``[R']``, in that order."""
        return self._rows(np.asarray(rows, dtype=np.int64))

    def _rows(self, rows: slice | np.ndarray) -> SlateFeedback:
        """Every per-request array at ``rows``; the tasks and the examination curve kept."""
        def at(name: str) -> Any:
            value = getattr(self, name)
            return value if name in _SHARED_FIELDS or value is None else value[rows]

        return SlateFeedback(**{f.name: at(f.name) for f in dataclasses.fields(self)})

    @property
    def slate_size(self) -> int:
        return int(self.examination.shape[0])

    def logged_slates(self) -> np.ndarray:
        """``[R, K]`` candidate index shown in each slot (needs ``positions``)."""
        if self.positions is None:
            raise ValueError("positions are needed for the logged slates; none were given")
        k = self.slate_size
        key = np.where(self.positions >= 0, self.positions, k)
        return np.argsort(key, axis=-1, kind="stable")[:, :k]


@dataclass(frozen=True)
class RequestTerms:
    """Per-request terms of an estimate for ``P`` policies over ``R`` requests.

    The estimate is ``mean_r numerator[p, r]`` or, when ``denominator`` is set
    (self-normalized estimators), ``scale[p] * sum_r numerator / sum_r denominator``;
    when ``offset`` is set, ``mean_r offset[p, r]`` is added to either (the
    direct-method part of self-normalized doubly robust).
    Keeping the terms per request lets every interval resample requests.

    Args:
        numerator: ``[P, R, T]``.
        denominator: ``[P, R]`` or None.
        scale: ``[P]`` or None (with ``denominator``).
        weight_sum: ``[P]`` sum of importance weights over logged impressions.
        weight_sq_sum: ``[P]`` sum of squared importance weights.
        offset: ``[P, R, T]`` or None, a plain per-request mean added to the estimate.
        label_sum: ``[P, T]`` ``S1[p, t] = sum_{r, n} w y_t`` of the importance
            weights ``w`` the estimator used and the observed labels ``y``, or None
            for an estimator without importance weights (see :meth:`events`).
        label_sq_sum: ``[P, T, T]`` ``S2[p, t, s] = sum_{r, n} w^2 y_t y_s``, or None.
        impressions: number of impressions the weights range over (shown
            candidates), with ``label_sum``.
        impression_label_sum: ``[T]`` unweighted ``sum_{r, n} y_t`` over them.
        impression_label_sq_sum: ``[T, T]`` unweighted ``sum_{r, n} y_t y_s``.
    """

    numerator: np.ndarray
    denominator: np.ndarray | None
    scale: np.ndarray | None
    weight_sum: np.ndarray
    weight_sq_sum: np.ndarray
    offset: np.ndarray | None = None
    label_sum: np.ndarray | None = None
    label_sq_sum: np.ndarray | None = None
    impressions: int = 0
    impression_label_sum: np.ndarray | None = None
    impression_label_sq_sum: np.ndarray | None = None

    @property
    def ess(self) -> np.ndarray:
        """``[P]`` effective sample size ``(sum w)^2 / sum w^2`` (Kish)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.weight_sq_sum > 0, self.weight_sum**2 / self.weight_sq_sum, 0.0)

    def events(self, combine: np.ndarray) -> np.ndarray:
        """``[P, M]`` effective number of label events behind each metric.

        For a metric combining the tasks by a column ``c`` of ``combine`` ``[T, M]``
        it is the Kish effective sample size of the weighted label contributions
        ``w (y @ c)`` over logged impressions:

        ``events = (sum w (y @ c))^2 / sum (w (y @ c))^2 = (S1 c)^2 / (c^T S2 c)``.

        For one binary task it is the ESS of the weighted positive events: a
        rare label with large weights rests on few of them even in a big log,
        and its interval, built from the log alone, may be too narrow. 0 when
        the log holds no event; nan without label sums (e.g. the direct method).
        """
        p, m = self.numerator.shape[0], combine.shape[1]
        if self.label_sum is None or self.label_sq_sum is None:
            return np.full((p, m), np.nan)
        first = np.einsum("pt,tm->pm", self.label_sum, combine)  # row by row, as values
        second = np.einsum("tm,pts,sm->pm", combine, self.label_sq_sum, combine)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(second > 0, first**2 / second, 0.0)

    def expected_events(self, combine: np.ndarray) -> np.ndarray:
        """``[P, M]`` the effective events the weights can expect, whatever the log drew.

        :meth:`events` with each impression's label replaced by the log's mean
        label (the labels taken independent of the weights): with ``m1 = mean y @ c``
        and ``m2 = mean (y @ c)^2`` over the impressions,

        ``expected_events = (sum w)^2 m1^2 / (sum w^2 m2) = ess * m1^2 / m2``,

        for one binary task ``ess`` times its positive rate. Unlike :meth:`events`
        it does not grow when the rare heavily weighted events happen to be
        missing from the log (then the estimate rests on many light ones and
        :meth:`events` is large although the interval is too narrow). 0 without
        events; nan without label sums.
        """
        p, m = self.numerator.shape[0], combine.shape[1]
        if self.impression_label_sum is None or self.impression_label_sq_sum is None:
            return np.full((p, m), np.nan)
        first = self.impression_label_sum @ combine  # [M]
        second = np.einsum("tm,ts,sm->m", combine, self.impression_label_sq_sum, combine)
        with np.errstate(invalid="ignore", divide="ignore"):
            share = np.where(second > 0, first**2 / (self.impressions * second), 0.0)
        return self.ess[:, None] * share[None, :]

    def take(self, policies: np.ndarray) -> RequestTerms:
        """The terms of a subset of the policies (indices into the ``P`` axis)."""
        idx = np.asarray(policies)
        return RequestTerms(
            numerator=self.numerator[idx],
            denominator=None if self.denominator is None else self.denominator[idx],
            scale=None if self.scale is None else self.scale[idx],
            weight_sum=self.weight_sum[idx],
            weight_sq_sum=self.weight_sq_sum[idx],
            offset=None if self.offset is None else self.offset[idx],
            label_sum=None if self.label_sum is None else self.label_sum[idx],
            label_sq_sum=None if self.label_sq_sum is None else self.label_sq_sum[idx],
            impressions=self.impressions,
            impression_label_sum=self.impression_label_sum,
            impression_label_sq_sum=self.impression_label_sq_sum,
        )

    @staticmethod
    def concatenate(parts: Sequence[RequestTerms]) -> RequestTerms:
        """Join the terms of consecutive request chunks.

        A self-normalized estimator's ``scale`` is a mean over requests (the target's
        exposure per request), so the joined scale is the chunks' scales averaged
        with their numbers of requests as weights. The label sums add up; they
        are None unless every chunk has them.
        """
        den = parts[0].denominator
        off = parts[0].offset
        sums = [(p.label_sum, p.label_sq_sum) for p in parts
                if p.label_sum is not None and p.label_sq_sum is not None]
        moments = [(p.impression_label_sum, p.impression_label_sq_sum) for p in parts
                   if p.impression_label_sum is not None and p.impression_label_sq_sum is not None]
        have_sums = len(sums) == len(moments) == len(parts)
        scale = None
        if parts[0].scale is not None:
            sizes = np.array([p.numerator.shape[1] for p in parts], dtype=np.float64)
            scales = np.stack([np.asarray(p.scale, dtype=np.float64) for p in parts])
            scale = sizes @ scales / sizes.sum()
        return RequestTerms(
            numerator=np.concatenate([p.numerator for p in parts], axis=1),
            denominator=None if den is None else np.concatenate(
                [p.denominator for p in parts if p.denominator is not None], axis=1),
            scale=scale,
            weight_sum=np.sum([p.weight_sum for p in parts], axis=0),
            weight_sq_sum=np.sum([p.weight_sq_sum for p in parts], axis=0),
            offset=None if off is None else np.concatenate(
                [p.offset for p in parts if p.offset is not None], axis=1),
            label_sum=np.sum([s1 for s1, _ in sums], axis=0) if have_sums else None,
            label_sq_sum=np.sum([s2 for _, s2 in sums], axis=0) if have_sums else None,
            impressions=sum(p.impressions for p in parts) if have_sums else 0,
            impression_label_sum=np.sum([m1 for m1, _ in moments], axis=0) if have_sums else None,
            impression_label_sq_sum=np.sum([m2 for _, m2 in moments], axis=0)
            if have_sums else None,
        )


class BaseEstimator(abc.ABC):
    """An off-policy estimator of the expected label sum per request.

    Subclasses are small frozen dataclasses (hyperparameters as fields) that
    turn the exposure of target policies into per-request terms.
    """

    name: ClassVar[str]
    needs_reward_model: ClassVar[bool] = False
    needs_columns: ClassVar[tuple[str, ...]] = (SLOT_PSCORES,)
    """What of the log the formula needs (:data:`SLOT_PSCORES`, :data:`SHOWN_PSCORE`,
    :data:`PREFIX_PSCORE`); the position-based exposure ratio needs every slot's."""

    @abc.abstractmethod
    def terms(self, feedback: SlateFeedback, exposure: np.ndarray) -> RequestTerms:
        """Per-request terms.

        Args:
            feedback: the log (a chunk of requests).
            exposure: ``[P, R, N]`` target exposure ``sum_k examination[k] * pi(n in k)``.
        """

    def policy_terms(
        self, feedback: SlateFeedback, policy: BasePolicy, fused: np.ndarray
    ) -> RequestTerms:
        """Per-request terms of ``policy`` ranking by ``fused`` ``[P, R, N]`` scores.

        What the replay calls. Estimators that need only exposure (the default)
        ask the policy for it; slate-native ones (``rips``, ``pi``) override this
        to ask for the slot or prefix probabilities they need.
        """
        return self.terms(feedback, policy.exposure(fused, feedback.request_examination))

    def prepare(self, feedback: SlateFeedback) -> SlateFeedback:
        """The whole log as this estimator reads it, once, before it is cut into chunks.

        The identity (once the log is found to have what the estimator needs,
        :meth:`check_columns`) by default; an estimator that learns from the whole log
        (e.g. a reward model calibrated on it) returns it with what it learned in place.
        """
        self.check_columns(feedback)
        return feedback

    def check_columns(self, feedback: SlateFeedback) -> None:
        """Refuse a log that lacks what the formula needs, in one line.

        Raises:
            MissingColumnsError: naming the columns needed, those the log has, and the
                estimators that work with it.
        """
        have = feedback.columns
        missing = [c for c in self.needs_columns if c not in have]
        if not missing:
            return
        usable = sorted(name for name, cls in REGISTRY.items()
                        if set(cls.needs_columns) <= have)
        gives = " and ".join(_COLUMN_TEXT[c] for c in sorted(have)) or "no propensities"
        raise MissingColumnsError(
            f"the {self.name} estimator needs the log's "
            f"{' and '.join(_COLUMN_TEXT[c] for c in missing)}; this log has only its "
            f"{gives}: estimators that work with it: {', '.join(usable)}")

    def finish(self, terms: RequestTerms) -> RequestTerms:
        """The terms of a whole population on the whole log, once the chunks are joined.

        The identity by default; an estimator that pools across the population
        (shrinkage of per-vector corrections) does it here.
        """
        return terms

    def _check(self, feedback: SlateFeedback, exposure: np.ndarray) -> None:
        if exposure.ndim != 3 or exposure.shape[1:] != feedback.shown.shape:
            raise ValueError(f"exposure must have shape [P, R, N] with [R, N] = "
                             f"{feedback.shown.shape}, got {exposure.shape}")
        if not np.isfinite(exposure).all() or (exposure < 0).any():
            raise ValueError("exposure must be finite and >= 0")
        self.check_columns(feedback)
        if self.needs_reward_model and feedback.reward_model is None:
            raise ValueError(f"the {self.name} estimator needs a reward model (per-task "
                             "predictions for every candidate); none was given")


def _validate_feedback(fb: SlateFeedback) -> None:
    """Shapes and ranges of a :class:`SlateFeedback`; every message names the array."""
    if fb.rewards.ndim != 3 or fb.rewards.shape[2] != len(fb.tasks):
        raise ValueError(f"rewards must have shape [R, N, T] with T = {len(fb.tasks)} tasks, "
                         f"got {fb.rewards.shape}")
    r, n, t = fb.rewards.shape
    for name, arr, shape in [
        ("shown", fb.shown, (r, n)),
        ("slot_examination", fb.slot_examination, (r, n)),
        ("logging_exposure", fb.logging_exposure, (r, n)),
        ("reward_model", fb.reward_model, (r, n, t)),
        ("positions", fb.positions, (r, n)),
        ("prefix_pscore", fb.prefix_pscore, (r, n)),
        ("valid", fb.valid, (r, n)),
        ("logged_pscore", fb.logged_pscore, (r, n)),
    ]:
        if arr is not None and arr.shape != shape:
            raise ValueError(f"{name} must have shape {list(shape)}, got {list(arr.shape)}")
    k = fb.examination.shape[0] if fb.examination.ndim == 1 else -1
    if not ((fb.examination > 0) & (fb.examination <= 1)).all() or k < 1:
        raise ValueError(f"examination must be [K] values in (0, 1], got {fb.examination}")
    if fb.pscores is not None and fb.pscores.shape != (r, n, k):
        raise ValueError(f"pscores must have shape [R, N, K] = {[r, n, k]}, "
                         f"got {list(fb.pscores.shape)}")
    if fb.slot_shown is not None and fb.slot_shown.shape != (r, k):
        raise ValueError(f"slot_shown must have shape [R, K] = {[r, k]}, "
                         f"got {list(fb.slot_shown.shape)}")
    _validate_ranges(fb)


def _validate_ranges(fb: SlateFeedback) -> None:
    """The value ranges of a :class:`SlateFeedback` of valid shapes."""
    if not np.isfinite(fb.rewards).all():
        raise ValueError("rewards must be finite")
    if fb.reward_model is not None and not np.isfinite(fb.reward_model).all():
        raise ValueError("reward_model must be finite")
    shown = fb.shown
    e0 = fb.logging_exposure
    if e0 is not None and (not np.isfinite(e0).all() or ((e0 <= 0) & shown).any()
                           or (e0 > 1 + 1e-6).any()):
        raise ValueError("logging_exposure must be in (0, 1] on shown candidates (a shown "
                         "candidate had logging propensity 0, or a propensity exceeds 1)")
    lp = fb.logged_pscore
    if lp is not None and not (np.isfinite(lp).all() and (lp[shown] > 0).all()
                               and (lp <= 1 + 1e-6).all()):
        raise ValueError("logged_pscore must be in (0, 1] on shown candidates")
    if fb.valid is not None and (shown & ~fb.valid).any():
        raise ValueError("a padding row (valid False) is shown")
    if fb.positions is not None and ((fb.positions >= 0) != shown).any():
        raise ValueError("positions must be >= 0 exactly where shown is True")
    if fb.pscores is not None:
        ps = fb.pscores
        if not np.isfinite(ps).all() or (ps < 0).any() or (ps > 1 + 1e-9).any():
            raise ValueError("pscores must be propensities in [0, 1]")
        if fb.positions is not None:
            slot = np.where(shown, fb.positions, 0)
            logged = np.take_along_axis(ps, slot[..., None], axis=2)[..., 0]
            if ((logged <= 0) & shown).any():
                raise ValueError("pscores of a logged impression must be > 0, got 0")
    if fb.prefix_pscore is not None:
        pp = np.where(shown, fb.prefix_pscore, 1.0)
        if not (np.isfinite(pp) & (pp > 0) & (pp <= 1 + 1e-9)).all():
            raise ValueError("prefix_pscore must be in (0, 1] on shown candidates")


def logging_exposure(feedback: SlateFeedback) -> np.ndarray:
    """``[R, N]`` the log's logging exposure; refused (one line) for a log without it."""
    if feedback.logging_exposure is None:
        raise MissingColumnsError(
            f"this estimator needs the log's {_COLUMN_TEXT[SLOT_PSCORES]}; the log has only "
            "the propensities of its shown rows")
    return feedback.logging_exposure


def importance_weights(feedback: SlateFeedback, exposure: np.ndarray) -> np.ndarray:
    """``[P, R, N]`` PBM importance weights ``e_pi / e_0`` on shown candidates, else 0."""
    e0 = logging_exposure(feedback)
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = np.where(feedback.shown, 1.0 / e0, 0.0).astype(np.float32)
    return exposure * inv[None]


def expose(exposure: np.ndarray, coef: np.ndarray) -> np.ndarray:
    """``sum_n exposure[p, r, n] * coef[r, n, c]``: ``[P, R, N] x [R, N, C] -> [P, R, C]``.

    A batched matmul over requests; 20x faster than the equivalent ``einsum``.
    """
    coef = coef.astype(exposure.dtype, copy=False)
    if exposure.shape[0] == 1:
        # one policy would be a vector-matrix product, which rounds otherwise than a row of a
        # matrix product: padded to two, a policy's terms do not depend on its company
        two = np.matmul(np.repeat(exposure, 2, axis=0).transpose(1, 0, 2), coef)
        return two[:, :1].transpose(1, 0, 2)
    out = np.matmul(exposure.transpose(1, 0, 2), coef)
    return out.transpose(1, 0, 2)


def weight_moments(weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``[P]`` sums of weights and of squared weights."""
    flat = weights.reshape(weights.shape[0], -1)
    return flat.sum(axis=1, dtype=np.float64), np.einsum("pi,pi->p", flat, flat, dtype=np.float64)


@dataclass(frozen=True)
class LabelledRows:
    """The impressions that carry a label, found once per log (labels are mostly 0).

    Args:
        rows: ``[n]`` flat indices into the label array's leading axes.
        labels: ``[n, T]`` float64 their labels.
        pairs: ``[n, T * T]`` float64 products ``y_t y_s``.
        label_total: ``[T]`` ``sum y_t`` over them (the same for every population).
        pair_total: ``[T, T]`` ``sum y_t y_s`` over them.
    """

    rows: np.ndarray
    labels: np.ndarray
    pairs: np.ndarray
    label_total: np.ndarray
    pair_total: np.ndarray

    @classmethod
    def of(cls, labels: np.ndarray) -> LabelledRows:
        """From ``[*shape, T]`` labels (0 off the impressions)."""
        t = labels.shape[-1]
        y = labels.reshape(-1, t)
        rows = np.flatnonzero(y.any(axis=1))
        y = y[rows].astype(np.float64)
        pairs = (y[:, :, None] * y[:, None, :]).reshape(-1, t * t)
        return cls(rows, y, pairs, y.sum(axis=0), pairs.sum(axis=0).reshape(t, t))


def label_moments(weights: np.ndarray, labels: np.ndarray, impressions: int,
                  labelled: LabelledRows | None = None) -> dict[str, Any]:
    """The label sums of :class:`RequestTerms`, as its keyword arguments.

    Args:
        weights: ``[P, *shape]`` importance weights the estimator used (e.g.
            ``[P, R, N]``), 0 where an impression is not weighted.
        labels: ``[*shape, T]`` observed labels (0 off the impressions).
        impressions: how many entries of ``shape`` are impressions (shown).
        labelled: ``LabelledRows.of(labels)`` when already at hand (a replay asks
            once per log chunk, not once per population).

    Returns:
        ``label_sum`` ``[P, T]`` ``sum w y_t``, ``label_sq_sum`` ``[P, T, T]``
        ``sum w^2 y_t y_s`` (float64), ``impressions`` and their unweighted
        ``impression_label_sum`` ``[T]`` and ``impression_label_sq_sum`` ``[T, T]``.
    """
    t = labels.shape[-1]
    flat = weights.reshape(weights.shape[0], -1)
    if flat.shape[1] * t != labels.size:
        raise ValueError(f"weights {weights.shape} and labels {labels.shape} must share the "
                         "shape of all but the first (weights) and last (labels) axis")
    # only impressions with a label count: sum over those alone. The products run in
    # torch: numpy's multi-threaded OpenBLAS left spinning beside torch's top-k threads
    # made the whole replay pass ~1.6x slower on 2 cores (bench/replay.py).
    import torch  # here: 'fusiontune --help' and history never load it

    found = LabelledRows.of(labels) if labelled is None else labelled
    w = torch.from_numpy(np.ascontiguousarray(flat)).index_select(
        1, torch.from_numpy(found.rows)).double()
    return {"label_sum": (w @ torch.from_numpy(found.labels)).numpy(),
            "label_sq_sum": ((w * w) @ torch.from_numpy(found.pairs)).numpy().reshape(-1, t, t),
            "impressions": int(impressions), "impression_label_sum": found.label_total,
            "impression_label_sq_sum": found.pair_total}


def feedback_label_moments(weights: np.ndarray, feedback: SlateFeedback) -> dict[str, Any]:
    """:func:`label_moments` of a log's observed labels (``rewards``) and impressions."""
    return label_moments(weights, feedback.rewards, feedback.n_shown, feedback.labelled)
