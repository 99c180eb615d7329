"""A toy live study and a deterministic fake experiment platform, for the live-round tests
(subprocesses import it: ``python -m tests.tuner.live_toy <url> <study> online|offline``)."""

from __future__ import annotations

import csv
import sys
import zlib
from pathlib import Path

import numpy as np
import optuna

from tuner.space import FusionSpace
from tuner.strategies import CEMConfig
from tuner.study import SearchSpec, TrialResult, create_or_load_study, load_search, run_rounds
from tuner.study._live import LiveRound, ask_round, tell_results
from tuner.study._live_rounds import GroupResult

SPACE = FusionSpace(("click", "like", "follow"), pinned="click")
CONFIG = CEMConfig(population=4)
SEED = 3
OBJECTIVE = {"click": 1.0, "like": 2.0, "follow": 1.0}
CONTROL = [1.0, 1.0, 1.0]
TARGET = np.array([1.0, 2.5, 0.7])
SETTINGS = {"objective": OBJECTIVE, "control": CONTROL, "formula": "multiplicative"}


def new_study(url: str, name: str) -> optuna.Study:
    """The toy live study (CEM of 4 groups, starting at the control)."""
    return create_or_load_study(url, name, SPACE, CONFIG, SEED, settings=SETTINGS,
                                init_mean=SPACE.from_weights(np.array(CONTROL)))


def offline(W: np.ndarray) -> list[TrialResult]:
    """Offline proxy: ``1 - |w - target|^2 / 10`` per row of ``W [P, 3]``."""
    v = 1.0 - ((np.asarray(W) - TARGET) ** 2).sum(axis=1) / 10
    return [TrialResult(x, x - 0.05, x + 0.05, 100.0) for x in v.tolist()]


def platform(round_: LiveRound) -> dict[str, GroupResult]:
    """What the platform reports for every group of ``round_``: the proxy's value split over
    the metrics, plus noise seeded by the group id (same group, same result)."""
    out = {}
    for g in round_.groups:
        w = np.array(list(g.weights.values()))
        base = float(offline(w[None])[0].value)
        rng = np.random.default_rng(zlib.crc32(g.group.encode()))
        mean = {t: base / 4 * (1 + 0.02 * rng.standard_normal()) for t in OBJECTIVE}
        out[g.group] = GroupResult(1000, mean, {t: 0.01 for t in OBJECTIVE})
    return out


def write_csv(results: dict[str, GroupResult], path: Path) -> Path:
    """``results`` as a platform's CSV (mean and se columns)."""
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["group", "users", *[f"{t}_{k}" for t in OBJECTIVE for k in ("mean", "se")]])
        for gid, r in results.items():
            w.writerow([gid, r.units, *[repr(x) for t in OBJECTIVE
                                        for x in (r.mean[t], r.se[t])]])
    return path


def online_round(study: optuna.Study, search: SearchSpec, prescreen: int = 0) -> LiveRound:
    """Ask a round (pre-screened on the toy proxy when ``prescreen``) and tell all of it."""
    round_ = ask_round(study, search, prescreen, offline)
    tell_results(study, search, platform(round_))
    return round_


def step(url: str, name: str, kind: str) -> None:
    """One step of a mixed search, as its own process would do it: from the database."""
    if kind == "new":
        new_study(url, name)
        return
    study, search = load_search(url, name)
    if kind == "online":
        online_round(study, search, prescreen=16)
    elif kind == "offline":
        run_rounds(study, search, offline, rounds=1, progress=False)
    else:
        raise ValueError(kind)


if __name__ == "__main__":
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    step(*sys.argv[1:4])
