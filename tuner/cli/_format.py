"""Plain-text tables for the terminal (those of an A/B report: :mod:`tuner.cli._report_text`,
apart because they import the simulator's replay, which ``search history`` does not need)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from tuner.study import RoundSummary

__all__ = ["loss_trial_columns", "rounds_table", "table"]


def _fmt(x: object) -> str:
    if isinstance(x, float):
        return "nan" if math.isnan(x) else f"{x:.4f}"
    return str(x)


def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Right-aligned columns with a rule under the header."""
    cells = [[_fmt(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h)
              for i, h in enumerate(header)]
    lines = ["  ".join(h.rjust(w) for h, w in zip(header, widths, strict=True)),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in cells]
    return "\n".join(lines)


def rounds_table(rounds: Sequence[RoundSummary], prefix: str = "w_") -> str:
    """Round, best objective with interval, mean +- spread of each free weight; a study
    ranked by an ordering score (no interval) says so under the table."""
    tasks = list(rounds[0].mean) if rounds else []
    header = ["round", "trials", "best", "95% interval", "trial",
              *[f"{prefix}{t} mean+-sd" for t in tasks]]
    rows = []
    for r in rounds:
        span = (f"[{r.best_low:.4f}, {r.best_high:.4f}]"
                if math.isfinite(r.best_low) and math.isfinite(r.best_high) else "-")
        rows.append([r.round, r.n_trials, r.best_value, span, r.best_trial,
                     *[f"{r.mean[t]:.3f}+-{r.sigma[t]:.3f}" for t in tasks]])
    if not rows:
        return table(header, rows)
    ordering = all(row[3] == "-" for row in rows)
    what = ("an ordering score (no unit, no interval; not a metric)" if ordering
            else "estimate, optimistic (the winner's curse)")
    return (table(header, rows) + f"\nbest: the round's highest search-split {what}; "
            "'search compare' and 'search export' re-estimate picks on held-out requests")


def loss_trial_columns(rows: Sequence[dict[str, Any]]) -> tuple[list[str], list[list[Any]]]:
    """``search history --trials`` of a loss-weight study: weights, AUCs, fused result."""
    loss = sorted({k for r in rows for k in r.get("params", {})})
    aucs = sorted({k for r in rows for k in r.get("auc", {})})
    fusion = sorted({k for r in rows for k in r.get("fusion", {})})
    header = ["number", "state", "round", "value", "ci_low", "ci_high", *loss,
              *[f"auc:{t}" for t in aucs], *[f"fusion:{t}" for t in fusion]]

    def cell(x: Any) -> Any:
        return "" if x is None else x

    out = []
    for r in rows:
        out.append([cell(r.get(k)) for k in ("number", "state", "round", "value", "ci_low",
                                             "ci_high")]
                   + [cell(r.get("params", {}).get(p)) for p in loss]
                   + [cell(r.get("auc", {}).get(t)) for t in aucs]
                   + [cell(r.get("fusion", {}).get(t)) for t in fusion])
    return header, out
