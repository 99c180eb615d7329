"""Trained rankers cached by what they depend on: a repeated loss-weight vector never retrains.

A loss-weight trial trains the ranker on the log's ``train`` split (early stopping on
``valid``), from scratch or warm from a base checkpoint for a fixed number of steps, and
scores every logged candidate. Entries are keyed by a hash of the loss weights, the model,
training and initialisation settings (the base checkpoint's file hash included), the data
fingerprint and the split; each is written into a temporary folder and appears by atomic
rename, so many workers can share one cache folder.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import shutil
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ranker import (
    MultiTaskModel,
    RankerData,
    build_model,
    load_checkpoint,
    save_checkpoint,
    train,
)
from simulator.logs import LoggedTraffic
from tuner.evaluation.ranker_scoring import default_feature_specs, ranker_rows, score_traffic
from tuner.evaluation.scores import ScoreTable
from tuner.evaluation.search_data import split_log
from tuner.search_config import TRAIN, VALID, SearchConfig

__all__ = ["RankerCache", "RankerRun"]

_CACHE_VERSION = 1


@dataclass(frozen=True)
class RankerRun:
    """A ranker trained with one loss-weight vector, as stored in the cache.

    Args:
        key: the cache key.
        folder: its cache entry (``ranker.pt``, ``scores.parquet``, ``meta.json``).
        loss_weights: task -> loss weight.
        valid_metrics: task -> ``{"auc", "logloss", "calibration", "n"}`` on ``valid``.
        model_fingerprint: fingerprint of the trained weights.
        trained: False when this call found it in the cache.
    """

    key: str
    folder: Path
    loss_weights: dict[str, float]
    valid_metrics: dict[str, dict[str, float]]
    model_fingerprint: str
    trained: bool

    @property
    def checkpoint(self) -> Path:
        return self.folder / "ranker.pt"

    @property
    def scores(self) -> Path:
        return self.folder / "scores.parquet"

    def scores_table(self) -> ScoreTable:
        return ScoreTable.read(self.scores)


def _default_cache() -> Path:
    if os.environ.get("FUSIONTUNE_CACHE"):
        return Path(os.environ["FUSIONTUNE_CACHE"]) / "rankers"
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "fusiontune" / "rankers"


def _file_digest(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class RankerCache:
    """Trains, scores and caches the ranker of any loss-weight vector on one log.

    Args:
        config: the search file (its ``[ranker]`` table is required).
        traffic: the log (default: read ``config.logs``).
        progress: show training progress bars.

    Example:
        >>> cache = RankerCache(config)  # doctest: +SKIP
        >>> run = cache.run({"click": 1.0, "conversion": 2.0, "like": 0.5})  # doctest: +SKIP
        >>> run.valid_metrics["click"]["auc"], cache.trainings  # doctest: +SKIP
        (0.71, 1)
    """

    def __init__(self, config: SearchConfig, traffic: LoggedTraffic | None = None,
                 progress: bool = False) -> None:
        if config.ranker is None:
            raise ValueError("a loss-weight search needs a [ranker] table in the search file")
        self.config = config
        self.ranker = config.ranker
        self.traffic = traffic if traffic is not None else LoggedTraffic.read(config.logs)
        missing = [t for t in self.ranker.task_names if t not in self.traffic.labels]
        if missing:
            raise ValueError(f"[ranker] tasks {missing} have no label column in {config.logs}; "
                             f"label tasks: {list(self.traffic.tasks)}")
        self.root = Path(self.ranker.cache) if self.ranker.cache else _default_cache()
        self.progress = progress
        self.trainings = 0
        self.hits = 0
        self._parts: dict[str, LoggedTraffic] | None = None
        self._base = (_file_digest(self.ranker.base_checkpoint)
                      if self.ranker.base_checkpoint is not None else None)
        self._fingerprint = self.traffic.fingerprint()

    @property
    def parts(self) -> dict[str, LoggedTraffic]:
        if self._parts is None:
            self._parts = split_log(self.traffic, self.config.splits, self.config.split_seed)
        return self._parts

    def key(self, loss_weights: Mapping[str, float]) -> str:
        """Cache key: everything the trained ranker depends on, hashed."""
        r = self.ranker
        payload = {
            "version": _CACHE_VERSION,
            "data": self._fingerprint,
            "splits": dict(self.config.splits),
            "split_seed": self.config.split_seed,
            "tasks": [[t.name, t.sample_space] for t in r.tasks],
            "model": [r.model.kind, dataclasses.asdict(r.model.config)],
            "train": dataclasses.asdict(r.train),
            "init": r.init,
            "base": self._base,
            "steps": r.steps if r.init == "warm" else None,
            "loss_weights": [[t, float(loss_weights[t]).hex()] for t in r.task_names],
        }
        blob = json.dumps(payload, sort_keys=True, default=list)
        return hashlib.sha256(blob.encode()).hexdigest()[:20]

    def run(self, loss_weights: Mapping[str, float]) -> RankerRun:
        """The ranker of ``loss_weights``: from the cache, or trained, scored and cached."""
        weights = self._checked(loss_weights)
        key = self.key(weights)
        folder = self.root / key
        if (folder / "meta.json").is_file():
            self.hits += 1
            return self._load(key, folder, trained=False)
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.root / f".tmp-{key}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        tmp.mkdir()
        try:
            self._train_into(tmp, weights)
            try:
                os.rename(tmp, folder)  # atomic; fails if another process got there first
            except OSError:
                if not (folder / "meta.json").is_file():
                    raise
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        self.trainings += 1
        return self._load(key, folder, trained=True)

    def _checked(self, loss_weights: Mapping[str, float]) -> dict[str, float]:
        names = self.ranker.task_names
        unknown = [t for t in loss_weights if t not in names]
        missing = [t for t in names if t not in loss_weights]
        if unknown or missing:
            raise ValueError(f"loss weights need one per ranker task {list(names)}; "
                             f"unknown {unknown}, missing {missing}")
        out = {t: float(loss_weights[t]) for t in names}
        bad = {t: w for t, w in out.items() if not (math.isfinite(w) and w >= 0)}
        if bad or not any(out.values()):
            raise ValueError(f"loss weights must be finite, >= 0 and not all 0; got {out}")
        return out

    def _load(self, key: str, folder: Path, trained: bool) -> RankerRun:
        meta = json.loads((folder / "meta.json").read_text())
        return RankerRun(key, folder, meta["loss_weights"], meta["valid_metrics"],
                         meta["model_fingerprint"], trained)

    def _train_into(self, folder: Path, weights: dict[str, float]) -> None:
        tick = time.perf_counter()
        model, result_metrics, best_epoch = self._train(weights)
        fingerprint = save_checkpoint(folder / "ranker.pt", model, {
            "data_fingerprint": self._fingerprint, "loss_weights": weights,
            "valid_metrics": result_metrics, "init": self.ranker.init})
        score_traffic(model, self.traffic).write(folder / "scores.parquet")
        meta = {
            "loss_weights": weights,
            "valid_metrics": result_metrics,
            "model_fingerprint": fingerprint,
            "best_epoch": best_epoch,
            "train_seconds": time.perf_counter() - tick,
            "data_fingerprint": self._fingerprint,
        }
        (folder / "meta.json").write_text(json.dumps(meta, indent=1))

    def _train(self, weights: dict[str, float]
               ) -> tuple[MultiTaskModel, dict[str, dict[str, float]], int]:
        r = self.ranker
        train_rows = ranker_rows(self.parts[TRAIN], r.tasks)
        valid_rows = ranker_rows(self.parts[VALID], r.tasks)
        if r.init == "warm":
            assert r.base_checkpoint is not None
            model = self._base_model(r.base_checkpoint)
            train_rows = _step_budget(train_rows, r.steps * r.train.batch_size, r.train.seed)
            cfg = dataclasses.replace(r.train, epochs=1, loss_weights=weights)
        else:
            model = build_model(r.model.kind, default_feature_specs(self.traffic), r.tasks,
                                r.model.config, seed=r.train.seed)
            cfg = dataclasses.replace(r.train, loss_weights=weights)
        result = train(model, train_rows, valid_rows, cfg, progress=self.progress)
        metrics = {t: {"auc": m.auc, "logloss": m.logloss, "calibration": m.calibration,
                       "n": float(m.n)} for t, m in result.valid_metrics.items()}
        return result.model, metrics, result.best_epoch

    def _base_model(self, path: str) -> MultiTaskModel:
        model, _ = load_checkpoint(path)
        want = [(t.name, t.sample_space) for t in self.ranker.tasks]
        have = [(t.name, t.sample_space) for t in model.tasks]
        if want != have:
            raise ValueError(f"base checkpoint {path} has tasks {have}; [ranker] tasks are "
                             f"{want}")
        need = {f.name for f in default_feature_specs(self.traffic)}
        has = {f.name for f in model.features}
        if need != has:
            raise ValueError(f"base checkpoint {path} reads features {sorted(has)}; the log "
                             f"gives {sorted(need)}")
        return model


def _step_budget(rows: RankerData, n_rows: int, seed: int) -> RankerData:
    """``n_rows`` rows of ``rows`` (a seeded permutation, repeated if needed)."""
    n = rows.n_rows
    rng = np.random.default_rng([seed, 7])
    reps = -(-n_rows // n)
    index = np.concatenate([rng.permutation(n) for _ in range(reps)])[:n_rows]
    return rows.take(index)
