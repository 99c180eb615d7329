"""CEM rounds over live A/B groups: ask/tell, refusals, resume, mixed rounds, PostgreSQL."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import optuna
import pytest
from click.testing import CliRunner
from optuna.trial import TrialState

from tests.tuner import live_toy as toy
from tuner.cli import main
from tuner.cli._live import read_results
from tuner.storage import ProjectStore
from tuner.study import load_search, run_rounds
from tuner.study._live import ask_round, live_rounds, tell_results
from tuner.study._live_rounds import GroupResult, calibrate, draw_candidates, select_groups

ROOT = Path(__file__).resolve().parents[2]
optuna.logging.set_verbosity(optuna.logging.WARNING)


def _url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'live.db'}"


def _snapshot(url: str, name: str) -> list[tuple[Any, ...]]:
    study, _ = load_search(url, name)
    return [(t.number, t.state, t.params, t.values, t.user_attrs)
            for t in study.get_trials()] + [sorted(study.user_attrs.items())]  # type: ignore[list-item]


def test_select_groups_takes_the_best_of_each_block() -> None:
    values = np.array([0.1, 0.5, 0.3, 0.9, 0.2, 0.4, np.nan, 0.0])
    feasible = np.array([True, True, True, False, True, True, True, True])
    # blocks [0,1] [2,3] [4,5] [6,7]; 3 is infeasible, 6 is NaN
    assert select_groups(values, feasible, 4).tolist() == [1, 2, 5, 7]


def test_select_groups_leaves_unscreened_blocks_to_their_first_feasible_draw() -> None:
    values = np.array([0.1, 0.5, 0.3, 0.9, 0.2, 0.4, np.nan, 0.0])
    feasible = np.array([True, True, True, False, True, True, True, True])
    # two screened blocks send their best; [4,5] sends its first draw, [6,7] its first finite
    assert select_groups(values, feasible, 4, screened=2).tolist() == [1, 2, 4, 7]
    assert select_groups(values, feasible, 4, screened=0).tolist() == [0, 2, 4, 7]
    with pytest.raises(ValueError, match=r"screened must lie in \[0, 4\]"):
        select_groups(values, feasible, 4, screened=5)


def test_a_prescreened_round_screens_half_its_groups_by_default(tmp_path: Path) -> None:
    url = _url(tmp_path)
    study = toy.new_study(url, "live")
    search = load_search(url, "live")[1]
    round_ = ask_round(study, search, 16, toy.offline)
    cand = draw_candidates(search.build(), search.space, 0, 16)
    values = np.array([r.value for r in toy.offline(search.space.matrix_to_weights(cand))])
    blocks = np.array_split(np.arange(16), 4)
    expect = [int(b[np.argmax(values[b])]) for b in blocks[:2]] + [int(b[0]) for b in blocks[2:]]
    sent = [list(g.weights.values()) for g in round_.groups[:-1]]
    assert np.allclose(sent, search.space.matrix_to_weights(cand[expect]))
    assert round_.selection.startswith("tournament: 2 of 4 groups")
    every = ask_round(toy.new_study(url, "all"), search, 16, toy.offline, screened=4)
    best = [int(b[np.argmax(values[b])]) for b in blocks]
    assert np.allclose([list(g.weights.values()) for g in every.groups[:-1]],
                       search.space.matrix_to_weights(cand[best]))


def test_calibrate_recovers_a_known_slope() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(0.02, 0.01, 400)
    rounds = np.repeat(np.arange(50), 8)
    y = 0.5 * x + 0.3 * (rounds % 3) * 0.01 + rng.normal(0, 0.002, 400)  # round shifts
    c = calibrate(x, y, rounds)
    assert abs(c.slope - 0.5) < 3 * (c.slope_high - c.slope_low) / 3.92  # within 3 se
    assert c.slope_high < 1 and "overstates" in c.verdict()


def test_ask_is_idempotent_and_tell_completes_the_round(tmp_path: Path) -> None:
    url = _url(tmp_path)
    study = toy.new_study(url, "live")
    search = load_search(url, "live")[1]
    first = ask_round(study, search, 16, toy.offline)
    again = ask_round(study, search, 16, toy.offline)
    assert again.reused and again.groups == first.groups
    assert [g.group for g in first.groups] == ["r0-g0", "r0-g1", "r0-g2", "r0-g3", "r0-control"]
    assert first.groups[-1].weights == dict(zip(toy.SPACE.tasks, toy.CONTROL, strict=True))
    waiting = study.get_trials(states=(TrialState.WAITING,))
    assert len(waiting) == 5 and all("offline" in t.user_attrs for t in waiting)
    results = toy.platform(first)
    tell_results(study, search, {k: results[k] for k in ("r0-g0", "r0-control")})
    assert ask_round(study, search, 16, toy.offline).reused  # half told: still round 0
    report = tell_results(study, search, {k: results[k] for k in ("r0-g1", "r0-g2", "r0-g3")})
    assert report.completed == [0]
    summary = study.user_attrs["fusiontune:live_summary:0"]
    assert len(summary["elites"]) == 1 and summary["best"] == summary["elites"][0]
    assert [r.round for r in ProjectStore(url).rounds("live")] == [0]
    rows, _ = live_rounds(study)
    assert all(r.online is not None and np.isfinite(r.offline_lift) for r in rows)
    nxt = ask_round(study, search, 0, toy.offline)
    assert nxt.round == 1 and not nxt.reused


def test_resume_after_a_crash_between_ask_and_tell(tmp_path: Path) -> None:
    url = _url(tmp_path)
    toy.step(url, "live", "new")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    code = ("import sys, os; from tests.tuner import live_toy as t; from tuner.study import "
            "load_search; from tuner.study._live import ask_round; "
            "s, p = load_search(sys.argv[1], 'live'); ask_round(s, p, 16, t.offline); "
            "os._exit(9)")
    proc = subprocess.run([sys.executable, "-c", code, url], cwd=ROOT, env=env)
    assert proc.returncode == 9  # died after asking, before any tell
    study, search = load_search(url, "live")
    before = _snapshot(url, "live")
    round_ = ask_round(study, search, 16, toy.offline)
    assert round_.reused and _snapshot(url, "live") == before  # nothing new written
    tell_results(study, search, toy.platform(round_))
    assert len(study.get_trials(states=(TrialState.COMPLETE,))) == 5


def test_offline_rounds_wait_for_a_live_round(tmp_path: Path) -> None:
    url = _url(tmp_path)
    study = toy.new_study(url, "live")
    search = load_search(url, "live")[1]
    ask_round(study, search)
    with pytest.raises(ValueError, match="live round 0 waiting for results of r0-g0"):
        run_rounds(study, search, toy.offline, rounds=1, progress=False)


HEADER = "group,users,click_mean,click_se,like_mean,like_se,follow_mean,follow_se\n"
GOOD = "{g},1000,0.2,0.01,0.3,0.01,0.25,0.01\n"
BAD_FILES = [
    (HEADER + GOOD.format(g="r0-g9"), r"group 'r0-g9' is not a group of study"),
    (HEADER + GOOD.format(g="r0-g1") + GOOD.format(g="r0-g1"),
     r"row 4 \(group 'r0-g1'\): the group is told twice"),
    (HEADER.replace(",follow_mean,follow_se", "") + "r0-g1,1000,0.2,0.01,0.3,0.01\n",
     r"metric 'follow' is missing: give columns follow_mean and follow_se"),
    (HEADER + "r0-g1,1000,0.2,0.01,nan,0.01,0.25,0.01\n",
     r"row 3 \(group 'r0-g1'\), column like_mean: nan is not a finite number"),
    (HEADER + "r0-g1,1000,0.2,0.01,0.3,inf,0.25,0.01\n", r"column like_se: inf is not a finite"),
    (HEADER + "r0-g1,1000,0.2,0.0,0.3,0.01,0.25,0.01\n",
     r"column click_se: a standard error of 0 with 1000 users"),
    (HEADER + "r0-g1,1000,0.2,0.01,,0.01,0.25,0.01\n", r"column like_mean: empty"),
    (HEADER + "r0-g1,0,0.2,0.01,0.3,0.01,0.25,0.01\n", r"column users: '0' is not a whole"),
    (HEADER.replace("users", "people") + GOOD.format(g="r0-g1"), r"no column 'users'"),
    (HEADER + GOOD.format(g="r0-g0"), r"group 'r0-g0' was already told"),
]


@pytest.mark.parametrize(("text", "message"), BAD_FILES)
def test_a_bad_results_file_is_refused_and_nothing_written(
        tmp_path: Path, text: str, message: str) -> None:
    url = _url(tmp_path)
    study = toy.new_study(url, "live")
    search = load_search(url, "live")[1]
    round_ = ask_round(study, search)
    tell_results(study, search, {"r0-g0": toy.platform(round_)["r0-g0"]})
    before = _snapshot(url, "live")
    path = tmp_path / "results.csv"
    # a good row first: the file is refused whole, not written up to its bad row
    path.write_text(HEADER + GOOD.format(g="r0-g2") + text.removeprefix(HEADER)
                    if text.startswith(HEADER) else text)
    result = CliRunner().invoke(main, ["search", "tell", "--storage", url, "--study", "live",
                                       "--results", str(path)])
    assert result.exit_code == 1, result.output
    assert len(result.output.strip().splitlines()) == 1
    assert re.search(message, result.output), result.output
    assert _snapshot(url, "live") == before


def test_results_as_sums_and_squares() -> None:
    r = GroupResult.from_sums(4, {"click": 2.0}, {"click": 2.0})  # values 1,1,0,0
    assert r.mean["click"] == 0.5
    assert r.se["click"] == pytest.approx(np.std([1, 1, 0, 0], ddof=1) / 2)


def test_read_results_accepts_requests_and_sums(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    path.write_text("group,requests,click_sum,click_sumsq\nr0-g0,4,2,2\n")
    got = read_results(path, ["click"])
    assert got["r0-g0"].units == 4 and got["r0-g0"].mean["click"] == 0.5


def _mixed(url: str, name: str, separate: bool) -> list[tuple[Any, ...]]:
    steps = ["new", "online", "offline", "online"]
    for kind in steps:
        if separate:
            subprocess.run([sys.executable, "-m", "tests.tuner.live_toy", url, name, kind],
                           cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, check=True)
        else:
            toy.step(url, name, kind)
    study, _ = load_search(url, name)
    return [(t.number, t.state, t.params, t.values,
             {k: v for k, v in t.user_attrs.items()}) for t in study.get_trials()]


@pytest.mark.slow
def test_online_offline_online_is_the_same_in_one_or_many_processes(tmp_path: Path) -> None:
    one = _mixed(f"sqlite:///{tmp_path / 'one.db'}", "mix", separate=False)
    many = _mixed(f"sqlite:///{tmp_path / 'many.db'}", "mix", separate=True)
    assert len(one) == 5 + 4 + 5
    assert one == many
    assert [attrs["round"] for *_, attrs in one] == [0] * 5 + [1] * 4 + [2] * 5


@pytest.mark.slow
def test_two_processes_tell_different_groups_on_postgres(pg_url: str, tmp_path: Path) -> None:
    study = toy.new_study(pg_url, "live")
    search = load_search(pg_url, "live")[1]
    round_ = ask_round(study, search, 16, toy.offline)
    results = toy.platform(round_)
    halves = [["r0-g0", "r0-g1", "r0-control"], ["r0-g2", "r0-g3"]]
    files = [toy.write_csv({k: results[k] for k in h}, tmp_path / f"part{i}.csv")
             for i, h in enumerate(halves)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen([sys.executable, "-c", "from tuner.cli import main; main()",
                               "search", "tell", "--storage", pg_url, "--study", "live",
                               "--results", str(f)], cwd=ROOT, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for f in files]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    study, _ = load_search(pg_url, "live")
    assert len(study.get_trials(states=(TrialState.COMPLETE,))) == 5
    assert "fusiontune:live_summary:0" in study.user_attrs
    assert [r.round for r in ProjectStore(pg_url).rounds("live")] == [0]
    # the same results told by one process give the same values
    one = toy.new_study(f"sqlite:///{tmp_path / 'one.db'}", "live")
    s1 = load_search(f"sqlite:///{tmp_path / 'one.db'}", "live")[1]
    tell_results(one, s1, toy.platform(ask_round(one, s1, 16, toy.offline)))
    assert sorted((t.user_attrs["group"], t.value) for t in one.trials) == \
        sorted((t.user_attrs["group"], t.value) for t in study.trials)


def test_ask_refuses_screened_without_prescreen_and_writes_nothing(tmp_path: Path) -> None:
    db = tmp_path / "live.db"
    result = CliRunner().invoke(main, ["search", "ask", "--storage", str(db), "--study", "live",
                                       "--screened", "2", "--out", str(tmp_path / "r.json")])
    assert result.exit_code == 1
    assert "--screened 2 chooses among pre-screened draws; give --prescreen N" in result.output
    assert not db.exists() and not (tmp_path / "r.json").exists()


@pytest.mark.parametrize(("args", "message"), [
    (["--screen-estimator", "snips"], "--screen-estimator snips estimates pre-screened draws"),
    (["--prescreen", "16", "--screen-estimator", "nope"],
     "--screen-estimator 'nope' is unknown; valid: "),
])
def test_ask_refuses_a_bad_screen_estimator_and_writes_nothing(tmp_path: Path, args: list[str],
                                                               message: str) -> None:
    db = tmp_path / "live.db"
    result = CliRunner().invoke(main, ["search", "ask", "--storage", str(db), "--study", "live",
                                       *args, "--out", str(tmp_path / "r.json")])
    assert result.exit_code == 1 and message in result.output, result.output
    assert not db.exists() and not (tmp_path / "r.json").exists()


@pytest.mark.slow
def test_prescreening_estimates_with_the_screen_estimator(demo_files: Any) -> None:
    from simulator.estimators import SNIPS, GatedDR
    from tuner.cli._live import _offline_objective
    from tuner.evaluation.search_data import SEARCH, SearchSettings, Workspace

    settings = SearchSettings(logs=str(demo_files.logs), scores=str(demo_files.scores),
                              objective={"click": 1.0, "conversion": 10.0, "like": 5.0})
    search = SimpleNamespace(settings=settings.to_dict())
    ws = Workspace(settings)
    W = np.array([[1.0, 1.0, 1.0], [1.0, 3.0, 0.5], [1.0, 0.2, 2.0], [1.0, 1.5, 1.5]])
    for prescreen, given, name, estimator in ((16, None, "gated_dr", GatedDR()),
                                              (16, "snips", "snips", SNIPS()),
                                              (0, None, "snips", SNIPS())):
        objective, used = _offline_objective(search, prescreen, given)  # type: ignore[arg-type]
        assert used == name
        want = ws.replay_as(SEARCH, estimator).evaluate(W, settings.objective)
        np.testing.assert_allclose([r.value for r in objective(W)], want.value[:, -1],
                                   rtol=1e-12)


@pytest.mark.slow
def test_cli_round_trip_on_demo_files(demo_files: Any, tmp_path: Path) -> None:
    db = tmp_path / "live.db"
    ask = ["search", "ask", "--storage", str(db), "--study", "live"]
    new = ["--groups", "4", "--logs", str(demo_files.logs), "--scores", str(demo_files.scores),
           "--objective", "click=1,conversion=10,like=5"]
    runner = CliRunner()
    first = runner.invoke(main, [*ask, *new, "--prescreen", "16", "--json",
                                 "--out", str(tmp_path / "r0.json")], catch_exceptions=False)
    assert first.exit_code == 0, first.output
    assert json.loads((tmp_path / "r0.json").read_text())["offline_estimator"] == "gated_dr"
    again = runner.invoke(main, [*ask, "--json", "--out", str(tmp_path / "r0b.json")],
                          catch_exceptions=False)
    assert again.exit_code == 0, again.output
    assert (tmp_path / "r0.json").read_text() == (tmp_path / "r0b.json").read_text()
    header = (tmp_path / "r0.csv").read_text().splitlines()[0]
    assert header == "group,control,formula,click,conversion,like"
    groups = [g["group"] for g in json.loads((tmp_path / "r0.json").read_text())["groups"]]
    rng = np.random.default_rng(0)
    lines = ["group,users,click_mean,click_se,conversion_mean,conversion_se,like_mean,like_se"]
    lines += [f"{g},500,{0.3 + 0.01 * rng.standard_normal()},0.01,0.02,0.002,0.1,0.005"
              for g in groups]
    (tmp_path / "res.csv").write_text("\n".join(lines) + "\n")
    told = runner.invoke(main, ["search", "tell", "--storage", str(db), "--study", "live",
                                "--results", str(tmp_path / "res.csv")], catch_exceptions=False)
    assert told.exit_code == 0 and "round 0 complete" in told.output, told.output
    hist = runner.invoke(main, ["search", "history", "--storage", str(db), "--study", "live",
                                "--json"], catch_exceptions=False)
    data = json.loads(hist.output)
    assert len(data["rounds"]) == 1 and len(data["groups"]) == 4
    assert data["calibration"]["n"] == 4 and "verdict" in data["calibration"]
    text = runner.invoke(main, ["search", "history", "--storage", str(db), "--study", "live"])
    assert "proxy calibration" in text.output and "offline lift" in text.output
    exported = runner.invoke(main, ["search", "export", "--storage", str(db), "--study", "live",
                                    "--json"], catch_exceptions=False)
    assert exported.exit_code == 0, exported.output
