"""Plots of a search's history (PNG), for people who would rather see than read.

matplotlib is imported lazily (Agg backend), only when a plot is asked for.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tuner.study import RoundSummary

__all__ = ["plot_history", "plot_loss_trials"]


def plot_history(rounds: Sequence[RoundSummary], out_dir: str | Path,
                 title: str = "", prefix: str = "w_") -> list[Path]:
    """Write ``objective.png`` and ``weights.png`` into ``out_dir``.

    ``objective.png``: each round's best feasible trial with its 95% interval.
    ``weights.png``: the mean +- one standard deviation of each free weight of the CEM
    distribution that generated each round.

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

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    x = np.array([r.round for r in rounds])
    best = np.array([r.best_value for r in rounds])
    low = np.array([r.best_low for r in rounds])
    high = np.array([r.best_high for r in rounds])

    fig, ax = plt.subplots(figsize=(7, 4))
    ax.errorbar(x, best, yerr=[best - low, high - best], fmt="o-", capsize=3,
                label="best trial of the round (95% interval)")
    ax.set_xlabel("round (CEM generation)")
    ax.set_ylabel("objective (search split)")
    ax.set_title(f"{title} objective per round".strip())
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    paths = [out / "objective.png"]
    fig.savefig(paths[0], dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(7, 4))
    for task in rounds[0].mean:
        mean = np.array([r.mean[task] for r in rounds])
        sd = np.array([r.sigma[task] for r in rounds])
        ax.plot(x, mean, "o-", label=f"{prefix}{task}")
        ax.fill_between(x, mean - sd, mean + sd, alpha=0.2)
    ax.set_xlabel("round (CEM generation)")
    ax.set_ylabel("weight (pinned task = 1)")
    ax.set_title(f"{title} CEM mean +- sd of each weight".strip())
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    paths.append(out / "weights.png")
    fig.savefig(paths[1], dpi=110)
    plt.close(fig)
    return paths


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
