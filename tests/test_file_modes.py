"""Every file fusiontune writes gets the mode a plain open() gives: 0666 less the umask."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from ranker import build_mmoe, save_checkpoint
from simulator.files import atomic_write
from simulator.worlds import KuaiRandFit
from tests.ranker.synth import FEATURES, SMALL, TASKS
from tests.simulator.toylog import make_toy
from tests.tuner.test_export import _exported
from tuner.evaluation.scores import ScoreTable


def _log(path: Path) -> None:
    make_toy(0, n_requests=5, n_candidates=4, k=2)[0].write(path)


def _scores(path: Path) -> None:
    traffic = make_toy(0, n_requests=5, n_candidates=4, k=2)[0]
    ScoreTable(traffic.request_ids, traffic.item_ids,
               {"click": np.full(traffic.item_ids.shape, 0.5)}).write(path)


def _checkpoint(path: Path) -> None:
    save_checkpoint(path, build_mmoe(FEATURES, TASKS, SMALL), {})


def _weights(path: Path) -> None:
    _exported().write(path)


def _kuairand_fit(path: Path) -> None:
    fields = KuaiRandFit.__dataclass_fields__
    KuaiRandFit(**{name: np.zeros(1) for name in fields}).save(path)


def _helper(path: Path) -> None:
    atomic_write(path, lambda tmp: Path(tmp).write_text("x"))


WRITERS: dict[str, Callable[[Path], None]] = {
    "logs.parquet": _log, "scores.parquet": _scores, "ranker.pt": _checkpoint,
    "weights.json": _weights, "fit.npz": _kuairand_fit, "plain.txt": _helper,
}


@pytest.fixture
def umask() -> Iterator[Callable[[int], None]]:
    old = os.umask(0o022)
    try:
        yield os.umask
    finally:
        os.umask(old)


@pytest.mark.parametrize("name", sorted(WRITERS))
@pytest.mark.parametrize(("mask", "mode"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_written_files_honour_the_umask(name: str, mask: int, mode: int, umask,
                                        tmp_path: Path) -> None:
    umask(mask)
    WRITERS[name](tmp_path / name)
    assert stat.S_IMODE((tmp_path / name).stat().st_mode) == mode
    assert [p.name for p in tmp_path.iterdir()] == [name]  # no temporary left


def test_a_failed_write_leaves_no_file(tmp_path: Path) -> None:
    def fail(tmp: str) -> None:
        Path(tmp).write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write(tmp_path / "a.txt", fail)
    assert list(tmp_path.iterdir()) == []
