"""What a search reads: its settings, and the log and score table they point to.

A study stores :class:`SearchSettings` as JSON in its user attributes, so
``search run``, ``search history`` and ``search export`` rebuild the same
replays from the database alone: the same files, the same request split,
the same estimator and objective.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from simulator.estimators import (
    ESTIMATORS,
    BaseEstimator,
    SlateFeedback,
    hyperparameters,
    make_estimator,
)
from simulator.fusion import FUSIONS, make_fusion
from simulator.hashing import SPLIT_STREAM, uniform
from simulator.intervals import INTERVALS, make_interval
from simulator.logs import LoggedTraffic
from simulator.policies import TopKPolicy
from simulator.proxies import ORDERING_SCORES
from simulator.replay import Replay
from tuner.evaluation.scores import ScoreTable, ScoreTableError
from tuner.weights_text import Numbers, check_task_numbers, parse_task_numbers

__all__ = [
    "INTERVALS",
    "SearchSettings",
    "Workspace",
    "control_weights",
    "make_interval",
    "parse_estimator_params",
    "reward_model",
    "split_log",
    "split_parts",
    "unscored_tasks",
]

SEARCH, HOLDOUT = "search", "holdout"


ESTIMATOR_PARAM_VALUES = Numbers(finite=False)
"""Values of ``--estimator-param``: any number, ``inf`` too (``tau=inf``: SWITCH is IPS);
the estimator's class checks its own ranges."""


def parse_estimator_params(spec: str | Sequence[str] | Mapping[str, Any], estimator: str,
                           what: str = "--estimator-param") -> dict[str, float]:
    """The hyperparameters of ``estimator`` from ``"clip=50"`` (or several) or a table.

    Args:
        spec: ``<parameter>=<number>`` text, several of them (a repeated option), or a
            mapping (a TOML table).
        estimator: a key of :data:`simulator.estimators.ESTIMATORS`.
        what: the option or setting named in messages.

    Raises:
        ValueError: one line: a parameter the estimator lacks (naming its parameters), a
            repeat, or a value its class refuses.

    Example:
        >>> parse_estimator_params("clip=50", "clipped_ips")
        {'clip': 50.0}
    """
    if not spec:
        return {}
    if estimator in ORDERING_SCORES:
        raise ValueError(f"{what}: ordering score {estimator!r} has no parameters")
    valid = hyperparameters(estimator)
    if not valid:
        having = sorted(n for n in ESTIMATORS if hyperparameters(n))
        raise ValueError(f"{what}: estimator {estimator!r} has no parameters; estimators "
                         f"with some: {having}")
    where = f"{what} (estimator {estimator!r})"
    if isinstance(spec, Mapping):
        params = check_task_numbers(spec, where, names=valid, numbers=ESTIMATOR_PARAM_VALUES,
                                    kind="parameter")
    else:
        default = getattr(ESTIMATORS[estimator](), valid[0])
        params = parse_task_numbers(spec, where, names=valid, numbers=ESTIMATOR_PARAM_VALUES,
                                    kind="parameter", example=f"{valid[0]}={default:g}")
    try:
        make_estimator(estimator, params)
    except ValueError as err:
        raise ValueError(f"{what}: {err}") from None
    return params


