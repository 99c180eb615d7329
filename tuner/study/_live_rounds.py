"""The arithmetic of CEM rounds over live A/B groups, apart from any database.

A live round draws weight vectors from the strategy, optionally pre-screens many of them on
the logs and sends ``M`` groups (plus the control) to an experiment platform; the platform
reports per-group metrics with their standard errors; the lifts over the round's control
rank the groups. This module holds the pieces a study (:mod:`tuner.study._live`) and a bench
share: :func:`draw_candidates`, :func:`select_groups`, :class:`GroupResult`,
:func:`objective_of`, :func:`lift` and :func:`calibrate`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from tuner.space import FusionSpace
from tuner.strategies import CEM, BaseStrategy

__all__ = [
    "Calibration",
    "GroupResult",
    "Lift",
    "SCREEN_ESTIMATOR",
    "calibrate",
    "default_screened",
    "draw_candidates",
    "lift",
    "objective_of",
    "select_groups",
]


SCREEN_ESTIMATOR = "gated_dr"
"""The estimator that pre-screens a live round's draws by default: of those measured, the
one whose order of a population is closest to the truth on small logs
(``bench/ordering_quality.py``), and the one with which pre-screened rounds reach the best
fastest (``bench/online_rounds.py --proxy``)."""


def draw_candidates(strategy: BaseStrategy, space: FusionSpace, generation: int,
                    n: int) -> np.ndarray:
    """``X [n, dim]`` candidates of generation ``generation`` from the strategy's state.

    ``n`` equal to the strategy's population is its own ask; more (pre-screening) needs a
    CEM, whose Gaussian is sampled ``n`` times with the generation's seed (its first
    ``population`` rows are the plain ask's).

    Raises:
        ValueError: ``n`` is below the population, or above it for a strategy other than
            CEM (Optuna's samplers have no distribution to draw more from).
    """
    m = strategy.population
    if n < m:
        raise ValueError(f"--prescreen {n} is below --groups {m}; give at least {m} (or 0)")
    if n == m:
        return strategy.ask(generation)
    if not isinstance(strategy, CEM):
        raise ValueError(f"--prescreen draws {n} candidates from CEM's Gaussian; this study's "
                         f"strategy is {type(strategy).__name__}: use a cem study or drop "
                         "--prescreen")
    wide = CEM(space, dataclasses.replace(strategy.config, population=n), strategy.seed,
               strategy.init_mean)
    return wide.sample(strategy.state, generation)


def default_screened(m: int) -> int:
    """Groups of a pre-screened round of ``m`` that are chosen by the proxy: half (at least
    one); the rest are CEM's plain draws.

    Why not all: when every group is the proxy's pick, CEM's Gaussian converges onto the
    proxy's own optimum, bias included, and plateaus there (the plateau the bench of issue
    15 measured on one seed in five). Plain draws beside the proxy's picks win the online
    ranking wherever the proxy is wrong, so the mean can still move to the true optimum,
    while the screened half keeps most of the proxy's head start.
    """
    return max(1, m // 2)


def select_groups(values: np.ndarray, feasible: np.ndarray, m: int,
                  screened: int | None = None) -> np.ndarray:
    """Indices of the ``m`` pre-screened candidates that get live traffic: a tournament.

    The ``n`` candidates (in draw order, so in random order) are cut into ``m`` consecutive
    blocks of ``n / m`` (``np.array_split``) and each block sends its best feasible
    candidate by offline estimate (a block without a finite feasible estimate sends its
    first draw). Why blocks and not the top ``m``: the top ``m`` of ``n`` cluster where the
    proxy peaks, often near-duplicates whose online differences are noise, so CEM's refit
    would see no spread and collapse onto the proxy's optimum (its bias included). Each
    block's winner is an independent draw from the Gaussian tilted towards the proxy, so
    the round keeps a spread, CEM still learns from the online ranking, and the rule is
    deterministic given the draws and estimates.

    Args:
        values: ``[n]`` offline estimates (NaN: failed).
        feasible: ``[n]`` bool, False where a guardrail is broken.
        m: groups to send.
        screened: how many of the blocks send their best (default: all ``m``); the others
            send their first feasible draw, a plain draw from the Gaussian.

    Returns:
        ``[m]`` increasing indices into the candidates.
    """
    values = np.asarray(values, dtype=np.float64)
    ok = np.asarray(feasible, dtype=bool) & np.isfinite(values)
    if not 1 <= m <= len(values):
        raise ValueError(f"cannot choose {m} groups among {len(values)} candidates")
    screened = m if screened is None else screened
    if not 0 <= screened <= m:
        raise ValueError(f"screened must lie in [0, {m}], got {screened}")
    out = []
    for b, block in enumerate(np.array_split(np.arange(len(values)), m)):
        good = block[ok[block]]
        if not len(good):
            out.append(int(block[0]))
        elif b < screened:  # stable on ties: the first draw of the best
            out.append(int(good[np.argmax(values[good])]))
        else:
            out.append(int(good[0]))
    return np.asarray(out, dtype=np.int64)


@dataclass(frozen=True)
class GroupResult:
    """What an experiment platform reports for one group.

    Args:
        units: users (or requests) exposed, the ``n`` behind every mean.
        mean: metric -> mean per unit.
        se: metric -> standard error of that mean.
    """

    units: int
    mean: Mapping[str, float]
    se: Mapping[str, float]

    @classmethod
    def from_sums(cls, units: int, sums: Mapping[str, float],
                  sumsq: Mapping[str, float]) -> GroupResult:
        """From per-metric sums ``s`` and sums of squares ``q`` over the ``n`` units:
        ``mean = s / n``, ``se = sqrt(var / n)`` with the sample variance
        ``var = (q / n - mean^2) * n / (n - 1)``."""
        mean, se = {}, {}
        for k in sums:
            mu = sums[k] / units
            var = max(0.0, sumsq[k] / units - mu * mu) * units / max(units - 1, 1)
            mean[k], se[k] = mu, math.sqrt(var / units)
        return cls(units, mean, se)

    def to_dict(self) -> dict[str, object]:
        """JSON form ``{"units", "mean": {...}, "se": {...}}``."""
        return {"units": self.units, "mean": dict(self.mean), "se": dict(self.se)}

    @classmethod
    def from_dict(cls, d: Mapping[str, object]) -> GroupResult:
        """Inverse of :meth:`to_dict`."""
        return cls(int(d["units"]),  # type: ignore[call-overload]
                   {str(k): float(v) for k, v in dict(d["mean"]).items()},  # type: ignore[call-overload]
                   {str(k): float(v) for k, v in dict(d["se"]).items()})  # type: ignore[call-overload]


OBJECTIVE_METRIC = "objective"
"""A result column of that name (mean and se) is the platform's own objective per unit,
used as given instead of combining the metrics (it then carries their covariance)."""


def objective_of(result: GroupResult, objective: Mapping[str, float]) -> tuple[float, float]:
    """``(value, se)`` of the business objective ``sum_t w_t mean_t`` of one group.

    The standard error treats the metrics' means as independent, ``sqrt(sum_t w_t^2
    se_t^2)``, unless the platform reports the objective itself (metric
    :data:`OBJECTIVE_METRIC`), whose se then includes their covariance.
    """
    if OBJECTIVE_METRIC in result.mean:
        return float(result.mean[OBJECTIVE_METRIC]), float(result.se[OBJECTIVE_METRIC])
    value = sum(w * result.mean[t] for t, w in objective.items())
    se = math.sqrt(sum((w * result.se[t]) ** 2 for t, w in objective.items()))
    return float(value), se


@dataclass(frozen=True)
class Lift:
    """A relative lift over control, ``value / control - 1``, with its 95% interval.

    Args:
        value: the lift.
        se: its standard error (delta method; groups are independent).
        low, high: ``value -/+ 1.96 se``.
    """

    value: float
    se: float
    low: float
    high: float


def lift(value: float, se: float, control: float, control_se: float) -> Lift:
    """Relative lift of ``value`` over ``control`` (independent groups), delta method:
    ``se = sqrt(se^2 + (value / control)^2 control_se^2) / |control|``."""
    if control == 0 or not math.isfinite(control):
        return Lift(math.nan, math.nan, math.nan, math.nan)
    ratio = value / control
    s = math.sqrt(se ** 2 + ratio ** 2 * control_se ** 2) / abs(control)
    z = 1.959963984540054
    return Lift(ratio - 1.0, s, ratio - 1.0 - z * s, ratio - 1.0 + z * s)


@dataclass(frozen=True)
class Calibration:
    """How the offline proxy's lifts relate to the online ones, over told groups.

    ``slope`` is the least-squares slope of online on offline lifts *within rounds* (both
    centred on their round's mean): the groups of one round share its control, whose noise
    shifts all their online lifts alike, and CEM only uses a round's ranking anyway. A slope
    below 1 means the proxy overstates lift differences (by the factor ``1 / slope``), above
    1 that it understates them. Its 95% interval uses heteroscedasticity-robust (HC1) errors
    with Student's t on ``n - rounds - 1`` degrees of freedom, so it covers the online
    noise and the proxy's own scatter around the line. ``pearson`` and ``spearman`` are
    over all told groups, pooled.

    Args:
        n: groups with both an offline and an online lift.
        pearson: correlation of offline and online lifts.
        spearman: rank correlation.
        slope, slope_low, slope_high: fitted slope and its 95% interval.
        intercept: mean online lift minus slope times mean offline lift (pooled).
    """

    n: int
    pearson: float
    spearman: float
    slope: float
    slope_low: float
    slope_high: float
    intercept: float

    def to_dict(self) -> dict[str, float | int]:
        return dataclasses.asdict(self)

    def verdict(self) -> str:
        """One line for people: does the proxy over- or under-state lifts, and how sure."""
        if not math.isfinite(self.slope_low):
            return f"too few told groups with an offline estimate ({self.n}) to calibrate"
        ci = f"slope {self.slope:.2f} [{self.slope_low:.2f}, {self.slope_high:.2f}]"
        if self.slope_high < 0:
            return f"the proxy ranks the groups against their online results ({ci})"
        if self.slope_low <= 0:
            return (f"the offline estimates do not yet predict online lift differences ({ci} "
                    "includes 0)")
        if self.slope_high < 1:
            return (f"the proxy overstates online lift differences ({ci}: online ~ "
                    f"{self.slope:.2f} x offline)")
        if self.slope_low > 1:
            return f"the proxy understates online lift differences ({ci})"
        return f"no evidence that the proxy over- or understates lifts ({ci})"


def calibrate(offline: Sequence[float] | np.ndarray, online: Sequence[float] | np.ndarray,
              rounds: Sequence[int] | np.ndarray | None = None) -> Calibration:
    """:class:`Calibration` of offline lifts ``[n]`` against online lifts ``[n]`` of groups
    of ``rounds`` ``[n]`` (default: one round); pairs with a non-finite member are dropped.

    Example:
        >>> c = calibrate([0.01, 0.02, 0.03, 0.04], [0.006, 0.009, 0.016, 0.019])
        >>> round(c.slope, 2)
        0.46
    """
    from scipy import stats  # here, not at the top: every study command imports this module

    x = np.asarray(offline, dtype=np.float64)
    y = np.asarray(online, dtype=np.float64)
    g = np.zeros(len(x), dtype=np.int64) if rounds is None else np.asarray(rounds)
    keep = np.isfinite(x) & np.isfinite(y)
    x, y, g = x[keep], y[keep], g[keep]
    n = len(x)
    nan = math.nan
    if n < 3 or np.ptp(x) == 0:
        return Calibration(n, nan, nan, nan, nan, nan, nan)
    pearson = float(np.corrcoef(x, y)[0, 1]) if np.ptp(y) > 0 else nan
    spearman = float(stats.spearmanr(x, y).statistic) if np.ptp(y) > 0 else nan
    xc, yc = x.copy(), y.copy()
    labels = np.unique(g)
    for r in labels:
        at = g == r
        xc[at] -= x[at].mean()
        yc[at] -= y[at].mean()
    sxx = float(xc @ xc)
    dof = n - len(labels) - 1
    if sxx == 0 or dof < 1:
        return Calibration(n, pearson, spearman, nan, nan, nan, nan)
    slope = float(xc @ yc) / sxx
    intercept = float(y.mean() - slope * x.mean())
    resid = yc - slope * xc
    var = float((xc ** 2) @ (resid ** 2)) / sxx ** 2 * (n - len(labels)) / dof  # HC1
    half = float(stats.t.ppf(0.975, dof)) * math.sqrt(var)
    return Calibration(n, pearson, spearman, slope, slope - half, slope + half, intercept)
