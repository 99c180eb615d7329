"""``search run --segment-by``, ``search compare`` and ``search export`` on segments."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from simulator.logs import LoggedTraffic
from tests.tuner.conftest import DemoFiles
from tuner.cli import main
from tuner.picks.export import ExportedWeights
from tuner.segments import SegmentTable, request_feature, segment_study_name


@pytest.mark.slow
def test_segmented_run_compare_export(demo_files: DemoFiles, tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    args = [*demo_files.new_study_args(db, rounds=1, population=4), "--segment-by",
            "feature_user_activity", "--segments", "2"]
    refused = CliRunner().invoke(main, args, catch_exceptions=False)
    assert refused.exit_code == 1 and "too little traffic to personalise" in refused.output
    run = CliRunner().invoke(main, [*args, "--segment-min-events", "5"],
                             catch_exceptions=False)
    assert run.exit_code == 0, run.output
    assert "segment 0" in run.output and segment_study_name("s", 0) in run.output.replace(
        "<i>", "0")
    again = CliRunner().invoke(main, ["search", "run", "--storage", str(db), "--study", "s",
                                      "--rounds", "1", "--no-progress"],
                               catch_exceptions=False)
    assert again.exit_code == 0, again.output  # resumes: nothing left to run
    child = CliRunner().invoke(main, ["search", "run", "--storage", str(db), "--study",
                                      "s/segment-0", "--rounds", "2", "--no-progress"])
    assert child.exit_code == 1 and "is segment 0 of study 's'" in child.output
    cmp = CliRunner().invoke(main, ["search", "compare", "--storage", str(db), "--study", "s",
                                    "--json"], catch_exceptions=False)
    assert cmp.exit_code == 0, cmp.output
    personal = json.loads(cmp.stdout)["personalised"]
    assert set(personal["metrics"]["objective"]) >= {"personalised", "global", "control",
                                                     "personalised_minus_global"}
    out = tmp_path / "w.json"
    exp = CliRunner().invoke(main, ["search", "export", "--storage", str(db), "--study", "s",
                                    "--out", str(out)], catch_exceptions=False)
    assert exp.exit_code == 0, exp.output
    data = json.loads(out.read_text())
    assert data["schema_version"] == "1.1" and data["segments"]["feature"] == "user_activity"
    table = SegmentTable.from_dict(data)
    x = request_feature(LoggedTraffic.read(demo_files.logs), "user_activity")
    got = table.weights_for(x)
    if data["segments"]["personalised"]:
        assert len({tuple(r) for r in got}) >= 1
    else:  # the guard refused: everyone gets the default row
        np.testing.assert_array_equal(got, np.tile(table.default, (len(x), 1)))
    assert ExportedWeights.read(out).weights == tuple(table.default)