@dataclass(frozen=True)
class SearchSettings:
    """Everything a fusion search needs besides the CEM state.

    Args:
        logs: path of the logged traffic (Parquet or CSV).
        scores: path of the score table (Parquet).
        objective: task -> weight of the business objective (label tasks).
        estimator: off-policy estimator name, or an ordering score of
            :data:`simulator.proxies.ORDERING_SCORES` (``auc``, ``gauc``: the search ranks
            its trials by it, and every metric, held-out figure and interval is SNIPS's,
            :attr:`metric_estimator`).
        estimator_params: the estimator's hyperparameters (``{"clip": 50.0}``), fields of
            its class (:func:`simulator.estimators.hyperparameters`); empty: its defaults.
        formula: fusion formula name.
        splits: request split name -> fraction; needs ``search`` and ``holdout``.
        split_seed: seed of the request split.
        conditional: score task -> the task it is conditional on (``conversion``
            -> ``click`` when ``p_conversion`` is ``P(conversion | click)``), so the
            reward model of DM and DR can chain them.
        control: control weights (score-task order), the A/B baseline and CEM's start.
        guardrails: metric -> largest allowed drop below control, a fraction
            (see :mod:`tuner.evaluation.guardrails`).
        n_bootstrap: bootstrap resamples of every interval.
        interval: how intervals are made, a key of :data:`simulator.intervals.INTERVALS`.
        examination: ``[K]`` examination probability of each slot, in ``(0, 1]``;
            replaces the log's own curve (a CSV log carries none). Given by
            ``search run --examination 1,0.6,0.4`` or ``[data] examination``.
        data_fingerprint: fingerprint of the log.
        model_fingerprint: fingerprint of the model behind the scores.
        stream: read the log chunk by chunk (:mod:`tuner.evaluation.streamed`) even from
            one file; a folder of Parquet files is always streamed.
    """

    logs: str
    scores: str
    objective: Mapping[str, float]
    estimator: str = "snips"
    formula: str = "multiplicative"
    splits: Mapping[str, float] = field(
        default_factory=lambda: {SEARCH: 0.5, HOLDOUT: 0.5})
    split_seed: int = 0
    conditional: Mapping[str, str] = field(default_factory=dict)
    control: Sequence[float] | None = None
    n_bootstrap: int = 200
    guardrails: Mapping[str, float] = field(default_factory=dict)
    data_fingerprint: str = ""
    model_fingerprint: str = ""
    interval: str = "bootstrap"
    estimator_params: Mapping[str, float] = field(default_factory=dict)
    examination: Sequence[float] | None = None
    stream: bool = False

    @property
    def ordering_score(self) -> str | None:
        """``auc`` or ``gauc`` when the search ranks by a fused-score AUC proxy, else None."""
        return self.estimator if self.estimator in ORDERING_SCORES else None

    @property
    def metric_estimator(self) -> str:
        """The estimator of every metric: :attr:`estimator`, or SNIPS (the default) for a
        study that ranks by an ordering score."""
        return "snips" if self.ordering_score is not None else self.estimator

    def _check_ordering(self, params: Mapping[str, float]) -> None:
        """Refuse what an ordering score cannot do (it has no parameters, combines AUCs with
        weights >= 0 and has no paired lift to guard)."""
        if params:
            raise ValueError(f"ordering score {self.estimator!r} takes no --estimator-param; "
                             f"got {sorted(params)}")
        if any(float(w) < 0 for w in self.objective.values()):
            raise ValueError(f"ordering score {self.estimator!r} combines the tasks' AUCs "
                             "with the objective's weights, which must be >= 0; got "
                             f"{dict(self.objective)}")
        if self.guardrails:
            raise ValueError(f"guardrails judge a metric's paired lift over control, and "
                             f"ordering score {self.estimator!r} has none; search with an "
                             "estimator (snips, dr, ...) or drop the guardrails")

    def make_estimator(self) -> BaseEstimator:
        """The metric estimator (:attr:`metric_estimator`) with its hyperparameters."""
        return make_estimator(self.metric_estimator, self.estimator_params)

    @property
    def streamed(self) -> bool:
        """Whether the log is read chunk by chunk: ``stream``, or a folder of files."""
        return self.stream or Path(self.logs).is_dir()

    def __post_init__(self) -> None:
        if self.interval not in INTERVALS:
            raise ValueError(f"unknown interval {self.interval!r}; valid: {list(INTERVALS)}")
        if self.estimator not in ESTIMATORS and self.estimator not in ORDERING_SCORES:
            raise ValueError(f"unknown estimator {self.estimator!r}; valid: "
                             f"{sorted(ESTIMATORS)}, or an ordering score {list(ORDERING_SCORES)}")
        # stored as JSON, where inf is the string "inf"
        params = {str(k): float(v) for k, v in self.estimator_params.items()}
        object.__setattr__(self, "estimator_params", params)
        if self.ordering_score is not None:
            self._check_ordering(params)
        self.make_estimator()  # known parameters, valid values
        if self.formula not in FUSIONS:
            raise ValueError(f"unknown fusion formula {self.formula!r}; valid: {sorted(FUSIONS)}")
        missing = [s for s in (SEARCH, HOLDOUT) if s not in self.splits]
        if missing:
            raise ValueError(f"splits need parts {missing}; got {dict(self.splits)}")
        if self.examination is not None:
            exam = list(self.examination)
            if not exam or not all(isinstance(x, int | float) and 0 < x <= 1 for x in exam):
                raise ValueError(f"examination must be one probability in (0, 1] per slot, "
                                 f"e.g. 1,0.6,0.4; got {exam}")
        total = sum(self.splits.values())
        if any(f <= 0 for f in self.splits.values()) or total > 1 + 1e-9:
            raise ValueError(
                f"split fractions must be > 0 and sum to <= 1, got {dict(self.splits)}")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["objective"], d["splits"] = dict(self.objective), dict(self.splits)
        d["conditional"] = dict(self.conditional)
        d["guardrails"] = dict(self.guardrails)
        d["control"] = None if self.control is None else [float(x) for x in self.control]
        d["estimator_params"] = {k: v if math.isfinite(v) else str(v)  # JSON has no inf
                                 for k, v in self.estimator_params.items()}
        # studies made before these settings existed compare equal
        if self.interval == "bootstrap":
            del d["interval"]
        if not self.estimator_params:
            del d["estimator_params"]
        if not self.stream:  # likewise
            del d["stream"]
        if self.examination is None:  # likewise
            del d["examination"]
        else:
            d["examination"] = [float(x) for x in self.examination]
        return d

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SearchSettings:
        known = {f for f in cls.__dataclass_fields__}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown search setting(s) {unknown}; known: {sorted(known)}")
        return cls(**dict(data))


