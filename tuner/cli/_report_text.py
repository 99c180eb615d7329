"""The A/B report as text, and the warnings for estimates that rest on too few events."""

from __future__ import annotations

from collections.abc import Mapping

import click

from simulator.replay import MIN_EVENTS
from simulator.report import ABReport
from tuner.cli._format import table

__all__ = ["ab_events", "ab_table", "events_warnings", "warn_few_events"]


def ab_table(report: ABReport, search_values: dict[str, float] | None = None,
             truth: dict[str, tuple[float, float]] | None = None) -> str:
    """Per metric: control, treatment, lift with interval; optional search and true columns."""
    header = ["metric", "control", "treatment", "lift", "lift 95% interval", "rel. lift"]
    if search_values is not None:
        header.append("search-split est.")
    if truth is not None:
        header += ["true control", "true treatment", "true lift"]
    rows = []
    for r in report.rows:
        row: list[object] = [r.metric, r.control.value, r.treatment.value, r.lift.value,
                             f"[{r.lift.low:+.4f}, {r.lift.high:+.4f}]",
                             f"{100 * r.relative_lift:+.1f}%"]
        if search_values is not None:
            row.append(search_values.get(r.metric, float("nan")))
        if truth is not None:
            c, t = truth[r.metric]
            row += [c, t, f"{t - c:+.4f} ({100 * (t / c - 1):+.1f}%)"]
        rows.append(row)
    return table(header, rows)


def ab_events(report: ABReport) -> dict[str, float]:
    """Metric -> effective events of its lift (the thinner of the two arms)."""
    return {r.metric: r.lift.events for r in report.rows}


def events_warnings(events: Mapping[str, float], split: str,
                    threshold: float = MIN_EVENTS) -> list[str]:
    """One warning per metric whose estimate rests on fewer than ``threshold`` events.

    Args:
        events: metric -> effective number of label events of its estimate
            (nan, e.g. for the direct method, never warns).
        split: the part of the log the estimate comes from, e.g. ``"held-out"``.
        threshold: fewest events an interval can be trusted on
            (:data:`simulator.replay.MIN_EVENTS`, measured).

    Returns:
        The warning lines, in the order of ``events``.
    """
    return [f"warning: {metric} rests on {n:.0f} effective events on the {split} split "
            f"(< {threshold:g}); its interval may be too narrow - log more requests"
            for metric, n in events.items() if n < threshold]


def warn_few_events(events: Mapping[str, float], split: str) -> None:
    """Print :func:`events_warnings` to stderr (stdout stays the report, or its JSON)."""
    for line in events_warnings(events, split):
        click.echo(line, err=True)
