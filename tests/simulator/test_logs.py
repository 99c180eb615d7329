"""The logged-traffic container: round trips and table-driven bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from simulator.logs import LoggedTraffic, LogValidationError
from tests.simulator.toylog import make_toy


@pytest.fixture
def traffic() -> LoggedTraffic:
    return make_toy(0, n_requests=30, n_candidates=6, k=3)[0]


def test_parquet_round_trip(traffic: LoggedTraffic, tmp_path: Path) -> None:
    path = traffic.write(tmp_path / "log.parquet")
    back = LoggedTraffic.read(path)
    assert back.fingerprint() == traffic.fingerprint()
    np.testing.assert_array_equal(back.examination, traffic.examination)
    assert [p.name for p in tmp_path.iterdir()] == ["log.parquet"]  # no temp file left


def test_csv_round_trip(traffic: LoggedTraffic, tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.csv as pacsv

    path = tmp_path / "log.csv"
    pacsv.write_csv(pa.table(traffic.to_columns()), path)
    assert LoggedTraffic.read(path).fingerprint() == traffic.fingerprint()


def test_rows_in_any_order_give_the_same_log(traffic: LoggedTraffic) -> None:
    cols = traffic.to_columns()
    perm = np.random.default_rng(0).permutation(len(cols["request_id"]))
    shuffled = {k: v[perm] for k, v in cols.items()}
    back = LoggedTraffic.from_columns(shuffled, traffic.examination)
    # candidates keep their within-request order only up to the shuffle, so compare sets
    assert back.n_requests == traffic.n_requests
    np.testing.assert_allclose(np.sort(back.labels["click"].sum(axis=1)),
                               np.sort(traffic.labels["click"].sum(axis=1)))


def test_split_is_by_request_and_seeded(traffic: LoggedTraffic) -> None:
    a, b = traffic.split(0.5, seed=1)
    assert a.n_requests + b.n_requests == traffic.n_requests
    assert not set(a.request_ids) & set(b.request_ids)
    a2, _ = traffic.split(0.5, seed=1)
    assert a.fingerprint() == a2.fingerprint()
    with pytest.raises(ValueError, match="fraction must be in"):
        traffic.split(1.0, seed=0)


def _set(col: str, row: int, value: float):
    def edit(cols: dict[str, np.ndarray]) -> None:
        cols[col] = cols[col].astype(np.float64)
        cols[col][row] = value
    return edit


def _drop(col: str):
    def edit(cols: dict[str, np.ndarray]) -> None:
        del cols[col]
    return edit


def _duplicate_position(cols: dict[str, np.ndarray]) -> None:
    # row 0 and the candidate shown in slot 1 of request 0 both claim slot 1
    first = np.flatnonzero(cols["request_id"] == cols["request_id"][0])
    pos = cols["position"]
    in_slot_0 = first[pos[first] == 0][0]
    pos[in_slot_0] = 1


def _zero_logged_propensity(cols: dict[str, np.ndarray]) -> None:
    row = int(np.flatnonzero(cols["position"] == 2)[4])
    cols["pscore_2"] = cols["pscore_2"].copy()
    cols["pscore_2"][row] = 0.0


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (_drop("position"), r"missing column\(s\) \['position'\]"),
        (_drop("pscore_0"), r"propensity columns must be \['pscore_0', 'pscore_1'\]"),
        (_set("label_click", 7, np.nan), r"column 'label_click' row 7: value nan is not finite"),
        (_set("pscore_1", 3, 1.5), r"column 'pscore_1' row 3: propensity 1.5 is outside"),
        (_set("pscore_0", 5, -0.1), r"column 'pscore_0' row 5: propensity -0.1 is outside"),
        (_zero_logged_propensity, r"column 'pscore_2' row \d+: propensity of the logged slot "
                                  r"is 0.0; it must be in \(0, 1\]"),
        (_duplicate_position, r"column 'position' row \d+: request 0 shows two candidates in "
                              r"slot 1"),
        (_set("position", 2, 9), r"column 'position' row 2: value 9 is not a valid slot"),
        (_set("request_id", 0, 999), r"column 'request_id' row \d+: request \d+ has \d "
                                     r"candidates, but most "
                                          r"requests have 6"),
        (_set("item_id", 4, 1.5), r"column 'item_id' row 4: must be an integer"),
    ],
)
def test_malformed_logs_are_refused_naming_column_and_row(
    traffic: LoggedTraffic, edit, match: str
) -> None:
    cols = {k: v.copy() for k, v in traffic.to_columns().items()}
    edit(cols)
    with pytest.raises(LogValidationError, match=match):
        LoggedTraffic.from_columns(cols, traffic.examination, source="bad.parquet")


def test_label_of_an_unshown_candidate_is_refused(traffic: LoggedTraffic) -> None:
    cols = {k: v.copy() for k, v in traffic.to_columns().items()}
    row = int(np.flatnonzero(cols["position"] == -1)[0])
    cols["label_like"][row] = 1.0
    with pytest.raises(LogValidationError, match=f"'label_like' row {row}: a candidate that"):
        LoggedTraffic.from_columns(cols)


def test_missing_file_and_unknown_format(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="log file not found: .*nope.parquet"):
        LoggedTraffic.read(tmp_path / "nope.parquet")
    (tmp_path / "log.json").write_text("{}")
    with pytest.raises(LogValidationError, match="valid: .parquet, .pq, .csv"):
        LoggedTraffic.read(tmp_path / "log.json")