def split_parts(request_ids: np.ndarray, splits: Mapping[str, float], seed: int
                ) -> np.ndarray:
    """``[R]`` the part of each request: its index in ``splits``, or -1 for none.

    A request's part is set by a hash of its id and the seed alone
    (:func:`simulator.hashing.uniform`), so it does not change with the order of the log,
    its files or its chunks; each part holds its fraction of the requests up to sampling
    noise (binomial), not exactly.

    Example:
        >>> parts = split_parts(np.arange(10_000), {"search": 0.5, "holdout": 0.5}, seed=0)
        >>> [round(float((parts == i).mean()), 2) for i in (0, 1)]
        [0.5, 0.5]
    """
    u = uniform(np.asarray(request_ids), seed, SPLIT_STREAM)
    edges = np.cumsum([0.0, *splits.values()])
    part = np.searchsorted(edges, u, side="right") - 1
    return np.where(part < len(splits), part, -1)


def split_log(traffic: LoggedTraffic, splits: Mapping[str, float],
              seed: int) -> dict[str, LoggedTraffic]:
    """Split requests into named parts of about the given fractions (seeded, disjoint, by
    a hash of each request id: see :func:`split_parts`).

    Raises:
        ValueError: a part that gets no request.
    """
    part = split_parts(traffic.request_ids, splits, seed)
    parts = {}
    for i, name in enumerate(splits):
        rows = np.flatnonzero(part == i)
        if not len(rows):
            raise ValueError(f"split {name!r} of {traffic.n_requests} requests is empty")
        parts[name] = traffic.take(rows)
    return parts


