"""The Pareto front as a PNG: every trial, the front with its intervals, and control.

matplotlib is imported lazily (Agg backend), only when a plot is asked for.
"""

from __future__ import annotations

from itertools import combinations
from pathlib import Path

import numpy as np

from tuner.pareto._front import ParetoFront

__all__ = ["plot_front"]


def plot_front(front: ParetoFront, out_dir: str | Path, intervals: bool = True) -> Path:
    """Write ``pareto.png`` into ``out_dir`` and return its path.

    Two metrics: one scatter of every feasible trial (grey), guardrail-infeasible trials
    (red x), the front (joined, with 95% intervals of both metrics as error bars) and control
    (a star). Three metrics: the same in the three pairwise panels (the front is the 3-metric
    front, so some of its points look dominated in a 2-metric panel), each front point
    coloured by the panel's third metric. Every front point is labelled with its trial
    number (``search export --trial N`` exports it); ``intervals=False`` hides the bars.

    Raises:
        ValueError: the study has no completed trial.
    """
    if not front.trials:
        raise ValueError(f"study {front.study_name!r} has no completed trial to plot")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pairs = list(combinations(range(len(front.metrics)), 2))
    fig, axes = plt.subplots(1, len(pairs), figsize=(6.2 * len(pairs), 5), squeeze=False)
    feasible = [t for t in front.trials if not t.infeasible]
    infeasible = [t for t in front.trials if t.infeasible]
    for ax, (i, j) in zip(axes[0], pairs, strict=True):
        mi, mj = front.metrics[i], front.metrics[j]
        if feasible:
            Y = front.values(feasible)
            ax.scatter(Y[:, i], Y[:, j], s=10, c="0.65", label=f"trials ({len(feasible)})")
        if infeasible:
            Y = front.values(infeasible)
            ax.scatter(Y[:, i], Y[:, j], s=14, c="tab:red", marker="x",
                       label=f"infeasible ({len(infeasible)}, never on the front)")
        if front.points:
            Y = front.values()
            low = np.array([[p.metrics[m].low for m in front.metrics] for p in front.points])
            high = np.array([[p.metrics[m].high for m in front.metrics] for p in front.points])
            order = np.argsort(Y[:, i])
            label = f"Pareto front ({len(front.points)}" + (
                ", 95% intervals)" if intervals else ")")
            if intervals:
                ax.errorbar(Y[:, i], Y[:, j],
                            xerr=[Y[:, i] - low[:, i], high[:, i] - Y[:, i]],
                            yerr=[Y[:, j] - low[:, j], high[:, j] - Y[:, j]],
                            fmt="none", ecolor="tab:blue", elinewidth=0.7, capsize=2,
                            alpha=0.6)
            if len(front.metrics) == 3:
                (k,) = {0, 1, 2} - {i, j}
                dots = ax.scatter(Y[:, i], Y[:, j], c=Y[:, k], cmap="viridis", s=30,
                                  edgecolors="k", linewidths=0.5, zorder=4, label=label)
                fig.colorbar(dots, ax=ax, label=f"{front.metrics[k]} per request")
            else:
                ax.plot(Y[order, i], Y[order, j], "o-", c="tab:blue", ms=5, lw=1, zorder=4,
                        label=label)
            for p, yi, yj in zip(front.points, Y[:, i], Y[:, j], strict=True):
                ax.annotate(str(p.trial), (yi, yj), xytext=(3, 3), textcoords="offset points",
                            fontsize=7, color="0.15")
        if front.control and mi in front.control and mj in front.control:
            ax.scatter([front.control[mi].value], [front.control[mj].value], marker="*",
                       s=220, c="gold", edgecolors="k", zorder=5, label="control")
        ax.set_xlabel(f"{mi} per request ({front.directions[i]})")
        ax.set_ylabel(f"{mj} per request ({front.directions[j]})")
        ax.grid(alpha=0.3)
    axes[0][0].legend(loc="best", fontsize=8)
    fig.suptitle(f"{front.study_name}: Pareto front of {', '.join(front.metrics)} "
                 "(search split)")
    fig.tight_layout()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "pareto.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
