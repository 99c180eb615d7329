"""Start-up of ``fusiontune search history`` against a baseline checkout, with the import
floors beside it (README, "Start-up").

Each command runs in a fresh interpreter (the real one, ``sys.executable``; bytecode
caching on, whatever ``PYTHONDONTWRITEBYTECODE`` says) from a neutral directory with
``PYTHONPATH`` set to the checkout, alternating checkouts round by round; the figure is
the median of ``--repeat`` runs, wall and CPU (user + sys of the child) seconds. The
baseline is ``fusiontune --help``.

Run: ``python bench/history_startup.py --storage DEMO/study.db --study demo
[--baseline /work/main] [--repeat 5]`` (make the study with ``fusiontune demo --out DEMO
--requests 5000 --rounds 3 --epochs 1``; prints a markdown table).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CLI = "from tuner.cli import main; main()"


def timed(code: str, args: list[str], repo: Path) -> tuple[float, float]:
    """Wall and CPU seconds of ``python -c code *args`` on ``repo``'s sources."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPATH"] = str(repo)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    tick = time.perf_counter()
    subprocess.run([sys.executable, "-c", code, *args], env=env, check=True,
                   cwd=tempfile.gettempdir(), stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - tick
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--storage", required=True)
    parser.add_argument("--study", required=True)
    parser.add_argument("--baseline", type=Path, default=None,
                        help="Another checkout to time the same commands on.")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    history = ["search", "history", "--storage", args.storage, "--study", args.study]
    cases = {"fusiontune --help": (CLI, ["--help"]),
             "search history": (CLI, history),
             "search history --json": (CLI, [*history, "--json"]),
             "search history --trials": (CLI, [*history, "--trials"])}
    floors = {"import click, numpy, optuna": ("import click, numpy, optuna", []),
              "import click, numpy, optuna, sqlalchemy":
                  ("import click, numpy, optuna, sqlalchemy", [])}
    repos = {"this checkout": REPO}
    if args.baseline is not None:
        repos = {f"baseline ({args.baseline})": args.baseline.resolve(), **repos}
    runs: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for _ in range(args.repeat):
        for label, repo in repos.items():
            for name, (code, argv) in cases.items():
                runs.setdefault((label, name), []).append(timed(code, argv, repo))
        for name, (code, argv) in floors.items():
            runs.setdefault(("floor", name), []).append(timed(code, argv, REPO))
    print(f"load average {os.getloadavg()[0]:.2f}; median of {args.repeat}\n")
    print("| checkout | command | wall s | CPU s |\n|---|---|---|---|")
    for (label, name), times in runs.items():
        wall = statistics.median(w for w, _ in times)
        cpu = statistics.median(c for _, c in times)
        print(f"| {label} | {name} | {wall:.2f} | {cpu:.2f} |")


if __name__ == "__main__":
    main()
