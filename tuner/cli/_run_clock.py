"""Where ``search run``'s wall time goes: reading, engine start, replay, database.

The parts are timed inside the run, around the steps themselves, so they never overlap
and their sum is at most the wall time; what is left (options, imports done on the way,
printing) is ``other``.

- ``read``: reading and checking the log and the score table before any trial (a new
  study's checks of every file; an existing study's files opened and indexed again).
- ``engine_start``: starting or joining the Dask cluster (0 for the embedded engine).
- ``replay``: evaluating the generations, i.e. the objective's calls (on the streamed
  engine the passes over the files, reading and decoding included; on Dask the tasks
  and gathering their sums).
- ``database``: opening or creating the study and storing its settings, and the rounds'
  time outside the replay: each generation's trials written in one transaction, read
  back, the round recorded (the strategy's ask and tell, microseconds, fall here too).
  With ``--workers`` the rounds run in the worker processes: ``replay`` and this part of
  ``database`` are theirs, and ``workers`` is the time spent waiting for them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np

__all__ = ["RunClock"]

PARTS = ("read", "engine_start", "replay", "database", "workers")


class RunClock:
    """Seconds of each part of one ``search run``, from its creation to :meth:`stop`.

    Example:
        >>> clock = RunClock()
        >>> with clock.part("read"):
        ...     pass
        >>> evaluate = clock.timed(lambda w: [float(x) for x in w.sum(axis=1)])
        >>> evaluate(np.ones((2, 3)))
        [3.0, 3.0]
        >>> sorted(clock.stop())[:3]
        ['database_s', 'engine_start_s', 'other_s']
    """

    def __init__(self) -> None:
        self._start = time.perf_counter()
        self._seconds = dict.fromkeys(PARTS, 0.0)
        self._rounds = 0.0
        self._in_process = True
        self._wall: float | None = None

    @contextmanager
    def part(self, name: str) -> Iterator[None]:
        """Add the time spent inside the block to part ``name`` (one of :data:`PARTS`)."""
        if name not in self._seconds:
            raise KeyError(f"no part {name!r}; parts: {list(PARTS)}")
        tick = time.perf_counter()
        try:
            yield
        finally:
            self._seconds[name] += time.perf_counter() - tick

    @contextmanager
    def rounds(self, in_process: bool = True) -> Iterator[None]:
        """Time the rounds: in this process, their time outside the replay is database
        time; otherwise (``--workers``) it is the wait for the workers."""
        self._in_process = in_process
        tick = time.perf_counter()
        try:
            yield
        finally:
            self._rounds += time.perf_counter() - tick

    def timed(self, evaluate: Callable[[np.ndarray], Sequence[Any]]
              ) -> Callable[[np.ndarray], Sequence[Any]]:
        """``evaluate`` with its calls' time added to ``replay``."""
        def call(weights: np.ndarray) -> Sequence[Any]:
            with self.part("replay"):
                return evaluate(weights)

        return call

    def stop(self) -> dict[str, float | None]:
        """The parts in seconds (``<part>_s``, ``wall_s`` and ``other_s``); the wall time is
        fixed at the first call. ``replay_s`` is None when the rounds ran in workers."""
        if self._wall is None:
            self._wall = time.perf_counter() - self._start
        s = dict(self._seconds)
        if self._in_process:
            s["database"] += max(0.0, self._rounds - s["replay"])
        else:
            s["workers"] += self._rounds
        other = max(0.0, self._wall - sum(s.values()))
        out: dict[str, float | None] = {f"{k}_s": round(v, 3) for k, v in s.items()}
        if not self._in_process:
            out["replay_s"] = None
        out.update(wall_s=round(self._wall, 3), other_s=round(other, 3))
        return dict(sorted(out.items()))

    def line(self) -> str:
        """One line for stderr: the wall time and its parts."""
        t = self.stop()
        names = [("read_s", "reading and checking"), ("engine_start_s", "starting Dask"),
                 ("replay_s", "replay"), ("database_s", "database"),
                 ("workers_s", "waiting for workers"), ("other_s", "other")]
        parts = [f"{t[k]:.1f} s {what}" for k, what in names
                 if t[k] is not None and (t[k] or k in ("replay_s", "database_s"))]
        return f"time: {t['wall_s']:.1f} s wall = " + " + ".join(parts)
