"""A streamed log's scores: a score table that does not cover the log is refused with the
score file and row and the log file and row, whatever the order of its rows."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.tuner.test_streamed_search import _settings, write_files
from tuner.evaluation.scores import ScoreTableError
from tuner.evaluation.streamed import StreamedWorkspace

Spoil = Callable[[pa.Table], pa.Table]


def _drop_row_5(t: pa.Table) -> pa.Table:
    return pa.concat_tables([t.slice(0, 5), t.slice(6)])


def _repeat_row_5(t: pa.Table) -> pa.Table:
    return pa.concat_tables([t.slice(0, 6), t.slice(5)])


def _other_item_at_row_5(t: pa.Table) -> pa.Table:
    items = t.column("item_id").to_numpy().copy()
    items[5] = 10**9
    return t.set_column(t.schema.get_field_index("item_id"), "item_id", pa.array(items))


def _no_request_of_row_5(t: pa.Table) -> pa.Table:
    req = t.column("request_id").to_numpy()
    return t.filter(pa.array(req != req[5]))


def _score_2_at_row_5(t: pa.Table) -> pa.Table:
    p = t.column("p_click").to_numpy().copy()
    p[5] = 2.0
    return t.set_column(t.schema.get_field_index("p_click"), "p_click", pa.array(p))


def _reversed_candidates(t: pa.Table) -> pa.Table:
    """Each request's candidates in reverse order (rows still sorted by request)."""
    req = t.column("request_id").to_numpy()
    return t.take(np.lexsort((-np.arange(len(req)), req)))


# rows 0..19 of part-0001 are its first request (400), logged at rows 0..19 of the log file
@pytest.mark.parametrize(("spoil", "pattern"), [
    (_drop_row_5, r"scores/part-0001.parquet: row 0: request 400 \(log .*logs/part-0001.parquet "
                  r"row 0\): the log's item\(s\) \d+ have no score"),
    (_repeat_row_5, r"scores/part-0001.parquet: row 0: request 400 \(log .*row 0\): it scores "
                    r"item\(s\) \d+ more than once"),
    (_other_item_at_row_5, r"part-0001.parquet: row 0: request 400 \(log .*row 0\): the log's "
                           r"item\(s\) \d+ have no score; it scores item\(s\) 1000000000 that "
                           r"the log does not list there"),
    (_no_request_of_row_5, r"score table .*scores: no rows for request 400 \(log "
                           r".*logs/part-0001.parquet row 0\)"),
    (_score_2_at_row_5, r"scores/part-0001.parquet: column 'p_click' row 5: score 2.0 is not "
                        r"a probability in \(0, 1\]"),
])
@pytest.mark.parametrize("order", [lambda t: t, _reversed_candidates],
                         ids=["log order", "candidates reversed"])
def test_a_score_table_that_does_not_cover_the_log_is_refused_with_file_and_row(
        tmp_path: Path, spoil: Spoil, pattern: str, order: Spoil) -> None:
    logs, scores = write_files(tmp_path, 3)
    for f in sorted(scores.glob("*.parquet")):
        pq.write_table(order(pq.read_table(f)), f)
    part = scores / "part-0001.parquet"
    pq.write_table(spoil(pq.read_table(part)), part)
    ws = StreamedWorkspace(_settings(logs, scores), chunk_rows=3000)
    with pytest.raises(ScoreTableError) as err:
        ws.check()
    message = str(err.value)
    assert re.search(pattern, message), message
    assert "\n" not in message


def test_scores_of_requests_the_log_lacks_are_ignored(tmp_path: Path) -> None:
    logs, scores = write_files(tmp_path, 3)
    want = StreamedWorkspace(_settings(logs, scores)).replay("search").evaluate(
        np.ones((1, 3)), {"click": 1.0})
    part = scores / "part-0001.parquet"
    t = pq.read_table(part)
    extra = t.slice(0, 3).set_column(0, "request_id", pa.array(np.full(3, 400_000, np.int64)))
    pq.write_table(pa.concat_tables([t, extra]), part)  # a request the log does not have
    got = StreamedWorkspace(_settings(logs, scores)).replay("search").evaluate(
        np.ones((1, 3)), {"click": 1.0})
    assert np.array_equal(got.value, want.value)
