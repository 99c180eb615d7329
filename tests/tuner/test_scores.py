"""The score table: reading, and aligning with its log, with messages that name the fault."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from simulator.logs import LoggedTraffic
from tests.simulator.toylog import make_toy
from tuner.evaluation.scores import ScoreTable, ScoreTableError
from tuner.evaluation.search_data import SearchSettings, Workspace


@pytest.fixture
def traffic() -> LoggedTraffic:
    return make_toy(0, n_requests=40, n_candidates=5, k=2)[0]


def _table(traffic: LoggedTraffic, offset: int = 0) -> ScoreTable:
    rng = np.random.default_rng(0)
    return ScoreTable(traffic.request_ids + offset, traffic.item_ids,
                      {"click": rng.uniform(0.1, 0.9, traffic.item_ids.shape),
                       "like": rng.uniform(0.1, 0.9, traffic.item_ids.shape)})


def _columns(traffic: LoggedTraffic) -> dict[str, np.ndarray]:
    n = traffic.n_candidates
    return {"request_id": np.repeat(traffic.request_ids, n),
            "item_id": traffic.item_ids.ravel(),
            "p_click": np.full(traffic.item_ids.size, 0.5)}


def _settings() -> SearchSettings:
    return SearchSettings(logs="logs.parquet", scores="scores.parquet",
                          objective={"click": 1.0})


def test_round_trip_and_alignment(traffic: LoggedTraffic, tmp_path: Path) -> None:
    table = _table(traffic)
    back = ScoreTable.read(table.write(tmp_path / "s.parquet"))
    np.testing.assert_array_equal(back.aligned(traffic)[..., 0], table.scores["click"])


def test_a_repeated_row_names_request_and_item(traffic: LoggedTraffic, tmp_path: Path) -> None:
    cols = _columns(traffic)
    cols["item_id"][7] = cols["item_id"][6]  # request 1 scores its first item twice
    pq.write_table(pa.table(cols), tmp_path / "s.parquet")
    with pytest.raises(ScoreTableError, match=rf"s.parquet: row 7: request 1 lists item "
                                              rf"{cols['item_id'][6]} twice"):
        ScoreTable.read(tmp_path / "s.parquet")


def test_a_missing_row_names_request_and_item(traffic: LoggedTraffic, tmp_path: Path) -> None:
    cols = {k: np.delete(v, 12) for k, v in _columns(traffic).items()}  # request 2, item 2
    pq.write_table(pa.table(cols), tmp_path / "s.parquet")
    item = traffic.item_ids[2, 2]
    # requests may be ragged: read alone, the table is whole; against its log the row is missed
    table = ScoreTable.read(tmp_path / "s.parquet")
    with pytest.raises(ScoreTableError, match=rf"request 2: the log's item\(s\) {item} have no "
                                              "score"):
        table.aligned(traffic)
    with pytest.raises(ScoreTableError, match=rf"s.parquet: request 2 has 4 scored "
                                              rf"candidate\(s\) but the log lists 5 \(item\(s\) "
                                              rf"{item} of the log have no row\)"):
        ScoreTable.read(tmp_path / "s.parquet", log=traffic)


def test_a_table_of_another_log_is_named_as_such(traffic: LoggedTraffic) -> None:
    with pytest.raises(ScoreTableError, match=r"score table scores.parquet vs log logs.parquet: "
                                              r"40 of 40 logged request\(s\) have no scores, "
                                              r"e.g. request\(s\) 0, 1, 2, 3, 4 and 35 more; no "
                                              r"request matches: the score table seems to be "
                                              r"for another log"):
        Workspace(_settings(), traffic, _table(traffic, offset=1000))


def test_some_requests_without_scores_are_counted_on_the_whole_log(
        traffic: LoggedTraffic) -> None:
    partial = _table(traffic.take(np.arange(30)))
    with pytest.raises(ScoreTableError, match=r"10 of 40 logged request\(s\) have no scores, "
                                              r"e.g. request\(s\) 30, 31, 32, 33, 34 and 5 more; "
                                              "score the same log"):
        Workspace(_settings(), traffic, partial)


def test_other_candidates_name_the_unscored_and_the_extra_item(traffic: LoggedTraffic) -> None:
    table = _table(traffic)
    items = table.item_ids.copy()
    items[3, 1] = 999
    with pytest.raises(ScoreTableError, match=rf"request 3: the log's item\(s\) "
                                              rf"{traffic.item_ids[3, 1]} have no score; the "
                                              r"score table scores item\(s\) 999 that the log"):
        ScoreTable(table.request_ids, items, table.scores).aligned(traffic)
