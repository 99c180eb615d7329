"""The CLI for people and pipelines: quick start, JSON-only stdout, quiet logs, pasteable hints.

Start-up is measured in a fresh subprocess (this process has long imported torch); the
other commands run through click's ``CliRunner``, whose stderr is not a terminal.
"""

from __future__ import annotations

import json
import logging
import os
import re
import resource
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna
import pytest
from click.testing import CliRunner, Result

from tuner.cli import main

if TYPE_CHECKING:
    from tests.tuner.conftest import DemoFiles

REPO = Path(__file__).resolve().parents[2]


def _python(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter on this checkout's sources."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          env=env, cwd=REPO, timeout=120, check=False)


# --- start-up --------------------------------------------------------------------------------


def test_importing_the_cli_loads_click_only() -> None:
    """The root imports no command: numpy, Optuna, SQLAlchemy and torch wait for one."""
    heavy = ("numpy", "optuna", "sqlalchemy", "alembic", "torch", "ranker", "scipy.stats",
             "pyarrow", "simulator", "tuner.cli._search")
    done = _python(f"import sys, tuner.cli; print([m for m in {heavy!r} if m in sys.modules])")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def _cpu_and_wall(*args: str) -> tuple[float, float, subprocess.CompletedProcess[str]]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    tick = time.perf_counter()
    done = _python("from tuner.cli import main; main()", *args)
    wall = time.perf_counter() - tick
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return cpu, wall, done


def test_help_starts_in_well_under_a_second() -> None:
    """CPU seconds of ``fusiontune --help`` (wall time too, where the machine is not loaded).

    ~5.5 CPU s when the ranker and torch were imported eagerly, ~1.4 CPU s while the root
    group imported Optuna and the storage; with commands imported on lookup, ~0.15 s.
    """
    cpu, wall, done = _cpu_and_wall("--help")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Usage: ")
    for name in ("demo", "ranker", "search"):
        assert f"  {name}  " in done.stdout
    assert cpu < 0.6, f"fusiontune --help took {cpu:.2f} CPU s ({wall:.2f} s wall)"
    if os.getloadavg()[0] < (os.cpu_count() or 1):  # wall time only means something then
        assert wall < 1.0, f"fusiontune --help took {wall:.2f} s wall ({cpu:.2f} CPU s)"


def test_search_history_loads_no_torch_scipy_or_dask(demo_files: DemoFiles) -> None:
    code = ("import sys\nfrom tuner.cli import main\n"
            "try:\n    main(sys.argv[1:])\nexcept SystemExit as e:\n    assert not e.code, e\n"
            "print([m for m in ('torch', 'scipy.stats', 'pyarrow.dataset', 'dask') "
            "if m in sys.modules], file=sys.stderr)")
    done = _python(code, "search", "history", "--storage", str(demo_files.out / "study.db"),
                   "--study", "demo", "--json")
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip().splitlines()[-1] == "[]"


# --- stdout is the result, stderr the rest; no bar outside a terminal ------------------------


TINY_DEMO = ["--requests", "2000", "--rounds", "1", "--population", "4", "--epochs", "1"]


def _run(args: list[str]) -> Result:
    """Run the CLI in this process; its stderr is not a terminal (click's CliRunner)."""
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "\r" not in result.stderr, "a progress bar was drawn on a non-terminal stderr"
    return result


def _json_lines(stdout: str) -> list[dict[str, Any]]:
    lines = stdout.splitlines()
    assert lines, "no JSON lines on stdout"
    return [json.loads(line) for line in lines]


def test_demo_json_is_only_json_and_every_stage_is_on_stderr(tmp_path: Path) -> None:
    """With progress on (the default), stdout is one JSON document; the stage lines, the
    per-epoch lines and the warnings (once per pick, naming it) are on stderr."""
    result = _run(["demo", "--out", str(tmp_path), *TINY_DEMO, "--json"])
    data = json.loads(result.stdout)
    assert [p["pick"] for p in data["picks"]] == ["strategy", "best_trial"]
    for stage in range(1, 7):
        assert f"[{stage}/6] " in result.stderr, stage
    assert "epoch 1: train_loss" in result.stderr
    warnings = [x for x in result.stderr.splitlines() if x.startswith("warning:")]
    assert len(warnings) == len(set(warnings))
    assert all(re.match(r"warning: pick '(strategy|best_trial)': ", w) for w in warnings)


def test_demo_prints_each_picks_held_out_estimate_with_its_interval(tmp_path: Path) -> None:
    result = _run(["demo", "--out", str(tmp_path), *TINY_DEMO])
    for stage in range(1, 7):
        assert f"[{stage}/6] " in result.stdout, stage
    for pick in ("strategy", "best_trial"):
        assert re.search(rf"held-out estimate of '{pick}': objective \d+\.\d{{3}} "
                         r"\[\d+\.\d{3}, \d+\.\d{3}\] \(control \d+\.\d{3}\)", result.stdout)
    warnings = [x for x in result.stderr.splitlines() if x.startswith("warning:")]
    assert len(warnings) == len(set(warnings))
    assert "epoch 1: train_loss" not in result.stdout


@pytest.mark.slow
def test_search_json_commands_print_only_json(demo_files: DemoFiles, tmp_path: Path) -> None:
    """``search run --jsonl`` streams a line per round (also resumed, also --workers);
    ``run``, ``history``, ``export``, ``compare``, ``pareto`` ``--json`` print one document;
    a run that reads and checks the logs says so on stderr, with how long it took."""
    db = str(tmp_path / "s.db")
    base = ["search", "run", "--storage", db, "--study", "s"]
    new = [*base, "--logs", str(demo_files.logs), "--scores", str(demo_files.scores),
           "--objective", "click=1,conversion=10,like=5", "--population", "8"]
    first = _run([*new, "--rounds", "2", "--jsonl"])
    assert [r["round"] for r in _json_lines(first.stdout)] == [0, 1]
    assert re.search(r"reading and checking .*logs\.parquet.*: done in \d+\.\d s",
                     first.stderr)
    resumed = _run([*base, "--rounds", "3", "--jsonl"])
    assert [r["round"] for r in _json_lines(resumed.stdout)] == [2]
    assert "reading and checking the logs and scores of study 's': done in" in resumed.stderr
    workers = _run([*base, "--rounds", "4", "--workers", "1", "--jsonl"])
    assert [r["round"] for r in _json_lines(workers.stdout)] == [3]
    assert [r["round"] for r in json.loads(
        _run([*base, "--rounds", "5", "--json"]).stdout)["rounds"]] == [4]
    study = ["--storage", db, "--study", "s"]
    for args in (["search", "history", *study, "--json"],
                 ["search", "history", *study, "--trials", "--json"],
                 ["search", "export", *study, "--out", str(tmp_path / "w.json"), "--json"],
                 ["search", "compare", *study, "--top", "2", "--json"],
                 ["search", "pareto", *study, "--rounds", "0", "--metrics", "click,like",
                  "--json"]):
        json.loads(_run(args).stdout)
    _json_lines(_run(["search", "worker", *study, "--until", "5", "--json"]).stdout)


# --- a pasteable hint --------------------------------------------------------------------------


def test_the_export_hint_after_search_pareto_works_when_pasted(
        demo_files: DemoFiles, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = tmp_path / "a dir" / "p.db"  # a space: the hint must quote the storage
    db.parent.mkdir()
    result = _run(["search", "pareto", "--storage", str(db), "--study", "p", "--logs",
                   str(demo_files.logs), "--scores", str(demo_files.scores), "--metrics",
                   "click,like", "--rounds", "1", "--population", "8", "--no-progress"])
    hint = [x for x in result.stdout.splitlines() if "fusiontune search export" in x]
    assert len(hint) == 1, result.stdout
    command = shlex.split(hint[0][hint[0].index("fusiontune "):])
    assert command[0] == "fusiontune"
    monkeypatch.chdir(tmp_path)  # pasted in a shell there
    pasted = CliRunner().invoke(main, command[1:], catch_exceptions=False)
    assert pasted.exit_code == 0, pasted.output
    assert (tmp_path / "weights.json").is_file()


# --- what a newcomer reads -------------------------------------------------------------------


def test_readme_and_help_agree_on_how_long_the_demo_takes() -> None:
    readme = (REPO / "README.md").read_text()
    help_text = _run(["--help"]).stdout
    said = re.search(r"fusiontune demo .*~(\d+) s on 2 cores", readme)
    assert said is not None
    assert f"~{said.group(1)} s" in help_text.replace("\n", " ")
    assert "python -m venv .venv && . .venv/bin/activate" in readme


@pytest.mark.parametrize(("flags", "level"), [([], logging.WARNING), (["-v"], logging.INFO)])
def test_verbose_sets_optunas_log_level(demo_files: DemoFiles, flags: list[str],
                                        level: int) -> None:
    """The root's --verbose reaches Optuna although the root itself does not import it."""
    optuna.logging.set_verbosity(logging.ERROR)
    result = CliRunner().invoke(main, [*flags, "search", "history", "--storage",
                                       str(demo_files.out / "study.db"), "--study", "demo"])
    assert result.exit_code == 0, result.output
    assert optuna.logging.get_verbosity() == level
