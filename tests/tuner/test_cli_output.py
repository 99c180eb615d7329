"""The CLI for people and pipelines: quick start, JSON-only stdout, quiet logs, pasteable hints.

Start-up is measured in a fresh subprocess (this process has long imported torch); the
other commands run through click's ``CliRunner``, whose stderr is not a terminal.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tests.tuner.conftest import DemoFiles

REPO = Path(__file__).resolve().parents[2]


def _python(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter on this checkout's sources."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          env=env, cwd=REPO, timeout=120, check=False)


# --- start-up --------------------------------------------------------------------------------


def test_importing_the_cli_loads_neither_torch_nor_the_ranker() -> None:
    done = _python("import sys, tuner.cli; print('torch' in sys.modules, "
                   "'ranker' in sys.modules, 'scipy.stats' in sys.modules)")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "False", "False"]


def test_help_starts_in_well_under_three_seconds() -> None:
    """CPU seconds of ``fusiontune --help`` (wall time too, where the machine is not loaded).

    Before the ranker and torch were imported lazily it took ~5.5 CPU s (15 s wall on a
    loaded 2-core machine); now ~1.4 CPU s.
    """
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    tick = time.perf_counter()
    done = _python("from tuner.cli import main; main()", "--help")
    wall = time.perf_counter() - tick
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Usage: ")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    assert cpu < 3.0, f"fusiontune --help took {cpu:.1f} CPU s ({wall:.1f} s wall)"
    if os.getloadavg()[0] < (os.cpu_count() or 1):  # wall time only means something then
        assert wall < 3.0, f"fusiontune --help took {wall:.1f} s wall ({cpu:.1f} CPU s)"


def test_search_history_loads_no_torch(demo_files: DemoFiles) -> None:
    code = ("import sys\nfrom tuner.cli import main\n"
            "try:\n    main(sys.argv[1:])\nexcept SystemExit as e:\n    assert not e.code, e\n"
            "print('torch' in sys.modules, file=sys.stderr)")
    done = _python(code, "search", "history", "--storage", str(demo_files.out / "study.db"),
                   "--study", "demo", "--json")
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip().splitlines()[-1] == "False"
