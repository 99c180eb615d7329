"""The logged-traffic container: round trips and table-driven bad input."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from simulator.logs import BINARY, CONTINUOUS, LoggedTraffic, LogValidationError
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


def _shown_row(cols: dict[str, np.ndarray], i: int = 0) -> int:
    return int(np.flatnonzero(cols["position"] >= 0)[i])


def _set_shown_label(task: str, value: float):
    def edit(cols: dict[str, np.ndarray]) -> None:
        cols[f"label_{task}"][_shown_row(cols, 3)] = value
    return edit


def _repeat_item(cols: dict[str, np.ndarray]) -> None:
    # the second candidate of request 0 becomes the first one's item
    first = np.flatnonzero(cols["request_id"] == cols["request_id"][0])
    cols["item_id"][first[1]] = cols["item_id"][first[0]]


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
        # a row moved to a request of its own: requests may be ragged, but request 0's
        # shown slot 0 now lacks that row's propensity
        (_set("request_id", 0, 999), r"column 'pscore_0' rows of request 0 sum to 0.950000; "
                                     r"each shown slot's propensities must sum to 1"),
        (_set("item_id", 4, 1.5), r"column 'item_id' row 4: must be an integer"),
        (_set_shown_label("click", 2.0), r"bad.parquet: task 'click' is binary \(labels 0 or 1\)"
                                         r" but request \d+ row \d+ has label 2;"),
        (_set_shown_label("like", -1.0), r"task 'like' is binary \(labels 0 or 1\) but request "
                                         r"\d+ row \d+ has label -1"),
        (_set_shown_label("like", 0.5), r"task 'like' is binary .* has label 0.5"),
        (_repeat_item, r"column 'item_id' row 1: request 0 lists item \d+ twice"),
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


def test_a_bad_label_names_task_request_and_file_row(traffic: LoggedTraffic) -> None:
    cols = {k: v.copy() for k, v in traffic.to_columns().items()}
    perm = np.random.default_rng(1).permutation(len(cols["request_id"]))
    cols = {k: v[perm] for k, v in cols.items()}  # file rows not in request order
    row = _shown_row(cols, 5)
    cols["label_click"][row] = 2.0
    request = cols["request_id"][row]
    with pytest.raises(LogValidationError, match=f"^logs.csv: task 'click' is binary \\(labels "
                       f"0 or 1\\) but request {request} row {row} has label 2;"):
        LoggedTraffic.from_columns(cols, source="logs.csv")


def test_a_log_built_in_memory_is_checked_alike(traffic: LoggedTraffic) -> None:
    labels = dict(traffic.labels)
    r, c = np.argwhere(traffic.shown)[7]
    labels["click"] = labels["click"].copy()
    labels["click"][r, c] = 2.0
    row = r * traffic.n_candidates + c  # the row of to_columns() and of the written file
    with pytest.raises(LogValidationError, match=f"request {traffic.request_ids[r]} row {row} "
                                                 "has label 2"):
        dataclasses.replace(traffic, labels=labels)
    items = traffic.item_ids.copy()
    items[4, 2] = items[4, 0]
    with pytest.raises(LogValidationError, match=f"request {traffic.request_ids[4]} lists item "
                                                 f"{items[4, 0]} twice"):
        dataclasses.replace(traffic, item_ids=items)


def _with_watch_time(traffic: LoggedTraffic, value: float) -> LoggedTraffic:
    watch = np.where(traffic.shown, 12.5, 0.0)
    watch[np.argwhere(traffic.shown)[2][0], np.argwhere(traffic.shown)[2][1]] = value
    return dataclasses.replace(traffic, labels={**traffic.labels, "watch": watch},
                               label_kinds={"watch": CONTINUOUS})


def test_continuous_labels_are_amounts_and_refuse_negatives(traffic: LoggedTraffic) -> None:
    log = _with_watch_time(traffic, 300.0)
    assert log.label_kinds == {"click": BINARY, "like": BINARY, "watch": CONTINUOUS}
    with pytest.raises(LogValidationError, match=r"task 'watch' is continuous \(labels >= 0\) "
                                                 r"but request \d+ row \d+ has label -3"):
        _with_watch_time(traffic, -3.0)
    with pytest.raises(LogValidationError, match=r"column 'label_watch' row \d+: value inf is "
                                                 "not finite"):
        _with_watch_time(traffic, np.inf)
    with pytest.raises(LogValidationError, match=r"unknown label kind\(s\) \{'click': 'count'\}; "
                                                 r"valid: \['binary', 'continuous'\]"):
        dataclasses.replace(traffic, label_kinds={"click": "count"})
    with pytest.raises(LogValidationError, match=r"label kinds of unknown task\(s\) \['nope'\]"):
        dataclasses.replace(traffic, label_kinds={"nope": CONTINUOUS})


def test_label_kinds_round_trip_through_parquet_and_csv(traffic: LoggedTraffic,
                                                        tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.csv as pacsv

    log = _with_watch_time(traffic, 300.0)
    back = LoggedTraffic.read(log.write(tmp_path / "log.parquet"))
    assert back.label_kinds == log.label_kinds
    assert back.fingerprint() == log.fingerprint()
    pacsv.write_csv(pa.table(log.to_columns()), tmp_path / "log.csv")
    with pytest.raises(LogValidationError, match="task 'watch' is binary"):
        LoggedTraffic.read(tmp_path / "log.csv")  # a CSV carries no kinds
    csv = LoggedTraffic.read(tmp_path / "log.csv", label_kinds={"watch": CONTINUOUS})
    assert csv.label_kinds == log.label_kinds and csv.fingerprint() == log.fingerprint()


def test_old_parquet_logs_without_kinds_are_binary(traffic: LoggedTraffic,
                                                   tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table(traffic.to_columns()), tmp_path / "old.parquet")
    assert set(LoggedTraffic.read(tmp_path / "old.parquet").label_kinds.values()) == {BINARY}
    table = pa.table(traffic.to_columns()).replace_schema_metadata(
        {b"fusiontune.label_kinds": b"[1, 2]"})
    pq.write_table(table, tmp_path / "bad.parquet")
    with pytest.raises(LogValidationError, match="bad.parquet: Parquet metadata "
                                                 "'fusiontune.label_kinds' must be a JSON object"):
        LoggedTraffic.read(tmp_path / "bad.parquet")


def test_world_logs_round_trip_with_their_kinds(tmp_path: Path) -> None:
    from simulator.worlds import MarketplaceConfig, MarketplaceWorld

    log = MarketplaceWorld(MarketplaceConfig(n_requests=300, seed=0)).generate()
    back = LoggedTraffic.read(log.write(tmp_path / "world.parquet"))
    assert back.label_kinds == dict.fromkeys(log.tasks, BINARY) == log.label_kinds
    assert back.fingerprint() == log.fingerprint()


# ------------------------------------------------------------------ ragged logs
def _ragged_columns(traffic: LoggedTraffic) -> dict[str, np.ndarray]:
    """The log's rows with request 1 cut to its shown rows and two more (ragged)."""
    cols = {k: v.copy() for k, v in traffic.to_columns().items()}
    req, pos = cols["request_id"], cols["position"]
    unshown_of_1 = np.flatnonzero((req == 1) & (pos < 0))
    drop = unshown_of_1[2:]
    keep = np.setdiff1d(np.arange(len(req)), drop)
    out = {k: v[keep] for k, v in cols.items()}
    # the propensities of the rows left in request 1 must still sum to 1 per slot
    left = out["request_id"] == 1
    for k in range(traffic.slate_size):
        col = out[f"pscore_{k}"]
        col[left] = col[left] / col[left].sum()
    return out


