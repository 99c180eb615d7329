"""The ground-truth response model of the KuaiRand world, fitted on the real KuaiRand-Pure logs.

It reads the real files (:func:`resolve_data_path`), fits the model, caches the
fit (:func:`load_response_model`) and scores it on held-out days; the world that
draws traffic from it is :class:`simulator.worlds._kuairand.KuaiRandWorld`.

Ground-truth response model
---------------------------
A logistic factorization model, one per task ``t`` of ``TASKS = (click,
long_view, like, profile_enter)``, fitted to the real impressions of the train
days (2022-04-25..2022-05-04) by L2-regularised maximum likelihood (L-BFGS)::

    logit_t(u, v, tab) = b_t[tab] + a_t[u] + x_u . beta_t  +  c_t[v] + d_t[author(v)]
                         + x_v . gamma_t  +  P_t[u] . Q_t[v]

with per-task tab (app page) biases, user, video and author biases, a few
standardized user features ``x_u`` (activity degree, log follows / fans /
register days) and video features ``x_v`` (log duration, upload type, ad
flag), and rank-``n_factors`` user x video factors. ``long_view`` is fitted on
clicked impressions only: its model is ``P(long_view | click)`` (99.6% of real
long views follow a click), so its expected reward is ``r_click * r_lv``.
It is a different family from the project's neural rankers (MMoE & co.): no
shared hidden layers, no feature crosses beyond the factors.

Held-out fit on the real test days (2022-05-07..08, 28,905 impressions) is
measured by :func:`evaluate_response_model` (AUC and mean-predicted /
mean-observed calibration per task); the test file floors them.

The real log has no examination model: each real impression is read as an
*examined* one, so the fitted probabilities are ``P(label | examined)``.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
from scipy import optimize, stats

from simulator.files import atomic_write

__all__ = [
    "ENV_VAR",
    "FIT_DAYS",
    "HOLDOUT_DAYS",
    "KUAIRAND_TASKS",
    "FitConfig",
    "FitQuality",
    "KuaiRandFit",
    "evaluate_response_model",
    "fit_response_model",
    "load_response_model",
    "resolve_data_path",
]

KUAIRAND_TASKS = ("click", "long_view", "like", "profile_enter")
ENV_VAR = "FUSIONTUNE_KUAIRAND"
CACHE_ENV_VAR = "FUSIONTUNE_CACHE"
FIT_DAYS = (20220425, 20220504)
HOLDOUT_DAYS = (20220507, 20220508)
_LOG_FILES = ("log_standard_2022-04-25_to_2022-04-30.parquet",
              "log_standard_2022-05-01_to_2022-05-08.parquet")
_USER_FILE = "user_features_pure.csv"
_VIDEO_FILE = "video_features_basic_pure.csv"
_LABEL_COLUMNS = ("is_click", "long_view", "is_like", "is_profile_enter")
_N_TABS = 16  # tab codes 0..14 are logged; the last code is a spare for unseen pages
_ACTIVE = ("full_active", "high_active", "middle_active")
_UPLOAD = ("LongImport", "Web", "ShortImport", "Kmovie")
_CACHE_VERSION = 1


def resolve_data_path(path: str | os.PathLike[str] | None = None) -> Path:
    """The KuaiRand-Pure folder: ``path``, else ``$FUSIONTUNE_KUAIRAND``, else the default.

    The default is ``../shared/data/kuairand-pure`` beside the checkout.

    Raises:
        FileNotFoundError: naming the folder, where it came from and the files it lacks.
    """
    if path is not None:
        folder, origin = Path(path), "the path argument"
    elif os.environ.get(ENV_VAR):
        folder, origin = Path(os.environ[ENV_VAR]), f"${ENV_VAR}"
    else:
        folder = Path(__file__).resolve().parents[2].parent / "shared/data/kuairand-pure"
        origin = "the default location"
    needed = (*_LOG_FILES, _USER_FILE, _VIDEO_FILE)
    missing = [f for f in needed if not (folder / f).is_file()]
    if missing:
        raise FileNotFoundError(f"KuaiRand-Pure folder {folder} (from {origin}) lacks {missing}; "
                                f"pass path=... or set {ENV_VAR} to a folder holding {needed}")
    return folder


# ------------------------------------------------------------------------- real data
@dataclass(frozen=True)
class _RealData:
    """Deduplicated real impressions and the static user / video tables."""

    user: np.ndarray  # [n] int64
    video: np.ndarray  # [n] int64
    date: np.ndarray  # [n] int64 yyyymmdd
    tab: np.ndarray  # [n] int64
    labels: np.ndarray  # [n, 4] float64 (click, long_view, like, profile_enter)
    user_x: np.ndarray  # [n_users, Fu] float64 standardized user features
    video_x: np.ndarray  # [n_videos, Fv] float64 standardized video features
    author: np.ndarray  # [n_videos] int64 author code
    user_active: np.ndarray  # [n_users] int64 activity-degree code (a log feature)
    video_log_duration: np.ndarray  # [n_videos] float64


def _read_real(folder: Path) -> _RealData:
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    cols = ["user_id", "video_id", "date", "tab", "time_ms", "play_time_ms", *_LABEL_COLUMNS]
    table = pa.concat_tables([pq.read_table(folder / f, columns=cols) for f in _LOG_FILES])
    raw = np.stack([table.column(c).to_numpy().astype(np.int64) for c in cols], axis=1)
    # exact duplicate impressions (same user, video, time, page, outcomes) counted once
    raw = np.unique(raw, axis=0)
    user, video, date, tab = (raw[:, i] for i in range(4))

    users = pacsv.read_csv(folder / _USER_FILE)
    n_users = int(np.max(users.column("user_id").to_numpy())) + 1
    uid = users.column("user_id").to_numpy()
    degree = np.asarray(users.column("user_active_degree").to_pylist(), dtype=object)
    active = np.full(n_users, len(_ACTIVE), dtype=np.int64)
    for code, name in enumerate(_ACTIVE):
        active[uid[degree == name]] = code
    user_x = np.zeros((n_users, len(_ACTIVE) + 3))
    user_x[uid, :len(_ACTIVE)] = np.eye(len(_ACTIVE) + 1)[active[uid], :len(_ACTIVE)]
    for j, name in enumerate(("follow_user_num", "fans_user_num", "register_days")):
        user_x[uid, len(_ACTIVE) + j] = np.log1p(np.maximum(
            np.nan_to_num(users.column(name).to_numpy().astype(np.float64)), 0.0))

    videos = pacsv.read_csv(folder / _VIDEO_FILE)
    vid = videos.column("video_id").to_numpy()
    n_videos = int(vid.max()) + 1
    author = np.zeros(n_videos, dtype=np.int64)
    author[vid] = np.unique(videos.column("author_id").to_numpy(), return_inverse=True)[1]
    duration = np.asarray(videos.column("video_duration").to_numpy(zero_copy_only=False),
                          dtype=np.float64)
    log_dur = np.log1p(np.nan_to_num(duration, nan=np.nanmedian(duration)) / 1000.0)
    upload = np.asarray(videos.column("upload_type").to_pylist(), dtype=object)
    vtype = np.asarray(videos.column("video_type").to_pylist(), dtype=object)
    video_x = np.zeros((n_videos, 2 + len(_UPLOAD)))
    video_log_duration = np.zeros(n_videos)
    video_log_duration[vid] = log_dur
    video_x[vid, 0] = log_dur
    video_x[vid, 1] = vtype == "AD"
    for j, name in enumerate(_UPLOAD):
        video_x[vid, 2 + j] = upload == name
    for x in (user_x, video_x):  # standardize columns (rows absent from a table stay 0)
        x -= x.mean(axis=0)
        x /= np.maximum(x.std(axis=0), 1e-9)
    return _RealData(user, video, date, np.minimum(tab, _N_TABS - 1),
                     raw[:, 6:].astype(np.float64), user_x, video_x, author, active,
                     video_log_duration)


# ------------------------------------------------------------------------ the model
@dataclass(frozen=True)
class FitConfig:
    """Settings of the response-model fit; validated on construction.

    Args:
        n_factors: rank of the user x video factors of every task.
        l2_bias: L2 penalty (per training row) of the user, video, author and tab biases.
        l2_factor: L2 penalty of the factors.
        l2_linear: L2 penalty of the feature coefficients.
        max_iter: L-BFGS iterations per task.
        seed: seed of the factors' initial values.
    """

    n_factors: int = 8
    l2_bias: float = 1e-5
    l2_factor: float = 5e-5
    l2_linear: float = 1e-6
    max_iter: int = 100
    seed: int = 0

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            ok = (value >= 1 if f.name in ("n_factors", "max_iter") else value >= 0) and \
                math.isfinite(value)
            if not ok:
                raise ValueError(f"FitConfig.{f.name} must be "
                                 f"{'>= 1' if f.name in ('n_factors', 'max_iter') else '>= 0'}"
                                 f", got {value!r}")


@dataclass(frozen=True)
class KuaiRandFit:
    """The fitted response model and the real request corpus a world draws from.

    Args:
        tab_logit: ``[T, n_tabs]`` intercept plus tab bias of each task.
        user_logit: ``[T, n_users]`` user bias plus user-feature term.
        video_logit: ``[T, n_videos]`` video and author bias plus video-feature term.
        user_factors: ``[T, n_users, d]``.
        video_factors: ``[T, n_videos, d]``.
        group_user: ``[G]`` user of each real (user, date) visit.
        group_tab: ``[G]`` its most frequent page.
        group_offsets: ``[G + 1]`` CSR offsets into ``group_videos``.
        group_videos: the videos each visit really showed.
        popularity: ``[n_videos]`` real impression count of each video.
        user_active: ``[n_users]`` activity-degree code (a log feature).
        video_log_duration: ``[n_videos]`` log1p of the duration in seconds.
        fit_seconds: time the fit took.
    """

    tab_logit: np.ndarray
    user_logit: np.ndarray
    video_logit: np.ndarray
    user_factors: np.ndarray
    video_factors: np.ndarray
    group_user: np.ndarray
    group_tab: np.ndarray
    group_offsets: np.ndarray
    group_videos: np.ndarray
    popularity: np.ndarray
    user_active: np.ndarray
    video_log_duration: np.ndarray
    fit_seconds: float

    @property
    def n_users(self) -> int:
        return int(self.user_logit.shape[1])

    @property
    def n_videos(self) -> int:
        return int(self.video_logit.shape[1])

    def logits(self, users: np.ndarray, videos: np.ndarray, tabs: np.ndarray) -> np.ndarray:
        """``[..., T]`` true logits; long_view's is ``P(long_view | click)``.

        Args:
            users, videos, tabs: int arrays of one shape (broadcast).
        """
        users, videos, tabs = np.broadcast_arrays(users, videos, tabs)
        if users.size and not (users.min() >= 0 and users.max() < self.n_users):
            raise ValueError(f"user ids must be in 0..{self.n_users - 1}")
        if videos.size and not (videos.min() >= 0 and videos.max() < self.n_videos):
            raise ValueError(f"video ids must be in 0..{self.n_videos - 1}")
        tabs = np.clip(tabs, 0, self.tab_logit.shape[1] - 1)
        out = np.empty((*users.shape, len(KUAIRAND_TASKS)))
        for t in range(len(KUAIRAND_TASKS)):
            dot = np.einsum("...d,...d->...", self.user_factors[t][users],
                            self.video_factors[t][videos])
            out[..., t] = (self.tab_logit[t][tabs] + self.user_logit[t][users]
                           + self.video_logit[t][videos] + dot)
        return out

    def save(self, path: Path) -> None:
        """Write as ``.npz``, atomically (temporary file renamed into place)."""
        arrays: dict[str, Any] = {f.name: np.asarray(getattr(self, f.name)) for f in fields(self)}

        def write(tmp: str) -> None:
            with open(tmp, "wb") as fh:  # a file object: np.savez would append .npz to a name
                np.savez(fh, **arrays)

        atomic_write(path, write)

    @classmethod
    def load(cls, path: Path) -> KuaiRandFit:
        with np.load(path) as z:
            kw = {f.name: z[f.name] for f in fields(cls)}
        kw["fit_seconds"] = float(kw["fit_seconds"])
        return cls(**kw)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


class _TaskProblem:
    """The penalised mean log-loss of one task and its gradient, vectorized.

    Every per-row product is an elementwise numpy op or a ``bincount``: on these
    machines multi-threaded BLAS matrix-vector calls on ``[n, 12]`` arrays were
    10x slower than single-threaded, so the hot loop has none.
    """

    def __init__(self, data: _RealData, rows: np.ndarray, y: np.ndarray, cfg: FitConfig) -> None:
        self.u, self.v = data.user[rows], data.video[rows]
        self.tab, self.y, self.n = data.tab[rows], y, len(rows)
        self.user_x, self.video_x, self.author = data.user_x, data.video_x, data.author
        self.nu, self.nv = data.user_x.shape[0], data.video_x.shape[0]
        self.na = int(data.author.max()) + 1
        self.nfu, self.nfv = data.user_x.shape[1], data.video_x.shape[1]
        self.d, self.cfg = cfg.n_factors, cfg
        sizes = [_N_TABS, self.nu, self.nv, self.na, self.nfu + self.nfv, self.nu * self.d,
                 self.nv * self.d]
        self.cuts = np.cumsum(sizes)[:-1]
        lam = [cfg.l2_bias] * 4 + [cfg.l2_linear] + [cfg.l2_factor] * 2
        self.penalty = np.concatenate([np.full(s, x) for s, x in zip(sizes, lam, strict=True)])

    def unpack(self, theta: np.ndarray) -> list[np.ndarray]:
        tab, a, c, dd, beta, p, q = np.split(theta, self.cuts)
        return [tab, a, c, dd, beta, p.reshape(self.nu, self.d), q.reshape(self.nv, self.d)]

    def init(self, rng: np.random.Generator) -> np.ndarray:
        tab, a, c, dd, beta, p, q = self.unpack(np.zeros(int(self.cuts[-1]) + self.nv * self.d))
        rate = float(np.clip(self.y.mean(), 1e-4, 1 - 1e-4))
        tab += math.log(rate / (1 - rate))
        seen_u, seen_v = np.unique(self.u), np.unique(self.v)
        p[seen_u] = 0.05 * rng.standard_normal((len(seen_u), self.d))
        q[seen_v] = 0.05 * rng.standard_normal((len(seen_v), self.d))
        return np.concatenate([tab, a, c, dd, beta, p.ravel(), q.ravel()])

    def entity_logits(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(tab [n_tabs], user [n_users], video [n_videos])`` additive logit parts."""
        tab, a, c, dd, beta, _, _ = self.unpack(theta)
        user = a + (self.user_x * beta[:self.nfu]).sum(axis=1)
        video = c + dd[self.author] + (self.video_x * beta[self.nfu:]).sum(axis=1)
        return tab, user, video

    def loss_grad(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        tab, user, video = self.entity_logits(theta)
        p, q = self.unpack(theta)[5:]
        pu, qv = np.take(p, self.u, axis=0), np.take(q, self.v, axis=0)  # [n, d]
        z = tab[self.tab] + user[self.u] + video[self.v] + np.einsum("nd,nd->n", pu, qv)
        # mean log-loss log(1 + e^z) - y z, in a form that cannot overflow
        loss = float(np.mean(np.maximum(z, 0.0) + np.log1p(np.exp(-np.abs(z))) - self.y * z))
        g = (_sigmoid(z) - self.y) / self.n
        g_user, g_video = np.bincount(self.u, g, self.nu), np.bincount(self.v, g, self.nv)
        g_beta = np.concatenate([(self.user_x * g_user[:, None]).sum(axis=0),
                                 (self.video_x * g_video[:, None]).sum(axis=0)])
        g_p = np.stack([np.bincount(self.u, g * qv[:, k], self.nu) for k in range(self.d)], 1)
        g_q = np.stack([np.bincount(self.v, g * pu[:, k], self.nv) for k in range(self.d)], 1)
        grad = np.concatenate([np.bincount(self.tab, g, _N_TABS), g_user, g_video,
                               np.bincount(self.author, g_video, self.na), g_beta,
                               g_p.ravel(), g_q.ravel()])
        loss += 0.5 * float((self.penalty * theta * theta).sum())
        return loss, grad + self.penalty * theta


def _fit_from(data: _RealData, cfg: FitConfig) -> KuaiRandFit:
    tick = time.perf_counter()
    train = (data.date >= FIT_DAYS[0]) & (data.date <= FIT_DAYS[1])
    clicked = data.labels[:, 0] > 0
    rng = np.random.default_rng(cfg.seed)
    nt = len(KUAIRAND_TASKS)
    tab_logit = np.zeros((nt, _N_TABS))
    user_logit = np.zeros((nt, data.user_x.shape[0]))
    video_logit = np.zeros((nt, data.video_x.shape[0]))
    user_f = np.zeros((nt, data.user_x.shape[0], cfg.n_factors))
    video_f = np.zeros((nt, data.video_x.shape[0], cfg.n_factors))
    for t, task in enumerate(KUAIRAND_TASKS):
        rows = np.flatnonzero(train & clicked if task == "long_view" else train)
        prob = _TaskProblem(data, rows, data.labels[rows, t], cfg)
        res = optimize.minimize(prob.loss_grad, prob.init(rng), jac=True, method="L-BFGS-B",
                                options={"maxiter": cfg.max_iter})
        tab_logit[t], user_logit[t], video_logit[t] = prob.entity_logits(res.x)
        user_f[t], video_f[t] = prob.unpack(res.x)[5:]

    # the request corpus: real (user, date) visits of every logged day
    key = data.user * 100_000_000 + data.date
    order = np.argsort(key, kind="stable")
    _, starts, counts = np.unique(key[order], return_index=True, return_counts=True)
    group_tab = np.empty(len(starts), dtype=np.int64)
    tab_sorted = data.tab[order]
    # most frequent tab of each visit: count (group, tab) pairs, take the max per group
    gid = np.repeat(np.arange(len(starts)), counts)
    pair = gid * _N_TABS + tab_sorted
    pairs, pair_counts = np.unique(pair, return_counts=True)
    best = np.lexsort((-pair_counts, pairs // _N_TABS))
    first = np.unique(pairs[best] // _N_TABS, return_index=True)[1]
    group_tab[:] = pairs[best][first] % _N_TABS
    return KuaiRandFit(
        tab_logit=tab_logit, user_logit=user_logit, video_logit=video_logit,
        user_factors=user_f, video_factors=video_f,
        group_user=data.user[order][starts], group_tab=group_tab,
        group_offsets=np.concatenate([starts, [len(order)]]).astype(np.int64),
        group_videos=data.video[order],
        popularity=np.bincount(data.video, minlength=data.video_x.shape[0]).astype(np.float64),
        user_active=data.user_active, video_log_duration=data.video_log_duration,
        fit_seconds=time.perf_counter() - tick)


def fit_response_model(path: str | os.PathLike[str] | None = None,
                       config: FitConfig = FitConfig()) -> KuaiRandFit:
    """Fit the ground-truth response model on the real train days (no cache).

    Example:
        >>> fit = fit_response_model()  # doctest: +SKIP
    """
    return _fit_from(_read_real(resolve_data_path(path)), config)


def _cache_key(folder: Path, config: FitConfig) -> str:
    files = []
    for name in (*_LOG_FILES, _USER_FILE, _VIDEO_FILE):
        st = (folder / name).stat()
        files.append([name, st.st_size, st.st_mtime_ns])
    blob = json.dumps({"v": _CACHE_VERSION, "files": files, "fit": asdict(config)})
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def default_cache_dir() -> Path:
    """``$FUSIONTUNE_CACHE``, else ``$XDG_CACHE_HOME/fusiontune``, else ``~/.cache/fusiontune``."""
    if os.environ.get(CACHE_ENV_VAR):
        return Path(os.environ[CACHE_ENV_VAR])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "fusiontune"


def load_response_model(path: str | os.PathLike[str] | None = None,
                        config: FitConfig = FitConfig(),
                        cache_dir: str | os.PathLike[str] | None = None) -> KuaiRandFit:
    """The fitted model from the cache, fitting (and caching) it when absent.

    The cache file ``kuairand-fit-<key>.npz`` is keyed by the data files' sizes
    and modification times and by ``config``, and written atomically.

    Args:
        path: the data folder (see :func:`resolve_data_path`).
        config: fit settings.
        cache_dir: folder of the cache (default :func:`default_cache_dir`).
    """
    folder = resolve_data_path(path)
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    file = cache / f"kuairand-fit-{_cache_key(folder, config)}.npz"
    if file.is_file():
        try:
            return KuaiRandFit.load(file)
        except (OSError, KeyError, ValueError):
            pass  # unreadable or from an older layout: refit and overwrite
    fit = _fit_from(_read_real(folder), config)
    fit.save(file)
    return fit


@dataclass(frozen=True)
class FitQuality:
    """How well the model predicts one task on real held-out impressions.

    Args:
        auc: ROC AUC of the predicted probability.
        calibration: mean predicted / mean observed rate.
        n: rows evaluated.
        positives: positive labels among them.
    """

    auc: float
    calibration: float
    n: int
    positives: int


def _auc(y: np.ndarray, score: np.ndarray) -> float:
    ranks = stats.rankdata(score)
    pos = y > 0
    n1, n0 = int(pos.sum()), int((~pos).sum())
    if n1 == 0 or n0 == 0:
        return float("nan")
    return float((ranks[pos].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def evaluate_response_model(fit: KuaiRandFit, path: str | os.PathLike[str] | None = None,
                            days: tuple[int, int] = HOLDOUT_DAYS) -> dict[str, FitQuality]:
    """Per-task AUC and calibration of the model on the real impressions of ``days``.

    ``long_view`` is scored unconditionally (``r_click * r_lv``) on all rows,
    as the world generates it; ``long_view|click`` is its conditional model on
    clicked rows.
    """
    data = _read_real(resolve_data_path(path))
    rows = (data.date >= days[0]) & (data.date <= days[1])
    u = np.minimum(data.user[rows], fit.n_users - 1)
    p = _sigmoid(fit.logits(u, data.video[rows], data.tab[rows]))
    y = data.labels[rows]
    clicked = y[:, 0] > 0
    preds = {"click": (p[:, 0], y[:, 0]), "long_view": (p[:, 0] * p[:, 1], y[:, 1]),
             "like": (p[:, 2], y[:, 2]), "profile_enter": (p[:, 3], y[:, 3]),
             "long_view|click": (p[clicked, 1], y[clicked, 1])}
    return {name: FitQuality(_auc(lab, pred), float(pred.mean() / max(lab.mean(), 1e-12)),
                             len(lab), int(lab.sum()))
            for name, (pred, lab) in preds.items()}
