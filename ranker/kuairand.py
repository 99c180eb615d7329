"""Loader of the real KuaiRand-Pure slice: ranker rows, features, tasks, user ids and history.

The data is never part of the repository. It is read from, in order: the
``path`` argument, the environment variable ``FUSIONTUNE_KUAIRAND``, or
``../shared/data/kuairand-pure`` beside the checkout (:func:`default_path`).

**Rows.** The two standard-feed logs (2022-04-25..2022-05-08, 228,329
impressions) less their exact duplicate rows (5,460; all columns equal) leave
222,869 impressions, split by the logged ``date``:

========  =====================  =======
split     dates                  rows
========  =====================  =======
train     2022-04-25..2022-05-04 167,281
valid     2022-05-05..2022-05-06  26,683
test      2022-05-07..2022-05-08  28,905
========  =====================  =======

Each split is sorted by ``time_ms`` (stable). 425 pairs of rows share user,
video and ``time_ms`` but differ in a label; they are not exact duplicates and
are kept.

**Tasks** (:data:`TASKS`; default :data:`DEFAULT_TASKS`). A task is learned
``"after:click"`` only if the log shows it happens on clicked impressions:
we require >= 99% of its positives on clicked rows. Measured on the deduplicated
rows (positives without a click / all positives, P(y | no click)):

- ``long_view``: 250 / 70,522 (0.35%), P = 0.0020 -> ``"after:click"``.
- ``like``: 691 / 3,874 (17.8%), P = 0.0056 -> all rows. Likes without a click
  come from the main feed (tab 1: P(like | no click) = 0.007) where a video
  plays, and can be liked, without being clicked; on tab 0 it is 0.0001.
- ``profile_enter``: 279 / 4,203 (6.6%) -> all rows; ``follow`` 42 / 291 (14%),
  ``comment`` 15 / 575 (2.6%), ``forward`` 16 / 194 (8%), ``hate`` 104 / 187
  (56%) -> all rows.

The conditional ``long_view`` drops its 250 unclicked positives from training
and evaluation; :func:`ranker.predict` gives p(long_view | click) for it.

**Features** (1-D, and three ``[n, L]`` history sequences):

- ids: ``user_id``, ``video_id`` (vocab = rows of the user / video tables),
  ``author_id`` (re-coded from the video table);
- context: ``tab``, ``hour`` (``hourmin // 100``);
- video (static, from ``video_features_basic_pure.csv``): ``video_type``,
  ``upload_type``, ``music_type``, ``tag`` (the tag string, e.g. ``"20,43"``),
  ``video_shape`` (portrait / landscape / square); numeric ``log_duration``
  (log1p of the logged duration in seconds) and ``video_age_days`` (impression
  date - upload date);
- user (``user_features_pure.csv``): every non-constant categorical column
  (``user_active_degree``, the ``*_range`` buckets, ``is_live_streamer``,
  ``is_video_author``, ``onehot_feat0..17``; missing values are their own
  category) and ``log_follow_user_num``, ``log_fans_user_num``,
  ``log_friend_user_num``, ``log_register_days`` (log1p; the ranker
  standardizes numerics itself). The user table is one snapshot, possibly taken
  after the test days; only its slow-moving profile columns are used.
- history: the user's last L clicks strictly before the impression (see
  **History**) as three :class:`~ranker.features.SequenceFeature`, mean-pooled
  over the real entries: ``hist_video`` (video-table rows), ``hist_author`` and
  ``hist_tag`` (those videos' author and tag codes), each *sharing* the
  embedding table of ``video_id`` / ``author_id`` / ``tag``, so a clicked video
  and a candidate video are the same vector and the history adds no table;
  ``-1`` pads. Beside them, 1-D: ``hist_len`` (log1p of all the user's earlier
  clicks, not only the last L), ``hist_same_tag`` and ``hist_same_author``
  (share of the last L clicked videos with the candidate's tag / author; 0
  without history): candidate-history matches, which a pooled vector
  concatenated beside the candidate's does not express directly.

Categorical values are coded ``0..vocab_size-1`` from the static tables (not
from labels); a user or video missing from its table gets id ``-1``, which the
ranker sends to its out-of-vocabulary row.

**History** (:attr:`KuaiRandSplit.history`, ``[n, L]`` int64): for each
impression, the last ``L`` videos the same user *clicked strictly before it*
(``time_ms`` smaller; ties excluded), most recent first, as ``video_id + 1``
with 0 as padding. It crosses split boundaries (a test impression sees train-day
clicks), as it would online. The ``hist_*`` sequence features are this array
re-coded to table rows with ``-1`` padding.

**Not used.** ``video_features_with_statistics.parquet`` holds per-video
counts averaged over days *including the test days*, so any of its statistics
leaks test labels into the features; only its static columns would be safe, and
those are the basic table's. The log's derived columns (``watch_ratio``,
``finish``, ``is_positive``...) and play / stay times are outcomes, not
features.

Example:
    >>> data = load_kuairand()  # doctest: +SKIP
    >>> data.train.n_rows, [t.name for t in data.tasks]  # doctest: +SKIP
    (167101, ['click', 'long_view', 'like', 'profile_enter'])
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from ranker.data import RankerData
from ranker.features import CategoricalFeature, FeatureSpec, NumericFeature, SequenceFeature
from ranker.tasks import TaskSpec, validate_tasks

__all__ = [
    "DEFAULT_TASKS",
    "ENV_VAR",
    "LOG_FILES",
    "SPLIT_DATES",
    "TASKS",
    "KuaiRandData",
    "KuaiRandSplit",
    "default_path",
    "load_kuairand",
    "resolve_path",
]

ENV_VAR = "FUSIONTUNE_KUAIRAND"
LOG_FILES = (
    "log_standard_2022-04-25_to_2022-04-30.parquet",
    "log_standard_2022-05-01_to_2022-05-08.parquet",
)
USER_FILE = "user_features_pure.csv"
VIDEO_FILE = "video_features_basic_pure.csv"

SPLIT_DATES: dict[str, tuple[int, int]] = {
    "train": (20220425, 20220504),
    "valid": (20220505, 20220506),
    "test": (20220507, 20220508),
}
"""Split name -> first and last logged ``date`` (inclusive, yyyymmdd)."""

TASKS: dict[str, tuple[str, str | None]] = {
    "click": ("is_click", None),
    "long_view": ("long_view", "after:click"),
    "like": ("is_like", None),
    "profile_enter": ("is_profile_enter", None),
    "follow": ("is_follow", None),
    "comment": ("is_comment", None),
    "forward": ("is_forward", None),
    "hate": ("is_hate", None),
}
"""Task name -> (log column, sample space); see the module docstring for the evidence."""

DEFAULT_TASKS = ("click", "long_view", "like", "profile_enter")

_USER_CATEGORICAL_SKIP = {"user_id"}
_USER_NUMERIC = ("follow_user_num", "fans_user_num", "friend_user_num", "register_days")
_VIDEO_CATEGORICAL = ("video_type", "upload_type", "music_type", "tag")
_LOG_COLUMNS_USED = ("user_id", "video_id", "date", "hourmin", "time_ms", "tab", "duration_ms")


def default_path() -> Path:
    """``../shared/data/kuairand-pure`` beside the checkout holding this package."""
    return Path(__file__).resolve().parents[1].parent / "shared" / "data" / "kuairand-pure"


def resolve_path(path: str | os.PathLike[str] | None = None) -> Path:
    """The data folder: ``path``, else ``$FUSIONTUNE_KUAIRAND``, else :func:`default_path`.

    Args:
        path: Explicit folder, or None.

    Raises:
        FileNotFoundError: The folder or one of its files is missing (names both).
    """
    if path is not None:
        folder, origin = Path(path), "the path argument"
    elif os.environ.get(ENV_VAR):
        folder, origin = Path(os.environ[ENV_VAR]), f"${ENV_VAR}"
    else:
        folder, origin = default_path(), "the default location"
    needed = (*LOG_FILES, USER_FILE, VIDEO_FILE)
    if not folder.is_dir():
        problem = "does not exist"
    else:
        missing = [f for f in needed if not (folder / f).is_file()]
        if not missing:
            return folder
        problem = f"lacks {missing}"
    raise FileNotFoundError(
        f"KuaiRand-Pure data folder {folder} (from {origin}) {problem}; pass path=..., "
        f"or set {ENV_VAR} to a folder holding {list(needed)}"
    )


@dataclass(frozen=True)
class KuaiRandSplit:
    """The rows of one date range.

    Args:
        data: Features and labels for the ranker (``[n]`` arrays).
        user_id: ``[n]`` raw user ids, the groups of GAUC.
        video_id: ``[n]`` raw video ids.
        time_ms: ``[n]`` impression times (ms), non-decreasing.
        date: ``[n]`` logged dates (yyyymmdd).
        history: ``[n, L]`` int64: ``video_id + 1`` of the user's last L clicks
            strictly before the row, most recent first; 0 pads.
    """

    data: RankerData
    user_id: np.ndarray
    video_id: np.ndarray
    time_ms: np.ndarray
    date: np.ndarray
    history: np.ndarray

    @property
    def n_rows(self) -> int:
        """Number of rows."""
        return self.data.n_rows

    def take(self, rows: np.ndarray) -> KuaiRandSplit:
        """The given rows (indices or boolean mask) of every array.

        Args:
            rows: ``[m]`` int indices or ``[n]`` bool mask.
        """
        return KuaiRandSplit(
            self.data.take(rows),
            self.user_id[rows],
            self.video_id[rows],
            self.time_ms[rows],
            self.date[rows],
            self.history[rows],
        )


@dataclass(frozen=True)
class KuaiRandData:
    """KuaiRand-Pure as ranker inputs: three date splits, feature and task specs.

    Args:
        train: Rows of 2022-04-25..2022-05-04.
        valid: Rows of 2022-05-05..2022-05-06.
        test: Rows of 2022-05-07..2022-05-08.
        features: Specs of every array in ``data.features`` of the splits.
        tasks: Task specs, in the order asked for.
        history_vocab_size: Ids in ``history`` are ``< history_vocab_size`` (0 pads).
        n_duplicates: Exact duplicate log rows dropped.
        path: Folder read.
    """

    train: KuaiRandSplit
    valid: KuaiRandSplit
    test: KuaiRandSplit
    features: tuple[FeatureSpec, ...]
    tasks: tuple[TaskSpec, ...]
    history_vocab_size: int
    n_duplicates: int
    path: Path

    def splits(self) -> dict[str, KuaiRandSplit]:
        """Split name -> split, in the order train, valid, test."""
        return {"train": self.train, "valid": self.valid, "test": self.test}


def _embedding_dim(vocab_size: int, cap: int) -> int:
    # fastai's rule of thumb 1.6 * n^0.56, capped, so small vocabularies get small tables.
    return max(2, min(cap, round(1.6 * vocab_size**0.56)))


def _codes(values: pa.ChunkedArray | pa.Array) -> tuple[np.ndarray, int]:
    """Dense codes 0..k-1 of a column's values (nulls are a value of their own)."""
    text = pc.fill_null(pc.cast(values, pa.string()), "<null>")
    _, inverse = np.unique(np.asarray(text.to_pylist(), dtype=object), return_inverse=True)
    inverse = inverse.astype(np.int64)
    return inverse, int(inverse.max()) + 1 if len(inverse) else 1