class _SearchLog(Protocol):
    """What :func:`control_weights` and :func:`unscored_tasks` read of a workspace (held
    whole, or :class:`~tuner.evaluation.streamed.StreamedWorkspace`)."""

    @property
    def settings(self) -> SearchSettings: ...

    @property
    def tasks(self) -> tuple[str, ...]: ...

    @property
    def score_tasks(self) -> tuple[str, ...]: ...


def control_weights(ws: _SearchLog) -> np.ndarray:
    """``[S]`` the study's control weights, or every score task weighted 1 when it has none
    (the A/B baseline of exports, comparisons and guardrails)."""
    c = ws.settings.control
    return np.ones(len(ws.score_tasks)) if c is None else np.asarray(c, dtype=np.float64)


def unscored_tasks(ws: _SearchLog) -> list[str]:
    """The log's label tasks without a score column: what a reward model (the calibrated-DR
    family, ``gated_dr``) would lack."""
    return [t for t in ws.tasks if t not in ws.score_tasks]


class Workspace:
    """The log, its score table and the replays of a search's splits.

    Example:
        >>> ws = Workspace(settings)  # doctest: +SKIP
        >>> ws.replay("holdout").evaluate(np.array([1.0, 0.5, 2.0]))  # doctest: +SKIP
    """

    def __init__(self, settings: SearchSettings, traffic: LoggedTraffic | None = None,
                 table: ScoreTable | None = None) -> None:
        self.settings = settings
        if traffic is None and settings.streamed:  # a dataset, here held whole
            from tuner.evaluation.dataset_io import read_whole

            traffic, table = read_whole(settings.logs, settings.scores)
        self.traffic = _with_examination(
            traffic if traffic is not None else LoggedTraffic.read(settings.logs), settings)
        self.table = (table if table is not None
                      else ScoreTable.read(settings.scores, log=self.traffic))
        if settings.data_fingerprint and self.traffic.fingerprint() != settings.data_fingerprint:
            raise ValueError(
                f"log {settings.logs} has fingerprint {self.traffic.fingerprint()}, but the "
                f"study was made on {settings.data_fingerprint}: the file changed"
            )
        unknown = [t for t in settings.objective if t not in self.traffic.tasks]
        if unknown:
            raise ValueError(f"objective names unknown task(s) {unknown}; the log's tasks: "
                             f"{list(self.traffic.tasks)}")
        try:  # on the whole log: a message about one split would miscount
            self.table.check_covers(self.traffic)
        except ScoreTableError as err:
            raise ScoreTableError(f"score table {settings.scores} vs log {settings.logs}: "
                                  f"{err}") from None
        self.parts = split_log(self.traffic, settings.splits, settings.split_seed)
        self._replays: dict[str, Replay] = {}
        self._other: dict[tuple[str, BaseEstimator], Replay] = {}

    @property
    def score_tasks(self) -> tuple[str, ...]:
        return self.table.tasks

    @property
    def tasks(self) -> tuple[str, ...]:
        """The log's label tasks."""
        return self.traffic.tasks

    def check(self) -> None:
        """Build every split's replay now, so that a score table that does not fit the log,
        or a log the estimator cannot use, is refused before anything is written."""
        for part in self.parts:
            self.replay(part)

    def replay(self, part: str) -> Replay:
        """The replay of one split (built once)."""
        if part not in self._replays:
            if part not in self.parts:
                raise KeyError(f"no split {part!r}; splits: {list(self.parts)}")
            self._replays[part] = self._build(self.parts[part])
        return self._replays[part]

    def replay_as(self, part: str, estimator: BaseEstimator) -> Replay:
        """The replay of one split with another estimator than the study's (built once per
        split and estimator), e.g. the calibrated DR of the export's control test.

        Raises:
            ValueError: the estimator needs a reward model and the score table lacks a
                score for one of the log's label tasks.
        """
        key = (part, estimator)
        if key not in self._other:
            if part not in self.parts:
                raise KeyError(f"no split {part!r}; splits: {list(self.parts)}")
            try:
                self._other[key] = self._build(self.parts[part], estimator)
            except ValueError as err:
                if "needs a score for every label task" not in str(err):
                    raise
                raise ValueError(f"estimator {estimator.name!r} needs a score for every label "
                                 f"task; the score table lacks {unscored_tasks(self)}"
                                 ) from None
        return self._other[key]

    def _build(self, part: LoggedTraffic, estimator: BaseEstimator | None = None) -> Replay:
        scores = self.table.aligned(part, self.score_tasks)
        if estimator is None:
            estimator = self.settings.make_estimator()
        rm = (reward_model(self.settings, self.score_tasks, part.tasks, scores)
              if estimator.needs_reward_model else None)
        return Replay(
            SlateFeedback.from_traffic(part, reward_model=rm),
            scores,
            self.score_tasks,
            make_fusion(self.settings.formula),
            TopKPolicy(part.slate_size),
            estimator,
            make_interval(self.settings.interval, self.settings.n_bootstrap,
                          self.settings.split_seed),
            request_ids=part.request_ids,
        )


