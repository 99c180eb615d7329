"""Plots of a search's history (PNG), for people who would rather see than read.

matplotlib is imported lazily (Agg backend), only when a plot is asked for.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from tuner.study import RoundSummary

__all__ = ["plot_history"]


def plot_history(rounds: Sequence[RoundSummary], out_dir: str | Path,
                 title: str = "") -> list[Path]:
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
        ax.plot(x, mean, "o-", label=f"w_{task}")
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