def _lookup(table_ids: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Row of each query id in the table (``-1`` where absent)."""
    order = np.argsort(table_ids, kind="stable")
    sorted_ids = table_ids[order]
    pos = np.clip(np.searchsorted(sorted_ids, query), 0, max(len(sorted_ids) - 1, 0))
    found = sorted_ids[pos] == query if len(sorted_ids) else np.zeros(len(query), bool)
    return np.where(found, order[pos], -1)


def _gather(values: np.ndarray, rows: np.ndarray, fill: float | int) -> np.ndarray:
    """``values[rows]`` with ``fill`` where ``rows == -1``."""
    out = values[np.maximum(rows, 0)]
    return np.where(rows >= 0, out, fill)


def _read_log(folder: Path) -> tuple[pa.Table, int]:
    """Both log files, exact duplicate rows dropped (first occurrence kept, file order)."""
    table = pa.concat_tables([pq.read_table(folder / f) for f in LOG_FILES])
    cols = table.column_names
    indexed = table.append_column("__row", pa.array(np.arange(table.num_rows, dtype=np.int64)))
    first = indexed.group_by(cols).aggregate([("__row", "min")])
    keep = np.sort(first["__row_min"].to_numpy())
    return table.take(keep), table.num_rows - len(keep)


def _history(
    user: np.ndarray, time_ms: np.ndarray, clicked: np.ndarray, video: np.ndarray, length: int
) -> tuple[np.ndarray, np.ndarray]:
    """Last ``length`` clicked videos strictly before each row, and the count of earlier clicks.

    Rows and clicks are keyed by (user, time); a click counts for a row when its
    key is smaller, i.e. same user and earlier time.

    Returns:
        ``[n, length]`` int64 ``video + 1`` (most recent first, 0 pads) and ``[n]``
        int64 number of the user's clicks before the row.
    """
    t0 = int(time_ms.min()) if len(time_ms) else 0
    span = int(time_ms.max()) - t0 + 1 if len(time_ms) else 1
    key = user.astype(np.int64) * span + (time_ms - t0)  # lexicographic (user, time)
    c_order = np.argsort(key[clicked], kind="stable")
    c_key = key[clicked][c_order]
    c_video = video[clicked][c_order]
    before = np.searchsorted(c_key, key, side="left")  # clicks with a smaller key
    user_start = np.searchsorted(c_key, user.astype(np.int64) * span, side="left")
    count = before - user_start
    idx = before[:, None] - 1 - np.arange(length)[None, :]  # [n, L], most recent first
    valid = idx >= user_start[:, None]
    hist = np.where(valid, c_video[np.clip(idx, 0, None)] + 1 if len(c_video) else 0, 0)
    return hist.astype(np.int64), count.astype(np.int64)


def _pooled_history(
    hist_row: np.ndarray,
    tag_of_video: np.ndarray,
    author_of_video: np.ndarray,
    tag: np.ndarray,
    author: np.ndarray,
) -> dict[str, np.ndarray]:
    """Share of the real history entries with the candidate's tag and author ([n] each).

    Args:
        hist_row: ``[n, L]`` video-table rows of the history (-1: padding or unknown).
        tag_of_video: ``[n_videos]`` tag code per video-table row.
        author_of_video: ``[n_videos]`` author code per video-table row.
        tag: ``[n]`` the candidate's tag code (-1: unknown).
        author: ``[n]`` the candidate's author code (-1: unknown).
    """
    valid = hist_row >= 0  # [n, L]
    h_tag = np.where(valid, tag_of_video[np.maximum(hist_row, 0)], -1)  # [n, L]
    h_author = np.where(valid, author_of_video[np.maximum(hist_row, 0)], -1)
    denom = np.maximum(valid.sum(1), 1)
    return {
        "hist_same_tag": ((h_tag == tag[:, None]) & valid).sum(1) / denom,
        "hist_same_author": ((h_author == author[:, None]) & valid).sum(1) / denom,
    }


def _days(dates: np.ndarray) -> np.ndarray:
    """yyyymmdd ints -> days since 1970-01-01."""
    uniq, inverse = np.unique(dates, return_inverse=True)
    as_days = np.array(
        [np.datetime64(f"{d // 10000:04d}-{d // 100 % 100:02d}-{d % 100:02d}", "D") for d in uniq]
    ).astype(np.int64)
    return as_days[inverse]


def load_kuairand(
    path: str | os.PathLike[str] | None = None,
    tasks: Sequence[str] = DEFAULT_TASKS,
    history_len: int = 10,
    id_dim: int = 16,
) -> KuaiRandData:
    """Load KuaiRand-Pure into train / valid / test ranker rows (see the module docstring).

    Args:
        path: Data folder; None: ``$FUSIONTUNE_KUAIRAND``, else :func:`default_path`.
        tasks: Names from :data:`TASKS`; a conditional task needs its parent listed.
        history_len: ``L``, the clicked videos kept per impression.
        id_dim: Embedding width of the largest vocabularies (smaller ones get less).

    Returns:
        The :class:`KuaiRandData`.

    Raises:
        FileNotFoundError: Missing folder or file.
        ValueError: Unknown task, bad ``history_len``.

    Example:
        >>> data = load_kuairand(tasks=("click", "like"))  # doctest: +SKIP
        >>> model = build_mmoe(data.features, data.tasks)  # doctest: +SKIP
    """
    unknown = [t for t in tasks if t not in TASKS]
    if unknown:
        raise ValueError(f"unknown KuaiRand task(s) {unknown}; valid: {sorted(TASKS)}")
    task_specs = validate_tasks([TaskSpec(t, TASKS[t][1]) for t in tasks])
    if not isinstance(history_len, int) or history_len < 1:
        raise ValueError(f"history_len must be an int >= 1, got {history_len!r}")
    folder = resolve_path(path)
    log, n_dupes = _read_log(folder)
    col = {c: log[c].to_numpy() for c in _LOG_COLUMNS_USED}
    order = np.argsort(col["time_ms"], kind="stable")
    col = {c: v[order] for c, v in col.items()}
    labels = {t: log[TASKS[t][0]].to_numpy()[order].astype(np.float32) for t in tasks}
    clicked = log["is_click"].to_numpy()[order] == 1

    users = pa_csv.read_csv(folder / USER_FILE)
    videos = pa_csv.read_csv(folder / VIDEO_FILE)
    u_row = _lookup(users["user_id"].to_numpy(), col["user_id"])
    v_row = _lookup(videos["video_id"].to_numpy(), col["video_id"])

    features: dict[str, np.ndarray] = {}
    specs: list[FeatureSpec] = []

    def categorical(name: str, values: np.ndarray, vocab: int) -> None:
        features[name] = values.astype(np.int64)
        specs.append(CategoricalFeature(name, vocab, _embedding_dim(vocab, id_dim)))

    def numeric(name: str, values: np.ndarray) -> None:
        features[name] = np.asarray(values, dtype=np.float32)
        specs.append(NumericFeature(name))

    categorical("user_id", u_row, users.num_rows)
    categorical("video_id", v_row, videos.num_rows)
    author_code, n_authors = _codes(videos["author_id"])
    categorical("author_id", _gather(author_code, v_row, -1), n_authors)
    categorical("tab", col["tab"], int(col["tab"].max()) + 1)
    categorical("hour", np.clip(col["hourmin"] // 100, 0, 23), 24)
    tag_code = np.zeros(videos.num_rows, np.int64)
    for name in _VIDEO_CATEGORICAL:
        code, vocab = _codes(videos[name])
        tag_code = code if name == "tag" else tag_code
        categorical(name, _gather(code, v_row, -1), vocab)
    width = videos["server_width"].to_numpy(zero_copy_only=False)
    height = videos["server_height"].to_numpy(zero_copy_only=False)
    shape = np.select([width < height, width > height], [0, 1], 2)  # portrait, landscape, square
    categorical("video_shape", _gather(shape, v_row, -1), 3)
    for name in users.column_names:
        if name in _USER_CATEGORICAL_SKIP or name in _USER_NUMERIC:
            continue
        code, vocab = _codes(users[name])
        if vocab > 1:  # constant columns carry nothing
            categorical(name, _gather(code, u_row, -1), vocab)

    numeric("log_duration", np.log1p(np.maximum(col["duration_ms"], 0) / 1000.0))
    upload_day = videos["upload_dt"].cast(pa.int32()).to_numpy(zero_copy_only=False)
    age = _days(col["date"]) - _gather(upload_day.astype(np.int64), v_row, -1)
    numeric("video_age_days", np.where(v_row >= 0, age, 0))
    for name in _USER_NUMERIC:
        raw = users[name].to_numpy(zero_copy_only=False).astype(np.float64)
        numeric(f"log_{name}", np.log1p(np.maximum(_gather(raw, u_row, 0.0), 0.0)))

    video_ids = col["video_id"]
    hist, n_before = _history(col["user_id"], col["time_ms"], clicked, video_ids, history_len)
    numeric("hist_len", np.log1p(n_before))
    # History ids are video_id + 1; map them to video-table rows (pads: -1, the padding id
    # of a SequenceFeature; a clicked video missing from the table: the OOV row).
    looked_up = _lookup(videos["video_id"].to_numpy(), np.maximum(hist - 1, 0))
    hist_row = np.where(hist > 0, np.where(looked_up >= 0, looked_up, videos.num_rows), -1)
    specs_by_name = {f.name: f for f in specs if isinstance(f, CategoricalFeature)}

    def sequence(name: str, values: np.ndarray, shares: str) -> None:
        owner = specs_by_name[shares]
        features[name] = values.astype(np.int64)
        specs.append(
            SequenceFeature(name, owner.vocab_size, history_len, owner.dim, "mean", shares)
        )

    known = (hist_row >= 0) & (hist_row < videos.num_rows)
    sequence("hist_video", hist_row, "video_id")
    for name, code, shares in (
        ("hist_author", author_code, "author_id"),
        ("hist_tag", tag_code, "tag"),
    ):
        sequence(name, np.where(known, code[np.clip(hist_row, 0, len(code) - 1)], -1), shares)
    pooled = _pooled_history(
        np.where(known, hist_row, -1),
        tag_code,
        author_code,
        _gather(tag_code, v_row, -1),
        _gather(author_code, v_row, -1),
    )
    numeric("hist_same_tag", pooled["hist_same_tag"])
    numeric("hist_same_author", pooled["hist_same_author"])

    splits: dict[str, KuaiRandSplit] = {}
    for split, (first, last) in SPLIT_DATES.items():
        rows = np.flatnonzero((col["date"] >= first) & (col["date"] <= last))
        splits[split] = KuaiRandSplit(
            RankerData(
                {k: v[rows] for k, v in features.items()}, {k: v[rows] for k, v in labels.items()}
            ),
            col["user_id"][rows],
            video_ids[rows],
            col["time_ms"][rows],
            col["date"][rows],
            hist[rows],
        )
    max_video = max(int(video_ids.max()), int(videos["video_id"].to_numpy().max()))
    return KuaiRandData(
        splits["train"],
        splits["valid"],
        splits["test"],
        tuple(specs),
        task_specs,
        max_video + 2,
        n_dupes,
        folder,
    )
