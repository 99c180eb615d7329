"""From logged traffic to ranker rows and back: the only place both packages meet.

The ranker learns from *shown* impressions. The slot a candidate was shown in
is itself a feature (``position``): the model learns the position bias there
instead of in the item features, and every candidate is scored as if shown in
the top slot, which is what ``E[label | examined]`` asks for.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ranker import (
    CategoricalFeature,
    FeatureSpec,
    MultiTaskModel,
    NumericFeature,
    RankerData,
    TaskSpec,
    predict,
)
from simulator.logs import LoggedTraffic
from tuner.evaluation.scores import ScoreTable

__all__ = ["candidate_features", "default_feature_specs", "ranker_rows", "score_traffic"]

POSITION = "position"


def default_feature_specs(traffic: LoggedTraffic, dim: int = 16) -> list[FeatureSpec]:
    """Feature specs for a log: ids and integer features categorical, the rest numeric."""
    specs: list[FeatureSpec] = [
        CategoricalFeature("user_id", int(traffic.user_ids.max()) + 1, dim),
        CategoricalFeature("item_id", int(traffic.item_ids.max()) + 1, dim),
        CategoricalFeature(POSITION, traffic.slate_size, 4),
    ]
    for name, values in traffic.features.items():
        if values.dtype.kind in "iu":
            specs.append(CategoricalFeature(name, int(values.max()) + 1, min(dim, 8)))
        else:
            specs.append(NumericFeature(name))
    return specs


def candidate_features(traffic: LoggedTraffic, mask: np.ndarray | None = None,
                       position: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """1-D feature arrays of the candidates where ``mask`` is True (default: all).

    ``position`` overrides the logged slot (default: the logged slot, 0 if not shown).
    """
    mask = np.ones(traffic.item_ids.shape, dtype=bool) if mask is None else mask
    slot = np.where(traffic.shown, traffic.positions, 0) if position is None else position
    feats = {
        "user_id": np.broadcast_to(traffic.user_ids[:, None], mask.shape)[mask],
        "item_id": traffic.item_ids[mask],
        POSITION: slot[mask],
    }
    feats.update({k: v[mask] for k, v in traffic.features.items()})
    return feats


def ranker_rows(traffic: LoggedTraffic, tasks: Sequence[TaskSpec]) -> RankerData:
    """Training rows: the shown impressions with their labels.

    A task whose label depends on another (``after:click``) gets its labels
    as logged; the ranker's sample space keeps its loss to the right rows.
    """
    shown = traffic.shown
    missing = [t.name for t in tasks if t.name not in traffic.labels]
    if missing:
        raise ValueError(f"ranker task(s) {missing} have no label column in the log; "
                         f"label_<task> columns: {list(traffic.tasks)}")
    return RankerData(
        features=candidate_features(traffic, shown),
        labels={t.name: traffic.labels[t.name][shown] for t in tasks},
    )


def score_traffic(model: MultiTaskModel, traffic: LoggedTraffic) -> ScoreTable:
    """Every logged candidate scored as if shown in the top slot (``p_<task>`` per task).

    The padding of a ragged log is not scored (its table row is item ``-1``, score 0).
    """
    top = np.zeros_like(traffic.positions)
    if traffic.valid is None:
        probs = predict(model, candidate_features(traffic, position=top))
        shape = traffic.item_ids.shape
        return ScoreTable(traffic.request_ids, traffic.item_ids,
                          {t.name: probs[t.name].reshape(shape) for t in model.tasks})
    valid = traffic.valid
    probs = predict(model, candidate_features(traffic, valid, position=top))

    def padded(values: np.ndarray) -> np.ndarray:
        out = np.zeros(valid.shape)
        out[valid] = values
        return out

    return ScoreTable(traffic.request_ids, np.where(valid, traffic.item_ids, -1),
                      {t.name: padded(probs[t.name]) for t in model.tasks})
