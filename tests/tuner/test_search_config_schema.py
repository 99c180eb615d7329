"""Search and run files are checked by pydantic models; every error is one line naming the
key with its section path and what is valid."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from ranker.config_file import parse_run_config
from tuner.search_config import load_search_config, parse_search_config

BASE: dict[str, Any] = {"data": {"logs": "/d/l.parquet", "scores": "/d/s.parquet"},
                        "objective": {"click": 1.0}}
RANKER = {"tasks": ["click", "like"]}


def _with(**tables: Any) -> dict[str, Any]:
    raw = copy.deepcopy(BASE)
    raw.update(tables)
    return raw


@pytest.mark.parametrize(("raw", "pattern"), [
    (_with(search={"fusion": {"low": "x"}}), r"^\[search\.fusion\] low must be a number, "
                                             r"got 'x'$"),
    (_with(search={"fusion": {"lo": 1, "hi": 2}}),
     r"^\[search\.fusion\] has unknown key\(s\) \['hi', 'lo'\]; valid: \['control', .*'low'"),
    (_with(search={"fusion": {"lo": 1}, "rounds": 0}), r"\(and 1 more problem\)$"),
    (_with(search={"loss": {"rounds": 2}}),
     r"^\[search\.loss\] has unknown key\(s\) \['rounds'\]; valid: \['high', 'low', 'pinned'\]"),
    (_with(search={"space": "both"}), r"\[search\] space 'both' unknown; valid: \['fusion', "),
    (_with(search={"fusion": {"low": 5}}), r"\[search\.fusion\] needs low < high"),
    (_with(search={"population": True}), r"\[search\] population must be an integer, got True"),
    (_with(search={"guardrails": {"like": "5%"}}), r"\[search\] guardrails\.like must be a "
                                                   r"number, got '5%'"),
    (_with(search={"elite_fraction": 1.5}), r"\[search\] elite_fraction must be <= 1"),
    (_with(search={"n_bootstrap": float("nan")}), r"\[search\] n_bootstrap must be an integer"),
    (_with(data={"scores": "/s"}), r"^\[data\] needs logs$"),
    (_with(data={"logs": "/l", "splits": {"search": 0.5}}), r"\[data\] splits lacks part"),
    (_with(objective={"click": 0}), r"\[objective\] has only zero values"),
    (_with(objective={"click": float("inf")}), r"\[objective\] click must be a finite number"),
    (_with(extra={}), r"^the file has unknown key\(s\) \['extra'\]; valid: \['data', "),
    (_with(ranker={"tasks": ["click"]}), r"\[ranker\] tasks must hold at least 2 item"),
    (_with(ranker={**RANKER, "init": "warm"}), r"\[ranker\] init = \"warm\" needs base_check"),
    (_with(ranker={**RANKER, "model": {"kind": "mmoe", "n_expert": 2}}),
     r"^\[ranker\.model\] has unknown key\(s\) \['n_expert'\]; valid: \[.*'n_experts'"),
    (_with(ranker={**RANKER, "train": {"epochs": "2"}}),
     r"^\[ranker\.train\] epochs must be an integer, got '2'$"),
])
def test_bad_search_files_are_one_line_naming_the_key(raw: dict[str, Any], pattern: str) -> None:
    with pytest.raises(ValueError, match=pattern) as err:
        parse_search_config(raw)
    assert "\n" not in str(err.value)


def test_the_file_name_leads_and_shipped_files_load(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text('[data]\nlogs = "l.parquet"\nscores = "s.parquet"\n[objective]\nclick = 1\n'
                    "[search.fusion]\nhigh = \"4\"\n")
    with pytest.raises(ValueError, match=rf"^{path}: \[search\.fusion\] high must be a number"):
        load_search_config(path)
    root = Path(__file__).resolve().parents[2] / "configs"
    cfg = load_search_config(root / "search_demo.toml")
    assert cfg.space == "joint" and cfg.fusion.control is not None


def test_a_stored_raw_parses_back_to_the_same_config() -> None:
    cfg = parse_search_config(_with(search={"estimator": "switch",
                                            "estimator_params": {"tau": 3}},
                                    ranker=dict(RANKER)))
    assert parse_search_config(cfg.raw) == cfg


def test_run_file_counts_the_other_problems() -> None:
    with pytest.raises(ValueError, match=r"^\[balancer\] has unknown key\(s\) \['weight'\].*"
                                         r"\(and 1 more problem\)$"):
        parse_run_config({"model": {"kind": "mmoe"}, "balancer": {"weight": 1},
                          "data": {"history_len": 0}})