def test_a_ragged_log_round_trips_without_padding_rows(traffic: LoggedTraffic,
                                                       tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.csv as pacsv

    cols = _ragged_columns(traffic)
    log = LoggedTraffic.from_columns(cols, traffic.examination)
    assert log.valid is not None and log.candidate_counts[1] < log.n_candidates
    assert len(log.to_columns()["request_id"]) == len(cols["request_id"])
    assert (log.item_ids[~log.valid] == -1).all() and not log.shown[~log.valid].any()
    back = LoggedTraffic.read(log.write(tmp_path / "ragged.parquet"))
    assert back.fingerprint() == log.fingerprint()
    pacsv.write_csv(pa.table(log.to_columns()), tmp_path / "ragged.csv")
    assert LoggedTraffic.read(tmp_path / "ragged.csv").fingerprint() == log.fingerprint()
    wider = LoggedTraffic.concatenate([log.take(np.arange(5)), log.take(np.arange(5, 30))])
    assert wider.fingerprint() == log.fingerprint()


def test_a_log_with_only_shown_propensities_round_trips(traffic: LoggedTraffic,
                                                        tmp_path: Path) -> None:
    cols = {k: v for k, v in traffic.to_columns().items() if not k.startswith("pscore_")}
    logged = traffic.logged_propensity().reshape(-1)
    cols["pscore"] = np.where(np.isnan(logged), np.nan, logged)  # null where not shown
    log = LoggedTraffic.from_columns(cols)  # no curve: K = 1 + the largest position
    assert log.pscores is None and log.slate_size == traffic.slate_size
    assert traffic.examination is not None
    back = LoggedTraffic.read(log.with_examination(traffic.examination).write(
        tmp_path / "shown.parquet"))
    assert back.slate_size == 3 and back.pscores is None
    np.testing.assert_allclose(back.logged_propensity(), traffic.logged_propensity())
    both = {**traffic.to_columns(), "pscore": np.nan_to_num(logged)}
    assert LoggedTraffic.from_columns(both).shown_pscores is not None


def _shown_only(cols: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    out = {k: v for k, v in cols.items() if not k.startswith("pscore_")}
    pos = cols["position"]
    logged = np.zeros(len(pos))
    for k in range(3):
        logged = np.where(pos == k, cols[f"pscore_{k}"], logged)
    out["pscore"] = logged
    return out


def _shown_row_pscore(value: float):
    def edit(cols: dict[str, np.ndarray]) -> None:
        cols.update(_shown_only(cols))
        cols["pscore"][_shown_row(cols, 2)] = value
    return edit


def _inconsistent_pscore(cols: dict[str, np.ndarray]) -> None:
    cols["pscore"] = _shown_only(cols)["pscore"]
    cols["pscore"][_shown_row(cols, 1)] *= 0.5


def _slot_beyond_page(cols: dict[str, np.ndarray]) -> None:
    cols.update(_shown_only(cols))
    cols["position"][_shown_row(cols, 0)] = 3


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (_shown_row_pscore(np.nan), r"column 'pscore' row \d+: propensity nan of a shown row "
                                    r"\(request 0, slot \d\) must be in \(0, 1\]"),
        (_shown_row_pscore(0.0), r"column 'pscore' row \d+: propensity 0.0 of a shown row"),
        (_shown_row_pscore(1.2), r"column 'pscore' row \d+: propensity 1.2 of a shown row"),
        (_inconsistent_pscore, r"column 'pscore' row \d+: propensity [\d.]+ disagrees with "
                               r"pscore_\d = [\d.]+ of the slot"),
        (_slot_beyond_page, r"column 'position' row \d+: value 3 is not a valid slot; valid: "
                            r"-1 \(not shown\) or 0..2"),
        (_drop_all_pscores := (lambda cols: [cols.pop(c) for c in list(cols)
                                             if c.startswith("pscore_")]),
         r"missing propensities: a log needs the columns pscore_0..pscore_<K-1> .* or the "
         r"column 'pscore'"),
    ],
)
def test_malformed_ragged_and_shown_only_logs_are_refused(traffic: LoggedTraffic, edit,
                                                          match: str) -> None:
    cols = {k: v.copy() for k, v in traffic.to_columns().items()}
    edit(cols)
    with pytest.raises(LogValidationError, match=match):
        LoggedTraffic.from_columns(cols, traffic.examination, source="bad.parquet")