def reward_model(settings: SearchSettings, score_tasks: tuple[str, ...],
                 tasks: tuple[str, ...], scores: np.ndarray) -> np.ndarray:
    """``[R, N, T]`` the reward model of DM and DR from the scores ``[R, N, S]``: each
    label task's score, conditional ones chained to their parents.

    Raises:
        ValueError: a label task without a score, or conditional tasks in a cycle.
    """
    by_task = {t: scores[..., i] for i, t in enumerate(score_tasks)}
    missing = [t for t in tasks if t not in by_task]
    if missing:
        raise ValueError(
            f"estimator {settings.estimator!r} needs a score for every label task; "
            f"the score table lacks {missing}: use 'ips' or 'snips'"
        )

    def unconditional(task: str, depth: int = 0) -> np.ndarray:
        parent = settings.conditional.get(task)
        if parent is None:
            return by_task[task]
        if depth > len(by_task):
            raise ValueError(f"conditional tasks form a cycle at {task!r}")
        return unconditional(parent, depth + 1) * by_task[task]

    return np.stack([unconditional(t) for t in tasks], axis=-1)


def _with_examination(traffic: LoggedTraffic, settings: SearchSettings) -> LoggedTraffic:
    """The log with the settings' examination curve, if any; refused if it has none at all."""
    exam = examination_of(settings, traffic.examination, traffic.slate_size)
    return traffic if exam is traffic.examination else traffic.with_examination(exam)


def examination_of(settings: SearchSettings, own: np.ndarray | None, k: int | None
                   ) -> np.ndarray:
    """The examination curve a search uses: the settings', else the log's ``own``.

    ``k`` is the log's page size; None where the log does not say (a streamed log with
    only ``pscore`` and no metadata): the settings' curve then sets it, and a chunk with a
    position beyond it is refused when read.

    Raises:
        ValueError: neither has one, or the settings' has not ``k`` (slots) values.
    """
    example = [f"{1 / (1 + j) ** 0.8:.2g}" for j in range(k or 3)]
    per_slot = (f"per slot ({k})" if k is not None else
                "per slot (the log does not say how many: one more than its largest position)")
    where = (f"give one probability in (0, 1] {per_slot} with 'search run --examination "
             f"{','.join(example)}' or, in a search file, [data] examination = "
             f"[{', '.join(example)}]")
    if settings.examination is None:
        if own is None:
            raise ValueError(f"log {settings.logs} carries no examination curve (a CSV log "
                             f"cannot): {where}")
        return own
    if k is not None and len(settings.examination) != k:
        raise ValueError(f"examination {list(settings.examination)} has "
                         f"{len(settings.examination)} value(s) but log {settings.logs} has "
                         f"{k} slots: {where}")
    return np.asarray(settings.examination, dtype=np.float64)


def resolve(path: str | Path) -> str:
    """Absolute path as a string (what settings store)."""
    return str(Path(path).resolve())

