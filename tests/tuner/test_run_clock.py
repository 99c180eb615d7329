"""``search run``'s clock: parts that never overlap, sum to at most the wall time, and say
when the rounds ran in worker processes."""

from __future__ import annotations

import time

import numpy as np
import pytest

from tuner.cli._run_clock import PARTS, RunClock


def test_the_parts_add_up_to_at_most_the_wall_time() -> None:
    clock = RunClock()
    with clock.part("read"):
        time.sleep(0.02)
    evaluate = clock.timed(lambda w: [time.sleep(0.03) or float(x) for x in w[:, 0]])
    with clock.rounds():
        assert evaluate(np.ones((1, 2))) == [1.0]
        time.sleep(0.02)  # the rounds' time outside the replay: database
    t = clock.stop()
    assert t["read_s"] >= 0.02 and t["replay_s"] >= 0.03 and t["database_s"] >= 0.02, t
    assert sum(t[f"{p}_s"] or 0.0 for p in PARTS) + t["other_s"] == pytest.approx(
        t["wall_s"], abs=0.005)
    assert clock.stop() == t  # the wall time is fixed at the first stop
    assert clock.line().startswith(f"time: {t['wall_s']:.1f} s wall = ")


def test_rounds_in_workers_are_the_wait_not_replay() -> None:
    clock = RunClock()
    with clock.rounds(in_process=False):
        time.sleep(0.02)
    t = clock.stop()
    assert t["replay_s"] is None and t["workers_s"] >= 0.02 and t["database_s"] == 0, t
    assert "waiting for workers" in clock.line() and "replay" not in clock.line()


def test_an_unknown_part_is_refused() -> None:
    clock = RunClock()
    with pytest.raises(KeyError, match="no part 'disk'; parts: \\['read', 'engine_start'"), \
            clock.part("disk"):
        pass
