"""``search compare``: a study's leading picks side by side, with paired differences."""

from __future__ import annotations

import math
from typing import Any

import click
import numpy as np

from tuner.cli._common import STORAGE, STUDY, dump, load_existing, storage_url, user_errors
from tuner.cli._format import table
from tuner.cli._report_text import warn_few_events
from tuner.evaluation.loss_study import is_loss_study
from tuner.evaluation.search_data import HOLDOUT, SEARCH, SearchSettings, Workspace
from tuner.evaluation.streamed import StreamedWorkspace, open_workspace
from tuner.picks.compare import ORDERS, Comparison, compare_picks
from tuner.picks.picking import pick_weights
from tuner.segments import ATTR_SEGMENTS, refuse_segment_study
from tuner.segments._cli import compare_dict, compare_text, personalised_compare
from tuner.segments._personalise import learned_compare

__all__ = ["search_compare"]


@click.command("compare")
@STORAGE
@STUDY
@click.option("--top", type=click.IntRange(min=1), default=5, show_default=True,
              help="How many of the best trials (by search-split value) to compare.")
@click.option("--split", type=click.Choice([HOLDOUT, SEARCH]), default=HOLDOUT,
              show_default=True, help="Split to compare on; the held-out one was never "
              "searched on, so its estimates carry no winner's curse.")
@click.option("--metric", default="objective", show_default=True,
              help="'objective' or one of the log's tasks.")
@click.option("--order", type=click.Choice(ORDERS), default="auto", show_default=True,
              help="What ranks the picks and names the leader: gated_dr (an ordering score "
              "with little label noise, no metric's units), the study's estimate, or auto "
              "(gated_dr where the log is held whole and scored for every label task). "
              "Every reported figure is the study's estimator's either way.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@user_errors
def search_compare(storage: str, study_name: str, top: int, split: str, metric: str,
                   order: str, as_json: bool) -> None:
    """Compare the strategy's pick (CEM's mean), the best trials and the control on one
    split.

    Every pick is estimated on the same requests, so each one's difference to
    the leader gets a paired interval, the probability that the leader is truly
    better, and the requests that would separate the two at 95%. Picks whose
    difference interval holds 0 are not told apart by this log. The leader is the
    first by --order; the estimates and intervals are the study's estimator's.
    """
    url = storage_url(storage)
    study, search = load_existing(url, study_name)
    refuse_segment_study(study, "compare")
    raw = search.settings
    if is_loss_study(raw):
        raise ValueError(f"study {study_name!r} is a loss-weight study: each trial scores "
                         "with its own ranker, so they cannot be compared on one score table; "
                         "export one with 'fusiontune search export' and compare its "
                         "fusion weights in a fusion study")
    if len(study.directions) > 1:
        raise ValueError(f"study {study_name!r} is a Pareto study: it has no single order to "
                         "compare; see its front with 'fusiontune search pareto --study "
                         f"{study_name} --rounds 0'")
    ws = open_workspace(SearchSettings.from_dict(raw))  # a folder, or --stream: streamed
    comparison = compare_picks(ws, study, search, top, split, metric, order)
    if comparison.order_note:
        click.echo(f"note: {comparison.order_note}", err=True)
    warn_few_events({f"{p.label}: {metric}": p.estimate.events for p in comparison.picks},
                    "held-out" if split == HOLDOUT else split)
    personal = _personalised(ws, study, search, url, split)
    learned = learned_compare(ws, url, study_name,
                              np.asarray(pick_weights(study, search, "strategy")[0]), split)
    if as_json:
        dump({**comparison.to_dict(),
              **({"personalised": compare_dict(*personal[:2])} if personal is not None
                 else {}),
              **({"learned": compare_dict(learned.estimate, learned.decision, "learned")}
                 if learned is not None else {})})
        return
    click.echo(comparison_text(comparison))
    if personal is not None:
        click.echo("\n" + compare_text(*personal[:2]))
    if learned is not None:
        click.echo("\n" + compare_text(learned.estimate, learned.decision, "learned",
                                        "learned weight model"))


def _personalised(ws: Workspace | StreamedWorkspace, study: Any, search: Any, url: str,
                  split: str) -> Any:
    """A segmented study's personalised vs global (the strategy's pick) vs control."""
    if ATTR_SEGMENTS not in study.user_attrs:
        return None
    weights, _ = pick_weights(study, search, "strategy", None)
    return personalised_compare(ws, study, np.asarray(weights), url, split)


def comparison_text(c: Comparison) -> str:
    """The comparison as a table with a one-line verdict under it."""
    on_search = c.split == SEARCH  # the search-split column would repeat the estimate
    ordered = c.order not in ("", c.estimator)  # a column for the ordering score
    header = ["pick", *([] if on_search else ["search est."]), f"{c.split} est.",
              "95% interval", *([f"{c.order} (rank)"] if ordered else []), "vs leader",
              "95% interval", "P(leader better)", "requests to separate"]
    rows = []
    for p in c.picks:
        e = p.estimate
        row: list[object] = [p.label, *([] if on_search else [p.search_value]), e.value,
                             f"[{e.low:.4f}, {e.high:.4f}]",
                             *([p.order_score] if ordered else [])]
        if p.diff is None:
            row += ["leader", "", "", ""]
        else:
            need = ("-" if math.isinf(p.requests_to_separate)
                    else f"{p.requests_to_separate:,.0f}")
            row += [f"{p.diff.value:+.4f}", f"[{p.diff.low:+.4f}, {p.diff.high:+.4f}]",
                    f"{p.p_leader_better:.2f}", need]
        rows.append(row)
    others = len(c.picks) - 1
    verdict = (f"{c.n_separated} of {others} picks differ from the leader "
               f"({c.picks[0].label}) at 95% on {c.n_requests:,} {c.split} requests "
               f"({c.estimator}); the rest are within this log's noise of it.")
    if ordered:
        verdict += (f"\nRanked by {c.order} on the same requests, an ordering score with no "
                    "metric's units or interval; the estimates are the metric.")
    return (f"study {c.study_name!r}, metric {c.metric!r}\n" + table(header, rows)
            + "\n" + verdict)