def test_a_ragged_log_s_faults_name_the_row_of_its_file(traffic: LoggedTraffic) -> None:
    cols = _ragged_columns(traffic)
    row = int(np.flatnonzero(cols["request_id"] == 2)[1])  # after the cut request 1
    cols["item_id"][row] = cols["item_id"][row - 1]
    with pytest.raises(LogValidationError, match=rf"column 'item_id' row {row}: request 2 "
                                                 r"lists item \d+ twice"):
        LoggedTraffic.from_columns(cols, traffic.examination)
    ragged = LoggedTraffic.from_columns(_ragged_columns(traffic), traffic.examination)
    labels = {k: v.copy() for k, v in ragged.labels.items()}
    shown = np.argwhere(ragged.shown & (np.arange(ragged.n_requests) == 2)[:, None])[0]
    labels["click"][tuple(shown)] = 3.0
    expected = int(ragged.candidate_counts[:2].sum()) + int(shown[1])  # row of to_columns
    with pytest.raises(LogValidationError, match=rf"request 2 row {expected} has label 3"):
        dataclasses.replace(ragged, labels=labels)


def _padding(t: LoggedTraffic, **change: Any) -> LoggedTraffic:
    return dataclasses.replace(t, **change)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda t: {"valid": np.zeros(t.item_ids.shape, bool)},
         r"request 0 has no candidates"),
        (lambda t: {"valid": np.tile([True] * 5 + [False], (t.n_requests, 1))
                    & (np.arange(t.n_requests) > 0)[:, None]
                    | (np.arange(6) == 5)[None, :] & (np.arange(t.n_requests) == 0)[:, None]},
         r"request 0 has a candidate \(index 5\) after padding"),
        (lambda t: {"valid": np.tile(np.arange(6) < 5, (t.n_requests, 1))},  # 5 is shown
         r"positions: padding \(index 5\) of request \d+ must be -1 \(not shown\)"),
    ],
)
def test_bad_padding_in_memory_is_refused(traffic: LoggedTraffic, change, match: str) -> None:
    with pytest.raises(LogValidationError, match=match):
        _padding(traffic, **change(traffic))


def test_the_old_equal_size_message_is_gone() -> None:
    import inspect

    from simulator import _log_checks, _log_columns
    for module in (_log_checks, _log_columns):
        assert "every request needs the same number" not in inspect.getsource(module)
