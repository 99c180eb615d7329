"""The one parser of ``<task>=<number>`` lists, and the options that use it."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.tuner.conftest import DemoFiles
from tuner.cli import main
from tuner.evaluation.guardrails import parse_guardrails
from tuner.evaluation.objective import parse_objective
from tuner.weights_text import Numbers, check_task_numbers, parse_task_numbers

TASKS = ["click", "conversion", "like"]


def test_reads_terms_repeated_options_and_percentages() -> None:
    assert parse_task_numbers(" click=1, like = 5 ,", "--x") == {"click": 1.0, "like": 5.0}
    assert parse_task_numbers(["click=1", "like=2,conversion=3"], "--x", names=TASKS) == {
        "click": 1.0, "like": 2.0, "conversion": 3.0}
    assert parse_task_numbers("like=5%", "--x", numbers=Numbers(percent=True)) == {
        "like": 0.05}
    assert parse_task_numbers("tau=inf", "--x", numbers=Numbers(finite=False)) == {
        "tau": math.inf}


@pytest.mark.parametrize(("text", "kwargs", "pattern"), [
    ("click", {}, r"--x term 'click' is not <task>=<number>, e.g. 'click=1'"),
    ("=1", {}, r"term '=1' is not <task>=<number>"),
    ("click=abc", {}, r"term 'click=abc' is not"),
    ("", {}, r"--x is empty"),
    ("click=1,click=2", {}, r"--x gives task 'click' more than once"),
    ("click=1", {"names": ["like"]}, r"unknown task\(s\) \['click'\]; valid: \['like'\]"),
    ("click=1", {"names": TASKS, "require_all": True},
     r"lacks a value for \['conversion', 'like'\]"),
    ("click=nan", {}, r"--x task 'click' is nan; its value must be a finite number"),
    ("click=inf", {}, r"--x task 'click' is inf; its value must be a finite number"),
    ("click=-1", {"numbers": Numbers(low=0)}, r"'click' is -1.0; its value must be a finite "
     r"number >= 0"),
    ("click=0,like=0", {"numbers": Numbers(not_all_zero=True)}, r"only zero values"),
    ("clip=2", {"names": ["tau"], "kind": "parameter"},
     r"unknown parameter\(s\) \['clip'\]; valid: \['tau'\]"),
])
def test_refuses_with_one_line_naming_the_fault(text: str, kwargs: dict, pattern: str) -> None:
    with pytest.raises(ValueError, match=pattern) as err:
        parse_task_numbers(text, "--x", **kwargs)
    assert "\n" not in str(err.value)


def test_a_table_is_checked_by_the_same_rules() -> None:
    assert check_task_numbers({"click": 2}, "[objective]") == {"click": 2.0}
    with pytest.raises(ValueError, match=r"\[objective\] task 'click' is True; its value must be"):
        check_task_numbers({"click": True}, "[objective]")
    with pytest.raises(ValueError, match=r"\[objective\] names unknown task\(s\) \['x'\]"):
        check_task_numbers({"x": 1}, "[objective]", names=TASKS)


def test_objective_refuses_all_zero_a_repeat_and_unknown_tasks() -> None:
    assert parse_objective("click=1,like=0", TASKS) == {"click": 1.0, "like": 0.0}
    with pytest.raises(ValueError, match="--objective has only zero values.*nothing to maxim"):
        parse_objective("click=0")
    with pytest.raises(ValueError, match="--objective gives task 'click' more than once"):
        parse_objective("click=1,click=2")
    with pytest.raises(ValueError, match=r"unknown task\(s\) \['clicks'\]; valid: \['click'"):
        parse_objective("clicks=1", TASKS)


def test_guardrails_refuse_a_repeated_metric() -> None:
    with pytest.raises(ValueError, match="--guardrail gives metric 'click' more than once"):
        parse_guardrails("click=0.1,click=5%", TASKS)


def test_demo_refuses_a_bad_objective_before_it_runs(tmp_path: Path) -> None:
    runner = CliRunner()
    for text, pattern in [("click=0", "nothing to maximise"),
                          ("click=1,click=2", "gives task 'click' more than once"),
                          ("clicks=1", "unknown task(s) ['clicks']; valid: ['click'")]:
        result = runner.invoke(main, ["demo", "--out", str(tmp_path), "--objective", text])
        assert result.exit_code == 1, result.output
        assert pattern in result.output and "Traceback" not in result.output
        assert len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "logs.parquet").exists()


@pytest.mark.parametrize(("option", "text", "pattern"), [
    ("--objective", "click=0", "--objective has only zero values"),
    ("--objective", "click=1,click=2", "--objective gives task 'click' more than once"),
    ("--guardrail", "like=0.1,like=0.2", "--guardrail gives metric 'like' more than once"),
    ("--control", "click=1,conversion=1,like=1,like=2", "--control gives task 'like' more"),
])
def test_search_run_refuses_repeats_and_zero_objectives(
        tmp_path: Path, demo_files: DemoFiles, option: str, text: str, pattern: str) -> None:
    args = demo_files.new_study_args(tmp_path / "s.db")
    if option in args:
        args[args.index(option) + 1] = text
    else:
        args += [option, text]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1, result.output
    assert pattern in result.output and "Traceback" not in result.output
    assert not (tmp_path / "s.db").exists()  # refused before a study is written
