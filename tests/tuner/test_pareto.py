"""Pareto mode: non-dominated sorting against brute force, the multi-objective strategies,
and ``search pareto`` end to end on the small demo files (front, resume, export, errors)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import optuna
import pytest

from tests.tuner.test_cli import CONTROL, assert_user_error, invoke
from tuner.pareto import _front, dominates, non_dominated_ranks, pareto_mask, parse_metrics
from tuner.picks.export import ExportedWeights
from tuner.space import FusionSpace
from tuner.strategies import (
    CEMConfig,
    NSGA2Multi,
    ScalarisedCEM,
    ScalarisedCEMConfig,
    simplex_directions,
)
from tuner.study import load_search

if TYPE_CHECKING:
    from tests.tuner.conftest import DemoFiles

SPACE = FusionSpace(("click", "like", "follow"), pinned="click")


# --- non-dominated sorting ------------------------------------------------------------------


def brute_ranks(Y: np.ndarray) -> np.ndarray:
    """O(n^2) per front, one pair at a time: the definition, with no vectorisation."""
    n = len(Y)
    ranks = np.full(n, -1)
    left = {i for i in range(n) if np.isfinite(Y[i]).all()}
    rank = 0
    while left:
        front = {i for i in left if not any(
            all(Y[j][k] >= Y[i][k] for k in range(Y.shape[1]))
            and any(Y[j][k] > Y[i][k] for k in range(Y.shape[1])) for j in left)}
        for i in front:
            ranks[i] = rank
        left -= front
        rank += 1
    return ranks


@pytest.mark.parametrize("k", [2, 3])
@pytest.mark.parametrize("seed", range(5))
def test_ranks_match_brute_force_on_random_points(k: int, seed: int) -> None:
    """Continuous points, and integer points full of ties and duplicates."""
    rng = np.random.default_rng(seed)
    for Y in (rng.normal(size=(120, k)), rng.integers(0, 4, size=(120, k)).astype(float)):
        assert non_dominated_ranks(Y).tolist() == brute_ranks(Y).tolist()
        assert pareto_mask(Y).tolist() == (brute_ranks(Y) == 0).tolist()


def test_chunked_dominance_equals_one_block(monkeypatch: pytest.MonkeyPatch) -> None:
    Y = np.random.default_rng(7).integers(0, 6, size=(300, 3)).astype(float)
    whole = non_dominated_ranks(Y)
    monkeypatch.setattr(_front, "_CHUNK_CELLS", 50)
    assert non_dominated_ranks(Y).tolist() == whole.tolist()


HAND_MADE = [
    # (points, directions, expected ranks)
    ([[1, 2], [2, 1], [1, 1], [0, 0]], None, [0, 0, 1, 2]),
    ([[1, 1], [1, 1], [0, 1]], None, [0, 0, 1]),  # duplicates share the front
    ([[1, 1], [1, 0], [0, 1]], None, [0, 1, 1]),  # a tie on one metric still dominates
    ([[1, 2, 3], [3, 2, 1], [2, 2, 2], [1, 1, 1], [3, 2, 3]], None, [1, 1, 1, 2, 0]),
    ([[1, 5], [2, 3], [3, 4], [2, 4]], ["maximize", "minimize"], [2, 0, 0, 1]),
    ([[1, np.nan], [0, 0], [1e9, 0], [np.inf, 1]], None, [-1, 1, 0, -1]),  # NaN, inf: no rank
]


@pytest.mark.parametrize(("points", "directions", "expected"), HAND_MADE)
def test_hand_made_cases(points: list[list[float]], directions: list[str] | None,
                         expected: list[int]) -> None:
    Y = np.array(points, dtype=float)
    assert non_dominated_ranks(Y, directions).tolist() == expected


def test_dominates_is_strict_somewhere() -> None:
    assert dominates(np.array([1.0, 1.0]), np.array([1.0, 0.0]))
    assert not dominates(np.array([1.0, 1.0]), np.array([1.0, 1.0]))
    with pytest.raises(ValueError, match="one of"):
        non_dominated_ranks(np.zeros((2, 2)), ["maximize", "up"])


def test_a_thousand_points_are_quick() -> None:
    import time

    Y = np.random.default_rng(0).normal(size=(3000, 3))
    start = time.perf_counter()
    ranks = non_dominated_ranks(Y)
    assert time.perf_counter() - start < 5.0
    front = Y[ranks == 0]
    assert not dominates(front[:, None, :], front[None, :, :]).any()


# --- strategies -----------------------------------------------------------------------------


def test_simplex_directions_spread() -> None:
    for k, count in [(2, 2), (2, 5), (3, 3), (3, 7)]:
        L = simplex_directions(k, count)
        assert L.shape == (count, k) and np.allclose(L.sum(axis=1), 1.0)
        assert np.allclose(L[:k] if k == 3 else L[[0, -1]], np.eye(k))  # each metric alone
        assert len(np.unique(L, axis=0)) == count
    with pytest.raises(ValueError, match="at least 3"):
        simplex_directions(3, 2)


def _two_metrics(X: np.ndarray) -> np.ndarray:
    """A trade-off on the toy space: one metric wants w_like high, the other low."""
    return np.stack([X[:, 0] - 0.2 * X[:, 1], -X[:, 0] - 0.1 * (X[:, 1] - 1) ** 2], axis=1)


@pytest.mark.parametrize("name", ["nsga2", "cem"])
def test_replayed_strategy_asks_what_an_uninterrupted_one_asks(name: str) -> None:
    def make() -> Any:
        if name == "nsga2":
            return NSGA2Multi(SPACE, 2, population=8, seed=3)
        return ScalarisedCEM(SPACE, np.array([1.0, -1.0]),
                             ScalarisedCEMConfig(CEMConfig(population=4), 3), seed=3)

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    whole, history = make(), []
    for g in range(4):
        X = whole.ask(g)
        Y = _two_metrics(X)
        Y[0] = np.nan  # a failed or infeasible member
        whole.tell(g, X, Y)
        history.append((X, Y))
    resumed = make()
    resumed.replay(history[:3])
    assert np.array_equal(resumed.ask(3), history[3][0])
    assert np.array_equal(resumed.ask(3), resumed.ask(3))


def test_scalarised_cem_corner_directions_move_apart() -> None:
    """CEM along 'metric 1 alone' ends with higher metric 1 than CEM along 'metric 2 alone'."""
    s = ScalarisedCEM(SPACE, np.array([1.0, -1.0]),
                      ScalarisedCEMConfig(CEMConfig(population=16), 2), seed=0)
    for g in range(8):
        X = s.ask(g)
        s.tell(g, X, _two_metrics(X))
    means = np.array([c.pick() for c in s.cems])
    assert _two_metrics(means[:1])[0, 0] > _two_metrics(means[1:])[0, 0]
    with pytest.raises(ValueError, match=r"values \[M, 2\]"):
        s.tell(8, X, np.zeros((len(X), 3)))


# --- --metrics ------------------------------------------------------------------------------

TASKS = ("click", "conversion", "like")


def test_parse_metrics() -> None:
    assert parse_metrics("click, like:min", TASKS) == (("click", "like"),
                                                       ("maximize", "minimize"))
    for text, fragment in [("click", "got 1"), ("click,like,conversion,click", "got 4"),
                           ("click,foo", "unknown metric(s) ['foo']"), ("click,click", "repeats"),
                           ("click,like:up", "':max' or ':min'")]:
        with pytest.raises(ValueError, match=r"valid: \['click', 'conversion', 'like'\]") as err:
            parse_metrics(text, TASKS)
        assert fragment in str(err.value)


# --- search pareto end to end ---------------------------------------------------------------


def pareto_args(demo: DemoFiles, db: Path, strategy: str, *, rounds: int = 2,
                metrics: str = "click,like", study: str = "p") -> list[str]:
    args = ["search", "pareto", "--storage", str(db), "--study", study, "--logs",
            str(demo.logs), "--scores", str(demo.scores), "--metrics", metrics,
            "--strategy", strategy, "--rounds", str(rounds), "--population", "8",
            "--control", CONTROL, "--no-progress"]
    return [*args, "--scalarisations", "4"] if strategy == "cem" else args


def test_pareto_takes_the_estimators_hyperparameters(demo_files: DemoFiles,
                                                     tmp_path: Path) -> None:
    db = tmp_path / "p.db"
    args = pareto_args(demo_files, db, "nsga2", rounds=1)
    result = invoke([*args, "--estimator", "clipped_ips", "--estimator-param", "clip=7"])
    assert result.exit_code == 0, result.output
    _, stored = load_search(f"sqlite:///{db}", "p")
    assert stored.settings["estimator"] == "clipped_ips"
    assert stored.settings["estimator_params"] == {"clip": 7.0}
    bad = invoke([*pareto_args(demo_files, tmp_path / "q.db", "nsga2", rounds=1),
                  "--estimator", "snips", "--estimator-param", "clip=7"])
    assert bad.exit_code != 0 and "clip" in bad.output
    q = tmp_path / "q.db"
    assert not q.exists() or "p" not in optuna.get_all_study_names(f"sqlite:///{q}")


@pytest.fixture(scope="module")
def pareto_dbs(demo_files: DemoFiles, tmp_path_factory: pytest.TempPathFactory
               ) -> dict[str, Path]:
    """A 2-round x 8 Pareto study of click and like per strategy."""
    out = {}
    for strategy in ("nsga2", "cem"):
        db = tmp_path_factory.mktemp(strategy) / "p.db"
        result = invoke(pareto_args(demo_files, db, strategy))
        assert result.exit_code == 0, result.output
        assert "non-dominated of 16 feasible trials" in result.output
        out[strategy] = db
    return out


def front_json(db: Path, *extra: str) -> dict[str, Any]:
    result = invoke(["search", "pareto", "--storage", str(db), "--study", "p", "--rounds",
                     "0", "--json", *extra])
    assert result.exit_code == 0, result.output
    return dict(json.loads(result.output))


def _matrix(points: list[dict[str, Any]], metrics: list[str]) -> np.ndarray:
    return np.array([[p["metrics"][m]["value"] for m in metrics] for p in points])


@pytest.mark.parametrize("strategy", ["nsga2", "cem"])
def test_front_is_non_dominated_and_not_beaten_by_control(pareto_dbs: dict[str, Path],
                                                          strategy: str) -> None:
    data = front_json(pareto_dbs[strategy])
    metrics = data["metrics"]
    assert metrics == ["click", "like"] and data["strategy"] == strategy
    assert data["n_trials"] == 16 and data["n_infeasible"] == 0
    Y = _matrix(data["front"], metrics)
    assert not dominates(Y[:, None, :], Y[None, :, :]).any()  # mutually non-dominated
    control = np.array([data["control"][m]["value"] for m in metrics])
    assert not dominates(control, Y).any()  # control beats no point of the front
    assert (Y.max(axis=0) >= control).all()  # the front reaches control on each metric
    # the front is exactly the non-dominated set of every trial
    trials = optuna.load_study(study_name="p", storage=f"sqlite:///{pareto_dbs[strategy]}")
    values = np.array([t.values for t in trials.trials])
    on_front = sorted(int(i) for i in np.flatnonzero(pareto_mask(values)))
    listed = sorted([p["trial"] for p in data["front"]]
                    + [n for p in data["front"] for n in p["same_weights"]])
    assert listed == on_front
    for p in data["front"]:
        for m in metrics:
            e = p["metrics"][m]
            assert e["low"] <= e["value"] <= e["high"]
        assert p["lift_vs_control"]["click"] == pytest.approx(
            p["metrics"]["click"]["value"] / data["control"]["click"]["value"] - 1)


def test_front_table_prints_control_and_points(pareto_dbs: dict[str, Path]) -> None:
    result = invoke(["search", "pareto", "--storage", str(pareto_dbs["cem"]), "--study", "p",
                     "--rounds", "0"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split()[:4] == ["trial", "w_conversion", "w_like", "click"]
    assert lines[2].split()[:3] == ["control", "0.500", "0.500"]
    assert "feasible trials (cem; metrics click, like" in result.output
    few = invoke(["search", "pareto", "--storage", str(pareto_dbs["cem"]), "--study", "p",
                  "--rounds", "0", "--points", "2"])
    points = [r for r in lines[3:] if " [" in r]
    few_points = [r for r in few.output.splitlines()[3:] if " [" in r]
    assert len(points) > 2 and "distinct front points shown (--points)" in few.output
    assert few_points == [points[0], points[-1]]  # both ends of the front


def _trials(db: Path) -> list[tuple[Any, ...]]:
    study = optuna.load_study(study_name="p", storage=f"sqlite:///{db}")
    return [(t.number, t.state.name, t.params, t.values, t.user_attrs["round"],
             t.user_attrs["member"]) for t in study.trials]


@pytest.mark.parametrize("strategy", ["nsga2", "cem"])
def test_resume_equals_uninterrupted(demo_files: DemoFiles, pareto_dbs: dict[str, Path],
                                     tmp_path: Path, strategy: str) -> None:
    """1 round, then the same command line again with --rounds 1: the trials of 2 rounds."""
    db = tmp_path / "p.db"
    for _ in range(2):
        result = invoke(pareto_args(demo_files, db, strategy, rounds=1))
        assert result.exit_code == 0, result.output
    got, ref = _trials(db), _trials(pareto_dbs[strategy])
    assert len(got) == len(ref) == 16
    for a, b in zip(got, ref, strict=True):
        assert a[:3] == b[:3] and a[4:] == b[4:]
        assert a[3] == pytest.approx(b[3], rel=1e-12)


def test_interrupted_generation_is_finished_with_the_same_trials(
        demo_files: DemoFiles, pareto_dbs: dict[str, Path], tmp_path: Path) -> None:
    """A generation cut short (its last 3 trials deleted) is completed on resume."""
    import sqlite3

    db = tmp_path / "p.db"
    shutil.copy(pareto_dbs["nsga2"], db)
    with sqlite3.connect(db) as con:
        ids = [r[0] for r in con.execute(
            "SELECT trial_id FROM trials ORDER BY number DESC LIMIT 3")]
        for table in ("trial_params", "trial_values", "trial_user_attributes",
                      "trial_system_attributes"):
            con.execute(f"DELETE FROM {table} WHERE trial_id IN ({','.join('?' * 3)})", ids)
        con.execute(f"DELETE FROM trials WHERE trial_id IN ({','.join('?' * 3)})", ids)
    result = invoke(["search", "pareto", "--storage", str(db), "--study", "p", "--rounds", "0"])
    assert "non-dominated of 13 feasible trials" in result.output
    result = invoke(["search", "pareto", "--storage", str(db), "--study", "p", "--rounds", "1",
                     "--no-progress"])
    assert result.exit_code == 0, result.output
    got, ref = _trials(db), _trials(pareto_dbs["nsga2"])
    assert [t[2] for t in got[:16]] == [t[2] for t in ref]


@pytest.mark.parametrize("strategy", ["nsga2", "cem"])
def test_export_of_a_front_point_round_trips(pareto_dbs: dict[str, Path], tmp_path: Path,
                                             strategy: str) -> None:
    db = pareto_dbs[strategy]
    point = front_json(db)["front"][-1]
    out = tmp_path / "w.json"
    result = invoke(["search", "export", "--storage", str(db), "--study", "p", "--trial",
                     str(point["trial"]), "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    exported = ExportedWeights.from_json(result.stdout)  # warnings: stderr
    assert ExportedWeights.read(out) == exported
    assert exported.pick == "trial" and exported.trial_number == point["trial"]
    assert exported.weight_map == pytest.approx(point["weights"])
    assert exported.objective["split"] == "holdout"
    # no single best or CEM mean in a Pareto study; history points to the front
    for flags in ([], ["--best"]):
        assert_user_error(invoke(["search", "export", "--storage", str(db), "--study", "p",
                                  "--out", str(tmp_path / "x.json"), *flags]),
                          "Pareto study", "--trial N")
    assert_user_error(invoke(["search", "history", "--storage", str(db), "--study", "p"]),
                      "Pareto study", "search pareto")
    assert_user_error(invoke(["search", "run", "--storage", str(db), "--study", "p",
                              "--no-progress"]), "single-objective", "search pareto")
    assert_user_error(invoke(["search", "worker", "--storage", str(db), "--study", "p",
                              "--until", "3"]), "Pareto study", "search pareto")


@pytest.mark.slow
def test_guardrail_infeasible_trials_are_never_on_the_front_nor_exported(
        demo_files: DemoFiles, tmp_path: Path) -> None:
    db = tmp_path / "p.db"
    result = invoke([*pareto_args(demo_files, db, "cem", rounds=1), "--guardrail", "like=0.02",
                     "--plot", str(tmp_path / "plot")])
    assert result.exit_code == 0, result.output
    assert "break a guardrail and are never on the front" in result.output
    assert (tmp_path / "plot" / "pareto.png").stat().st_size > 0
    data = front_json(db)
    assert data["n_infeasible"] > 0
    study = optuna.load_study(study_name="p", storage=f"sqlite:///{db}")
    bad = [t for t in study.trials if t.user_attrs.get("infeasible")]
    assert len(bad) == data["n_infeasible"]
    assert all(t.system_attrs["constraints"] == [1.0] for t in bad)
    front = {p["trial"] for p in data["front"]} | {n for p in data["front"]
                                                   for n in p["same_weights"]}
    assert not front & {t.number for t in bad}
    out = tmp_path / "w.json"
    result = invoke(["search", "export", "--storage", str(db), "--study", "p", "--trial",
                     str(bad[0].number), "--out", str(out)])
    assert_user_error(result, f"trial {bad[0].number} breaks a guardrail", "like: lift")
    assert not out.exists()


def test_three_metrics_and_a_minimised_one(demo_files: DemoFiles, tmp_path: Path) -> None:
    db = tmp_path / "p.db"
    result = invoke([*pareto_args(demo_files, db, "nsga2", rounds=1,
                                  metrics="click,conversion,like:min"),
                     "--json", "--plot", str(tmp_path)])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)  # "wrote pareto.png" goes to stderr
    assert data["directions"] == ["maximize", "maximize", "minimize"]
    Y = _matrix(data["front"], data["metrics"]) * np.array([1, 1, -1])
    assert not dominates(Y[:, None, :], Y[None, :, :]).any()
    assert (tmp_path / "pareto.png").exists()
    study = optuna.load_study(study_name="p", storage=f"sqlite:///{db}")
    assert [d.name for d in study.directions] == ["MAXIMIZE", "MAXIMIZE", "MINIMIZE"]
    assert study.metric_names == ["click", "conversion", "like"]  # the dashboard's labels


@pytest.mark.parametrize(("metrics", "fragments"), [
    ("click,foo", ["unknown metric(s) ['foo']"]),
    ("click", ["needs 2 or 3 metrics, got 1"]),
    ("click,conversion,like,click", ["needs 2 or 3 metrics, got 4"]),
])
def test_bad_metrics_are_one_line_errors(demo_files: DemoFiles, tmp_path: Path,
                                         metrics: str, fragments: list[str]) -> None:
    db = tmp_path / "p.db"
    result = invoke(pareto_args(demo_files, db, "cem", metrics=metrics))
    assert_user_error(result, "--metrics", *fragments, "['click', 'conversion', 'like']")
    assert not db.exists()


def test_continuing_with_conflicting_options_is_refused(pareto_dbs: dict[str, Path],
                                                        tmp_path: Path) -> None:
    db = tmp_path / "p.db"
    shutil.copy(pareto_dbs["cem"], db)
    base = ["search", "pareto", "--storage", str(db), "--study", "p", "--no-progress"]
    assert_user_error(invoke([*base, "--strategy", "nsga2"]), "--strategy nsga2", "cem")
    assert_user_error(invoke([*base, "--metrics", "click,conversion"]), "--metrics",
                      "click,like")
    assert_user_error(invoke([*base, "--seed", "3"]), "--seed 3")
    assert len(_trials(db)) == 16
    # --rounds 0 may show the front on other recorded metrics
    data = front_json(db, "--metrics", "click,conversion")
    assert data["metrics"] == ["click", "conversion"]


def test_front_of_a_search_run_study(demo_files: DemoFiles, tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    shutil.copy(demo_files.out / "study.db", db)
    base = ["search", "pareto", "--storage", str(db), "--study", "demo"]
    data = json.loads(invoke([*base, "--rounds", "0", "--metrics", "click,like",
                              "--json"]).output)
    assert data["strategy"] == "search run" and data["front"]
    assert_user_error(invoke([*base, "--rounds", "0"]), "--metrics")
    assert_user_error(invoke([*base, "--rounds", "1"]), "'search run'", "--rounds 0")


def test_cem_options_with_nsga2_are_refused(demo_files: DemoFiles, tmp_path: Path) -> None:
    db = tmp_path / "p.db"
    result = invoke([*pareto_args(demo_files, db, "nsga2"), "--scalarisations", "2"])
    assert_user_error(result, "--scalarisations", "only for --strategy cem")
    assert not db.exists()


def test_new_study_without_metrics_says_what_to_give(tmp_path: Path) -> None:
    result = invoke(["search", "pareto", "--storage", str(tmp_path / "p.db"), "--study", "p"])
    assert_user_error(result, "does not exist", "--logs --scores --metrics")
    assert not (tmp_path / "p.db").exists()


def test_compare_refuses_a_pareto_study(pareto_dbs: dict[str, Path]) -> None:
    result = invoke(["search", "compare", "--storage", str(pareto_dbs["cem"]), "--study", "p"])
    assert result.exit_code == 1 and "Pareto study" in result.output, result.output


@pytest.mark.parametrize("intervals", [True, False])
def test_pareto_plot_labels_front_trials_and_colours_the_third_metric(
        demo_files: DemoFiles, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        intervals: bool) -> None:
    """Each front point carries its trial number; 3 metrics: every panel has a colour bar
    of its third metric; --no-plot-intervals draws no interval bars."""
    import matplotlib.pyplot as plt

    kept: list[Any] = []
    monkeypatch.setattr(plt, "close", lambda fig=None: kept.append(fig))
    db = tmp_path / "p.db"
    flag = "--plot-intervals" if intervals else "--no-plot-intervals"
    result = invoke([*pareto_args(demo_files, db, "nsga2", rounds=1,
                                  metrics="click,conversion,like"),
                     "--json", "--plot", str(tmp_path), flag])
    assert result.exit_code == 0, result.output
    front = {p["trial"] for p in json.loads(result.stdout)["front"]}
    (fig,) = kept
    panels = [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]
    assert len(panels) == 3 and len(fig.axes) == 6  # a colour bar beside each panel
    for ax in panels:
        assert {int(t.get_text()) for t in ax.texts} == front
        assert bool(ax.containers) is intervals  # errorbar containers
