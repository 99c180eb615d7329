"""Plots of a search's history (PNG), for people who would rather see than read.

matplotlib is imported lazily (Agg backend), only when a plot is asked for.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tuner.space import FusionSpace
from tuner.study import RoundSummary, TrialResult

__all__ = ["PickEstimates", "pick_estimates", "plot_history", "plot_loss_trials"]


@dataclass(frozen=True)
class PickEstimates:
    """Estimates beside the best-of-round: the strategy's pick (CEM: its mean) of every
    round and the control, each a :class:`TrialResult` (value, low, high).

    Args:
        search: the pick of each round on the search split, ``[R]`` in round order.
        control: the control weights on the search split.
        holdout: the pick of each round on the held-out split (``None``: no such split).
    """

    search: Sequence[TrialResult]
    control: TrialResult | None = None
    holdout: Sequence[TrialResult] | None = None


def pick_estimates(settings: dict[str, Any], rounds: Sequence[RoundSummary],
                   space: FusionSpace) -> PickEstimates:
    """Evaluate each round's pick and the control of a fusion study: one population pass
    of ``R + 1`` vectors on the search split and one of ``R`` on the held-out split."""
    from tuner.evaluation.objective import FusionObjective
    from tuner.evaluation.search_data import HOLDOUT, SearchSettings, Workspace

    ws = Workspace(SearchSettings.from_dict(settings))
    X = np.array([[r.mean[t] for t in space.free_tasks] for r in rounds])
    W = space.matrix_to_weights(X)
    control = np.asarray(ws.settings.control if ws.settings.control is not None
                         else np.ones(len(space.tasks)), dtype=float)
    search = list(FusionObjective.for_workspace(ws)(np.vstack([control[None], W])))
    holdout = (list(FusionObjective.for_workspace(ws, HOLDOUT)(W))
               if ws.settings.splits.get(HOLDOUT) else None)
    return PickEstimates(search[1:], search[0], holdout)


def plot_history(rounds: Sequence[RoundSummary], out_dir: str | Path,
                 title: str = "", prefix: str = "w_", space: FusionSpace | None = None,
                 picks: PickEstimates | None = None) -> list[Path]:
    """Write ``objective.png`` and ``weights.png`` into ``out_dir``.

    ``objective.png``: each round's best feasible trial with its 95% interval and, given
    ``picks``, the strategy's pick of the round (the mean that generated it) with its
    interval, its held-out estimate and the control's value. ``weights.png``: the mean +-
    one standard deviation of each free weight of the distribution that generated each
    round, the band clipped at the search box of ``space``, and the pinned weight. Legends
    sit right of the axes, never over the data.

    Returns:
        The written paths.

    Raises:
        ValueError: no rounds to plot.
    """
    if not rounds:
        raise ValueError("the study has no rounds to plot yet")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    x = np.array([r.round for r in rounds])
    best = np.array([r.best_value for r in rounds])
    low = np.array([r.best_low for r in rounds])
    high = np.array([r.best_high for r in rounds])

    fig, ax = plt.subplots(figsize=(9.5, 4.2))
    ax.errorbar(x, best, yerr=[best - low, high - best], fmt="o-", capsize=3,
                label="best trial of the round\n(search split, 95% interval)")
    if picks is not None:
        _band(ax, x, picks.search, "tab:green", "strategy's pick (CEM mean)\n(search split)")
        if picks.holdout is not None:
            _band(ax, x + 0.12, picks.holdout, "tab:purple",
                  "strategy's pick (CEM mean)\n(held-out split)")
        if picks.control is not None:
            ax.axhline(picks.control.value, color="0.3", ls="--", lw=1,
                       label=f"control ({picks.control.value:.4g}, search split)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("round (CEM generation)")
    ax.set_ylabel("objective per request")
    ax.set_title(f"{title} objective per round".strip())
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0, fontsize=8)
    fig.tight_layout()
    paths = [out / "objective.png"]
    fig.savefig(paths[0], dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(9.5, 4.2))
    lo_box = space.low if space is not None else -np.inf
    hi_box = space.high if space is not None else np.inf
    for task in rounds[0].mean:
        mean = np.array([r.mean[task] for r in rounds])
        sd = np.array([r.sigma[task] for r in rounds])
        (line,) = ax.plot(x, mean, "o-", label=f"{prefix}{task} mean +- sd")
        ax.fill_between(x, np.clip(mean - sd, lo_box, hi_box), np.clip(mean + sd, lo_box, hi_box),
                        alpha=0.2, color=line.get_color())
    if space is not None:
        ax.axhline(1.0, color="k", lw=1.2, ls=":", label=f"{prefix}{space.pinned} = 1 (pinned)")
        for bound in (space.low, space.high):
            ax.axhline(bound, color="0.5", lw=0.8, ls="--")
        ax.plot([], [], color="0.5", lw=0.8, ls="--",
                label=f"search box [{space.low:g}, {space.high:g}]")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("round (CEM generation)")
    ax.set_ylabel("weight (pinned task = 1)")
    ax.set_title(f"{title} CEM mean +- sd of each weight".strip())
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0, fontsize=8)
    fig.tight_layout()
    paths.append(out / "weights.png")
    fig.savefig(paths[1], dpi=110)
    plt.close(fig)
    return paths


def _band(ax: Any, x: np.ndarray, est: Sequence[TrialResult], color: str, label: str) -> None:
    """One series of estimates: a line with its 95% interval as a shaded band."""
    v = np.array([e.value for e in est], dtype=float)
    ax.plot(x, v, "s-", color=color, ms=4, label=label)
    ax.fill_between(x, [e.low for e in est], [e.high for e in est], color=color, alpha=0.15)


def plot_loss_trials(rows: Sequence[dict[str, Any]], out_dir: str | Path,
                     title: str = "") -> Path:
    """Write ``loss_trials.png``: what each loss weight buys, one column per free weight.

    Top row: the trial's fused objective (95% interval) against that loss weight;
    bottom row: the trained ranker's validation AUC of the same task against it.

    Args:
        rows: :func:`tuner.study.trials_table` rows of a loss-weight study.
        out_dir: folder to write into.
        title: plot title prefix.

    Raises:
        ValueError: no complete trial.
    """
    done = [r for r in rows if r.get("state") == "COMPLETE" and r.get("value") is not None]
    if not done:
        raise ValueError("the study has no complete trial to plot yet")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    params = sorted({p for r in done for p in r["params"]})
    fig, axes = plt.subplots(2, len(params), figsize=(4 * len(params), 6), squeeze=False)
    value = np.array([r["value"] for r in done], dtype=float)
    low = np.array([r.get("ci_low") or np.nan for r in done], dtype=float)
    high = np.array([r.get("ci_high") or np.nan for r in done], dtype=float)
    for j, param in enumerate(params):
        task = param.removeprefix("loss_")
        x = np.array([r["params"][param] for r in done], dtype=float)
        ax = axes[0, j]
        ax.errorbar(x, value, yerr=[value - low, high - value], fmt="o", alpha=0.7,
                    capsize=2)
        ax.set_xlabel(f"loss weight of {task}")
        ax.set_ylabel("fused objective (search split)" if j == 0 else "")
        ax.grid(alpha=0.3)
        auc = np.array([(r.get("auc") or {}).get(task, np.nan) for r in done], dtype=float)
        axes[1, j].plot(x, auc, "o", alpha=0.7)
        axes[1, j].set_xlabel(f"loss weight of {task}")
        axes[1, j].set_ylabel(f"validation AUC of {task}")
        axes[1, j].grid(alpha=0.3)
    fig.suptitle(f"{title} loss-weight trials".strip())
    fig.tight_layout()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "loss_trials.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
